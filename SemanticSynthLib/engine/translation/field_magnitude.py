"""How far a displacement field moves each point: its length in mm, as a scalar image to show over the moved volume.

Light on purpose (SimpleITK only, no torch): the web server computes it in its own process for display.
"""
from __future__ import annotations

import os

import numpy as np
import SimpleITK as sitk

from ...errors import SynthError
from ..volume.io import write_volume


def field_magnitude(field: sitk.Image) -> sitk.Image:
    """|u(x)| in mm, float32, on the field's own grid (size, spacing, origin and direction kept).

    A vector's length does not change when axes flip sign, so an LPS field (ITK files) and the same field in
    RAS (Slicer) give the same image.
    """
    components = field.GetNumberOfComponentsPerPixel()
    if components != field.GetDimension():
        raise SynthError(f"a displacement field has {field.GetDimension()} components per voxel; "
                         f"this image has {components}")
    # VectorMagnitude needs a real vector pixel type; float64 keeps the length exact before the float32 result
    magnitude = sitk.VectorMagnitude(sitk.Cast(field, sitk.sitkVectorFloat64))
    return sitk.Cast(magnitude, sitk.sitkFloat32)


def write_field_magnitude(field_path: str | os.PathLike, out_path: str | os.PathLike) -> float:
    """Read a displacement field file (ITK's form, as Slicer writes a grid transform), write its magnitude image;
    returns the largest displacement in mm (for the legend)."""
    try:
        field = sitk.ReadImage(str(field_path))
    except RuntimeError:
        raise SynthError(f"cannot read the displacement field {field_path}") from None
    magnitude = field_magnitude(field)
    write_volume(magnitude, out_path)
    return float(np.max(sitk.GetArrayViewFromImage(magnitude)))
