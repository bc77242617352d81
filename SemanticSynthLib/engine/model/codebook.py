"""The VQ codebook lookup at inference: MONAI's nearest-code rule without its training by-products.

MONAI's EMAQuantizer builds a one-hot matrix of every latent voxel against every code (for its EMA update)
and a commitment loss on each call. At inference neither is used, and the one-hot alone is voxels x codes
floats: 0.5 GB for a 256x256x128 volume (64x64x32 latents, 512 codes); the lookup took 0.40 s of a 3.0 s
128^3 decode. Here the same distances are computed in the same way, a chunk of voxels at a time, so the
chosen codes are MONAI's. One-channel codes (brain-mri's codebook groups) are found by binary search instead,
with the same result (_scalar_search).
"""
from __future__ import annotations

import torch

# Latent voxels per distance matrix: 1024 x 512 floats (2 MB) stay in the CPU's cache through the five passes over
# them (sum, difference, negation, max). 32768 (64 MB) did not: a 64x64x32 latent took 2.0 s with four codebook
# groups (brain-mri 0.6.0) and 0.57 s with one, against 0.47 and 0.13-0.24 s at 1024, with the same codes chosen.
CHUNK = 1024


def _ema_quantizer(autoencoder):
    vqvae = getattr(autoencoder, "vqvae", autoencoder)
    return vqvae.quantizer.quantizer


def nearest_codes(autoencoder, latent: torch.Tensor) -> torch.Tensor:
    """The quantized latent (B, C, ...) of a MONAI VQVAE or the label-aware one: each voxel's nearest code
    (each group's, for a label-aware autoencoder with codebook groups)."""
    if getattr(autoencoder, "codebook_groups", 1) > 1:
        return autoencoder.from_groups(_nearest(_ema_quantizer(autoencoder), autoencoder.to_groups(latent)),
                                       latent.shape[0])
    return _nearest(_ema_quantizer(autoencoder), latent)


def _nearest(quantizer, latent: torch.Tensor) -> torch.Tensor:
    codes = quantizer.embedding.weight.float()
    flat = latent.float().permute(quantizer.flatten_permutation).reshape(-1, quantizer.embedding_dim)
    indices = _scalar_search(codes[:, 0], flat[:, 0]) if quantizer.embedding_dim == 1 else _full_search(codes, flat)
    shape = list(latent.shape)
    del shape[1]
    return quantizer.embed(indices.view(shape))


def _full_search(codes: torch.Tensor, flat: torch.Tensor) -> torch.Tensor:
    """Each row's code index by MONAI's rule: its distance to every code."""
    code_norms = (codes.t() ** 2).sum(dim=0, keepdim=True)
    indices = torch.empty(flat.shape[0], dtype=torch.long, device=flat.device)
    for start in range(0, flat.shape[0], CHUNK):
        part = flat[start:start + CHUNK]
        # MONAI's expression, term for term, so ties and rounding pick the same code.
        distances = (part ** 2).sum(dim=1, keepdim=True) + code_norms - 2 * torch.mm(part, codes.t())
        indices[start:start + CHUNK] = torch.max(-distances, dim=1)[1]
    return indices


# One-channel codes: codes within this many places of a value, on each side in sorted order, are compared.
SCALAR_WINDOW = 4
SCALAR_CHUNK = 2 ** 18  # values per pass (2 * SCALAR_WINDOW floats each, a few temporaries: ~50 MB)


def _scalar_search(codes: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """MONAI's code indices for one-channel codes (a codebook group per latent channel), by binary search.

    The nearest code lies next to a value in sorted order, but MONAI's distance x^2 + c^2 - 2xc is rounded, and
    where codes crowd together it can pick the second or third nearest, or tie two and take the one first in
    the codebook. So the SCALAR_WINDOW codes on each side are compared with MONAI's expression and its tie rule.
    A code outside the window is at least `gap` away; where the best distance in the window is not below gap^2
    by more than twice the expression's rounding error, that value goes to the full search. So every index is
    MONAI's, at log2(K) + 2 * SCALAR_WINDOW distances a value instead of K: at a 64x64x32 latent with 8 groups,
    0.5 s against 2.8 s (one thread, beside a training run; docs/benchmark.md, session 14)."""
    ordered, order = torch.sort(codes, stable=True)
    k = ordered.shape[0]
    offsets = torch.arange(-SCALAR_WINDOW, SCALAR_WINDOW, device=codes.device)
    # |rounding error| of the expression is below ~4 ulp of x^2 + c^2; 1e-6 (17 ulp of float32) bounds it safely.
    scale = 1e-6 * float(codes.abs().max()) ** 2
    indices = torch.empty(values.shape[0], dtype=torch.long, device=values.device)
    for start in range(0, values.shape[0], SCALAR_CHUNK):
        x = values[start:start + SCALAR_CHUNK]
        insert = torch.searchsorted(ordered, x)
        where = (insert[:, None] + offsets).clamp(0, k - 1)
        candidates = ordered[where]
        distances = x[:, None] ** 2 + candidates ** 2 - 2 * (x[:, None] * candidates)
        best = distances.min(dim=1, keepdim=True).values
        tied = torch.where(distances == best, order[where], k)
        chosen = tied.min(dim=1).values
        below = insert - SCALAR_WINDOW - 1  # the nearest codes left out, in sorted order
        above = insert + SCALAR_WINDOW
        gap = torch.full_like(x, float("inf"), dtype=torch.float64)
        gap = torch.where(below >= 0, x.double() - ordered[below.clamp(min=0)].double(), gap)
        gap = torch.minimum(gap, torch.where(above < k, ordered[above.clamp(max=k - 1)].double() - x.double(),
                                             torch.full_like(gap, float("inf"))))
        error = 2 * (1e-6 * x.double() ** 2 + scale)
        unsure = ~(best[:, 0].double() + error < gap ** 2)
        if unsure.any():
            rows = unsure.nonzero()[:, 0]
            chosen[rows] = _full_search(codes[:, None], x[rows, None])
        indices[start:start + SCALAR_CHUNK] = chosen
    return indices
