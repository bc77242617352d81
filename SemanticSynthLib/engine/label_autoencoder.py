"""The label-aware VQ-GAN: boundaries and intensity from the labels, texture and contrast from the latent.

The decoder's last stage sees the label map at full working resolution through a *guide*: the map
painted with each class's intensity prior, and each voxel's tissue kind. The output is the painted prior
plus a residual, so a label's mean brightness and its edges are given, and the latent only has to carry
what the labels cannot know (texture, bias field, partial volume, this subject's contrast).

Why not MONAI's SPADEAutoencoderKL: SPADE at every level costs 9-31 s per 128^3 decode here
(PERFORMANCE-NOTES), against 0.6 s for the plain VQVAE. The label information goes in once, at full
resolution, through narrow convolutions: a SPADE-style modulation (gamma, beta computed from the guide)
of the decoder's last features. It has no normalisation statistics, unlike SPADE's parameter-free norm,
so a volume decoded in windows equals one decoded whole. The encoder also sees the painted prior, so the
latent codes the residual rather than re-describing the anatomy.
"""
from __future__ import annotations

import torch
from monai.networks.nets import VQVAE
from torch import nn

from .priors import TISSUE_KINDS

GUIDE_CHANNELS = 2  # painted prior (model units), tissue kind index
HEAD_SLAB = 32  # inference: the full-resolution head runs over slabs this thick along the last axis ...
HEAD_HALO = 2  # ... each with this margin, the head's receptive field (two 3^3 convolutions)


class LabelModulation(nn.Module):
    """features * (1 + gamma(guide)) + beta(guide), with gamma and beta from a small conv net on the guide."""

    def __init__(self, channels: int, hidden: int, kind_embedding: int):
        super().__init__()
        self.kinds = nn.Embedding(len(TISSUE_KINDS), kind_embedding)
        self.shared = nn.Sequential(nn.Conv3d(1 + kind_embedding, hidden, 3, padding=1), nn.SiLU())
        self.gamma_beta = nn.Conv3d(hidden, 2 * channels, 1)
        nn.init.zeros_(self.gamma_beta.weight)
        nn.init.zeros_(self.gamma_beta.bias)

    def label_features(self, guide: torch.Tensor) -> torch.Tensor:
        kinds = self.kinds(guide[:, 1].round().long().clamp(0, len(TISSUE_KINDS) - 1)).permute(0, 4, 1, 2, 3)
        return torch.cat([guide[:, :1], kinds.to(guide.dtype)], dim=1)

    def forward(self, features: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.gamma_beta(self.shared(self.label_features(guide))).chunk(2, dim=1)
        return features * (1 + gamma) + beta


class LabelAwareVQVAE(nn.Module):
    """MONAI VQVAE (image + painted prior in, features out) followed by a label-modulated output head.

    The API follows VQVAE's (encode, quantize, decode) with the guide as an extra argument.
    """

    def __init__(self, vqvae: dict, head_channels: int = 16, guide_hidden: int = 16, kind_embedding: int = 4):
        super().__init__()
        cfg = dict(vqvae)
        cfg["downsample_parameters"] = tuple(tuple(p) for p in cfg["downsample_parameters"])
        cfg["upsample_parameters"] = tuple(tuple(p) for p in cfg["upsample_parameters"])
        cfg["in_channels"], cfg["out_channels"] = 2, head_channels
        self.vqvae = VQVAE(**cfg)
        self.modulation = LabelModulation(head_channels, guide_hidden, kind_embedding)
        self.head = nn.Sequential(nn.SiLU(), nn.Conv3d(head_channels, head_channels, 3, padding=1), nn.SiLU(),
                                  nn.Conv3d(head_channels, 1, 1))

    def encode(self, image: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        return self.vqvae.encode(torch.cat([image, guide[:, :1].to(image.dtype)], dim=1))

    def quantize(self, z: torch.Tensor):
        return self.vqvae.quantize(z)

    def decode(self, quantized: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        features = self.vqvae.decode(quantized)
        guide = guide.to(features.dtype)
        if torch.is_grad_enabled() or features.shape[-1] <= HEAD_SLAB:
            return self._guided_head(features, guide)
        return self._guided_head_in_slabs(features, guide)

    def _guided_head(self, features: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        return guide[:, :1] + self.head(self.modulation(features, guide))

    def _guided_head_in_slabs(self, features: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        """The head over slabs of the last axis, each with a HEAD_HALO margin: the same values as one pass
        (its two 3^3 convolutions see 2 voxels), but its ~50 floats a voxel of temporaries are held for one
        slab, not the volume (a 256x256x128 decode peaked at 2.5 GB in one pass)."""
        depth = features.shape[-1]
        out = features.new_empty((features.shape[0], 1, *features.shape[2:]))
        for start in range(0, depth, HEAD_SLAB):
            stop = min(start + HEAD_SLAB, depth)
            lo, hi = max(start - HEAD_HALO, 0), min(stop + HEAD_HALO, depth)
            part = self._guided_head(features[..., lo:hi], guide[..., lo:hi])
            out[..., start:stop] = part[..., start - lo: start - lo + stop - start]
        return out

    def forward(self, image: torch.Tensor, guide: torch.Tensor):
        quantized, loss = self.quantize(self.encode(image, guide))
        return self.decode(quantized, guide), loss
