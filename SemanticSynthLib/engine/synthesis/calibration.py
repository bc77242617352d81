"""After generation: check each label's mean against its prior, then (by default) calibrate the output.

The check reads the network's own output and is recorded either way, as MAISI checks organ HU. The
calibration keeps the generated texture and moves each label onto what the model should produce:
1. its voxel spread is limited to the spread the class had in training. A label whose texture came out too
   strong (the CT model's bones: raw vertebrae at p5..p95 = 73..1242 HU against 70..477 HU in the real scan)
   would otherwise get dark cores once its mean is moved, since a mean shift moves every voxel alike;
2. its mean is shifted onto the prior: a measured prior in model units, where it was measured, any other in
   natural units (calibrate).
Background (class 0, a mixture of tissues) is left as generated.
"""
from __future__ import annotations

import numpy as np

from ..volume.intensity import denormalize
from ..volume.labels import LabelTable
from ..model.priors import ClassPriors
from ..volume.modalities import modality_of

# Classes smaller than this (working voxels) are not checked: their mean is mostly partial volume.
MIN_CHECKED_VOXELS = 30


def calibration_check(values_natural: np.ndarray, classes: np.ndarray, table: LabelTable, priors: ClassPriors,
                      norm: dict, inside: np.ndarray | None = None) -> list[dict]:
    """Labels whose generated mean (over `inside`) falls outside the prior's range (natural units), as MAISI
    checks organ HU. Relative priors (MRI) are checked as multiples of the reference tissue's generated mean (white
    matter's); the modality (engine/volume/modalities.py) is the one whose units the normalization records."""
    entry = modality_of(norm)
    absolute = entry.prior_kind == "absolute"
    counts, means, _ = _class_moments(values_natural, classes, inside, table.num_classes)
    reference = None
    if not absolute:
        wm = [i for i, lab in enumerate(table.labels, start=1) if entry.reference_tissue[1] in lab.name.split("_")]
        wm_voxels = counts[wm].sum()
        reference = float((counts[wm] * means[wm]).sum() / wm_voxels) if wm_voxels >= MIN_CHECKED_VOXELS else None
        if reference is None or reference <= 0:
            return []
    flagged = []
    for index in np.nonzero(counts >= MIN_CHECKED_VOXELS)[0]:
        if index == 0:
            continue
        mean = means[index]
        value = mean if absolute else mean / reference
        if not priors.low[index] <= value <= priors.high[index]:
            lab = table.labels[index - 1]
            flagged.append({"id": lab.id, "name": lab.name, "mean": round(float(value), 3),
                            "range": [round(float(priors.low[index]), 3), round(float(priors.high[index]), 3)],
                            "units": entry.prior_units, "prior_source": priors.source[index]})
    return flagged


def _class_moments(values: np.ndarray, classes: np.ndarray, inside: np.ndarray | None, num_classes: int):
    """Voxel count, mean and std of every class (over `inside`, or all voxels). Voxels outside get a spare
    class index instead of being gathered out, which would copy the volume."""
    flat = classes.reshape(-1)
    if inside is not None and not inside.all():
        flat = np.where(inside, classes, num_classes).reshape(-1)
    v = values.reshape(-1)
    counts = np.bincount(flat, None, num_classes + 1)[:num_classes]
    # bincount sums in float64 whatever the weights' type.
    means = np.bincount(flat, v, num_classes + 1)[:num_classes] / np.maximum(counts, 1)
    second = np.bincount(flat, v * v, num_classes + 1)[:num_classes] / np.maximum(counts, 1)
    return counts, means, np.sqrt(np.maximum(second - means ** 2, 0.0))


def spread_and_mean_map(unit: np.ndarray, classes: np.ndarray, spread: np.ndarray | None, targets: np.ndarray,
                        inside: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per class (scale, offset) such that unit * scale + offset has each label's deviations from its mean (model
    units) scaled down to at most its training spread, and its mean (over the input's extent) on `targets`."""
    counts, means, stds = _class_moments(unit, classes, inside, len(targets))
    scale = np.ones(len(targets))
    if spread is not None:
        limited = (counts > 0) & np.isfinite(spread) & (stds > spread)
        scale[limited] = spread[limited] / stds[limited]
    present = counts > 0
    present[0] = False  # background, a mixture of tissues, stays as generated
    scale[0] = 1.0
    # Scaling about the mean keeps the mean, so the mean then moves by targets - means.
    offset = np.where(present, targets - means * scale, means * (1 - scale))
    return scale.astype(np.float32), offset.astype(np.float32)


def per_class(table: np.ndarray, classes: np.ndarray) -> np.ndarray:
    return np.take(table, classes)


def calibrate(unit: np.ndarray, classes: np.ndarray, priors: ClassPriors, norm: dict, inside: np.ndarray) -> np.ndarray:
    """Model units in, natural units (HU, scanner units) out: spread limited, then means on the priors, each in the
    units it was taken in. The first step puts every label's mean in model units on priors.unit. A measured prior
    is just that, the mean of the training voxels in model units (priors.measure_class_means), so it is matched
    there. Every other prior (a reference, an override, a kind's typical value) is a mean in natural units and is
    matched last in natural units, so that it is exact whatever the normalisation's curve.

    Why not the measured ones in natural units too: where a label's voxels lie on both sides of a knot of a
    piecewise-linear normalisation (a colon of gas and content), the natural value of its mean in model units is not
    its mean in natural units. abdomen-ct's measured colon reads -293 HU where the colon of its training case, the
    README's sample, averages -488 HU. Matching -293 HU moved every colon voxel up by 160-190 HU and turned the
    content near the body wall into bright blobs of up to 216 HU (issue 33 item 4, scripts/ct_artifacts.py)."""
    scale, offset = spread_and_mean_map(unit, classes, priors.spread, priors.unit, inside)
    values = denormalize(unit * per_class(scale, classes) + per_class(offset, classes), norm)
    _, shift = spread_and_mean_map(values, classes, None, denormalize(priors.unit, norm), inside)
    shift[measured_in_model_units(priors)] = 0.0
    return values + per_class(shift, classes)


def measured_in_model_units(priors: ClassPriors) -> np.ndarray:
    """Per class: whether its prior is a mean measured in model units on the training data (class_priors' source
    "measured"), which the first calibration step already matches exactly."""
    return np.array([source == "measured" for source in priors.source], bool)
