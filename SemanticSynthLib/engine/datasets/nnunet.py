"""The nnU-Net v2 dataset layout: imagesTr/CASE_0000.nii.gz, labelsTr/CASE.nii.gz and dataset.json.

nnU-Net v2 wants label ids 0..N-1 without gaps, named in dataset.json ("labels": {"background": 0, name: id}), one
file ending, and channel names that pick its normalisation ("CT" gets CT's; anything else z-scoring).
"""
from __future__ import annotations

import re
from pathlib import Path

FILE_ENDING = ".nii.gz"
CHANNEL_NAMES = {"ct": "CT", "mri": "MRI"}


def case_name(stem: str, sample: int) -> str:
    """A case identifier nnU-Net accepts (letters, digits, '-' and '_'), one per label map and sample."""
    clean = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-") or "case"
    return f"{clean}_s{sample:02d}"


def image_path(root: Path, case: str) -> Path:
    return root / "imagesTr" / f"{case}_0000{FILE_ENDING}"


def label_path(root: Path, case: str) -> Path:
    return root / "labelsTr" / f"{case}{FILE_ENDING}"


def dataset_json(name: str, modality: str, labels: dict[str, int], cases: int, description: str) -> dict:
    return {"channel_names": {"0": CHANNEL_NAMES.get(modality, modality)}, "labels": labels,
            "numTraining": cases, "file_ending": FILE_ENDING, "name": name, "description": description}
