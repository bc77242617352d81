"""The intensity of the unlabelled part of a scan (a brain map's scalp, skull, face and the air around them), mapped
onto what the training scans have at the same distance from the labels.

Why: brain-mri 0.11.0 drew the head around the brain about 30% darker than the real scans, relative to the brain
(mean of the unlabelled head 10-20 mm from the labels: 0.47 of the labelled mean against 0.67 on 20 validation
subjects), and flatter (spread 0.34 against 0.41). The whole head's radiomics features read that; so do the
features inside the brain, through PyRadiomics' whole-image normalisation and the wavelet and LoG filters that reach
past the brain's edge: with the real scans' surroundings (scaled to the generated brain) the generated brains' FRD
fell from 8.87 to 8.04, floor 7.16 (scripts/frd_features.py, session 28).

The map is measured on training subjects (fit_unlabelled): the real scan and the generator's volume for its label
map, in model units on the working grid, each divided by the mean of its own labelled voxels (the per-scan scale of
MRI then drops out). The unlabelled voxels are grouped into shells by their distance from the nearest label (mm);
per shell, the quantile functions of real and generated are averaged over subjects. At generation (map_unlabelled)
each unlabelled voxel's value goes through its shell's monotone map, generated quantile -> real quantile, blended
linearly between neighbouring shells' centres so that no seam follows a shell's edge. Labelled voxels are untouched.
"""
from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
from scipy import ndimage

from .scanner_texture import first_axis_slabs

SHELLS_MM = (0.0, 3.0, 6.0, 10.0, 15.0, 20.0, 30.0, 45.0, 70.0)  # shell edges; the last shell is open
LEVELS = np.round(np.linspace(0.0, 1.0, 41), 4)  # quantile levels per shell
MIN_VOXELS = 500       # a shell measured on fewer voxels (per subject) is left out of that subject's average
STEPS = 4096           # values per shell on which the map is tabulated


def distance_from_labels(labelled: np.ndarray, spacing) -> np.ndarray:
    """mm from each voxel to the nearest labelled voxel (0 inside), float32; on every second voxel of each axis,
    read back per voxel: the shells are 3 mm and wider, and a full-grid transform would cost a 512^3 map's working
    grid about 330 MB more."""
    coarse = np.asarray(labelled, bool)[::2, ::2, ::2]  # callers have labelled voxels
    return ndimage.distance_transform_edt(~coarse, sampling=[2.0 * float(s) for s in spacing]).astype(np.float32)


def _fine(coarse: np.ndarray, planes: slice, shape) -> np.ndarray:
    """The coarse distance at every voxel of `planes` (first axis) of the full grid."""
    i = np.arange(planes.start, planes.stop) // 2
    j, k = np.arange(shape[1]) // 2, np.arange(shape[2]) // 2
    return coarse[np.ix_(np.minimum(i, coarse.shape[0] - 1), np.minimum(j, coarse.shape[1] - 1),
                         np.minimum(k, coarse.shape[2] - 1))]


def _shell_index(distance: np.ndarray) -> np.ndarray:
    return np.clip(np.searchsorted(np.asarray(SHELLS_MM), distance, side="right") - 1, 0, len(SHELLS_MM) - 1)


