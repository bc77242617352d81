"""Intensity normalization, stored in the model package and inverted on output.

CT: a fixed piecewise-linear map of HU onto [0, 1] (invertible inside its knots). It gives soft tissue
most of the range, as the L40/W400 window of the abdominal-CT paper does, but keeps air, fat and bone
apart instead of clipping them.
MRI: scanner units have no absolute scale, so each training volume is divided by its own 99.5th
percentile of foreground; on output the model's typical scale (median over training) is applied.
"""
from __future__ import annotations

import numpy as np

from ...errors import SynthError

CT_HU_KNOTS = [-1024.0, -200.0, 300.0, 1500.0]
CT_UNIT_KNOTS = [0.0, 0.25, 0.85, 1.0]


def ct_normalization() -> dict:
    return {"kind": "piecewise_linear", "source_knots": CT_HU_KNOTS, "unit_knots": CT_UNIT_KNOTS, "units": "HU"}


def mri_normalization(scale: float, percentile: float = 99.5) -> dict:
    return {"kind": "percentile_scale", "percentile": percentile, "scale": float(scale), "units": "scanner"}


def percentile_of_foreground(image: np.ndarray, percentile: float) -> float:
    values = image[image > 0]
    if values.size == 0:
        raise SynthError("the image is empty (no positive voxels); give a non-empty MRI volume")
    return float(np.percentile(values, percentile))


def normalize(image: np.ndarray, norm: dict) -> np.ndarray:
    """Scanner or HU values -> model units [0, 1] (float32)."""
    image = np.asarray(image, np.float32)
    if norm["kind"] == "piecewise_linear":
        return np.interp(image, norm["source_knots"], norm["unit_knots"]).astype(np.float32)
    if norm["kind"] == "percentile_scale":
        scale = percentile_of_foreground(image, norm["percentile"])
        return np.clip(image / scale, 0.0, 1.5).astype(np.float32) / 1.5
    raise SynthError(f"unknown normalization kind {norm['kind']}; the model package is from a newer version")


def denormalize(unit: np.ndarray, norm: dict) -> np.ndarray:
    """Model units -> HU or scanner values (float32)."""
    unit = np.asarray(unit, np.float32)
    if norm["kind"] == "piecewise_linear":
        return np.interp(unit, norm["unit_knots"], norm["source_knots"]).astype(np.float32)
    if norm["kind"] == "percentile_scale":
        return (np.clip(unit, 0.0, 1.0) * 1.5 * norm["scale"]).astype(np.float32)
    raise SynthError(f"unknown normalization kind {norm['kind']}; the model package is from a newer version")


def model_units(values: np.ndarray, norm: dict) -> np.ndarray:
    """The exact inverse of `denormalize`: a generated volume back in model units with the model's own fixed
    scale, never re-normalised by its own percentile (that would hide an intensity drift)."""
    values = np.asarray(values, np.float32)
    if norm["kind"] == "percentile_scale":
        return np.clip(values / (1.5 * norm["scale"]), 0.0, 1.0).astype(np.float32)
    return normalize(values, norm)
