"""The layout of what lies outside the labels, learnt from the unlabelled part of the training scans.

A brain map labels the brain only. The U-Net's condition painted every voxel outside it with one value (the
background's mean), so it could not tell the skull from the scalp, the orbit from the neck, and drew a textureless
head (issue 33: whole-head FRD 12.37 against a floor of 6.88, the autoencoder's reconstruction 11.28). A head's
layout around the brain is much the same from one person to the next: bone, then scalp, at a few millimetres'
distance from the brain everywhere; the eyes in front of and below the frontal lobes; the neck below. So the layout
is a table of the mean training intensity outside the labels by

- direction from the labelled region's centre, in the patient's frame (LPS, from the image's direction matrix),
  after scaling each axis by the region's half extent (a long head and a round one line up), as elevation and
  azimuth bins; and
- distance from the nearest labelled voxel, in millimetres (a Euclidean distance transform),

and the U-Net's condition paints the voxels outside the labels with it. The decoder's guide keeps the one background
value it was trained with, so the autoencoder and its latents are unchanged; only the U-Net learns to use the
layout (train-diffusion --outside-layout). The table is averaged over a population, so it gives no one's face or
skull; the texture comes from sampling.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ...errors import SynthError

ELEVATION_BINS = 12   # 15 degrees each
AZIMUTH_BINS = 24     # 15 degrees each
DISTANCE_STEP_MM = 4.0  # the coarse grid's spacing for a 2 mm working grid (COARSE)
DISTANCE_BINS = 20    # up to 80 mm from the labels; beyond, the last bin
COARSE = 2  # the layout's geometry runs on a grid this many times coarser than the working grid (layout_coordinates)


@dataclass(frozen=True)
class OutsideLayout:
    """Mean intensity (model units) outside the labels by (elevation, azimuth, distance) bin."""

    mean: np.ndarray  # (ELEVATION_BINS, AZIMUTH_BINS, DISTANCE_BINS) float32
    distance_step_mm: float = DISTANCE_STEP_MM

    def metadata(self) -> dict:
        return {"kind": "direction_distance", "distance_step_mm": self.distance_step_mm,
                "shape": list(self.mean.shape), "mean": [round(float(v), 4) for v in self.mean.reshape(-1)]}

    def paint(self, classes: np.ndarray, spacing, direction) -> np.ndarray | None:
        """The layout's value at every unlabelled voxel of a class map (x, y, z), NaN on labels; None when the map
        has no label (nothing to be outside of). Interpolated between bin centres (azimuth wraps round): nearest
        bins drew 15-degree sectors with hard edges into the face and neck."""
        found = layout_coordinates(classes, spacing, direction, self.distance_step_mm)
        if found is None:
            return None
        coords = found.reshape(-1, 3)
        e_bins, a_bins, d_bins = self.mean.shape
        position = [coords[:, 0] * e_bins - 0.5, coords[:, 1] * a_bins - 0.5, coords[:, 2] - 0.5]
        value = np.zeros(len(coords), np.float32)
        flat = self.mean.reshape(-1)
        lower = [np.floor(x) for x in position]
        for corner in range(8):
            weight = np.ones(len(coords), np.float32)
            index = []
            for axis, (x, low, size) in enumerate(zip(position, lower, self.mean.shape)):
                take = low + ((corner >> axis) & 1)
                weight *= 1 - np.abs(x - take)
                index.append(np.mod(take, size) if axis == 1 else np.clip(take, 0, size - 1))
            e, a, d = (i.astype(np.int64) for i in index)
            value += weight * flat[(e * a_bins + a) * d_bins + d]
        painted = to_fine(value.reshape(found.shape[:3]), classes.shape)
        painted[classes > 0] = np.nan
        return painted


def to_fine(coarse: np.ndarray, shape) -> np.ndarray:
    """A coarse grid's values on the working grid: each coarse voxel's COARSE^3 block, cropped to `shape`."""
    x, y, z = coarse.shape
    fine = np.broadcast_to(coarse[:, None, :, None, :, None], (x, COARSE, y, COARSE, z, COARSE))
    return np.ascontiguousarray(fine.reshape(x * COARSE, y * COARSE, z * COARSE)[: shape[0], : shape[1], : shape[2]])


def layout_coordinates(classes: np.ndarray, spacing, direction, step_mm: float):
    """(elevation, azimuth) as fractions of the full turn in [0, 1) and the distance from the labels in distance
    steps, for every voxel of a grid COARSE times coarser than the class map's (X/2, Y/2, Z/2, 3), or None without
    labels or without unlabelled voxels. The map's spacing and direction matrix (3x3 row-major, columns = the array
    axes in LPS) place it in the patient.

    Why coarser: the layout varies over centimetres, and at the working grid itself its distance transform and
    lookup cost about a third of a brain generation (1.3 s at 120x120x90); at 4 mm they cost a few per cent. A coarse
    voxel holding any label counts as labelled: distance 0."""
    labelled = classes > 0
    if not labelled.any() or labelled.all():
        return None
    pad = [(0, -n % COARSE) for n in classes.shape]
    size = [(n + p[1]) // COARSE for n, p in zip(classes.shape, pad)]
    coarse = np.pad(labelled, pad).reshape(size[0], COARSE, size[1], COARSE, size[2], COARSE).any(axis=(1, 3, 5))
    spacing = np.asarray(spacing, float) * COARSE
    axes = np.asarray(direction, float).reshape(3, 3) * spacing[None, :]  # coarse index step -> LPS millimetres
    points = np.argwhere(coarse)
    lps = points @ axes.T
    centre = lps.mean(axis=0)
    half = np.maximum((np.percentile(lps, 98, axis=0) - np.percentile(lps, 2, axis=0)) / 2, 1.0)
    distance = ndimage.distance_transform_edt(~coarse, sampling=spacing).astype(np.float32)
    grids = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in coarse.shape), indexing="ij")
    u = [(sum(axes[row, col] * grids[col] for col in range(3)) - centre[row]) / half[row] for row in range(3)]
    norm = np.maximum(np.sqrt(u[0] ** 2 + u[1] ** 2 + u[2] ** 2), 1e-6)
    elevation = np.arcsin(np.clip(u[2] / norm, -1, 1)) / np.pi + 0.5        # +S up
    azimuth = np.mod(np.arctan2(u[1], u[0]) / (2 * np.pi) + 0.5, 1.0)      # from +L towards +P
    return np.stack([np.minimum(elevation, 1 - 1e-6), azimuth, distance / step_mm], axis=-1).astype(np.float32)


def layout_bins(classes: np.ndarray, spacing, direction, shape, step_mm: float):
    """(mask of unlabelled voxels, flat bin index of each of them), or None (layout_coordinates)."""
    found = layout_coordinates(classes, spacing, direction, step_mm)
    if found is None:
        return None
    e_bins, a_bins, d_bins = shape
    e = np.clip((found[..., 0] * e_bins).astype(np.int64), 0, e_bins - 1)
    a = np.clip((found[..., 1] * a_bins).astype(np.int64), 0, a_bins - 1)
    d = np.clip(found[..., 2].astype(np.int64), 0, d_bins - 1)
    outside = classes == 0
    return outside, to_fine((e * a_bins + a) * d_bins + d, classes.shape)[outside]


def measure_layout(cases) -> OutsideLayout:
    """The mean unlabelled intensity by bin over the labelled training cases (each with `spacing` and `direction`).
    A bin no case reached is interpolated along the distance in its own direction; a direction no case reached
    takes each distance's mean over every direction."""
    shape = (ELEVATION_BINS, AZIMUTH_BINS, DISTANCE_BINS)
    total, count = np.zeros(int(np.prod(shape))), np.zeros(int(np.prod(shape)))
    for case in cases:
        if case.image is None or case.classes is None:
            continue
        bins = layout_bins(case.classes, case.spacing, case.direction, shape, DISTANCE_STEP_MM)
        if bins is None:
            continue
        outside, index = bins
        total += np.bincount(index, case.image[outside].astype(np.float64), total.size)
        count += np.bincount(index, None, count.size)
    if not count.any():
        raise SynthError("--outside-layout needs labelled training cases with unlabelled voxels around the labels")
    total, count = total.reshape(shape), count.reshape(shape)
    by_distance = total.sum(axis=(0, 1)) / np.maximum(count.sum(axis=(0, 1)), 1)
    reached = np.flatnonzero(count.sum(axis=(0, 1)) > 0)
    by_distance = np.interp(np.arange(shape[2]), reached, by_distance[reached])
    mean = np.broadcast_to(by_distance, shape).copy()
    steps = np.arange(shape[2])
    for e in range(shape[0]):
        for a in range(shape[1]):
            seen = np.flatnonzero(count[e, a] > 0)
            if seen.size:  # along the distance in its own direction first: another direction is another tissue
                mean[e, a] = np.interp(steps, seen, total[e, a, seen] / count[e, a, seen])
    return OutsideLayout(mean.astype(np.float32))


def read_layout(meta) -> OutsideLayout:
    """A package's layout block, validated before any work."""
    shape = meta.get("shape") if isinstance(meta, dict) else None
    values = meta.get("mean") if isinstance(meta, dict) else None
    step = meta.get("distance_step_mm") if isinstance(meta, dict) else None
    ok = (meta.get("kind") == "direction_distance" if isinstance(meta, dict) else False) \
        and isinstance(shape, list) and len(shape) == 3 and all(isinstance(s, int) and 1 <= s <= 256 for s in shape) \
        and isinstance(values, list) and len(values) == int(np.prod(shape)) \
        and isinstance(step, (int, float)) and not isinstance(step, bool) and 0 < step <= 100
    ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    mean = np.asarray(values, dtype=np.float64) if ok else None
    ok = ok and bool(np.isfinite(mean).all())
    if not ok:
        raise SynthError("the model's priors have a malformed 'outside_layout' (need kind direction_distance, a shape "
                         "of 3 bin counts, that many finite means and a distance step in mm); the package is damaged, "
                         "reinstall it")
    return OutsideLayout(mean.reshape(shape).astype(np.float32), float(step))
