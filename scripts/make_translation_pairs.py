"""Stand-in translation pairs from the IXI T1s (see SemanticSynthLib/engine/translation/synthetic_pairs.py).

python scripts/make_translation_pairs.py ../shared/data/ixi_muse runs/translator
writes, for the brain-MRI split's 128 training and 20 validation subjects:
  pairs/target/ID.nii.gz        T2-like contrast of the T1, warped by the known field
  pairs/field/ID.nii.gz         the true field (ITK displacement, LPS mm, output -> source)
  pairs/target_labels/ID.nii.gz the MUSE labels carried by the true field (nearest neighbour)
  train_pairs.csv / val_pairs.csv (source,target[,source_labels,target_labels,true_field])
  targets.csv (image,label,modality) to fine-tune the autoencoder on the target contrast
The validation subjects are the ones the brain model and the translator never train on.
"""
import csv
import sys
from pathlib import Path

import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from brain_mri_split import split  # noqa: E402
from SemanticSynthLib.engine.translation.synthetic_pairs import make_pair  # noqa: E402


def main(ixi: Path, run: Path) -> None:
    train, val = split(ixi)
    for sub in ("target", "field", "target_labels"):
        (run / "pairs" / sub).mkdir(parents=True, exist_ok=True)
    rows = {}
    for i, case in enumerate(train + val):
        source, labels = ixi / "t1" / f"{case}.nii.gz", ixi / "labels" / f"{case}.nii.gz"
        paths = {k: run / "pairs" / k / f"{case}.nii.gz" for k in ("target", "field", "target_labels")}
        if not all(p.exists() for p in paths.values()):
            target, field, target_labels = make_pair(sitk.ReadImage(str(source)), sitk.ReadImage(str(labels)))
            sitk.WriteImage(target, str(paths["target"]), useCompression=True)
            sitk.WriteImage(field, str(paths["field"]), useCompression=True)
            sitk.WriteImage(target_labels, str(paths["target_labels"]), useCompression=True)
        rows[case] = [str(source.resolve()), str(paths["target"].resolve()), str(labels.resolve()),
                      str(paths["target_labels"].resolve()), str(paths["field"].resolve())]
        print(f"{i + 1}/{len(train) + len(val)} {case}", flush=True)
    header = ["source", "target", "source_labels", "target_labels", "true_field"]
    for name, ids in (("train_pairs.csv", train), ("val_pairs.csv", val)):
        with open(run / name, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(header if name.startswith("val") else header[:2])
            for case in ids:
                w.writerow(rows[case] if name.startswith("val") else rows[case][:2])
    with open(run / "targets.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "label", "modality"])
        for case in train:
            w.writerow([rows[case][1], "", "mri"])


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