def fit_unlabelled(pairs: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]], spacing) -> dict:
    """The map from (real, generated, labels) triples in model units on one working grid of `spacing` (mm, array
    axis order). See the module docstring."""
    sums = {name: np.zeros((len(SHELLS_MM), len(LEVELS))) for name in ("real", "generated")}
    counts = np.zeros(len(SHELLS_MM))
    cases = 0
    for real, generated, labels in pairs:
        labelled = np.asarray(labels) > 0
        if not labelled.any() or labelled.all():
            continue
        coarse = distance_from_labels(labelled, spacing)
        shell = _shell_index(_fine(coarse, slice(0, labelled.shape[0]), labelled.shape))
        shell[labelled] = -1
        for name, volume in (("real", real), ("generated", generated)):
            scale = float(np.mean(volume[labelled]))
            if scale <= 0:
                raise ValueError("a volume's labelled voxels average zero or less; it cannot set the scale")
            for s in range(len(SHELLS_MM)):
                values = volume[shell == s]
                if values.size >= MIN_VOXELS:
                    sums[name][s] += np.quantile(values / scale, LEVELS)
                    counts[s] += name == "real"
        cases += 1
    measured = counts > 0
    if not measured.any():
        raise ValueError("no unlabelled voxels to fit the map on")
    real_q = sums["real"][measured] / counts[measured, None]
    generated_q = sums["generated"][measured] / counts[measured, None]
    # Strictly increasing generated quantiles as stored (5 decimals), so that the map is a function: flat stretches
    # (the air at zero) get steps of 2e-5.
    generated_q = generated_q.round(5)
    for i in range(1, len(LEVELS)):
        generated_q[:, i] = np.maximum(generated_q[:, i], generated_q[:, i - 1] + 2e-5)
    return {"shells_mm": [SHELLS_MM[s] for s in np.flatnonzero(measured)], "levels": LEVELS.tolist(),
            "generated": generated_q.round(5).tolist(), "real": real_q.round(5).tolist(), "cases": cases}


def kept_within(profile: dict, mm: float) -> dict:
    """The map with the shells that start `mm` or further from the labels made the identity: a map of the whole
    head brightened the scalp that a segmenter normalises by (brain-mri, 20 validation subjects: Dice ratio 0.950
    mapped everywhere, 0.974 within 20 mm; the FRD inside the brain 7.91 and 7.83)."""
    out = {**profile, "generated": [list(g) for g in profile["generated"]], "within_mm": float(mm)}
    out["real"] = [list(g) if edge >= mm else list(r)
                   for edge, g, r in zip(profile["shells_mm"], profile["generated"], profile["real"])]
    return out


def map_unlabelled(values: np.ndarray, labelled: np.ndarray, spacing, profile: dict, to_units: Callable,
                   from_units: Callable) -> np.ndarray:
    """`values` (natural units, array axis order of `spacing`) with the unlabelled voxels mapped by `profile`
    (fit_unlabelled); to_units/from_units: the package's normalisation and its inverse."""
    values = np.array(values, np.float32)
    labelled = np.asarray(labelled, bool)
    if not labelled.any() or labelled.all():
        return values  # nothing to measure the scale on, or nothing to map
    scale = float(np.mean(to_units(values[labelled])))
    if scale <= 0:
        return values
    edges = np.asarray(profile["shells_mm"], np.float64)
    centres = np.append((edges[:-1] + edges[1:]) / 2, edges[-1] + 10.0)  # the open last shell: its edge + 10 mm
    # Each shell's map tabulated on STEPS values of [0, top] and read by index: np.interp per shell and voxel took
    # 0.5 s of a 128x128x96 working grid. Below 0 and beyond top the map continues with slope one.
    generated, real = np.asarray(profile["generated"]), np.asarray(profile["real"])
    top = 2.0 * float(generated[:, -1].max())
    grid_u = np.linspace(0.0, top, STEPS)
    table = np.stack([np.interp(grid_u, g, r) + np.minimum(grid_u - g[0], 0.0) + np.maximum(grid_u - g[-1], 0.0)
                      for g, r in zip(generated, real)]).astype(np.float32)
    coarse = distance_from_labels(labelled, spacing)
    for planes in first_axis_slabs(values.shape[0]):
        outside = ~labelled[planes]
        if not outside.any():
            continue
        v = values[planes]
        d = _fine(coarse, planes, values.shape)[outside]
        u = to_units(v[outside]) / scale
        # Position between shell centres: below the first centre the first shell's map, past the last the last's.
        position = np.interp(d, centres, np.arange(len(centres))).astype(np.float32)
        low = position.astype(np.intp)
        high = np.minimum(low + 1, len(centres) - 1)
        w = position - low
        index = np.clip(np.rint(u * ((STEPS - 1) / top)), 0, STEPS - 1).astype(np.intp)
        beyond = np.maximum(u - top, 0.0) + np.minimum(u, 0.0)
        mapped = (1 - w) * table[low, index] + w * table[high, index] + beyond
        v[outside] = from_units(mapped * scale)
    return values
