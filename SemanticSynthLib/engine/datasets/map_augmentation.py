"""Label-map augmentation before generation: a random affine, an elastic deformation, and left-right mirroring
with the paired structures' labels swapped, so that one label map gives several anatomies.

Everything happens on the map's own grid (size, spacing, origin and direction are kept) in physical space, with
SimpleITK's nearest-neighbour resampling: a label id is never blended into another. The parameters drawn are
returned, to go into the case's provenance, and one (seed, map, sample) always draws the same ones.
"""
from __future__ import annotations

import re

import numpy as np
import SimpleITK as sitk

from ..volume.io import array_of, image_like

MAX_DEGREES = 10.0      # rotation about each axis
MAX_SCALE = 0.10        # isotropic-per-axis scale 0.9..1.1
MAX_SHIFT_MM = 5.0
ELASTIC_MESH = 4        # B-spline control cells per axis: deformations of organ size, not of voxels
ELASTIC_SIGMA_MM = 3.0  # the control points' random displacement

_SIDES = {"left": "right", "right": "left", "l": "r", "r": "l", "lh": "rh", "rh": "lh"}


def _partner_name(name: str) -> str | None:
    """The other side's name (Hippocampus_L -> Hippocampus_R, kidney_left -> kidney_right, Left-Putamen ->
    Right-Putamen, ctx-lh-x -> ctx-rh-x), or None for a structure without a side."""
    parts = re.split(r"([_\-\s.])", name)
    swapped, changed = [], False
    for part in parts:
        other = _SIDES.get(part.lower())
        if other is None:
            swapped.append(part)
            continue
        changed = True
        swapped.append(other.upper() if part.isupper() else other.capitalize() if part[:1].isupper() else other)
    return "".join(swapped) if changed else None


def side_pairs(names: dict[int, str]) -> dict[int, int]:
    """id -> the id of its other side, for the ids whose partner's name is among `names` (id -> name)."""
    by_name = {n.lower(): i for i, n in names.items()}
    pairs = {}
    for i, name in names.items():
        partner = _partner_name(name)
        if partner is not None and partner.lower() in by_name:
            pairs[i] = by_name[partner.lower()]
    return pairs


def left_right_axis(image: sitk.Image) -> int:
    """The array (x, y, z index) axis that runs most nearly along the patient's left-right (LPS x) axis."""
    direction = np.asarray(image.GetDirection(), float).reshape(3, 3)
    return int(np.argmax(np.abs(direction[0])))


def _centre(image: sitk.Image) -> tuple[float, ...]:
    return image.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2.0 for s in image.GetSize()])


def _affine(image: sitk.Image, rng: np.random.Generator) -> tuple[sitk.Transform, dict]:
    degrees = rng.uniform(-MAX_DEGREES, MAX_DEGREES, 3)
    scale = rng.uniform(1 - MAX_SCALE, 1 + MAX_SCALE, 3)
    shift = rng.uniform(-MAX_SHIFT_MM, MAX_SHIFT_MM, 3)
    rotation = sitk.Euler3DTransform(_centre(image), *np.deg2rad(degrees).tolist())
    matrix = np.asarray(rotation.GetMatrix()).reshape(3, 3) @ np.diag(scale)
    transform = sitk.AffineTransform(matrix.ravel().tolist(), shift.tolist(), _centre(image))
    return transform, {"degrees": np.round(degrees, 3).tolist(), "scale": np.round(scale, 4).tolist(),
                       "shift_mm": np.round(shift, 3).tolist()}


def _elastic(image: sitk.Image, rng: np.random.Generator) -> tuple[sitk.Transform, dict]:
    transform = sitk.BSplineTransformInitializer(image, [ELASTIC_MESH] * 3, order=3)
    count = len(transform.GetParameters())
    transform.SetParameters(rng.normal(0.0, ELASTIC_SIGMA_MM, count).tolist())
    return transform, {"mesh": ELASTIC_MESH, "sigma_mm": ELASTIC_SIGMA_MM}


def augment_label_map(label_map: sitk.Image, kinds: tuple[str, ...], rng: np.random.Generator,
                      names: dict[int, str]) -> tuple[sitk.Image, dict]:
    """The map deformed by the kinds asked (each drawn from rng), on its own grid, and the parameters drawn.

    names: the map's id -> structure name, whose left/right pairs mirroring swaps. Mirroring happens with
    probability 1/2, so that a dataset keeps both orientations."""
    record: dict = {}
    transforms = []
    if "affine" in kinds:
        transform, record["affine"] = _affine(label_map, rng)
        transforms.append(transform)
    if "elastic" in kinds:
        transform, record["elastic"] = _elastic(label_map, rng)
        transforms.append(transform)
    image = label_map
    if transforms:
        composite = sitk.CompositeTransform(transforms)
        image = sitk.Resample(label_map, label_map, composite, sitk.sitkNearestNeighbor, 0, label_map.GetPixelID())
    if "mirror" in kinds:
        mirrored = bool(rng.random() < 0.5)
        record["mirror"] = {"mirrored": mirrored}
        if mirrored:
            axis = left_right_axis(label_map)
            ids = np.flip(array_of(image), axis)
            pairs = side_pairs(names)
            if pairs:
                lookup = np.arange(max(int(ids.max()), *pairs.values()) + 1, dtype=np.int64)
                for a, b in pairs.items():
                    lookup[a] = b
                ids = lookup[ids].astype(ids.dtype)  # a pair's ids are both of the map's table: they fit
            image = image_like(np.ascontiguousarray(ids), label_map)
            record["mirror"].update(axis=axis, swapped_pairs=len(pairs) // 2)
    return image, record
