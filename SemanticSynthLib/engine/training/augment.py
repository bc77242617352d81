"""Spatial and intensity augmentation: a random small affine applied alike to image and labels."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def _rotation(angles) -> np.ndarray:
    cx, cy, cz = (math.cos(a) for a in angles)
    sx, sy, sz = (math.sin(a) for a in angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def random_affine(image: np.ndarray | None, classes: np.ndarray | None, rng: np.random.Generator,
                  max_degrees: float = 10.0, scale: float = 0.1, shift: float = 0.05):
    """Rotate/scale/shift about the centre; image linear (edge-padded), labels nearest (background)."""
    matrix = _rotation(np.deg2rad(rng.uniform(-max_degrees, max_degrees, 3))) * rng.uniform(1 - scale, 1 + scale, 3)
    theta = torch.zeros(1, 3, 4)
    theta[0, :, :3] = torch.from_numpy(matrix)
    theta[0, :, 3] = torch.from_numpy(rng.uniform(-shift, shift, 3))
    ref = image if image is not None else classes
    grid = F.affine_grid(theta, (1, 1, *ref.shape[::-1]), align_corners=False)
    out = []
    if image is not None:
        t = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 1, 0)))[None, None].float()
        w = F.grid_sample(t, grid, mode="bilinear", padding_mode="border", align_corners=False)
        out.append(w[0, 0].numpy().transpose(2, 1, 0).copy())
    else:
        out.append(None)
    if classes is not None:
        t = torch.from_numpy(np.ascontiguousarray(classes.transpose(2, 1, 0)).astype(np.float32))[None, None]
        w = F.grid_sample(t, grid, mode="nearest", padding_mode="zeros", align_corners=False)
        out.append(w[0, 0].numpy().transpose(2, 1, 0).astype(classes.dtype).copy())
    else:
        out.append(None)
    return out


def random_intensity(image: np.ndarray, rng: np.random.Generator, gamma: float = 0.15, scale: float = 0.05) -> np.ndarray:
    """A mild gamma and contrast change in model units [0, 1]."""
    g = math.exp(rng.uniform(-gamma, gamma))
    return np.clip(np.clip(image, 0, 1) ** g * rng.uniform(1 - scale, 1 + scale), 0, 1).astype(np.float32)
