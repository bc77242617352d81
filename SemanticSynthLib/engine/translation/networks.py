"""The translator's two networks: a latent denoiser conditioned on the source image, and a velocity net."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.nets import UNet, DiffusionModelUNet
from torch import nn

from .fields import integrate_velocity, upsample_displacement

SPATIAL_FACTOR = 2  # the velocity is predicted and integrated at half the working resolution


def default_velocity_config() -> dict:
    return {"channels": [16, 32, 32, 32], "strides": [2, 2, 2], "num_res_units": 1}


def default_translator_config() -> dict:
    """The generator's small U-Net; the source enters as space-to-depth channels at latent resolution."""
    return {"channels": [32, 64, 64], "attention_levels": [False, False, True], "num_res_blocks": 2,
            "num_head_channels": 32, "norm_num_groups": 16, "source_embedding_channels": 16}


class TranslationDenoiser(nn.Module):
    """v-prediction for the target latent z_t given the source image (the intensity translator)."""

    def __init__(self, latent_channels: int, factor: int, config: dict):
        super().__init__()
        self.latent_channels = latent_channels
        embed = int(config.get("source_embedding_channels", 16))
        self.source_embedding = nn.Conv3d(factor ** 3, embed, 3, padding=1)
        self.unet = DiffusionModelUNet(
            spatial_dims=3, in_channels=latent_channels + embed, out_channels=latent_channels,
            channels=tuple(config["channels"]), attention_levels=tuple(config["attention_levels"]),
            num_res_blocks=config["num_res_blocks"], num_head_channels=config["num_head_channels"],
            norm_num_groups=config["norm_num_groups"], use_flash_attention=True)  # fused attention, as engine/model/networks.py

    def forward(self, latent: torch.Tensor, timesteps: torch.Tensor, source_packed: torch.Tensor) -> torch.Tensor:
        return self.unet(torch.cat([latent, self.source_embedding(source_packed)], dim=1), timesteps)

    def forward_packed(self, packed: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        return self(packed[:, : self.latent_channels], timesteps, packed[:, self.latent_channels:])


class VelocityNet(nn.Module):
    """Source image -> stationary velocity field (MONAI UNet at half resolution), for the spatial transform."""

    def __init__(self, config: dict):
        super().__init__()
        features = int(config["channels"][0])
        self.unet = UNet(spatial_dims=3, in_channels=1, out_channels=features, channels=tuple(config["channels"]),
                         strides=tuple(config["strides"]), num_res_units=config["num_res_units"])
        # Start at the identity transform: the velocity head begins near zero.
        self.head = nn.Conv3d(features, 3, 3, padding=1)
        nn.init.normal_(self.head.weight, std=1e-5)
        nn.init.zeros_(self.head.bias)

    def forward(self, source: torch.Tensor) -> torch.Tensor:
        """Velocity in voxels of the half-resolution grid."""
        return self.head(self.unet(F.avg_pool3d(source, SPATIAL_FACTOR)))

    @staticmethod
    def displacement(velocity: torch.Tensor, size, inverse: bool = False) -> torch.Tensor:
        """exp(+-v) by scaling and squaring, on the working grid of `size` (voxels)."""
        return upsample_displacement(integrate_velocity(-velocity if inverse else velocity), size)
