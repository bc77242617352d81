"""What both training commands share: loading cases on every rank, logging, the normalization table."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from ..intensity import ct_normalization, mri_normalization
from ..labels import LabelTable
from ..progress import Progress
from .dataset import Case, list_cases, load_case


def normalization_for(modality: str) -> dict:
    return ct_normalization() if modality == "ct" else mri_normalization(1.0)


def load_cases(dataset, modality: str, spacing, table: LabelTable | None, multiple: int, progress: Progress) -> list[Case]:
    files = list_cases(dataset, modality)
    progress.stage("loading cases", len(files))
    cases = []
    for i, f in enumerate(files):
        cases.append(load_case(f, spacing, table, normalization_for(f.modality), multiple))
        progress.update(i + 1)
    return cases


def package_normalization(cases: list[Case]) -> dict:
    """One normalization per modality; MRI's output scale is the median training percentile."""
    out = {}
    for modality in sorted({c.modality for c in cases}):
        if modality == "ct":
            out[modality] = ct_normalization()
        else:
            scales = [c.scale for c in cases if c.modality == modality and c.scale]
            out[modality] = mri_normalization(float(np.median(scales)))
    return out


class TrainingLog:
    """Loss lines as JSON, in a file beside the checkpoint, appended across resumes."""

    def __init__(self, path: Path, enabled: bool):
        self.path, self.enabled = Path(path), enabled
        self.start = time.monotonic()

    def write(self, **record) -> None:
        if not self.enabled:
            return
        record = {"time_s": round(time.monotonic() - self.start, 1), **record}
        with open(self.path, "a") as fh:
            fh.write(json.dumps(record) + "\n")


def command_line() -> str:
    return " ".join(["semanticsynth", *sys.argv[1:]]) if sys.argv else ""
