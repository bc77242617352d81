"""The label condition at latent resolution, for the conditioning modes of conditioning_modes.py.

Every mode starts from the label fractions (one-hot averaged over each latent voxel's footprint); a mode with
a boundary channel adds the fraction of label-boundary voxels in each latent voxel. Where the condition enters
the U-Net (concatenated or SPADE) is the network's business (networks.py).

Packages with the label-aware autoencoder condition on what each label *is* rather than on its id: the
mean painted prior of each latent voxel plus the fraction of each tissue kind (engine/model/priors.py). Then
every class of the label table generates, seen in training or not.

A "fine" mode (detail) keeps what averaging throws away: the map at working resolution, folded into factor^3
channels per latent voxel (space-to-depth, fold_to_latent). The average over those channels is the pooled map, so a
U-Net trained on the pooled condition carries over exactly (widen_pooled_prior).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .conditioning_modes import conditioning_mode
from .priors import TISSUE_KINDS


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


FRACTION_CHUNK_VOXELS = 2 ** 22  # class_fractions counts this many voxels at a time


def class_fractions(classes: torch.Tensor, num_classes: int, factor: int) -> torch.Tensor:
    """Fraction of each class in every factor^3 block, by counting.

    Equal to average-pooling the one-hot map, without ever holding a one-hot volume at full
    resolution (149 MUSE classes at 256x256x128 would take 5 GB). The blocks are counted a slab of latent x-slices
    at a time, so that the int64 block indices of a 256^3 grid (two 134 MB arrays) are never made at once.
    """
    n, _, x, y, z = classes.shape
    lx, ly, lz = x // factor, y // factor, z // factor
    blocks = classes[:, 0].reshape(n, lx, factor, ly, factor, lz, factor)
    step = max(1, FRACTION_CHUNK_VOXELS // max(1, factor ** 3 * ly * lz))
    counts = torch.empty((n, lx, ly, lz, num_classes), dtype=torch.long, device=classes.device)
    for b in range(n):
        for start in range(0, lx, step):
            part = blocks[b, start:start + step].long()
            m = part.shape[0]
            block_index = torch.arange(m * ly * lz, device=classes.device).reshape(m, 1, ly, 1, lz, 1).expand_as(part)
            found = torch.bincount((block_index * num_classes + part).reshape(-1), minlength=m * ly * lz * num_classes)
            counts[b, start:start + m] = found.reshape(m, ly, lz, num_classes)
    return counts.permute(0, 4, 1, 2, 3).float() / float(factor ** 3)


def fold_to_latent(volume: torch.Tensor, factor: int) -> torch.Tensor:
    """Space-to-depth: (N, C, X, Y, Z) -> (N, C*factor^3, X/factor, Y/factor, Z/factor), channel c*factor^3 + offset.
    The mean over each channel block is avg_pool3d(volume, factor)."""
    n, c, x, y, z = volume.shape
    f = factor
    v = volume.reshape(n, c, x // f, f, y // f, f, z // f, f).permute(0, 1, 3, 5, 7, 2, 4, 6)
    return v.reshape(n, c * f ** 3, x // f, y // f, z // f)


def label_condition(classes: torch.Tensor, num_classes: int, factor: int, mode: str, priors=None,
                    geometry=None) -> torch.Tensor:
    """Condition channels at latent resolution from class indices at working resolution.

    classes: N,1,X,Y,Z integer class indices; the spatial size must be divisible by `factor`.
    Without priors: N, num_classes (+1 with a boundary channel), X/factor, Y/factor, Z/factor in float32.
    With priors (engine/priors.ClassPriors): N, 1 + len(TISSUE_KINDS) (+1 with a boundary channel): the mean
    prior and the kind fractions.
    A fine mode: with priors, the prior is folded (factor^3 channels) instead of averaged; without priors, the
    folded label-boundary map (factor^3 channels) follows the fractions.
    geometry: the working grid's (spacing, direction), for a package's layout outside the labels
    (ClassPriors.condition_prior).
    """
    chosen = conditioning_mode(mode)
    pooled = (lambda x: F.avg_pool3d(x, factor)) if factor > 1 else (lambda x: x)
    parts = []
    if priors is None:
        parts.append(class_fractions(classes, num_classes, factor))
    else:
        index = classes.long()
        prior = priors.condition_prior(index, geometry)
        kinds = torch.from_numpy(np.asarray(priors.kind, np.uint8))[index]  # 12 kinds: 1 byte a voxel, not 8
        parts.append(fold_to_latent(prior, factor) if chosen.fine else pooled(prior))
        parts.append(class_fractions(kinds, len(TISSUE_KINDS), factor))
    folded_edges = chosen.fine and priors is None  # without a prior to fold, a fine mode folds the boundary map
    if chosen.boundary or folded_edges:
        edges = label_boundary(classes)
        parts += ([fold_to_latent(edges, factor)] if folded_edges else []) + ([pooled(edges)] if chosen.boundary else [])
    return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]


def condition_channels(num_classes: int, mode: str, priors: bool, factor: int) -> int:
    chosen = conditioning_mode(mode)
    fine = factor ** 3 if chosen.fine else 0
    labels = (max(fine, 1) + len(TISSUE_KINDS)) if priors else num_classes + fine
    return labels + (1 if chosen.boundary else 0)


def widen_pooled_prior(weight: torch.Tensor, factor: int) -> torch.Tensor:
    """A label embedding (E, 1 + kinds [+1], 1, 1, 1) trained on the averaged prior, as one for the folded prior
    (E, factor^3 + kinds [+1], 1, 1, 1) that computes the same thing: each folded channel gets the pooled prior's
    weight / factor^3, whose sum over a latent voxel's factor^3 values is the weight times their mean."""
    n = factor ** 3
    return torch.cat([weight[:, :1].expand(-1, n, *weight.shape[2:]) / n, weight[:, 1:]], dim=1)
