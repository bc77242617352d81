"""CT bone priors from each bone's thickness at the working spacing: a thin rib is brighter than a vertebral body.

A bone label's mean HU is mostly how much cortex it holds. A vertebral body is cancellous bone (about 140 HU at 60
years) in a thin shell; a rib or a long-bone shaft is nearly all cortex, and at 3 mm a rib's label also holds the
blur around it. The measured means of the one training patient gave every bone its own flat value, so the humerus of
another patient came out at about 300 HU against 580-680 real (issue 33).

The rule of label_tables/groups/bone_thickness.json (`shell_partial_volume`; its note and docs/priors.md give the
model, the fitted constants and the sources): from the label's surface-to-volume ratio A/V at the working spacing,
a rod of that radius less a blur margin, a cortical shell of the kind's effective thickness around cancellous bone,
and the rest of the label at the surround's HU. The same for every contrast phase (bone does not enhance).

On the training case (3 mm, example_seg) the rule gives labels of >= 100 voxels within 18 HU RMSE of the real means
(scripts/bone_thickness_check.py); its ribs 7-12 at 215-247 HU sit above its vertebral bodies at 190-197 HU.
"""
from __future__ import annotations

import json

import numpy as np

from ..volume.labels import BUILTIN_DIR, LabelTable

RULE = BUILTIN_DIR / "groups" / "bone_thickness.json"


def bone_rule() -> dict:
    return json.loads(RULE.read_text(encoding="utf-8"))


def surface_to_volume(classes: np.ndarray, spacing, num_classes: int) -> np.ndarray:
    """A/V (1/mm) of every class of a class map, with `spacing` in the map's axis order: 2/3 of the area of the
    faces between a class's voxels and other classes' (2/3: the mean excess of a voxel staircase over the smooth
    surface it follows), over its volume. Faces on the image border do not count: the bone goes on past the field
    of view. One pass per axis over the map, not one per label."""
    area = np.zeros(num_classes)
    for axis in range(3):
        lo = np.take(classes, np.arange(classes.shape[axis] - 1), axis=axis)
        hi = np.take(classes, np.arange(1, classes.shape[axis]), axis=axis)
        differs = lo != hi
        face = float(np.prod([s for i, s in enumerate(spacing) if i != axis]))
        area += face * (np.bincount(lo[differs], minlength=num_classes) + np.bincount(hi[differs], minlength=num_classes))
    volume = np.bincount(classes.ravel(), minlength=num_classes) * float(np.prod(spacing))
    return np.where(volume > 0, (2.0 / 3.0) * area / np.maximum(volume, 1e-9), np.nan)


def predict(x: float, h: float, cancellous: float, shell: float, params: dict) -> tuple[float, float, float]:
    """The label's mean HU, its cortical fraction and the bone's radius (mm) for A/V = x at mean spacing h."""
    r_label = 2.0 / x
    r_bone = max(r_label - params["kappa"] * h, params["min_bone_radius_mm"])
    q2 = (r_bone / r_label) ** 2
    f = 1.0 - (1.0 - min(shell / r_bone, 1.0)) ** 2
    cortical, surround = params["cortical_hu"], params["surround_hu"]
    bone = cancellous + (cortical - cancellous) * f
    return surround + q2 * (bone - surround), q2 * f, r_bone


def predict_range(x: float, h: float, kind: dict, params: dict) -> tuple[float, float, float, float]:
    """Mean, low, high (cancellous and shell both at their low / high ends) and the cortical fraction."""
    mean, fraction, _ = predict(x, h, kind["cancellous"]["mean"], kind["shell_mm"]["mean"], params)
    low = predict(x, h, kind["cancellous"]["range"][0], kind["shell_mm"]["range"][0], params)[0]
    high = predict(x, h, kind["cancellous"]["range"][1], kind["shell_mm"]["range"][1], params)[0]
    return mean, low, high, fraction


def bone_priors(classes: np.ndarray, spacing, table: LabelTable) -> dict[int, dict]:
    """Label id -> {"mean", "range"} (HU) for every bone label of the rule present in the class map (working grid,
    `spacing` in its axis order), in the form of a --priors override."""
    rule = bone_rule()
    kind_of = {name: kind for kind, spec in rule["kinds"].items() for name in spec["labels"]}
    ratio = surface_to_volume(classes, spacing, table.num_classes)
    h = float(np.mean(spacing))
    out = {}
    for index, lab in enumerate(table.labels, start=1):
        if lab.name in kind_of and np.isfinite(ratio[index]) and ratio[index] > 0:
            mean, low, high, _ = predict_range(float(ratio[index]), h, rule["kinds"][kind_of[lab.name]],
                                               rule["parameters"])
            out[lab.id] = {"mean": round(mean, 1), "range": [round(min(low, mean), 1), round(max(high, mean), 1)]}
    return out
