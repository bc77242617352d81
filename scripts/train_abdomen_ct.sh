#!/usr/bin/env bash
# Trains the bundled abdominal-CT demo model on ../shared/data/totalseg: the autoencoder learns from all
# three CTs (example_ct, aorta_ct_crop and the labelled example_ct_sm), the diffusion model from the one
# labelled pair with spatial and intensity augmentation. One labelled case: a demo, not a clinical model.
# The autoencoder is label-aware and the model conditions on tissue kinds and HU priors, so every
# TotalSegmentator v2 class generates, also the ones the one training case lacks (docs/priors.md).
# The training CT is non-contrast (its measured organ means, docs/priors.md), hence --data-phase.
# Resumable: rerun the same command. STAGE=autoencoder or STAGE=diffusion runs one stage only.
# STAGE=decoder: abdomen-ct 0.3.0, the 0.2.0 package (git 0e890e0) with only its decoder trained 1,800 more steps
# (encoder, codebook and diffusion U-Net kept, so the U-Net's latents stay valid). 1,243 s on 2 threads, 2026-11-27.
# STAGE=decoder DECODER_FROM=f827b96 HEAD_BLOCKS=1 DECODER_OUT=runs/abdomen-ct/head: 0.4.0's decoder with a label-modulated
# refinement block at full resolution (starts as the identity, so the U-Net stays valid), against the rims at organ
# boundaries. Tried in session 17 (800 steps): better organ means, rim 51 -> 44 HU, +36% time on large maps; not
# released (docs/ct_unet.md, "Rims").
# STAGE=unet: abdomen-ct 0.4.0, the U-Net retrained the brain-mri way (detail conditioning, condition dropout 0.15),
# started from the 0.3.0 package's U-Net (git UNET_FROM_COMMIT, or the package folder UNET_FROM) on 0.3.0's
# autoencoder, which stays. 4,000 steps of batch 8 with DEVICE=cuda on one H200: 407 s, 2026-11-27 (about 75 min on
# 2 CPU threads). Default steps 10 (docs/ct_unet.md). UNET_AE=DIR trains it on another autoencoder package instead.
# STAGE=groups: the autoencoder again (encoder too), with 8 codebook groups (one code per latent channel, as brain-mri),
# from 0.4.0's (git GROUPS_FROM_COMMIT); 0.4.0 codes a latent voxel in one 9-bit code, too coarse for the residual
# at organ boundaries (docs/ct_unet.md, "Rims"). A U-Net must then be trained on it: STAGE=unet UNET_AE=$RUN/autoencoder-g8.
# STAGE=surround: 0.4.0's decoder fine-tuned (decoder only) with a surround painting (--surround-mm SURROUND_MM, 6,24):
# unlabelled voxels within 6 mm of a label are painted with their own measured mean (fat and muscle, about -45 HU)
# instead of the background's -305 HU, fading back to it at 24 mm, against the rims at organ boundaries
# (docs/ct_unet.md, "Rims"). The painting
# changed, so a U-Net is then trained on it from 0.4.0's (SURROUND_UNET_STEPS, batch 8, as STAGE=unet).
# STAGE=surround-encoder: 0.6.0's whole autoencoder (encoder and codebook too) fine-tuned with the same surround, 600 steps:
# with the encoder kept, 0.6.0's reconstructed lungs came out as air (its codes for lung next to the new painting);
# then a U-Net on the new latents from 0.6.0's (SURROUND_UNET_STEPS, 1000). docs/ct_unet.md.
# STAGE=refiner: abdomen-ct 0.8.0, the 0.7.0 package (git REFINER_FROM, b06bf2e) with a detail refiner added
# (train-refiner): real CT degraded 2x and 3x and restored; aorta_ct_crop's first 124 slices (its last 40 held out for
# scripts/ct_sharpness.py), example_ct's unlabelled slices and the labelled case (scripts/refiner_data.py). The other
# networks are copied as they were. 2,000 steps of batch 4, patch 48 (docs/detail_refiner.md has the time).
# INSTALL=1 INSTALL_VERSION=X.Y.Z bundles what a stage trained; regenerate the manifest afterwards (README, Models).
set -euo pipefail
# The body is one block, read whole before it runs: editing or checking out this file during a run of
# hours cannot change what the run executes (bash reads a plain script as it goes).
{
cd "$(dirname "$0")/.."
DATA=$(cd "${DATA:-../shared/data/totalseg}" && pwd)
RUN=${RUN:-runs/abdomen-ct}
PY=${PY:-python}
STAGE=${STAGE:-all}
THREADS=${THREADS:-2}
mkdir -p "$RUN"
package_at() {  # the bundled abdomen-ct package of git commit $1, extracted once into folder $2
  [ -f "$2/metadata.json" ] && return 0
  mkdir -p "$2" && git archive "$1" SemanticSynthLib/models/abdomen-ct | tar -x -C "$2" --strip-components=3
}
train_unet() {  # the 0.4.0 recipe: a detail-conditioned U-Net on autoencoder $1, started from package $2's, into $3, $4 steps
  $PY -m SemanticSynthLib train-diffusion --data "$RUN/pairs.csv" --autoencoder "$1" --init "$2" --out "$3" \
    --conditioning detail --condition-dropout 0.15 --default-steps 10 --temperature 0.5 --steps "$4" \
    --batch ${BATCH:-8} --latent-patch 32,32,8 --augment-copies 40 --lr 2e-4 --checkpoint-every ${CHECKPOINT_EVERY:-250} \
    --log-every 50 --progress none --threads $THREADS --device ${DEVICE:-cpu} --resume
}
train_ae() {  # the CT autoencoder into $1 for $2 steps (no adversarial term) from package folder $3; more options after
  local out=$1 steps=$2 init=$3
  shift 3
  $PY -m SemanticSynthLib train-autoencoder --data "$RUN/autoencoder.csv" --out "$out" --label-table totalseg_v2 \
    --data-phase non_contrast --modality ct --spacing 3 --steps "$steps" --batch 2 --patch 64,64,32 --augment \
    --adv-start "$steps" --init "$init" "$@" --checkpoint-every 100 --log-every 20 --progress none --threads $THREADS \
    --device ${DEVICE:-cpu} --resume
}
install() {  # bundle the package folder $1 as abdomen-ct version $INSTALL_VERSION, when INSTALL is set
  [ -n "${INSTALL:-}" ] || return 0
  : "${INSTALL_VERSION:?set INSTALL_VERSION, e.g. 0.4.0}"  # checked before the bundled package is replaced
  mkdir -p SemanticSynthLib/models && rm -rf SemanticSynthLib/models/abdomen-ct && cp -r "$1" SemanticSynthLib/models/abdomen-ct
  $PY - "$INSTALL_VERSION" <<'PYEOF'
import json, sys
path = "SemanticSynthLib/models/abdomen-ct/metadata.json"
meta = json.load(open(path, encoding="utf-8"))
meta["name"], meta["version"] = "abdomen-ct", sys.argv[1]
open(path, "w", encoding="utf-8").write(json.dumps(meta, indent=1))
PYEOF
}
printf 'image,label,modality\n%s,,ct\n%s,,ct\n%s,%s,ct\n' "$DATA/example_ct.nii.gz" "$DATA/aorta_ct_crop.nii.gz" \
  "$DATA/example_ct_sm.nii.gz" "$DATA/example_seg.nii.gz" > "$RUN/autoencoder.csv"
if [ "$STAGE" = decoder ]; then
DECODER_FROM=${DECODER_FROM:-0e890e0}
DINIT=$RUN/abdomen-ct-$DECODER_FROM
package_at "$DECODER_FROM" "$DINIT"
DECODER_OUT=${DECODER_OUT:-$RUN/decoder}
train_ae "$DECODER_OUT" ${DECODER_STEPS:-1800} "$DINIT" --decoder-only ${HEAD_BLOCKS:+--head-blocks $HEAD_BLOCKS}
install "$DECODER_OUT"
exit 0
fi
if [ "$STAGE" = refiner ]; then
REFINER_FROM=${REFINER_FROM:-b06bf2e}
RINIT=$RUN/abdomen-ct-$REFINER_FROM
package_at "$REFINER_FROM" "$RINIT"
$PY scripts/refiner_data.py "$DATA" "$RUN/refiner"
$PY -m SemanticSynthLib train-refiner --data "$RUN/refiner/train.csv" --model "$RINIT" --out "$RUN/refiner/model" \
  --steps ${REFINER_STEPS:-2000} --batch 4 --patch 48 --lr 1e-3 --checkpoint-every 250 --log-every 50 --progress none \
  --threads $THREADS --device ${DEVICE:-cpu} --resume
install "$RUN/refiner/model"
exit 0
fi
printf 'image,label,modality\n%s,%s,ct\n' "$DATA/example_ct_sm.nii.gz" "$DATA/example_seg.nii.gz" > "$RUN/pairs.csv"
if [ "$STAGE" = unet ]; then
UNET_FROM_COMMIT=${UNET_FROM_COMMIT:-83f6110}
UNET_FROM=${UNET_FROM:-$RUN/abdomen-ct-$UNET_FROM_COMMIT}
package_at "$UNET_FROM_COMMIT" "$UNET_FROM"
train_unet "${UNET_AE:-$UNET_FROM}" "$UNET_FROM" "$RUN/unet" ${UNET_STEPS:-4000}
install "$RUN/unet"
exit 0
fi
if [ "$STAGE" = surround ]; then
SURROUND_FROM=${SURROUND_FROM:-f827b96}
SINIT=$RUN/abdomen-ct-$SURROUND_FROM
package_at "$SURROUND_FROM" "$SINIT"
train_ae "$RUN/surround/decoder" ${DECODER_STEPS:-600} "$SINIT" --decoder-only --surround-mm ${SURROUND_MM:-6,24}
train_unet "$RUN/surround/decoder" "$SINIT" "$RUN/surround/unet" ${SURROUND_UNET_STEPS:-1500}
install "$RUN/surround/unet"
exit 0
fi
if [ "$STAGE" = surround-encoder ]; then
ENCODER_FROM=${ENCODER_FROM:-e6b3d6f}
EINIT=$RUN/abdomen-ct-$ENCODER_FROM
package_at "$ENCODER_FROM" "$EINIT"
train_ae "$RUN/surround/autoencoder" ${AE_STEPS:-600} "$EINIT" --surround-mm ${SURROUND_MM:-6,24}
train_unet "$RUN/surround/autoencoder" "$EINIT" "$RUN/surround/unet2" ${SURROUND_UNET_STEPS:-1000}
install "$RUN/surround/unet2"
exit 0
fi
if [ "$STAGE" = groups ]; then
GROUPS_FROM_COMMIT=${GROUPS_FROM_COMMIT:-f827b96}
GINIT=$RUN/abdomen-ct-$GROUPS_FROM_COMMIT
package_at "$GROUPS_FROM_COMMIT" "$GINIT"
train_ae "$RUN/autoencoder-g8" ${AE_STEPS:-1200} "$GINIT" --codebook-groups 8
exit 0
fi
if [ "$STAGE" != diffusion ]; then
# Warm start: the VQVAE part starts from the previous release's plain autoencoder (git f2836e6), whose
# tensors are copied whole or into their leading slices (engine/training/autoencoder.warm_start).
INIT=$RUN/init-abdomen-ct
package_at f2836e6 "$INIT"
$PY -m SemanticSynthLib train-autoencoder --data "$RUN/autoencoder.csv" --out "$RUN/autoencoder" --label-table totalseg_v2 \
  --data-phase non_contrast --modality ct --spacing 3 --steps ${AE_STEPS:-400} --batch 2 --patch 64,64,32 --augment \
  --num-embeddings 512 --adv-start 300 --adv-weight 0.01 \
  --checkpoint-every 100 --log-every 20 --init "$INIT" --progress none --threads $THREADS --resume
fi
[ "$STAGE" = autoencoder ] && exit 0
$PY -m SemanticSynthLib train-diffusion --data "$RUN/pairs.csv" --autoencoder "$RUN/autoencoder" --out "$RUN/model" \
  --conditioning concat --steps ${DIFFUSION_STEPS:-900} --batch 2 --latent-patch 32,32,8 --augment-copies 40 --lr 2e-4 \
  --checkpoint-every 100 --log-every 20 --progress none --threads $THREADS --resume
install "$RUN/model"
exit
}
