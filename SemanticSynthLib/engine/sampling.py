"""DDIM sampling shared by generation and translation: windows, the denoising loop, decoding."""
from __future__ import annotations

import torch
from monai.inferers import sliding_window_inference

from ..errors import SynthError
from .packing import depth_to_space, space_to_depth
from .precision import autocast, quantize_decode
from .progress import Progress
from .schedule import ddim

UNET_MULTIPLE = 4  # the small U-Net halves the latent twice


def windowed(fn, inputs: torch.Tensor, window: int, overlap: float = 0.5) -> torch.Tensor:
    """Run fn on the whole tensor when it fits in the window, else on Gaussian-blended windows."""
    spatial = inputs.shape[2:]
    roi = tuple(min(window, s) for s in spatial)
    if roi == tuple(spatial):
        return fn(inputs)
    return sliding_window_inference(inputs, roi, sw_batch_size=1, predictor=fn, overlap=overlap, mode="gaussian",
                                    progress=False)


def torch_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise SynthError("--device cuda was asked for but no CUDA GPU is available; use --device cpu")
    return torch.device(name)


def check_steps(steps: int, schedule: dict) -> int:
    if steps < 1 or steps > schedule["num_train_timesteps"]:
        raise SynthError(f"--steps must be between 1 and {schedule['num_train_timesteps']}")
    return int(steps)


def initial_noise(shape, seed: int, device: torch.device) -> torch.Tensor:
    """From a CPU generator: the same seed gives the same start on any device."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(int(seed))).to(device)


def denoise(predict_packed, latent: torch.Tensor, condition: torch.Tensor, schedule: dict, steps: int, window: int,
            use_bf16: bool, progress: Progress) -> torch.Tensor:
    """DDIM from noise; predict_packed(packed, timesteps) sees latent and condition concatenated, so a
    sliding window crops both alike."""
    scheduler = ddim(schedule, steps)
    window -= window % UNET_MULTIPLE
    progress.stage("denoising", steps)
    with torch.no_grad():
        for i, t in enumerate(scheduler.timesteps):
            timesteps = torch.full((1,), int(t), device=latent.device, dtype=torch.long)

            def predict(packed, timesteps=timesteps):
                with autocast(packed.device, use_bf16):
                    return predict_packed(packed, timesteps.expand(packed.shape[0])).float()

            output = windowed(predict, torch.cat([latent, condition], dim=1), window)
            latent, _ = scheduler.step(output, t, latent)
            progress.update(i + 1)
    if not torch.isfinite(latent).all():
        raise SynthError("the model produced non-finite values; the model package is broken, retrain or reinstall it")
    return latent


def decode(autoencoder, latent: torch.Tensor, latent_scale: float, window: int, use_bf16: bool,
           progress: Progress, guide: torch.Tensor | None = None, factor: int = 1) -> torch.Tensor:
    """Scaled latent -> image in model units, decoded in windows.

    `guide` (label-aware autoencoder): the full-resolution painted prior and kinds, packed space-to-depth
    beside the latent so each window gets its own part of it.
    """
    progress.stage("decoding", 1)
    latent = latent / float(latent_scale)
    channels = latent.shape[1]
    with torch.no_grad():
        if guide is None:
            image = windowed(lambda z: quantize_decode(autoencoder, z, use_bf16), latent, window)
        else:
            packed = torch.cat([latent, space_to_depth(guide.to(latent.device), factor)], dim=1)
            image = windowed(lambda p: quantize_decode(autoencoder, p[:, :channels], use_bf16,
                                                       depth_to_space(p[:, channels:], factor)), packed, window)
    progress.update(1)
    return image
