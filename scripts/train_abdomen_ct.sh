#!/usr/bin/env bash
# Trains the bundled abdominal-CT demo model on ../shared/data/totalseg: the autoencoder learns from all
# three CTs (example_ct, aorta_ct_crop and the labelled example_ct_sm), the diffusion model from the one
# labelled pair with spatial and intensity augmentation. One labelled case: a demo, not a clinical model.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=$(cd "${DATA:-../shared/data/totalseg}" && pwd)
RUN=runs/abdomen-ct
mkdir -p "$RUN"
printf 'image,label,modality\n%s,,ct\n%s,,ct\n%s,%s,ct\n' "$DATA/example_ct.nii.gz" "$DATA/aorta_ct_crop.nii.gz" \
  "$DATA/example_ct_sm.nii.gz" "$DATA/example_seg.nii.gz" > "$RUN/autoencoder.csv"
printf 'image,label,modality\n%s,%s,ct\n' "$DATA/example_ct_sm.nii.gz" "$DATA/example_seg.nii.gz" > "$RUN/pairs.csv"
python -m SemanticSynthLib train-autoencoder --data "$RUN/autoencoder.csv" --out "$RUN/autoencoder" --label-table totalseg_v2 \
  --modality ct --spacing 3 --steps ${AE_STEPS:-1500} --batch 2 --patch 64,64,32 --augment --adv-start 800 --adv-weight 0.01 \
  --checkpoint-every 200 --log-every 20 --progress none --threads ${THREADS:-2} --resume
python -m SemanticSynthLib train-diffusion --data "$RUN/pairs.csv" --autoencoder "$RUN/autoencoder" --out "$RUN/model" \
  --conditioning concat --steps ${DIFFUSION_STEPS:-4000} --batch 2 --latent-patch 32,32,8 --augment-copies 40 --lr 2e-4 \
  --checkpoint-every 200 --log-every 20 --progress none --threads ${THREADS:-2} --resume
mkdir -p SemanticSynthLib/models && rm -rf SemanticSynthLib/models/abdomen-ct && cp -r "$RUN/model" SemanticSynthLib/models/abdomen-ct
