"""Space-to-depth packing: full-resolution channels carried at latent resolution.

A sliding window over the latent then crops the full-resolution data that belongs to it alike
(the translator's source image, the label-aware decoder's guide).
"""
from __future__ import annotations

import torch


def space_to_depth(x: torch.Tensor, factor: int) -> torch.Tensor:
    """(B,C,X,Y,Z) -> (B,C*f^3,X/f,Y/f,Z/f); every voxel kept."""
    b, c, x_, y, z = x.shape
    f = factor
    out = x.reshape(b, c, x_ // f, f, y // f, f, z // f, f).permute(0, 1, 3, 5, 7, 2, 4, 6)
    return out.reshape(b, c * f ** 3, x_ // f, y // f, z // f)


def depth_to_space(x: torch.Tensor, factor: int) -> torch.Tensor:
    """The inverse of space_to_depth."""
    b, cf, x_, y, z = x.shape
    f = factor
    c = cf // f ** 3
    out = x.reshape(b, c, f, f, f, x_, y, z).permute(0, 1, 5, 2, 6, 3, 7, 4)
    return out.reshape(b, c, x_ * f, y * f, z * f)
