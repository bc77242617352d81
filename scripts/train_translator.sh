#!/usr/bin/env bash
# Trains the bundled demo translator (brain T1 -> synthetic T2-like contrast, with the spatial transform)
# on stand-in pairs made from ../shared/data/ixi_muse (scripts/make_translation_pairs.py). The 20
# validation subjects of scripts/brain_mri_split.py are kept out of every step. Resumable: rerun after an
# interruption. Starts from the plain (not label-aware) brain-mri VQVAE of release 0.1.0 (git f2836e6), which is
# fine-tuned to the target contrast: the translator reads and writes images without a label map.
set -euo pipefail
# The body is one block, read whole before it runs: editing or checking out this file during a run of
# hours cannot change what the run executes (bash reads a plain script as it goes).
{
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/ixi_muse}
RUN=runs/translator
python scripts/make_translation_pairs.py "$DATA" "$RUN"
INIT=$RUN/init-brain-mri
if [ ! -f "$INIT/metadata.json" ]; then
  mkdir -p "$INIT" && git archive f2836e6 SemanticSynthLib/models/brain-mri | tar -x -C "$INIT" --strip-components=3
fi
python -m SemanticSynthLib train-autoencoder --data "$RUN/targets.csv" --out "$RUN/autoencoder" \
  --init "$INIT" --modality mri --spacing 2 --steps ${AE_STEPS:-400} --batch 2 --patch 64 \
  --adv-weight 0 --lr 1e-4 --checkpoint-every 100 --log-every 20 --progress none --threads 2 --resume
python -m SemanticSynthLib train-translator --data "$RUN/train_pairs.csv" --autoencoder "$RUN/autoencoder" \
  --out "$RUN/model" --spatial-steps ${SPATIAL_STEPS:-1200} --steps ${TRANSLATOR_STEPS:-3000} --refine-steps ${REFINE_STEPS:-0} --batch 2 \
  --latent-patch 16 --checkpoint-every 200 --log-every 20 --progress none --threads 2 --resume
mkdir -p SemanticSynthLib/models && rm -rf SemanticSynthLib/models/brain-t1-to-t2like
cp -r "$RUN/model" SemanticSynthLib/models/brain-t1-to-t2like
exit
}
