#!/usr/bin/env bash
# The evaluation report of the bundled brain-MRI model on the 20 validation subjects (docs/evaluation/).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/ixi_muse}
mkdir -p runs/brain-mri
python scripts/brain_mri_split.py "$DATA" runs/brain-mri
python -m SemanticSynthLib evaluate --model brain-mri --segmenter SemanticSynthLib/models/brain-mri-segmenter \
  --data runs/brain-mri/val.csv --out docs/evaluation --samples ${SAMPLES:-1} --threads 2 --overwrite "$@"
