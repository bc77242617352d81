#!/usr/bin/env bash
# Trains the bundled brain-MRI (T1 from MUSE labels) model package on ../shared/data/ixi_muse.
# 128 training subjects; the 20 validation subjects of scripts/brain_mri_split.py are kept out.
# The autoencoder is label-aware (engine/model/label_autoencoder.py): its decoder is guided by the label map
# painted with per-label priors measured on the training subjects. Training runs in fp32 on the CPU
# (4x faster than bf16 autocast there; engine/precision.bf16_for_training).
# Resumable: rerun the same command after an interruption. Commands and times land in metadata.json.
# STAGE=autoencoder or STAGE=diffusion runs one stage only. STAGE=decoder fine-tunes the decoder of a released
# brain-mri (default: 0.2.0, git 4012104) with its encoder, codebook and diffusion U-Net kept (--decoder-only), and
# writes $RUN/decoder. DECODER_GRADIENT=W adds the gradient-difference loss with weight W (default 0: L1 only).
# DEFAULT_STEPS: the package's default DDIM step count (3, measured in docs/sampling_steps.md). TEMPERATURE: its default
# sampling temperature (0.7, measured in docs/sampling_temperature.md).
# CONDITIONING (default concat) and CONDITION_DROPOUT (default 0) set the diffusion stage's label condition and its
# classifier-free-guidance dropout. brain-mri 0.7.0 is a chain of such stages (docs/unet_condition.md, "0.7.0"):
# CODEBOOK_GROUPS=4 autoencoder 1,600 -> 2,200 -> 3,600 steps (the last 600 resumed with --lr 5e-5); concat U-Net
# 3,200 steps; detail 600; detail with CONDITION_DROPOUT=0.15, 1,200 steps on the 1,600-step autoencoder, 900 on
# the 2,200-step one (0.6.0) and 900 on the 3,600-step one (the last 300 at --lr 5e-5). brain-mri 0.8.0 is 0.7.0 with
# the default temperature 0.7 written into its metadata. brain-mri 0.9.0: a CODEBOOK_GROUPS=8 autoencoder started
# from 0.7.0's (2,800 steps, checkpoints/brain-mri-g8) and 0.8.0's U-Net fine-tuned 1,600 steps on its latents, with
# the default temperature 0.5 (docs/decoder_steps/report_codebook_groups.md, session 13, has every command).
# brain-mri 0.10.0: LATENT_CHANNELS=16 widens 0.9.0's autoencoder to 16 channels in 16 groups, every trained tensor kept
# (AE_FROM=the 0.9.0 commit; 500 steps at AE_LR=1e-4, then resumed to 2,200 at 2e-4: checkpoints/brain-mri-c16), and
# DIFFUSION_FROM=0.9.0's package widens its U-Net the same way, 900 steps at CONDITIONING=detail CONDITION_DROPOUT=0.15;
# the default temperature 0.55 was then chosen by measurement (report_codebook_groups.md, session 15).
# brain-mri 0.11.0 is 0.10.0 with a scanner-texture profile (engine/synthesis/scanner_texture.py) measured on the first
# 16 training subjects: STAGE=texture fits it onto $TEXTURE_FROM (default: the bundled package) into $RUN/model-texture
# (88 s on 2 threads); a full run fits it onto its own $RUN/model before INSTALL. brain-mri 0.12.0: the same stage
# with the strength measured one working voxel away from label boundaries and the unlabelled head mapped by distance
# within 20 mm of the labels (--margin 1 --unlabelled --unlabelled-within 20; 99 s; docs/history.md 0.12.0).
set -euo pipefail
# The body is one block, read whole before it runs: editing or checking out this file during a run of
# hours cannot change what the run executes (bash reads a plain script as it goes).
{
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/ixi_muse}
RUN=${RUN:-runs/brain-mri}
PY=${PY:-python}
STAGE=${STAGE:-all}
DEFAULT_STEPS=${DEFAULT_STEPS:-3}
TEMPERATURE=${TEMPERATURE:-0.7}
$PY scripts/brain_mri_split.py "$DATA" "$RUN"
TEXTURE_FROM=${TEXTURE_FROM:-SemanticSynthLib/models/brain-mri}
fit_texture() {  # the package $1 with its scanner texture, into $RUN/model-texture (kept if already made)
  [ -f "$RUN/model-texture/metadata.json" ] || $PY scripts/fit_texture.py --model "$1" --data "$RUN/train.csv" \
    --cases 16 --margin 1 --unlabelled --unlabelled-within 20 --out "$RUN/model-texture" \
    ${TEXTURE_VERSION:+--version $TEXTURE_VERSION}
}
if [ "$STAGE" = texture ]; then
  fit_texture "$TEXTURE_FROM"
  exit 0
