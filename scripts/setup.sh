#!/usr/bin/env bash
# Creates .venv with the CPU build of torch 2.13.0 and SemanticSynth (editable, with test extras).
# Safe to rerun: torch is installed once; the package and its dependencies are synced each time.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -c "import torch" 2>/dev/null || pip install -q torch==2.13.0
pip install -q -e ".[test]"
