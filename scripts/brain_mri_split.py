"""The brain-MRI split: 20 IXI subjects kept out for validation (seeded choice, recorded here).

python scripts/brain_mri_split.py ../shared/data/ixi_muse runs/brain-mri
writes train.csv and val.csv (image,label,modality) into the run folder.
"""
import csv
import sys
from pathlib import Path

import numpy as np

VALIDATION_SEED = 20261122


def split(ixi: Path):
    ids = sorted(p.name.split(".nii")[0] for p in (ixi / "t1").glob("*.nii.gz"))
    val = sorted(np.random.default_rng(VALIDATION_SEED).choice(ids, 20, replace=False).tolist())
    return [i for i in ids if i not in val], val


def write(rows, ixi: Path, path: Path):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "label", "modality"])
        for i in rows:
            w.writerow([str((ixi / "t1" / f"{i}.nii.gz").resolve()), str((ixi / "labels" / f"{i}.nii.gz").resolve()), "mri"])


if __name__ == "__main__":
    ixi, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    train, val = split(ixi)
    write(train, ixi, out / "train.csv")
    write(val, ixi, out / "val.csv")
    print(f"{len(train)} training, {len(val)} validation subjects: {', '.join(val)}")
