#!/usr/bin/env bash
# Trains the bundled auxiliary segmenter for evaluating the brain-MRI model: SegResNet on the real IXI T1s
# with MUSE labels grouped into seven structures (muse_groups), on the 128 training subjects of
# scripts/brain_mri_split.py; the 20 validation subjects are kept out. Resumable: rerun after an interruption.
# History of the bundled package: steps 1-1300 ran with an unweighted Dice + cross-entropy loss, under
# which the ventricles were never predicted; steps 1301-1900 resumed with the class-weighted cross-entropy
# the trainer now always uses. A fresh run of this script uses the weighted loss from the start.
set -euo pipefail
# The body is one block, read whole before it runs: editing or checking out this file during a run of
# hours cannot change what the run executes (bash reads a plain script as it goes).
{
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/ixi_muse}
RUN=runs/segmenter
mkdir -p "$RUN"
python scripts/brain_mri_split.py "$DATA" "$RUN"
python -m SemanticSynthLib train-segmenter --data "$RUN/train.csv" --out "$RUN/brain-mri-segmenter" \
  --label-groups muse_groups --modality mri --spacing 2 --patch 80 --filters 8 --steps ${SEGMENTER_STEPS:-1900} \
  --batch 2 --lr 1e-3 --augment --checkpoint-every 100 --log-every 20 --progress none --threads 2 --resume
mkdir -p SemanticSynthLib/models && rm -rf SemanticSynthLib/models/brain-mri-segmenter
cp -r "$RUN/brain-mri-segmenter" SemanticSynthLib/models/brain-mri-segmenter
exit
}
