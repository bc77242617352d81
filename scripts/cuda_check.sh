#!/usr/bin/env bash
# The checks that need a GPU, as one script for a machine with one CUDA GPU (figures of the last run:
# docs/cuda_check.md):
#   1. generation with --device cuda: each bundled model on a real label map, against the CPU, same seed;
#   2. a few training steps of each trainer on CUDA (autoencoder, with resume; diffusion; segmenter; translator),
#      then generation and translation with the packages they wrote;
#   3. the same trainers under a single-GPU `torchrun` (DDP over NCCL; NCCL_DEBUG shows the communicator);
#   4. scripts/benchmark.py --device cuda.
# STEPS="1 3" runs those steps only; MODELS="abdomen-ct" limits step 1 to those bundled models.
# Usage: OUT=DIR bash scripts/cuda_check.sh     (data: $SEMANTICSYNTH_DATA, default ../shared/data)
#        DEV=cpu bash scripts/cuda_check.sh     rehearses steps 2-3 on the CPU (gloo) before a GPU is spent on them
# Every step runs even when one before it fails; the script's status is 1 if any failed. Logs go to $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
export SEMANTICSYNTH_DATA=${SEMANTICSYNTH_DATA:-$(cd .. && pwd)/shared/data}
export PYTHONUNBUFFERED=1
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
PY=${PY:-python3}
DEV=${DEV:-cuda}
W=$(mktemp -d)
failed=0
step() { echo; echo "== $(date +%T) $*"; }
run() {  # run a command, time it, record a failure without stopping
  local t0=$SECONDS
  if "$@"; then echo "   ok in $((SECONDS - t0)) s"; else echo "   FAILED ($?) in $((SECONDS - t0)) s: $*"; failed=1; fi
}
ss() { $PY -m SemanticSynthLib "$@"; }
want() { [[ " ${STEPS:-1 2 3 4} " == *" $1 "* ]]; }
VAL=$SEMANTICSYNTH_DATA/ixi_muse/labels/IXI012-HH-1211.nii.gz

step "machine"
$PY -c "import torch, monai, SimpleITK; print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.is_available() and torch.cuda.get_device_name(0), '| monai', monai.__version__, '| SimpleITK', SimpleITK.Version_VersionString())"

if [ "$DEV" = cuda ] && want 1; then
step "1. generate: each bundled model on a real label map, CUDA twice (the first pays CUDA's start-up), then CPU; same seed"
CT_MAP=SemanticSynth/Resources/Samples/abdomen_ct_totalseg_labels.nii.gz
for case in "brain-mri $VAL" "abdomen-ct $CT_MAP"; do
  set -- $case
  [[ " ${MODELS:-brain-mri abdomen-ct} " == *" $1 "* ]] || continue
  echo "-- $1 on $(basename "$2")"
  run ss generate "$2" "$W/$1_cuda1.nii.gz" --model "$1" --device cuda --seed 0 --progress none
  run ss generate "$2" "$W/$1_cuda2.nii.gz" --model "$1" --device cuda --seed 0 --progress none
  run ss generate "$2" "$W/$1_cpu.nii.gz" --model "$1" --device cpu --seed 0 --progress none
  run $PY - "$2" "$W/$1_cuda2.nii.gz" "$W/$1_cpu.nii.gz" "$W/$1_cuda1.nii.gz" <<'EOF'
import sys
import numpy as np
import SimpleITK as sitk
labels, cuda, cpu, cuda_first = (sitk.ReadImage(p) for p in sys.argv[1:])
for img in (cuda, cpu):
    assert img.GetSize() == labels.GetSize() and np.allclose(img.GetSpacing(), labels.GetSpacing()) \
        and np.allclose(img.GetOrigin(), labels.GetOrigin()) and np.allclose(img.GetDirection(), labels.GetDirection()), \
        "output grid differs from the label map's"
lab = sitk.GetArrayFromImage(labels)
a, b, c = (sitk.GetArrayFromImage(i).astype(np.float64) for i in (cuda, cpu, cuda_first))
inside = lab > 0
assert np.isfinite(a).all() and a[inside].std() > 0, "CUDA output is not a finite, varying image"
# CT is in HU (near 0 for soft tissue), so differences are taken relative to the spread, not the mean
scale = a[inside].std()
rel = np.abs(a - b)[inside].mean() / scale
corr = np.corrcoef(a[inside], b[inside])[0, 1]
worst = max(abs(a[lab == k].mean() - b[lab == k].mean()) / scale for k in np.unique(lab[inside]))
print(f"   grid identical; inside the labels: CUDA vs CPU mean |diff| {rel:.4f} of the intensity spread, "
      f"correlation {corr:.4f}; worst per-label mean difference {worst:.4f} of the spread; CUDA run 1 vs run 2 "
      f"max |diff| {np.abs(a - c).max():.3g}")
assert corr > 0.95 and worst < 0.05, "CUDA and CPU outputs disagree"
EOF
done
fi

