"""The training lists of scripts/synthetic_training.sh, from make-dataset's output (RUN/b and RUN/d) and the real
split (RUN/train.csv): a.csv (the real ones), b.csv (synthetic), c.csv (real + b), d.csv (real + the augmented d),
b_tex.csv (synthetic with brain-mri 0.11.0's scanner texture).

python scripts/synthetic_training_csv.py runs/synth
"""
import csv
import sys
from pathlib import Path


def dataset_rows(root: Path) -> list[list[str]]:
    """(image, label, modality) of every case of a make-dataset folder, in case order."""
    cases = sorted(p.name[: -len(".nii.gz")] for p in (root / "labelsTr").glob("*.nii.gz"))
    if not cases:
        raise SystemExit(f"{root} has no cases; run make-dataset first")
    return [[str((root / "imagesTr" / f"{c}_0000.nii.gz").resolve()), str((root / "labelsTr" / f"{c}.nii.gz").resolve()),
             "mri"] for c in cases]


def write(path: Path, rows) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "label", "modality"])
        w.writerows(rows)
    print(f"{path}: {len(rows)} cases")


if __name__ == "__main__":
    run = Path(sys.argv[1])
    real = list(csv.reader(open(run / "train.csv", encoding="utf-8")))[1:]
    synthetic, augmented = dataset_rows(run / "b"), dataset_rows(run / "d")
    write(run / "a.csv", real)
    write(run / "b.csv", synthetic)
    write(run / "c.csv", real + synthetic)
    write(run / "d.csv", real + augmented)
    write(run / "b_tex.csv", dataset_rows(run / "b_tex"))
