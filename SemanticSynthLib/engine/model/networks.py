"""The networks, all MONAI: VQVAE + PatchDiscriminator (3D VQ-GAN) and the latent diffusion U-Net."""
from __future__ import annotations

import torch
from monai.networks.nets import VQVAE, DiffusionModelUNet, PatchDiscriminator, SPADEDiffusionModelUNet
from torch import nn

from .conditioning import condition_channels
from .conditioning_modes import conditioning_mode
from .label_autoencoder import LabelAwareVQVAE


def default_autoencoder_config() -> dict:
    """Small VQVAE: two stride-2 stages (4x per axis), 8 latent channels (PERFORMANCE-NOTES sizes)."""
    return {
        "spatial_dims": 3, "in_channels": 1, "out_channels": 1,
        "channels": [32, 64], "num_res_channels": [32, 64], "num_res_layers": 2,
        "downsample_parameters": [[2, 4, 1, 1], [2, 4, 1, 1]],
        "upsample_parameters": [[2, 4, 1, 1, 0], [2, 4, 1, 1, 0]],
        "num_embeddings": 256, "embedding_dim": 8,
    }


def default_unet_config() -> dict:
    """The 'small' U-Net of PERFORMANCE-NOTES: channels (32,64,64), attention at the lowest level."""
    return {"channels": [32, 64, 64], "attention_levels": [False, False, True], "num_res_blocks": 2,
            "num_head_channels": 32, "norm_num_groups": 16, "label_embedding_channels": 16}


def label_autoencoder_config() -> dict:
    """The label-aware VQ-GAN (engine/model/label_autoencoder.py): the small VQVAE plus a 16-channel guided head."""
    vqvae = default_autoencoder_config()
    for key in ("spatial_dims", "in_channels", "out_channels"):
        vqvae.pop(key)
    vqvae["spatial_dims"] = 3
    return {"kind": "label_vqvae", "vqvae": vqvae, "head_channels": 8, "guide_hidden": 8, "kind_embedding": 4}


def vqvae_config(config: dict) -> dict:
    """The VQVAE part of either autoencoder kind."""
    return config["vqvae"] if config.get("kind") == "label_vqvae" else config


def plain_vqvae_config(config: dict) -> dict:
    """The plain (image in, image out) VQVAE with the sizes of either autoencoder kind's VQVAE part."""
    return {**vqvae_config(config), "spatial_dims": 3, "in_channels": 1, "out_channels": 1}


def build_autoencoder(config: dict) -> nn.Module:
    """One place that knows the autoencoder kinds: the plain VQVAE (older packages, the translator) and the
    label-aware one."""
    if config.get("kind") == "label_vqvae":
        return LabelAwareVQVAE(config["vqvae"], int(config["head_channels"]), int(config["guide_hidden"]),
                               int(config["kind_embedding"]), int(config.get("codebook_groups", 1)),
                               int(config.get("head_blocks", 0)))
    cfg = dict(config)
    cfg["downsample_parameters"] = tuple(tuple(p) for p in cfg["downsample_parameters"])
    cfg["upsample_parameters"] = tuple(tuple(p) for p in cfg["upsample_parameters"])
    return VQVAE(**cfg)


def is_label_aware(config: dict) -> bool:
    return config.get("kind") == "label_vqvae"


def latent_channels(config: dict) -> int:
    return int(vqvae_config(config)["embedding_dim"])


def autoencoder_factor(config: dict) -> int:
    factor = 1
    for p in vqvae_config(config)["downsample_parameters"]:
        factor *= p[0]
    return factor


def build_discriminator() -> PatchDiscriminator:
    return PatchDiscriminator(spatial_dims=3, num_layers_d=3, channels=32, in_channels=1, out_channels=1)


class LatentDenoiser(nn.Module):
    """Noise predictor eps(z_t, t | labels, modality) for one of the conditioning modes.

    The label condition (fractions of each class per latent voxel, plus a boundary channel for `edge`)
    is first embedded by a 1x1x1 convolution: tables of 100+ labels would otherwise make every SPADE
    block and the first convolution wide.
    """

    def __init__(self, latent_channels: int, num_classes: int, conditioning: str, num_modalities: int, config: dict,
                 priors: bool = False, factor: int = 4):
        super().__init__()
        self.conditioning = conditioning
        self.spade = conditioning_mode(conditioning).injection == "spade"  # else concatenated to the latent
        self.latent_channels = latent_channels
        self.label_aware = priors
        embed = int(config.get("label_embedding_channels", 16))
        self.label_embedding = nn.Conv3d(condition_channels(num_classes, conditioning, priors, factor), embed, 1)
        common = dict(
            spatial_dims=3, out_channels=latent_channels, channels=tuple(config["channels"]),
            attention_levels=tuple(config["attention_levels"]), num_res_blocks=config["num_res_blocks"],
            num_head_channels=config["num_head_channels"], norm_num_groups=config["norm_num_groups"],
            num_class_embeds=num_modalities,
            # torch's fused attention (same weights, same values to ~1e-6): 10% of a step at a 64x64x32 latent,
            # where MONAI's explicit softmax over 2048 tokens is the costliest part after the convolutions.
            use_flash_attention=True,
        )
        if self.spade:
            self.unet = SPADEDiffusionModelUNet(in_channels=latent_channels, label_nc=embed, **common)
        else:
            self.unet = DiffusionModelUNet(in_channels=latent_channels + embed, **common)

    def forward(self, latent: torch.Tensor, timesteps: torch.Tensor, condition: torch.Tensor,
                modality: torch.Tensor) -> torch.Tensor:
        labels = self.label_embedding(condition)
        if self.spade:
            return self.unet(latent, timesteps, seg=labels, class_labels=modality)
        return self.unet(torch.cat([latent, labels], dim=1), timesteps, class_labels=modality)

    def widened_state(self, state: dict, old_latent: int) -> dict:
        """`state`, a U-Net of this shape trained on `old_latent` latent channels, for this one's wider latent:
        the first convolution reads the new channels with zero weights and the last one writes them from zero,
        so it predicts the old channels as before and learns the new ones (the autoencoder's widen_latent, for
        the U-Net). The label and timestep features carry over unchanged."""
        new = self.latent_channels
        state = dict(state)
        key = "unet.conv_in.conv.weight"
        w = state[key]
        state[key] = torch.cat([w[:, :old_latent], w.new_zeros((w.shape[0], new - old_latent, *w.shape[2:])),
                                w[:, old_latent:]], dim=1)
        for key in ("unet.out.2.conv.weight", "unet.out.2.conv.bias"):
            w = state[key]
            state[key] = torch.cat([w, w.new_zeros((new - old_latent, *w.shape[1:]))])
        return state

    def forward_packed(self, packed: torch.Tensor, timesteps: torch.Tensor, modality: torch.Tensor) -> torch.Tensor:
        """Latent and condition in one tensor, so a sliding window crops both alike."""
        return self(packed[:, : self.latent_channels], timesteps, packed[:, self.latent_channels:], modality)
