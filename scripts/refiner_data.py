"""The detail refiner's data: real CT at its own spacing, with a held-out part for the sharpness check.

python scripts/refiner_data.py ../shared/data/totalseg runs/refiner

writes into the run folder:
- aorta_train.nii.gz: aorta_ct_crop (1.5 mm, no labels), its first 124 of 164 axial slices;
- aorta_holdout.nii.gz: its last 40 slices, never trained on (scripts/ct_sharpness.py);
- ct_upper.nii.gz: example_ct (3 mm) beyond the 30 labelled slices of example_ct_sm (no labels);
- train.csv: those two and example_ct_sm with example_seg (labels), as image,label,modality.
Crops keep the source's grid (spacing, direction, origin moved to the first kept slice).
"""
import csv
import sys
from pathlib import Path

import SimpleITK as sitk

HOLDOUT_SLICES = 40
LABELLED_SLICES = 30  # example_ct_sm is example_ct's first 30 slices


def slices(image, start, stop):
    return image[:, :, start:stop]  # SimpleITK slicing keeps spacing and direction and moves the origin


def main(totalseg: Path, out: Path):
    out.mkdir(parents=True, exist_ok=True)
    aorta = sitk.ReadImage(str(totalseg / "aorta_ct_crop.nii.gz"))
    depth = aorta.GetSize()[2]
    sitk.WriteImage(slices(aorta, 0, depth - HOLDOUT_SLICES), str(out / "aorta_train.nii.gz"))
    sitk.WriteImage(slices(aorta, depth - HOLDOUT_SLICES, depth), str(out / "aorta_holdout.nii.gz"))
    ct = sitk.ReadImage(str(totalseg / "example_ct.nii.gz"))
    sitk.WriteImage(slices(ct, LABELLED_SLICES, ct.GetSize()[2]), str(out / "ct_upper.nii.gz"))
    with open(out / "train.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "label", "modality"])
        w.writerow([str((out / "aorta_train.nii.gz").resolve()), "", "ct"])
        w.writerow([str((out / "ct_upper.nii.gz").resolve()), "", "ct"])
        w.writerow([str((totalseg / "example_ct_sm.nii.gz").resolve()), str((totalseg / "example_seg.nii.gz").resolve()), "ct"])


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
