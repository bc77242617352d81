"""Grids: the model's working grid inside the input's, and resampling between them."""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from .memory import check_working_grid


def same_grid(a: sitk.Image, b: sitk.Image, tol: float = 1e-5) -> bool:
    return (
        a.GetSize() == b.GetSize()
        and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=tol)
        and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=tol * 100)
        and np.allclose(a.GetDirection(), b.GetDirection(), atol=tol)
    )


def working_grid(image: sitk.Image, spacing: tuple[float, float, float], multiple: int = 1) -> sitk.Image:
    """A grid with the input's direction covering the same physical extent at the working spacing.

    The size is rounded up to `multiple` so the autoencoder and U-Net can halve it evenly; the
    extra voxels sit past the input's far corner and are cropped away when resampling back.
    """
    in_spacing = np.array(image.GetSpacing(), float)
    spacing = np.array(spacing, float)
    extent = in_spacing * np.array(image.GetSize())
    size = np.maximum(np.ceil(extent / spacing - 1e-3).astype(int), 1)
    size = ((size + multiple - 1) // multiple) * multiple
    check_working_grid(size, spacing)  # before allocating: a huge extent must not take the machine's memory
    # Voxel centres: the first working voxel's corner coincides with the first input voxel's corner.
    direction = np.array(image.GetDirection()).reshape(3, 3)
    shift = direction @ ((spacing - in_spacing) / 2.0)
    grid = sitk.Image([int(s) for s in size], sitk.sitkUInt8)
    grid.SetSpacing(tuple(spacing))
    grid.SetDirection(image.GetDirection())
    grid.SetOrigin(tuple(np.array(image.GetOrigin()) + shift))
    return grid


def resample_labels(label_map: sitk.Image, reference: sitk.Image) -> sitk.Image:
    """Nearest-neighbour: label ids are categories, never averaged."""
    return sitk.Resample(label_map, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, label_map.GetPixelID())


def resample_intensity(image: sitk.Image, reference: sitk.Image, default: float = 0.0) -> sitk.Image:
    """Linear interpolation onto the reference grid, in float32."""
    image = sitk.Cast(image, sitk.sitkFloat32)
    return sitk.Resample(image, reference, sitk.Transform(), sitk.sitkLinear, float(default), sitk.sitkFloat32)


def extend_edges(image: sitk.Image, grid: sitk.Image) -> sitk.Image:
    """The image with its last voxels replicated outward far enough to cover `grid`.

    The working grid is rounded up past the input's far corner; filling that part with background would
    make the model generate (and the decoder smear) air into the last real slices. Replicating the edge
    makes the overhang look like the inside; it is cropped away when resampling back. The origin does not
    move, so the image's own voxels stay where they were.
    """
    far = np.array(grid.TransformIndexToPhysicalPoint([int(s) - 1 for s in grid.GetSize()]))
    index = np.array(image.TransformPhysicalPointToContinuousIndex(tuple(float(v) for v in far)))
    pad = np.maximum(np.ceil(index - (np.array(image.GetSize()) - 1)).astype(int) + 1, 0)
    if not pad.any():
        return image
    return sitk.ZeroFluxNeumannPad(image, [0, 0, 0], [int(p) for p in pad])
