#!/usr/bin/env bash
# Interleaved A/B (docs/benchmark.md, session 27): runs/bench/brain-mri-0.10.0 is the 0.10.0 package (its weights and
# `git show 91cbc52:SemanticSynthLib/models/brain-mri/metadata.json`). brain-mri 0.10.0 (no texture) vs 0.11.0 (texture) on the MRI validation map and a 256x256x128 map.
set -e
cd "$(dirname "$0")/.."
. .venv/bin/activate
python - <<'PY'
import sys; sys.path.insert(0, 'scripts')
from pathlib import Path
import benchmark
benchmark.make_map((256, 256, 128), Path('runs/bench/map256.nii.gz'))
PY
MRI=../shared/data/ixi_muse/labels/IXI012-HH-1211.nii.gz
for i in 1 2 3 4 5 6 7; do
  for m in runs/bench/brain-mri-0.10.0 brain-mri; do
    for map in $MRI runs/bench/map256.nii.gz; do
      echo "$m $(basename $map) $(python scripts/benchmark.py --one $map --model $m --modality mri)"
    done
  done
done
