"""nnU-Net v2's own dataset integrity check on a dataset made by make-dataset (issue 34's acceptance).

python scripts/nnunet_integrity.py OUT_FOLDER [LABELS_CSV_OR_FOLDER]
makes OUT_FOLDER/Dataset001_SemanticSynth from the first three brain training maps (2 samples each, mirrored
at random) with the bundled brain-mri model, then runs nnunetv2.experiment_planning.verify_dataset_integrity on it,
and on the same maps made with --label-ids map, which it must refuse (MUSE ids have gaps).

nnunetv2 is not a dependency of SemanticSynth; its check needs only a few of its packages, installed beside the
environment without touching torch:
  pip install --no-deps --target /tmp/nnpkgs nnunetv2==2.6.2 batchgenerators acvl-utils \
      dynamic-network-architectures pandas scikit-image lazy_loader tifffile blosc2 ndindex httpx
  PYTHONPATH=/tmp/nnpkgs python scripts/nnunet_integrity.py /tmp/nnunet_check
"""
import csv
import os
import sys
import tempfile
from pathlib import Path

for variable in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):  # nnunetv2 warns without them
    os.environ.setdefault(variable, tempfile.gettempdir())

from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity  # noqa: E402

from SemanticSynthLib.cli import main  # noqa: E402


def first_maps(out: Path) -> Path:
    rows = list(csv.DictReader(open(Path("runs/synth/train.csv"), encoding="utf-8")))[:3] if Path("runs/synth/train.csv").is_file() \
        else None
    if rows is None:
        ixi = Path(os.environ.get("SEMANTICSYNTH_DATA", "../shared/data")) / "ixi_muse" / "labels"
        rows = [{"label": str(p.resolve())} for p in sorted(ixi.glob("*.nii.gz"))[:3]]
    path = out / "maps.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["label"])
        w.writerows([[r["label"]] for r in rows])
    return path


if __name__ == "__main__":
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    maps = Path(sys.argv[2]) if len(sys.argv) > 2 else first_maps(out)
    dataset = out / "Dataset001_SemanticSynth"
    assert main(["make-dataset", str(maps), str(dataset), "--model", "brain-mri", "--samples", "2",
                 "--augment", "mirror", "--progress", "none"]) == 0
    verify_dataset_integrity(str(dataset), 1)
    print(f"nnU-Net v2 integrity check: {dataset} accepted")
    own_ids = out / "Dataset002_OwnIds"
    assert main(["make-dataset", str(maps), str(own_ids), "--model", "brain-mri", "--label-ids", "map",
                 "--progress", "none"]) == 0
    try:
        verify_dataset_integrity(str(own_ids), 1)
    except (AssertionError, RuntimeError) as exc:
        print(f"nnU-Net v2 integrity check: {own_ids} (--label-ids map) refused as expected: {str(exc)[:160]}")
    else:
        raise SystemExit(f"{own_ids}: --label-ids map with gaps was accepted; the check did not run as expected")
