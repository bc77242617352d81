"""Aseg-style label maps made from MUSE maps, to evaluate the brain model on FreeSurfer/SynthSeg-level labels.

python scripts/aseg_maps.py runs/brain-mri/val.csv runs/brain-aseg

Each MUSE map of the CSV (image,label[,modality]) is merged into SynthSeg's 32 aseg labels with
SemanticSynthLib/engine/volume/label_tables/groups/muse_to_aseg.json and written to OUT/labels/; OUT/val_aseg.csv
lists image,label,modality,condition: `evaluate` generates from the aseg map (condition) and scores Dice against
the case's MUSE labels (label), as for MUSE maps.
"""
import csv
import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

MERGE = (Path(__file__).resolve().parents[1] / "SemanticSynthLib" / "engine" / "volume" / "label_tables" / "groups"
         / "muse_to_aseg.json")


def merge_lookup() -> np.ndarray:
    merge = json.loads(MERGE.read_text(encoding="utf-8"))["merge"]
    lookup = np.zeros(max(4096, max(int(k) for k in merge) + 1), np.int32)  # ids outside the merge: background
    for muse_id, aseg_id in merge.items():
        lookup[int(muse_id)] = aseg_id
    return lookup


def main(csv_in: Path, out: Path) -> None:
    lookup = merge_lookup()
    (out / "labels").mkdir(parents=True, exist_ok=True)
    rows = list(csv.DictReader(open(csv_in, encoding="utf-8")))
    with open(out / "val_aseg.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "label", "modality", "condition"])
        for row in rows:
            muse = sitk.ReadImage(row["label"])
            ids = sitk.GetArrayFromImage(muse).astype(np.int64)
            merged = sitk.GetImageFromArray(lookup[ids].astype(np.int16))
            merged.CopyInformation(muse)
            target = out / "labels" / Path(row["label"]).name
            sitk.WriteImage(merged, str(target), True)
            writer.writerow([row["image"], row["label"], row.get("modality", "mri"), str(target.resolve())])
    print(f"{len(rows)} aseg-style maps in {out / 'labels'}; cases in {out / 'val_aseg.csv'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
