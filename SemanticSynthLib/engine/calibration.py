"""After generation: check each label's mean against its prior, then (by default) calibrate the output.

The check reads the network's own output and is recorded either way, as MAISI checks organ HU. The
calibration keeps the generated texture and moves each label onto what the model should produce:
1. its voxel spread is limited to the spread the class had in training. A label whose texture came out too
   strong (the CT model's bones: raw vertebrae at p5..p95 = 73..1242 HU against 70..477 HU in the real scan)
   would otherwise get dark cores once its mean is moved, since a mean shift moves every voxel alike;
2. its mean is shifted onto the prior.
Background (class 0, a mixture of tissues) is left as generated.
"""
from __future__ import annotations

import numpy as np

from .intensity import denormalize
from .labels import LabelTable
from .priors import ClassPriors, is_ct

# Classes smaller than this (working voxels) are not checked: their mean is mostly partial volume.
MIN_CHECKED_VOXELS = 30


def calibration_check(values_natural: np.ndarray, classes: np.ndarray, table: LabelTable, priors: ClassPriors,
                      norm: dict) -> list[dict]:
    """Labels whose generated mean falls outside the prior's range (natural units), as MAISI checks organ HU."""
    ct = is_ct(norm)
    reference = None
    if not ct:
        wm = [i for i, lab in enumerate(table.labels, start=1) if "WM" in lab.name.split("_")]
        mask = np.isin(classes, wm)
        reference = float(values_natural[mask].mean()) if mask.sum() >= MIN_CHECKED_VOXELS else None
        if reference is None or reference <= 0:
            return []
    counts, means, _ = _class_moments(values_natural, classes, None, table.num_classes)
    flagged = []
    for index in np.nonzero(counts >= MIN_CHECKED_VOXELS)[0]:
        if index == 0:
            continue
        mean = means[index]
        value = mean if ct else mean / reference
        if not priors.low[index] <= value <= priors.high[index]:
            lab = table.labels[index - 1]
            flagged.append({"id": lab.id, "name": lab.name, "mean": round(float(value), 3),
                            "range": [round(float(priors.low[index]), 3), round(float(priors.high[index]), 3)],
                            "units": "HU" if ct else "x white matter", "prior_source": priors.source[index]})
    return flagged


def _class_moments(values: np.ndarray, classes: np.ndarray, inside: np.ndarray | None, num_classes: int):
    """Voxel count, mean and std of every class (over `inside`, or all voxels)."""
    if inside is not None:
        values, classes = values[inside], classes[inside]
    flat = classes.reshape(-1)
    v = values.reshape(-1).astype(np.float64)
    counts = np.bincount(flat, None, num_classes)
    means = np.bincount(flat, v, num_classes) / np.maximum(counts, 1)
    second = np.bincount(flat, v * v, num_classes) / np.maximum(counts, 1)
    return counts, means, np.sqrt(np.maximum(second - means ** 2, 0.0))


def limit_label_spread(unit: np.ndarray, classes: np.ndarray, spread: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Scale each label's deviations from its mean (model units) down to at most its training spread."""
    counts, means, stds = _class_moments(unit, classes, inside, len(spread))
    scale = np.ones(len(spread))
    limited = (counts > 0) & np.isfinite(spread) & (stds > spread)
    scale[limited] = spread[limited] / stds[limited]
    scale[0] = 1.0
    return (means[classes] + (unit - means[classes]) * scale[classes]).astype(np.float32)


def match_label_means(values: np.ndarray, classes: np.ndarray, targets: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Shift every label's voxels so the label's mean (over the input's extent) equals its prior."""
    counts, means, _ = _class_moments(values, classes, inside, len(targets))
    shift = np.zeros(len(targets), np.float32)
    present = counts > 0
    shift[present] = targets[present] - means[present]
    shift[0] = 0.0
    return (values + shift[classes]).astype(np.float32)


def calibrate(unit: np.ndarray, classes: np.ndarray, priors: ClassPriors, norm: dict, inside: np.ndarray) -> np.ndarray:
    """Model units in, natural units (HU, scanner units) out: spread limited, then means on the priors. The
    mean is matched last and in natural units, so it is exact whatever the normalisation's curve."""
    if priors.spread is not None:
        unit = limit_label_spread(unit, classes, priors.spread, inside)
    unit = match_label_means(unit, classes, priors.unit, inside)
    return match_label_means(denormalize(unit, norm), classes, denormalize(priors.unit, norm), inside)
