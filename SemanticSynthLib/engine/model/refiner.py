"""The detail refiner: a generated volume sharpened at the label map's own spacing, where that is finer than the model's.

The autoencoder decodes on the working grid (abdomen-ct: 3 mm). Without a refiner a map at 1-1.5 mm gets that volume
linearly upsampled: its edges are 3 mm wide and sit where the 3 mm labels put them. The refiner runs after the
upsampling, on the output grid: it sees the upsampled volume and the map's own guide there (painted prior and tissue
kind, as the decoder's head does on the working grid) and adds a residual. Edges move to where the fine labels put
them, and thin bright structures the coarse volume smeared (rib cortex) regain their contrast.

It is trained on real CTs degraded to a coarser spacing and restored (engine/training/refiner.py), so it learns how a
restored edge differs from a real one, not anything about the labels' anatomy. Its last convolution starts at zero:
an untrained refiner is the identity.

Inference runs in tiles with a halo of the network's reach, and each tile's inputs are made for that tile alone, so a
1 mm abdomen never holds the features, or the inputs, of the whole volume at once; the values equal one pass.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn

from .label_autoencoder import LabelRefinement
from .precision import autocast

REFINER_WEIGHTS = "refiner.safetensors"
# The refiner runs where the output spacing is finer than the working spacing by at least this factor on some axis:
# below it the upsampling blurs little (a 2.5 mm map from a 3 mm model) and the refiner was not trained for it.
MIN_REFINE_FACTOR = 1.25
# Tiles: edge in voxels (a 96^3 tile plus its halo holds about 60 floats a voxel in the blocks: 0.4 GB in fp32).
TILE = 96


def default_refiner_config() -> dict:
    return {"channels": 8, "blocks": 3, "guide_hidden": 8, "kind_embedding": 4}


class DetailRefiner(nn.Module):
    """coarse + out(blocks(stem([coarse, prior]), guide)): label-modulated residual blocks (the decoder head's)."""

    def __init__(self, channels: int = 8, blocks: int = 3, guide_hidden: int = 8, kind_embedding: int = 4):
        super().__init__()
        self.stem = nn.Conv3d(2, channels, 3, padding=1)
        self.blocks = nn.ModuleList(LabelRefinement(channels, guide_hidden, kind_embedding) for _ in range(blocks))
        self.out = nn.Conv3d(channels, 1, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        # Voxels each output sees on each side: the stem's and the output's 3^3, and 2 per block (its two 3^3
        # convolutions; the guide's own 3^3 sits beside the first).
        self.reach = 2 + 2 * blocks

    def forward(self, coarse: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        guide = guide.to(coarse.dtype)
        x = self.stem(torch.cat([coarse, guide[:, :1]], dim=1))
        for block in self.blocks:
            x = block(x, guide)
        return coarse + self.out(nn.functional.silu(x))


def build_refiner(config: dict) -> DetailRefiner:
    return DetailRefiner(**{k: int(config[k]) for k in default_refiner_config()})


def refine_factor(output_spacing, working_spacing) -> float:
    """How much finer the output grid is than the working grid, on its finest axis."""
    return float(np.max(np.asarray(working_spacing, float) / np.asarray(output_spacing, float)))


def fine_priors(priors, output_spacing, working_spacing):
    """The package's priors for painting on a finer grid: the surround (counted in working voxels) widened to the
    same distance in mm."""
    s = priors.surround
    if s is None:
        return priors
    ratio = float(np.exp(np.mean(np.log(np.asarray(working_spacing, float) / np.asarray(output_spacing, float)))))
    widened = {**s, "full_steps": int(round(s["full_steps"] * ratio)), "fade_steps": max(1, int(round(s["fade_steps"] * ratio)))}
    return dataclasses.replace(priors, surround=widened)


def tile_boxes(shape, tile: int, halo: int):
    """(inner, outer) boxes covering `shape`: tiles of edge `tile`, each with `halo` voxels of context (clipped)."""
    starts = [range(0, n, tile) for n in shape]
    for a in starts[0]:
        for b in starts[1]:
            for c in starts[2]:
                inner = tuple(slice(s, min(s + tile, n)) for s, n in zip((a, b, c), shape))
                outer = tuple(slice(max(i.start - halo, 0), min(i.stop + halo, n)) for i, n in zip(inner, shape))
                yield inner, outer


def refine_tiles(network: DetailRefiner, shape, inputs, use_bf16: bool = True, progress=None,
                 tile: int | None = None) -> np.ndarray:
    """The refined volume (model units, (x, y, z) of `shape`), tile by tile. `inputs(box)` gives the coarse volume
    (model units) and the guide ((2, ...): painted prior, kind) over a box (a tuple of slices), so that no caller
    needs the full-resolution inputs at once. `tile`: default TILE."""
    device = next(network.parameters()).device
    out = np.empty(shape, np.float32)
    boxes = list(tile_boxes(shape, tile or TILE, network.reach))
    if progress is not None:
        progress.stage("refining detail", len(boxes))
    with torch.no_grad():
        for done, (inner, outer) in enumerate(boxes, 1):
            coarse, guide = inputs(outer)
            x = torch.from_numpy(np.ascontiguousarray(coarse, np.float32))[None, None].to(device)
            g = torch.from_numpy(np.ascontiguousarray(guide, np.float32))[None].to(device)
            with autocast(device, use_bf16):
                part = network(x, g)
            keep = tuple(slice(i.start - o.start, i.stop - o.start) for i, o in zip(inner, outer))
            out[inner] = part[0, 0][keep].float().cpu().numpy()
            if progress is not None:
                progress.update(done)
    return out


def refine_volume(network: DetailRefiner, coarse: np.ndarray, guide: np.ndarray, use_bf16: bool = True,
                  progress=None, tile: int | None = None) -> np.ndarray:
    """refine_tiles over whole arrays: `coarse` (model units, (x, y, z)) and `guide` ((2, x, y, z))."""
    return refine_tiles(network, coarse.shape, lambda box: (coarse[box], guide[(slice(None), *box)]), use_bf16,
                        progress, tile)
