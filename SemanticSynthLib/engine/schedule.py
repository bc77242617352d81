"""The noise schedule of the abdominal-CT paper: linear betas, T = 1000; DDPM to train, DDIM to sample."""
from __future__ import annotations

from monai.networks.schedulers import DDIMScheduler, DDPMScheduler


def default_schedule() -> dict:
    return {"num_train_timesteps": 1000, "schedule": "linear_beta", "beta_start": 1e-4, "beta_end": 2e-2}


def ddpm(schedule: dict) -> DDPMScheduler:
    return DDPMScheduler(**schedule, clip_sample=False)


def ddim(schedule: dict, steps: int) -> DDIMScheduler:
    scheduler = DDIMScheduler(**schedule, clip_sample=False)
    scheduler.set_timesteps(steps)
    return scheduler
