"""Training cases in memory (the files are listed by engine/volume/cases.py).

Cases are read once, resampled to the model's working grid and normalized, then kept in memory: the
volumes here are small, and re-reading NIfTI each step would dominate a CPU step.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..volume.cases import CaseFiles
from ..volume.geometry import extend_edges, resample_labels, working_grid
from ..volume.intensity import normalize, percentile_of_foreground
from ..volume.io import array_of, read_volume
from ..volume.labels import LabelTable, to_class_indices
from ..volume.working_image import values_on_grid


@dataclass
class Case:
    image: np.ndarray | None    # model units, (x, y, z) float32
    classes: np.ndarray | None  # class indices, (x, y, z) int16
    modality: str
    name: str
    scale: float | None = None  # MRI: the 99.5th percentile in scanner units, for the package's output scale
    spacing: tuple = (1.0, 1.0, 1.0)  # the working grid's, mm
    direction: tuple = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)  # the working grid's (LPS), row-major


def load_case(files: CaseFiles, spacing, table: LabelTable | None, normalization: dict, multiple: int,
              label_transform=None) -> Case:
    """One case on its working grid; labels become class indices of `table`, or `label_transform(ids)`."""
    reference_path = files.label or files.image
    reference = read_volume(reference_path)
    grid = working_grid(reference, spacing, multiple)
    image = classes = scale = None
    if files.image is not None:
        raw = values_on_grid(read_volume(files.image), grid, extend=True)
        image = normalize(raw, normalization)
        if normalization["kind"] == "percentile_scale":
            scale = percentile_of_foreground(raw, normalization["percentile"])
    if files.label is not None and (table is not None or label_transform is not None):
        ids = array_of(resample_labels(extend_edges(read_volume(files.label), grid), grid))
        classes = (label_transform(ids) if label_transform else to_class_indices(ids, table, unknown="background")).astype(np.int16)
    return Case(image, classes, files.modality, Path(reference_path).name.split(".nii")[0], scale, grid.GetSpacing(),
                grid.GetDirection())


def random_crop(arrays: list[np.ndarray], size, rng: np.random.Generator, pad_values: list[float]):
    """The same random crop of several aligned arrays over their first len(size) axes, padded where smaller."""
    size = np.array(size)
    shape = np.array(arrays[0].shape[: len(size)])
    out_shape = np.maximum(shape, size)
    padded = []
    for a, v in zip(arrays, pad_values):
        pad = [(0, int(o - s)) for o, s in zip(out_shape, a.shape)] + [(0, 0)] * (a.ndim - len(size))
        padded.append(np.pad(a, pad, constant_values=v) if any(p[1] for p in pad) else a)
    start = [int(rng.integers(0, o - s + 1)) for o, s in zip(out_shape, size)]
    sl = tuple(slice(st, st + s) for st, s in zip(start, size))
    return [p[sl] for p in padded]
