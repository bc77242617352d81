"""Intensity normalization, stored in the model package and inverted on output.

Which normalization a modality gets, and its parameters, is its entry in the registry (engine/volume/modalities.py);
this module does the two kinds:
CT (piecewise_linear): a fixed piecewise-linear map of HU onto [0, 1] (invertible inside its knots). It gives soft tissue
most of the range, as the L40/W400 window of the abdominal-CT paper does, but keeps air, fat and bone
apart instead of clipping them.
MRI (percentile_scale): scanner units have no absolute scale, so each training volume is divided by its own 99.5th
percentile of foreground; on output the model's typical scale (median over training) is applied.
"""
from __future__ import annotations

import numpy as np

from ...errors import SynthError
from .modalities import modality

CT_HU_KNOTS = list(modality("ct").normalization["source_knots"])
CT_UNIT_KNOTS = list(modality("ct").normalization["unit_knots"])


def modality_normalization(name: str, scale: float = 1.0) -> dict:
    """The normalization a package records for a registered modality: its entry's kind and parameters, the scale
    (percentile_scale only: the package's median training percentile) and its units."""
    entry = modality(name)
    norm = {k: list(v) if isinstance(v, tuple) else v for k, v in entry.normalization.items()}
    if norm["kind"] == "percentile_scale":
        norm["scale"] = float(scale)
    norm["units"] = entry.units
    return norm


def ct_normalization() -> dict:
    return modality_normalization("ct")


def mri_normalization(scale: float, percentile: float = 99.5) -> dict:
    return {**modality_normalization("mri", scale), "percentile": percentile}


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
