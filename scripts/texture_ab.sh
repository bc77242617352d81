#!/usr/bin/env bash
# Interleaved A/B of two brain-mri packages (docs/benchmark.md): fresh processes, 7 rounds, on the MRI validation map
# IXI012 (120x120x90 at 2 mm) and a 256x256x128 map; compare the medians of the same run.
#   A (default runs/bench/brain-mri-0.10.0: its weights and `git show 91cbc52:SemanticSynthLib/models/brain-mri/metadata.json`)
#   B (default brain-mri, the bundled package)
# Session 27: A = 0.10.0 (no texture), B = 0.11.0; session 28: A = runs/bench/brain-mri-0.11.0 (the weights and
# `git show 9b37718:SemanticSynthLib/models/brain-mri/metadata.json`), B = 0.12.0.
set -e
cd "$(dirname "$0")/.."
. .venv/bin/activate
A=${A:-runs/bench/brain-mri-0.10.0}
B=${B:-brain-mri}
python - <<'PY'
import sys; sys.path.insert(0, 'scripts')
from pathlib import Path
import benchmark
benchmark.make_map((256, 256, 128), Path('runs/bench/map256.nii.gz'))
PY
MRI=../shared/data/ixi_muse/labels/IXI012-HH-1211.nii.gz
for i in 1 2 3 4 5 6 7; do
  for m in "$A" "$B"; do
    for map in $MRI runs/bench/map256.nii.gz; do
      echo "$m $(basename $map) $(python scripts/benchmark.py --one $map --model $m --modality mri)"
    done
  done
done
