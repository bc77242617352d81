"""The noise schedule of the abdominal-CT paper: linear betas, T = 1000; DDPM to train, DDIM to sample."""
from __future__ import annotations

from monai.networks.schedulers import DDIMScheduler, DDPMScheduler


def default_schedule() -> dict:
    """v-prediction: with eps-prediction the linear schedule's x0 estimate at t ~ T divides the eps error by
    sqrt(alpha_bar) ~ 0.01, and few-step DDIM from a briefly trained model diverged (measured: sampled
    latents with std 10 for a target std of 1); v keeps that estimate bounded."""
    return {"num_train_timesteps": 1000, "schedule": "linear_beta", "beta_start": 1e-4, "beta_end": 2e-2,
            "prediction_type": "v_prediction"}


def training_target(scheduler, latent, noise, timesteps):
    """What the U-Net learns to predict under the scheduler's prediction type."""
    if scheduler.prediction_type == "v_prediction":
        return scheduler.get_velocity(latent, noise, timesteps)
    if scheduler.prediction_type == "sample":
        return latent
    return noise


def ddpm(schedule: dict) -> DDPMScheduler:
    return DDPMScheduler(**schedule, clip_sample=False)


def ddim(schedule: dict, steps: int) -> DDIMScheduler:
    scheduler = DDIMScheduler(**schedule, clip_sample=False)
    scheduler.set_timesteps(steps)
    return scheduler