if want 2 || want 3; then
step "tiny training data: crops of three IXI subjects and two stand-in translation pairs"
run $PY - "$W" <<'EOF'
import sys
from pathlib import Path
sys.path.insert(0, "tests")
import SimpleITK as sitk
from testdata import IXI_IDS, crop_case, write_tiny_pairs
root = Path(sys.argv[1])
for sub in ("data/imagesTr", "data/labelsTr"):
    (root / sub).mkdir(parents=True)
for i, case_id in enumerate(IXI_IDS):
    image, labels = crop_case(case_id, 48)
    sitk.WriteImage(image, str(root / "data/imagesTr" / f"case_{i:03d}_0000.nii.gz"))
    sitk.WriteImage(labels, str(root / "data/labelsTr" / f"case_{i:03d}.nii.gz"))
pairs = write_tiny_pairs(root / "pairs")
(root / "targets.csv").write_text("image,label,modality\n" + "".join(f"{p},,mri\n" for p in sorted((pairs / "target").iterdir())))
EOF
fi
D=$W/data
common=(--device "$DEV" --progress none --log-every 10)

if want 2; then
step "2. training steps on CUDA"
run ss train-autoencoder --data "$D" --out "$W/ae" --label-table muse --steps 30 --patch 32 --adv-start 15 \
  --checkpoint-every 10 "${common[@]}"
run ss train-autoencoder --data "$D" --out "$W/ae" --label-table muse --steps 40 --patch 32 --adv-start 15 \
  --checkpoint-every 10 --resume --overwrite "${common[@]}"
run $PY -c "import json,sys; s=[json.loads(l)['step'] for l in open(sys.argv[1])]; print('   logged steps', s); assert s == [10, 20, 30, 40]" "$W/ae.log.jsonl"
run ss train-diffusion --data "$D" --autoencoder "$W/ae" --out "$W/model" --steps 30 --latent-patch 8 --default-steps 3 "${common[@]}"
run ss train-segmenter --data "$D" --out "$W/seg" --label-groups muse_groups --steps 20 --patch 32 "${common[@]}"
run ss train-autoencoder --data "$W/targets.csv" --out "$W/tae" --steps 10 --patch 32 --adv-weight 0 "${common[@]}"
run ss train-translator --data "$W/pairs" --autoencoder "$W/tae" --out "$W/translator" --spatial-steps 10 --steps 10 \
  --refine-steps 5 --refine-sample-steps 2 --latent-patch 8 --default-steps 2 "${common[@]}"
run ss generate "$D/labelsTr/case_000.nii.gz" "$W/tiny_gen.nii.gz" --model "$W/model" --device "$DEV" --progress none
first_source=$(ls "$W"/pairs/source/*.nii.gz | head -1)
run ss translate "$first_source" "$W/tiny_translated.nii.gz" --field "$W/tiny_field.nii.gz" --model "$W/translator" \
  --device "$DEV" --progress none
fi

if want 3; then
step "3. single-GPU torchrun (DDP, NCCL)"
export NCCL_DEBUG=INFO
TR=($PY -m torch.distributed.run --standalone --nproc_per_node 1 -m SemanticSynthLib)
[ "$DEV" = cuda ] || export OMP_NUM_THREADS=2
run "${TR[@]}" train-autoencoder --data "$D" --out "$W/ddp_ae" --label-table muse --steps 20 --patch 32 --adv-start 10 "${common[@]}"
run "${TR[@]}" train-diffusion --data "$D" --autoencoder "$W/ddp_ae" --out "$W/ddp_model" --steps 20 --latent-patch 8 \
  --default-steps 3 "${common[@]}"
unset NCCL_DEBUG
run $PY -c "
import json, sys
for path, stage in zip(sys.argv[1:], ('autoencoder', 'diffusion')):
    record = json.load(open(path))['training'][stage]
    print('  ', stage, 'trained by', record['processes'], 'process(es) over', record['backend'])
    assert record['processes'] == 1 and record['backend'] == ('nccl' if '$DEV' == 'cuda' else 'gloo')
" "$W/ddp_ae/metadata.json" "$W/ddp_model/metadata.json"
run ss generate "$D/labelsTr/case_000.nii.gz" "$W/ddp_gen.nii.gz" --model "$W/ddp_model" --device "$DEV" --progress none
fi

if [ "$DEV" = cuda ] && want 4; then
step "4. benchmark on CUDA (2 CPU threads, median of 3 fresh processes)"
run $PY scripts/benchmark.py --device cuda --repeats 3 --json "$OUT/benchmark_cuda.json"
fi

if ls "$W"/*.log.jsonl > /dev/null 2>&1; then tar czf "$OUT/training_logs.tgz" -C "$W" $(cd "$W" && ls *.log.jsonl); fi
step "done: $([ $failed = 0 ] && echo 'every step passed' || echo 'some steps FAILED')"
exit $failed
