"""The cases of a labelled dataset: an nnU-Net-style folder (imagesTr/labelsTr) or a CSV of image,label[,modality]
[,condition] rows (condition: another label map of the same case to generate from, e.g. in another vocabulary; the
label column stays the reference). Training reads them (training/dataset.py), and so does evaluation; listing them here keeps the two
subpackages independent of each other."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from ...errors import SynthError


@dataclass
class CaseFiles:
    image: Path | None
    label: Path | None
    modality: str
    condition: Path | None = None  # the map evaluation generates from, where it is not `label`


def list_cases(dataset: str | Path, modality: str) -> list[CaseFiles]:
    """The image and label files of every case; `modality` for rows (or folders) that do not name one."""
    dataset = Path(dataset)
    if dataset.is_file() and dataset.suffix.lower() == ".csv":
        rows = list(csv.DictReader(open(dataset, encoding="utf-8")))
        if rows and "image" not in rows[0] and "label" in rows[0]:
            raise SynthError(f"{dataset}: the CSV has a label column but no image column; every case needs its image: "
                             "give a header image,label[,modality] and each case's image and label map")
        if not rows or "image" not in rows[0]:
            raise SynthError(f"{dataset}: a dataset CSV needs a header with columns image,label[,modality]")
        if not any((r.get("image") or "").strip() for r in rows):
            raise SynthError(f"{dataset}: no row gives an image (labels only); training and evaluation need each case's "
                             "image in the image column, beside its label map in the label column")
        base = dataset.parent
        def resolve(p):
            return (base / p) if p and not Path(p).is_absolute() else (Path(p) if p else None)
        return [CaseFiles(resolve(r.get("image")), resolve(r.get("label")), (r.get("modality") or modality).lower(),
                          resolve(r.get("condition"))) for r in rows]
    if (dataset / "imagesTr").is_dir():
        cases = []
        for img in sorted((dataset / "imagesTr").glob("*.nii*")):
            case = img.name.split(".nii")[0].rsplit("_", 1)[0]
            label = dataset / "labelsTr" / (case + ".nii.gz")
            cases.append(CaseFiles(img, label if label.exists() else None, modality))
        if not cases:
            raise SynthError(f"{dataset}/imagesTr has no NIfTI images")
        return cases
    raise SynthError(f"dataset {dataset} is neither a CSV nor an nnU-Net folder with imagesTr/labelsTr")
