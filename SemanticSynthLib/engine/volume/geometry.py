"""Grids: the model's working grid inside the input's, and resampling between them."""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from .memory import check_padded_input, check_working_grid


def same_grid(a: sitk.Image, b: sitk.Image, tol: float = 1e-5) -> bool:
    return (
        a.GetSize() == b.GetSize()
        and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=tol)
        and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=tol * 100)
        and np.allclose(a.GetDirection(), b.GetDirection(), atol=tol)
    )


def working_grid(image: sitk.Image, spacing: tuple[float, float, float], multiple: int = 1,
                 margins: tuple[tuple[int, int], ...] = ((0, 0),) * 3) -> sitk.Image:
    """A grid with the input's direction covering the same physical extent at the working spacing.

    `margins`: working voxels added before and after the input on each axis (edge_margins). The size is then
    rounded up to `multiple` so the autoencoder and U-Net can halve it evenly; the extra voxels sit past the
    input's far corner, or half of them before the first corner where that end has a margin. Margins and
    overhang are cropped away when resampling back.
    """
    in_spacing = np.array(image.GetSpacing(), float)
    spacing = np.array(spacing, float)
    extent = in_spacing * np.array(image.GetSize())
    before, after = np.array([m[0] for m in margins]), np.array([m[1] for m in margins])
    size = np.maximum(np.ceil(extent / spacing - 1e-3).astype(int), 1) + before + after
    rounded = ((size + multiple - 1) // multiple) * multiple
    # Where the first slice needs a margin it also gets half the rounding's slack, which otherwise all lies past the
    # far end: with 4 replicated slices before and 14 after (abdomen-ct on its case) the first slice's labels came
    # out 2x as far from their priors as the interior's, the last ones' did not (sampling.EDGE_MARGIN).
    before = before + np.where(before > 0, np.where(after > 0, (rounded - size) // 2, rounded - size), 0)
    size = rounded
    # Before allocating: a huge extent must not take the machine's memory; the input's own grid (read, and the output
    # resampled onto it) counts too.
    check_working_grid(size, spacing, image.GetSize())
    # Voxel centres: the first input voxel's corner lies `before` working voxels past the grid's first corner.
    direction = np.array(image.GetDirection()).reshape(3, 3)
    shift = direction @ ((spacing - in_spacing) / 2.0 - before * spacing)
    grid = sitk.Image([int(s) for s in size], sitk.sitkUInt8)
    grid.SetSpacing(tuple(spacing))
    grid.SetDirection(image.GetDirection())
    grid.SetOrigin(tuple(np.array(image.GetOrigin()) + shift))
    return grid


def edge_margins(label_map: sitk.Image, margin: int) -> tuple[tuple[int, int], ...]:
    """`margin` working voxels at each end of an axis where the label map's outermost slice holds labels.

    There the input cuts through labelled anatomy (a CT's first and last slices), and convolutions that reach
    past it would see padding: the abdomen-ct autoencoder's reconstruction of the first slice of a crop through
    the body was 1.72x as far from the real image as the interior. A margin of replicated labels (extend_edges)
    puts the outermost input slices inside the generated volume. Ends in background (a whole head) need none.
    """
    ids = sitk.GetArrayViewFromImage(label_map)  # (z, y, x)
    ends = []
    for axis in (2, 1, 0):
        first, last = np.take(ids, 0, axis=axis), np.take(ids, -1, axis=axis)
        ends.append((margin if first.any() else 0, margin if last.any() else 0))
    return tuple(ends)


def inside_input(image: sitk.Image, grid: sitk.Image) -> np.ndarray:
    """Working voxels (x, y, z order) whose centres lie inside the input's extent, not in a margin or overhang."""
    first = np.array(image.TransformPhysicalPointToContinuousIndex(grid.TransformIndexToPhysicalPoint((0, 0, 0))))
    step = np.array(grid.GetSpacing()) / np.array(image.GetSpacing())
    axes = []
    for a, (n, limit) in enumerate(zip(grid.GetSize(), image.GetSize())):
        centre = first[a] + np.arange(n) * step[a]  # continuous index of each working voxel's centre
        axes.append((centre >= -0.5 - 1e-6) & (centre <= limit - 0.5 + 1e-6))
    return axes[0][:, None, None] & axes[1][None, :, None] & axes[2][None, None, :]


def resample_labels(label_map: sitk.Image, reference: sitk.Image) -> sitk.Image:
    """Nearest-neighbour: label ids are categories, never averaged."""
    return sitk.Resample(label_map, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, label_map.GetPixelID())


def resample_intensity(image: sitk.Image, reference: sitk.Image, default: float = 0.0) -> sitk.Image:
    """Linear interpolation onto the reference grid, in float32."""
    if image.GetPixelID() != sitk.sitkFloat32:  # a cast to its own type would copy it
        image = sitk.Cast(image, sitk.sitkFloat32)
    return sitk.Resample(image, reference, sitk.Transform(), sitk.sitkLinear, float(default), sitk.sitkFloat32)


def extend_edges(image: sitk.Image, grid: sitk.Image) -> sitk.Image:
    """The image with its outermost voxels replicated outward far enough to cover `grid`.

    The working grid is rounded up past the input's far corner and may hold margins before and after it
    (edge_margins); filling those with background would make the model generate (and the decoder smear) air
    into the outermost real slices. Replicating the edge makes them look like the inside; they are cropped
    away when resampling back. The image's own voxels stay where they were.
    """
    corners = [grid.TransformIndexToPhysicalPoint([0, 0, 0]),
               grid.TransformIndexToPhysicalPoint([int(s) - 1 for s in grid.GetSize()])]
    index = np.array([image.TransformPhysicalPointToContinuousIndex(tuple(float(v) for v in c)) for c in corners])
    low, high = index.min(axis=0), index.max(axis=0)
    pad_low = np.maximum(np.ceil(-low).astype(int) + 1, 0) * (low < 0)
    pad_high = np.maximum(np.ceil(high - (np.array(image.GetSize()) - 1)).astype(int) + 1, 0)
    if not pad_low.any() and not pad_high.any():
        return image
    # The padding is in the input's voxels: a few mm of margin is a huge grid for voxels far finer than the model's.
    check_padded_input(np.array(image.GetSize()) + pad_low + pad_high, image.GetSpacing(), grid.GetSpacing(),
                       np.dtype(sitk.extra._get_numpy_dtype(image)).itemsize * image.GetNumberOfComponentsPerPixel())
    return sitk.ZeroFluxNeumannPad(image, [int(p) for p in pad_low], [int(p) for p in pad_high])
