"""Paired (and misaligned) source/target volumes for translator training: a CSV or a folder.

CSV: columns source,target (paths relative to the CSV allowed). Folder: source/ and target/ subfolders
holding files of the same names. Both volumes go onto the *source's* working grid; the target keeps
its misalignment, which the spatial transform learns.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ...errors import SynthError
from ..volume.geometry import working_grid
from ..volume.intensity import mri_normalization, normalize, percentile_of_foreground
from ..volume.io import read_volume
from ..volume.working_image import values_on_grid


@dataclass
class Pair:
    source: np.ndarray  # model units on the source's working grid, (x, y, z)
    target: np.ndarray  # model units on the same grid, still misaligned
    name: str
    source_scale: float
    target_scale: float


def list_pairs(dataset: str | Path) -> list[tuple[Path, Path]]:
    dataset = Path(dataset)
    if dataset.is_file() and dataset.suffix.lower() == ".csv":
        rows = list(csv.DictReader(open(dataset, encoding="utf-8")))
        if not rows or not {"source", "target"} <= set(rows[0]):
            raise SynthError(f"{dataset}: a pairs CSV needs a header with columns source,target")
        base = dataset.parent
        return [(base / r["source"], base / r["target"]) for r in rows]
    if (dataset / "source").is_dir() and (dataset / "target").is_dir():
        pairs = [(s, dataset / "target" / s.name) for s in sorted((dataset / "source").glob("*.nii*"))]
        missing = [s.name for s, t in pairs if not t.exists()]
        if missing or not pairs:
            raise SynthError(f"{dataset}: every file in source/ needs one of the same name in target/ (missing: {missing[:3]})")
        return pairs
    raise SynthError(f"pairs dataset {dataset} is neither a CSV (source,target) nor a folder with source/ and target/")


def _unit(image: sitk.Image, grid: sitk.Image) -> tuple[np.ndarray, float]:
    raw = values_on_grid(image, grid)
    norm = mri_normalization(1.0)
    return normalize(raw, norm), percentile_of_foreground(raw, norm["percentile"])


def load_pair(source: Path, target: Path, spacing, multiple: int) -> Pair:
    src = read_volume(source)
    grid = working_grid(src, spacing, multiple)
    s, s_scale = _unit(src, grid)
    t, t_scale = _unit(read_volume(target), grid)
    return Pair(s, t, Path(source).name.split(".nii")[0], s_scale, t_scale)
