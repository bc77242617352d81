"""Aseg-style label maps made from MUSE maps, to evaluate the brain model on FreeSurfer/SynthSeg-level labels.

python scripts/aseg_maps.py runs/brain-mri/val.csv runs/brain-aseg

Each MUSE map of the CSV (image,label[,modality]) is merged into SynthSeg's 32 aseg labels with
SemanticSynthLib/engine/volume/label_tables/groups/muse_to_aseg.json and written to OUT/labels/; OUT/val_aseg.csv
lists image,label,modality,condition: `evaluate` generates from the aseg map (condition) and scores Dice against
the case's MUSE labels (label), as for MUSE maps.
"""
import csv
import sys
from pathlib import Path

import SimpleITK as sitk

from SemanticSynthLib.engine.volume.label_merges import read_merge, relabel


def main(csv_in: Path, out: Path) -> None:
    merge = read_merge("muse_to_aseg").merge
    (out / "labels").mkdir(parents=True, exist_ok=True)
    rows = list(csv.DictReader(open(csv_in, encoding="utf-8")))
    with open(out / "val_aseg.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "label", "modality", "condition"])
        for row in rows:
            merged = relabel(sitk.ReadImage(row["label"]), merge)
            target = out / "labels" / Path(row["label"]).name
            sitk.WriteImage(merged, str(target), True)
            writer.writerow([row["image"], row["label"], row.get("modality", "mri"), str(target.resolve())])
    print(f"{len(rows)} aseg-style maps in {out / 'labels'}; cases in {out / 'val_aseg.csv'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