fi
if [ "$STAGE" = decoder ]; then
# The 0.2.0 autoencoder saw 400 steps; its decoder is the reconstruction ceiling. Training only the decoder keeps
# every latent the U-Net learnt, so the package's diffusion stays valid. L1 only (--adv-start = --steps).
# DECODER_FROM: the commit whose bundled brain-mri is fine-tuned (4012104: the 0.2.0 release). To go on from a later
# release on a machine without this run's checkpoint, name its commit and a new RUN folder.
DECODER_FROM=${DECODER_FROM:-4012104}
DINIT=$RUN/brain-mri-$DECODER_FROM
if [ ! -f "$DINIT/metadata.json" ]; then
  mkdir -p "$DINIT" && git archive "$DECODER_FROM" SemanticSynthLib/models/brain-mri | tar -x -C "$DINIT" --strip-components=3
fi
$PY -m SemanticSynthLib train-autoencoder --data "$RUN/train.csv" --out "$RUN/decoder" --label-table muse --modality mri \
  --spacing 2 --steps ${DECODER_STEPS:-5000} --batch 2 --patch 64 --adv-start ${DECODER_STEPS:-5000} --init "$DINIT" \
  --decoder-only --gradient-weight ${DECODER_GRADIENT:-0} --checkpoint-every 250 --log-every 50 --progress none \
  --threads 2 --resume
[ -n "${INSTALL:-}" ] || exit 0
: "${INSTALL_VERSION:?set INSTALL_VERSION, e.g. 0.4.0}"  # checked before the bundled package is replaced
# The package takes its name from the output folder; the bundled one is "brain-mri", with the release's version
# (INSTALL_VERSION) and the step count measured in docs/sampling_steps.md. Then regenerate the manifest (README).
mkdir -p SemanticSynthLib/models && rm -rf SemanticSynthLib/models/brain-mri && cp -r "$RUN/decoder" SemanticSynthLib/models/brain-mri
cp "$DINIT"/LICENSE-*.md SemanticSynthLib/models/brain-mri/  # the MUSE labels' licence travels with the package
$PY - "$INSTALL_VERSION" "$DEFAULT_STEPS" <<'PYEOF'
import json, sys
path = "SemanticSynthLib/models/brain-mri/metadata.json"
meta = json.load(open(path, encoding="utf-8"))
meta.update(name="brain-mri", version=sys.argv[1])
meta["diffusion"]["default_steps"] = int(sys.argv[2])
with open(path, "w", encoding="utf-8") as fh:
    json.dump(meta, fh, indent=1)
PYEOF
exit 0
fi
if [ "$STAGE" != diffusion ]; then
# L1 + codebook loss only in this run (--adv-start = --steps): the warm start brings the previous release's
# adversarially trained VQVAE. Warm start: the VQVAE part starts from the previous release's plain autoencoder (git f2836e6), whose
# tensors are copied whole or into their leading slices (engine/training/autoencoder.warm_start).
# AE_FROM=COMMIT starts from that commit's bundled brain-mri instead; CODEBOOK_GROUPS=G gives the latent G codes per
# voxel (product quantization, engine/model/label_autoencoder.py): from a label-aware package every tensor but the codebook
# is warm-started, and the diffusion stage must then be trained anew on the new latents. DIFFUSION_FROM=PACKAGE starts
# that U-Net from a package's (e.g. $RUN/init-brain-mri-c004e46, brain-mri 0.4.0).
AE_FROM=${AE_FROM:-f2836e6}
INIT=$RUN/init-brain-mri-$AE_FROM
if [ ! -f "$INIT/metadata.json" ]; then
  mkdir -p "$INIT" && git archive "$AE_FROM" SemanticSynthLib/models/brain-mri | tar -x -C "$INIT" --strip-components=3
fi
$PY -m SemanticSynthLib train-autoencoder --data "$RUN/train.csv" --out "$RUN/autoencoder" --label-table muse \
  --modality mri --spacing 2 --steps ${AE_STEPS:-400} --batch 2 --patch 64 --num-embeddings 512 \
  ${CODEBOOK_GROUPS:+--codebook-groups $CODEBOOK_GROUPS} ${LATENT_CHANNELS:+--latent-channels $LATENT_CHANNELS} \
  ${AE_LR:+--lr $AE_LR} --adv-start ${AE_STEPS:-400} --adv-weight 0.01 \
  --checkpoint-every 100 --log-every 20 --init "$INIT" --progress none --threads 2 --resume
fi
[ "$STAGE" = autoencoder ] && exit 0
$PY -m SemanticSynthLib train-diffusion --data "$RUN/train.csv" --autoencoder "$RUN/autoencoder" --out "$RUN/model" \
  --conditioning ${CONDITIONING:-concat} --condition-dropout ${CONDITION_DROPOUT:-0} --steps ${DIFFUSION_STEPS:-6000} --batch 2 --latent-patch 32 --lr 2e-4 --default-steps $DEFAULT_STEPS --temperature $TEMPERATURE \
  ${DIFFUSION_FROM:+--init $DIFFUSION_FROM} --checkpoint-every 100 --log-every 20 --progress none --threads 2 --resume
fit_texture "$RUN/model"
[ -n "${INSTALL:-}" ] || exit 0
mkdir -p SemanticSynthLib/models && rm -rf SemanticSynthLib/models/brain-mri && cp -r "$RUN/model-texture" SemanticSynthLib/models/brain-mri
exit
}
