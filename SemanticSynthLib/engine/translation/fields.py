"""Displacement fields: scaling and squaring, warping, Jacobians, and the ITK file form.

Convention everywhere in SemanticSynth: a displacement field u lives on the *output* grid and maps an
output point x to the source point x + u(x) ("pull-back"), so output(x) = source(x + u(x)). That is
ITK's resampling-transform convention, so SimpleITK's DisplacementFieldTransform and Slicer's
transform "from parent" read the written file the same way.
In tensors the field is in voxel units of its grid, channel k along array axis k (x, y, z order).
"""
from __future__ import annotations

import warnings

import numpy as np
import SimpleITK as sitk
import torch
import torch.nn.functional as F
from monai.networks.blocks import DVF2DDF, Warp

SQUARING_STEPS = 7
FIELD_CONVENTION = "output point x -> source point x + u(x), LPS mm"  # recorded with every field written
# MONAI announces on every Warp that it uses torch's grid_sample instead of its optional C++ extension:
# that is the intended path here, not something a user can act on.
warnings.filterwarnings("ignore", message="monai.networks.blocks.Warp: Using PyTorch native grid_sample")


def integrate_velocity(velocity: torch.Tensor, steps: int = SQUARING_STEPS) -> torch.Tensor:
    """Stationary velocity (B,3,X,Y,Z, voxels) -> diffeomorphic displacement by scaling and squaring."""
    return DVF2DDF(num_steps=steps, mode="bilinear", padding_mode="border")(velocity)


def warp(image: torch.Tensor, displacement: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """image(x + u(x)); `mode` "nearest" for label maps."""
    return Warp(mode=mode, padding_mode="border")(image, displacement)


def upsample_displacement(displacement: torch.Tensor, size) -> torch.Tensor:
    """A coarse field onto a finer grid of the same extent, its vectors rescaled to the finer voxels."""
    scale = torch.tensor([s / c for s, c in zip(size, displacement.shape[2:])], dtype=displacement.dtype,
                         device=displacement.device).view(1, 3, 1, 1, 1)
    return F.interpolate(displacement, size=tuple(size), mode="trilinear", align_corners=True) * scale


def compose(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """The field of x -> y = x + first(x) -> y + second(y)."""
    return first + warp(second, first)


def jacobian_determinant(displacement: np.ndarray) -> np.ndarray:
    """det(I + grad u) per voxel for a (3, X, Y, Z) field in voxel units (central differences)."""
    grads = [np.gradient(displacement[k], axis=(0, 1, 2)) for k in range(3)]
    jac = np.empty(displacement.shape[1:] + (3, 3), np.float64)
    for k in range(3):
        for j in range(3):
            jac[..., k, j] = grads[k][j] + (1.0 if k == j else 0.0)
    return np.linalg.det(jac)


def _index_to_physical(grid: sitk.Image) -> np.ndarray:
    return np.array(grid.GetDirection()).reshape(3, 3) @ np.diag(grid.GetSpacing())


def field_image(displacement_voxels: np.ndarray, grid: sitk.Image) -> sitk.Image:
    """(3, X, Y, Z) voxel displacement on `grid` -> ITK displacement field image, vectors in LPS mm.

    float32 on disk (half the size of ITK's float64); transforms are built from a float64 copy."""
    matrix = _index_to_physical(grid)
    physical = np.einsum("ij,jxyz->xyzi", matrix, displacement_voxels.astype(np.float64)).astype(np.float32)
    image = sitk.GetImageFromArray(np.ascontiguousarray(physical.transpose(2, 1, 0, 3)), isVector=True)
    image.CopyInformation(grid)
    return image


def physical_to_voxels(field: sitk.Image) -> np.ndarray:
    """ITK displacement field image (LPS mm) -> (3, X, Y, Z) displacement in its own voxel units."""
    physical = sitk.GetArrayFromImage(field).transpose(2, 1, 0, 3).astype(np.float64)
    return np.einsum("ij,xyzj->ixyz", np.linalg.inv(_index_to_physical(field)), physical)


def resample_field(field: sitk.Image, reference: sitk.Image) -> sitk.Image:
    """A physical displacement field onto another grid (linear), zero outside its domain."""
    out = sitk.Resample(field, reference, sitk.Transform(), sitk.sitkLinear, 0.0, field.GetPixelID())
    out.CopyInformation(reference)
    return out


def displacement_transform(field: sitk.Image) -> sitk.DisplacementFieldTransform:
    """SimpleITK's transform for a field (the transform takes ownership of a copy)."""
    return sitk.DisplacementFieldTransform(sitk.Cast(field, sitk.sitkVectorFloat64))
