"""Boundary sharpness of a CT: the mean gradient magnitude (HU/mm) across boundaries and inside bone.

A volume generated at 3 mm and upsampled to 1.5 mm has edges twice as wide as a real 1.5 mm scan, so its gradient
across a boundary is about half the real one's, though each label's mean is right. Measured two ways:

- across *label* boundaries: voxels with a 6-neighbour of another label (a generated volume against the real scan
  of the same map: the same boundaries in both);
- across *tissue* boundaries, where no labels exist (a 1.5 mm real scan without a segmentation): each image is
  classed into air, fat, soft tissue and bright (bone or contrast) by thresholds on a lightly smoothed copy, and the
  boundaries are where those classes meet. The same rule runs on the real and the generated image, so the figures
  compare like with like even where the anatomy differs; they are given per kind of boundary (soft|fat, soft|bright,
  ...), since a bone edge is steeper than a fat plane whatever the resolution.

Inside bone: the bright class (or the bone labels) eroded by one voxel, where texture rather than edges dominates.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

# Tissue classes by HU, on the image smoothed with a Gaussian of SMOOTHING_MM (so noise does not make boundaries).
TISSUE_EDGES = (-400.0, -40.0, 180.0)
TISSUE_NAMES = ("air", "fat", "soft", "bright")
SMOOTHING_MM = 1.5
PAIR_BASE = 2 ** 31  # label ids are below it (engine/volume/labels.MAX_LABEL_ID)


def gradient_magnitude(values: np.ndarray, spacing) -> np.ndarray:
    """|grad| in units per mm by central differences; `values` and `spacing` in the same axis order."""
    grads = np.gradient(values.astype(np.float32), *[float(s) for s in spacing])
    return np.sqrt(sum(g * g for g in grads))


def boundary_pairs(classes: np.ndarray) -> np.ndarray:
    """For each voxel the smallest other class among its 6 neighbours, encoded as min * PAIR_BASE + max of the two;
    -1 where every neighbour has its own class (or only image edges differ)."""
    out = np.full(classes.shape, -1, np.int64)
    c = classes.astype(np.int64)
    for axis in range(classes.ndim):
        for shift in (1, -1):
            neighbour = np.roll(c, shift, axis=axis)
            edge = [slice(None)] * classes.ndim
            edge[axis] = 0 if shift == 1 else -1
            differs = neighbour != c
            differs[tuple(edge)] = False  # np.roll wraps around: the far side is no neighbour
            code = np.minimum(c, neighbour) * PAIR_BASE + np.maximum(c, neighbour)
            out = np.where(differs & ((out < 0) | (code < out)), code, out)
    return out


def tissue_classes(image: sitk.Image) -> np.ndarray:
    """0 air, 1 fat, 2 soft tissue, 3 bright, in SimpleITK's (z, y, x) array order."""
    smoothed = sitk.SmoothingRecursiveGaussian(sitk.Cast(image, sitk.sitkFloat32), SMOOTHING_MM)
    return np.digitize(sitk.GetArrayFromImage(smoothed), TISSUE_EDGES).astype(np.int16)


def _mean_by_pair(gradient: np.ndarray, pairs: np.ndarray, names=None, medians=None, min_voxels: int = 50) -> dict:
    """Per kind of boundary: mean |grad|, and with `medians` (each class's median value) that over the step between
    the two classes: the edge's steepness in 1/mm, which does not depend on the patient's contrast (for a step
    blurred by a Gaussian of width s, the gradient at the edge is step / (s * sqrt(2 pi)))."""
    out = {}
    for code in np.unique(pairs[pairs >= 0]):
        mask = pairs == code
        if mask.sum() < min_voxels:
            continue
        a, b = divmod(int(code), PAIR_BASE)
        key = f"{names[a]}|{names[b]}" if names else f"{a}|{b}"
        out[key] = {"gradient": float(gradient[mask].mean()), "voxels": int(mask.sum())}
        if medians is not None and medians[b] != medians[a]:
            out[key]["steepness"] = out[key]["gradient"] / abs(medians[b] - medians[a])
    return out


def tissue_sharpness(image: sitk.Image, region: np.ndarray | None = None) -> dict:
    """Mean |grad| (HU/mm) at the image's own tissue boundaries, per kind of boundary (with its steepness) and over
    all, and inside the bright class eroded by one voxel. `region` ((z, y, x) bool): only voxels there count."""
    values = sitk.GetArrayFromImage(image).astype(np.float32)
    gradient = gradient_magnitude(values, image.GetSpacing()[::-1])
    classes = tissue_classes(image)
    pairs = boundary_pairs(classes)
    if region is not None:
        pairs = np.where(region, pairs, -1)
    bright = classes == 3
    inside = bright & (boundary_pairs(bright.astype(np.int16)) < 0)
    if region is not None:
        inside &= region
    medians = [float(np.median(values[classes == c])) if (classes == c).any() else float("nan")
               for c in range(len(TISSUE_NAMES))]
    return {"boundaries": _mean_by_pair(gradient, pairs, TISSUE_NAMES, medians), "class_medians": medians,
            "all_boundaries": float(gradient[pairs >= 0].mean()) if (pairs >= 0).any() else float("nan"),
            "inside_bright": float(gradient[inside].mean()) if inside.any() else float("nan")}


def label_sharpness(image: sitk.Image, label_map: sitk.Image, bone_ids=()) -> dict:
    """Mean |grad| (HU/mm) at the label map's boundaries (labels against each other and the background), and inside
    the labels in `bone_ids` eroded by one voxel."""
    values = sitk.GetArrayFromImage(image).astype(np.float32)
    ids = sitk.GetArrayFromImage(label_map)
    gradient = gradient_magnitude(values, image.GetSpacing()[::-1])
    edge = boundary_pairs(ids) >= 0
    bone = np.isin(ids, list(bone_ids))
    inside = bone & (boundary_pairs(ids) < 0)
    return {"label_boundaries": float(gradient[edge].mean()),
            "inside_bone": float(gradient[inside].mean()) if inside.any() else float("nan"),
            "boundary_voxels": int(edge.sum())}
