#!/usr/bin/env bash
# Trains the bundled brain-MRI (T1 from MUSE labels) model package on ../shared/data/ixi_muse.
# 128 training subjects; the 20 validation subjects of scripts/brain_mri_split.py are kept out.
# Resumable: rerun the same command after an interruption. Commands and times land in metadata.json.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/ixi_muse}
RUN=runs/brain-mri
python scripts/brain_mri_split.py "$DATA" "$RUN"
python -m SemanticSynthLib train-autoencoder --data "$RUN/train.csv" --out "$RUN/autoencoder" --label-table muse \
  --modality mri --spacing 2 --steps 2000 --batch 2 --patch 64 --adv-start 1400 --adv-weight 0.01 \
  --checkpoint-every 200 --log-every 20 --progress none --threads 2 --resume
python -m SemanticSynthLib train-diffusion --data "$RUN/train.csv" --autoencoder "$RUN/autoencoder" --out "$RUN/model" \
  --conditioning concat --steps ${DIFFUSION_STEPS:-6000} --batch 2 --latent-patch 32 --lr 2e-4 \
  --checkpoint-every 200 --log-every 20 --progress none --threads 2 --resume
mkdir -p SemanticSynthLib/models && rm -rf SemanticSynthLib/models/brain-mri && cp -r "$RUN/model" SemanticSynthLib/models/brain-mri
