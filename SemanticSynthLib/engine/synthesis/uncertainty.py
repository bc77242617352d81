"""K samples of one request (seeds SEED..SEED+K-1): their mean volume and per-voxel standard deviation.

The spread says where the model is unsure for these labels: across seeds only the random texture and what the
labels leave open change. Where every sample is the same by construction (outside an edited region, which keeps the
existing volume) it is exactly 0. Per label it is reported for the label's boundary voxels (a face neighbour with
another label) and its interior apart: a model that follows its labels varies most where tissues meet.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk


class SampleStatistics:
    """Running mean and variance (Welford, float64) of volumes on one grid."""

    def __init__(self):
        self.count, self.mean, self.m2 = 0, None, None

    def add(self, image: sitk.Image) -> None:
        values = sitk.GetArrayFromImage(image).astype(np.float64)
        if self.mean is None:
            self.mean, self.m2 = np.zeros_like(values), np.zeros_like(values)
        self.count += 1
        delta = values - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (values - self.mean)

    def images(self, reference: sitk.Image) -> tuple[sitk.Image, sitk.Image]:
        """(mean, standard deviation) as float32 images on the reference's grid. The spread is the population
        standard deviation of the K samples; voxels that never changed have exactly 0."""
        std = np.sqrt(np.maximum(self.m2 / self.count, 0.0))
        out = []
        for values in (self.mean, std):
            image = sitk.GetImageFromArray(values.astype(np.float32))
            image.CopyInformation(reference)
            out.append(image)
        return out[0], out[1]


def boundary_voxels(ids: np.ndarray) -> np.ndarray:
    """Voxels with a face neighbour of another id (either side of every interface)."""
    edge = np.zeros(ids.shape, bool)
    for axis in range(ids.ndim):
        differs = np.diff(ids, axis=axis) != 0
        lower = [slice(None)] * ids.ndim
        upper = [slice(None)] * ids.ndim
        lower[axis], upper[axis] = slice(0, -1), slice(1, None)
        edge[tuple(lower)] |= differs
        edge[tuple(upper)] |= differs
    return edge


def spread_per_label(std: sitk.Image, label_map: sitk.Image, names: dict[int, str] | None = None) -> dict:
    """Per label id of the map: voxels, mean std over the label, over its boundary voxels and over its interior
    (NaN-free: a part with no voxels is left out)."""
    ids = sitk.GetArrayFromImage(label_map).astype(np.int64)
    values = sitk.GetArrayFromImage(std).astype(np.float64)
    edge = boundary_voxels(ids)
    out = {}
    flat_ids, flat_values, flat_edge = ids.ravel(), values.ravel(), edge.ravel()
    size = int(flat_ids.max()) + 1
    counts = [np.bincount(flat_ids, weights=w, minlength=size) for w in (None, flat_edge.astype(float))]
    sums = [np.bincount(flat_ids, weights=flat_values * m, minlength=size)
            for m in (1.0, flat_edge.astype(float), (~flat_edge).astype(float))]
    for label in np.flatnonzero(counts[0]):
        n, n_edge = counts[0][label], counts[1][label]
        entry = {"name": (names or {}).get(int(label), str(int(label))), "voxels": int(n),
                 "std": round(float(sums[0][label] / n), 3)}
        if n_edge > 0:
            entry["boundary_std"] = round(float(sums[1][label] / n_edge), 3)
        if n - n_edge > 0:
            entry["interior_std"] = round(float(sums[2][label] / (n - n_edge)), 3)
        out[str(int(label))] = entry
    return out
