"""The label condition at latent resolution, for the three conditioning modes of the abdominal-CT paper.

- concat: label fractions (one-hot averaged over each latent voxel's footprint) concatenated to the
  noisy latent;
- spade:  the same fractions fed to SPADE normalization in the U-Net's separate label branch;
- edge:   concat plus the fraction of label-boundary voxels in each latent voxel.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

CONDITIONING_MODES = ("concat", "spade", "edge")


def label_boundary(classes: torch.Tensor) -> torch.Tensor:
    """1 where a voxel's class differs from any of its 6 neighbours (classes: N,1,X,Y,Z integer)."""
    c = classes.float()
    padded = F.pad(c, (1, 1, 1, 1, 1, 1), mode="replicate")
    edge = torch.zeros_like(c, dtype=torch.bool)
    core = padded[:, :, 1:-1, 1:-1, 1:-1]
    for axis in (2, 3, 4):
        for shift in (0, 2):
            sl = [slice(None), slice(None), slice(1, -1), slice(1, -1), slice(1, -1)]
            sl[axis] = slice(shift, shift + c.shape[axis])
            edge |= padded[tuple(sl)] != core
    return edge.float()


def class_fractions(classes: torch.Tensor, num_classes: int, factor: int) -> torch.Tensor:
    """Fraction of each class in every factor^3 block, by counting.

    Equal to average-pooling the one-hot map, without ever holding a one-hot volume at full
    resolution (149 MUSE classes at 256x256x128 would take 5 GB).
    """
    n, _, x, y, z = classes.shape
    lx, ly, lz = x // factor, y // factor, z // factor
    blocks = classes[:, 0].long().reshape(n, lx, factor, ly, factor, lz, factor)
    block_index = torch.arange(n * lx * ly * lz).reshape(n, lx, 1, ly, 1, lz, 1).expand_as(blocks)
    counts = torch.bincount((block_index * num_classes + blocks).reshape(-1), minlength=n * lx * ly * lz * num_classes)
    counts = counts.reshape(n, lx, ly, lz, num_classes).permute(0, 4, 1, 2, 3)
    return counts.float() / float(factor ** 3)


def label_condition(classes: torch.Tensor, num_classes: int, factor: int, mode: str) -> torch.Tensor:
    """Condition channels at latent resolution from class indices at working resolution.

    classes: N,1,X,Y,Z integer class indices; the spatial size must be divisible by `factor`.
    Returns N, num_classes (+1 for edge), X/factor, Y/factor, Z/factor in float32.
    """
    if mode not in CONDITIONING_MODES:
        raise ValueError(f"conditioning must be one of {CONDITIONING_MODES}")
    fractions = class_fractions(classes, num_classes, factor)
    if mode != "edge":
        return fractions
    edges = label_boundary(classes)
    edges = F.avg_pool3d(edges, factor) if factor > 1 else edges
    return torch.cat([fractions, edges], dim=1)


def condition_channels(num_classes: int, mode: str) -> int:
    return num_classes + (1 if mode == "edge" else 0)
