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

Codebook groups (product quantization): with G > 1 groups, each latent voxel's E channels are quantized as G
vectors of E/G channels, each against the one shared codebook of E/G-dimensional codes. A latent voxel then holds
G codes (G x log2(K) bits) instead of one, at the same latent size, so the diffusion U-Net and the decoder keep
their shapes and their cost; only the quantizer's lookup changes. G = 1 is MONAI's VQVAE quantizer unchanged.
"""
from __future__ import annotations

import torch
from monai.networks.layers.vector_quantizer import EMAQuantizer, VectorQuantizer
from monai.networks.nets import VQVAE
from torch import nn

from .priors import TISSUE_KINDS
from .schema import MAX_HEAD_BLOCKS

GUIDE_CHANNELS = 2  # painted prior (model units), tissue kind index
# Inference: the last upsampling and the full-resolution head run over slabs of the last axis holding about this many
# voxels (8 slices of 256x256; at 50 floats a voxel, 0.1 GB of temporaries; a refinement block adds about 70
# floats a voxel, not measured in a benchmark since no bundled model has one), at least HEAD_SLAB_MIN thick ...
# At 256x256x128 brain-mri decodes two 164x256 tiles: 2^20 made their slabs 24 slices and the process peaked at a
# median 1.35 GB (8 runs), 2^19 makes them 16 and 1.26 GB (5 runs; /proc/self/statm sampled every 5 ms, 2026-11-27).
HEAD_SLAB_VOXELS = 2 ** 19
HEAD_SLAB_MIN = 16
HEAD_HALO = 2  # ... each with this margin, the head's receptive field (two 3^3 convolutions), plus 2 per refinement block


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


class LabelRefinement(nn.Module):
    """A label-modulated residual block at full working resolution: x + conv(SiLU(modulate(conv(SiLU(x)), guide))).

    Why: the VQVAE's last transposed convolution leaves the head 8 channels and one 3^3 convolution, while the
    segmenter's Dice is lost to sub-voxel blur at the labels' boundaries (docs/decoder_steps). The block's last
    convolution starts at zero, so a block added to a trained decoder starts as the identity."""

    def __init__(self, channels: int, guide_hidden: int, kind_embedding: int):
        super().__init__()
        inner = 2 * channels
        self.expand = nn.Conv3d(channels, inner, 3, padding=1)
        self.modulation = LabelModulation(inner, guide_hidden, kind_embedding)
        self.project = nn.Conv3d(inner, channels, 3, padding=1)
        nn.init.zeros_(self.project.weight)
        nn.init.zeros_(self.project.bias)

    def forward(self, x: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        h = self.modulation(self.expand(nn.functional.silu(x)), guide)
        return x + self.project(nn.functional.silu(h))


class LabelAwareVQVAE(nn.Module):
    """MONAI VQVAE (image + painted prior in, features out) followed by a label-modulated output head.

    The API follows VQVAE's (encode, quantize, decode) with the guide as an extra argument.
    """

    def __init__(self, vqvae: dict, head_channels: int = 16, guide_hidden: int = 16, kind_embedding: int = 4,
                 codebook_groups: int = 1, head_blocks: int = 0):
        super().__init__()
        if not 0 <= head_blocks <= MAX_HEAD_BLOCKS:
            raise ValueError(f"head_blocks must be 0..{MAX_HEAD_BLOCKS}")
        cfg = dict(vqvae)
        cfg["downsample_parameters"] = tuple(tuple(p) for p in cfg["downsample_parameters"])
        cfg["upsample_parameters"] = tuple(tuple(p) for p in cfg["upsample_parameters"])
        cfg["in_channels"], cfg["out_channels"] = 2, head_channels
        self.vqvae = VQVAE(**cfg)
        self.codebook_groups = int(codebook_groups)
        if self.codebook_groups > 1:
            # The same EMA quantizer as the one VQVAE built (its commitment, decay and epsilon), on E/G channels.
            built = self.vqvae.quantizer.quantizer
            self.vqvae.quantizer = VectorQuantizer(EMAQuantizer(
                spatial_dims=3, num_embeddings=cfg["num_embeddings"], embedding_dim=cfg["embedding_dim"] // self.codebook_groups,
                commitment_cost=built.commitment_cost, decay=built.decay, epsilon=built.epsilon))
        self.modulation = LabelModulation(head_channels, guide_hidden, kind_embedding)
        self.refinement = nn.ModuleList(LabelRefinement(head_channels, guide_hidden, kind_embedding)
                                        for _ in range(head_blocks))
        self.head_halo = HEAD_HALO + 2 * head_blocks
        self.head = nn.Sequential(nn.SiLU(), nn.Conv3d(head_channels, head_channels, 3, padding=1), nn.SiLU(),
                                  nn.Conv3d(head_channels, 1, 1))

    def encode(self, image: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        return self.vqvae.encode(torch.cat([image, guide[:, :1].to(image.dtype)], dim=1))

    def quantize(self, z: torch.Tensor):
        quantized, loss = self.vqvae.quantize(self.to_groups(z))
        return self.from_groups(quantized, z.shape[0]), loss

    def to_groups(self, z: torch.Tensor) -> torch.Tensor:
        """(B, E, ...) -> (B*G, E/G, ...): each group is quantized as if it were its own latent."""
        if self.codebook_groups == 1:
            return z
        return z.reshape(z.shape[0] * self.codebook_groups, z.shape[1] // self.codebook_groups, *z.shape[2:])

    def from_groups(self, quantized: torch.Tensor, batch: int) -> torch.Tensor:
        if self.codebook_groups == 1:
            return quantized
        return quantized.reshape(batch, quantized.shape[1] * self.codebook_groups, *quantized.shape[2:])

    def decode(self, quantized: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        last = self._final_upsampling()
        if torch.is_grad_enabled() or last is None or guide.shape[-1] <= self._slab(guide):
            features = self.vqvae.decode(quantized)
            return self._guided_head(features, guide.to(features.dtype))
        return self._decode_in_slabs(quantized, guide, last)

    def _guided_head(self, features: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        x = self.modulation(features, guide)
        for block in self.refinement:
            x = block(x, guide)
        return guide[:, :1] + self.head(x)

    def _final_upsampling(self) -> nn.ConvTranspose3d | None:
        """The VQVAE decoder's last block when it is a plain transposed convolution (MONAI's, conv_only)."""
        conv = getattr(self.vqvae.decoder.blocks[-1], "conv", None)
        if isinstance(conv, nn.ConvTranspose3d) and len(self.vqvae.decoder.blocks[-1]) == 1:
            return conv
        return None

    @staticmethod
    def _slab(guide: torch.Tensor) -> int:
        return max(HEAD_SLAB_MIN, HEAD_SLAB_VOXELS // (guide.shape[2] * guide.shape[3]))

    def _decode_in_slabs(self, quantized: torch.Tensor, guide: torch.Tensor, last: nn.ConvTranspose3d) -> torch.Tensor:
        """Inference: the decoder up to its last upsampling runs whole (at half resolution); the last upsampling
        and the guided head, which hold ~50 floats per full-resolution voxel, run over slabs of the last axis.
        Each slab takes the margin its convolutions see (head_halo features, then the transposed convolution's
        inputs), so the values equal one pass while the full-resolution temporaries are held for one slab."""
        hidden = quantized
        for block in self.vqvae.decoder.blocks[:-1]:
            hidden = block(hidden)
        stride, kernel, pad = last.stride[-1], last.kernel_size[-1], last.padding[-1]
        depth, inner = guide.shape[-1], hidden.shape[-1]
        out = hidden.new_empty((hidden.shape[0], 1, *guide.shape[2:]))
        slab = self._slab(guide)
        for start in range(0, depth, slab):
            stop = min(start + slab, depth)
            lo, hi = max(start - self.head_halo, 0), min(stop + self.head_halo, depth)
            # Output o of a transposed convolution sums inputs i with o = stride*i - pad + k, 0 <= k < kernel.
            a = max(-((kernel - 1 - pad - lo) // stride), 0)  # ceil((lo + pad - kernel + 1) / stride)
            b = min((hi - 1 + pad) // stride + 1, inner)
            features = last(hidden[..., a:b])[..., lo - stride * a: hi - stride * a]  # output o' is o - stride*a
            part = self._guided_head(features, guide[..., lo:hi].to(features.dtype))
            out[..., start:stop] = part[..., start - lo: stop - lo]
        return out

    def forward(self, image: torch.Tensor, guide: torch.Tensor):
        quantized, loss = self.quantize(self.encode(image, guide))
        return self.decode(quantized, guide), loss
