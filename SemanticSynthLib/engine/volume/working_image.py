"""An intensity volume as the networks see it: resampled onto the model's working grid, then in model units.

Every intensity volume on its way into a network passes here (training cases and pairs, the autoencoder's
reconstruction, translation, evaluation), so the grid's overhang past the volume is filled alike everywhere.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from .geometry import extend_edges, resample_intensity
from .intensity import normalize
from .io import array_of


def values_on_grid(image: sitk.Image, grid: sitk.Image, extend: bool = False) -> np.ndarray:
    """The image's values (HU or scanner units) on `grid`, as an (x, y, z) float32 array.

    Where the grid reaches past the image it gets the image's lowest value: air in CT, background in MRI (0 would be
    water in HU, a false edge). With `extend` the image's edge voxels are replicated there instead (extend_edges),
    for grids rounded up past the far corner, whose overhang should look like the inside."""
    lowest = float(sitk.GetArrayViewFromImage(image).min())
    source = extend_edges(image, grid) if extend else image
    return array_of(resample_intensity(source, grid, default=lowest))


def units_on_grid(image: sitk.Image, grid: sitk.Image, norm: dict, extend: bool = False) -> np.ndarray:
    """values_on_grid in model units (`norm`: the package's normalization for the image's modality)."""
    return normalize(values_on_grid(image, grid, extend), norm)
