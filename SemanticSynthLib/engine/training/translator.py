"""Train the traceable translator: the spatial transform first, then the intensity translator.

1. Spatial transform: the velocity net sees the source; exp(v) warps the image towards the target;
   loss = local NCC (squared, so contrast inversions still match) + lambda * smoothness of v.
   It works at half resolution, where the velocity lives.
2. Intensity translator: each target is pulled back onto the source with exp(-v) and encoded by the
   target-contrast autoencoder; a latent diffusion U-Net learns it given the source (DDPM, linear
   schedule, T = 1000, v-prediction), as the generator does.
3. Optional refinement (--refine-steps), as in Plasticine: the spatial transform is tuned so that the
   *translation* of each source, warped by exp(v), matches its target: loss = MSE + lambda * smoothness.
   Off by default: on the stand-in pairs it moved the field away from the truth (endpoint error 0.71
   against 0.52 voxels), because the translations are blurrier than the targets.
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import DiffusionLoss, LocalNormalizedCrossCorrelationLoss

from ...errors import SynthError
from ..synthesis.sampling import UNET_MULTIPLE
from ..volume.intensity import mri_normalization
from ..volume.modalities import MODALITIES, modality
from ..model.package import AUTOENCODER_WEIGHTS, DIFFUSION_WEIGHTS, load_package, save_package
from ..model.precision import autocast, bf16_training_safe, encode_latent
from ..reporting.progress import Progress
from ..synthesis.schedule import ddpm, default_schedule
from ..translation.fields import FIELD_CONVENTION, integrate_velocity, warp
from ..model.packing import space_to_depth
from ..translation.networks import (SPATIAL_FACTOR, TranslationDenoiser, VelocityNet, default_translator_config,
                                    default_velocity_config)
from ..translation.pairs import list_pairs, load_pair
from ..translation.translate import VELOCITY_MULTIPLE, translate_unit
from .common import GuardedStep, backward_step, final_loss
from .diffusion import latent_batch, ema_update, noised
from ..reporting.results import Result
from ..requests import TrainTranslatorRequest
from .run import TrainingRun


def _volume(array: np.ndarray, device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array))[None, None].to(device)


def spatial_loss(velnet, source, target, similarity, smoothness, weight: float):
    velocity = velnet(source)
    moved = warp(F.avg_pool3d(source, SPATIAL_FACTOR), integrate_velocity(velocity))
    return similarity(moved, F.avg_pool3d(target, SPATIAL_FACTOR)) + weight * smoothness(velocity)


def refine_loss(velnet, source, translation, target, smoothness, weight: float):
    velocity = velnet(source)
    moved = warp(F.avg_pool3d(translation, SPATIAL_FACTOR), integrate_velocity(velocity))
    return F.mse_loss(moved, F.avg_pool3d(target, SPATIAL_FACTOR)) + weight * smoothness(velocity)


def translate_sources(pairs, denoiser, autoencoder, settings, factor, steps, device, progress):
    """Every training source translated once (no warp): what stage 3 aligns to the targets."""
    out = []
    progress.stage("translating training sources", len(pairs))
    for i, pair in enumerate(pairs):
        x = translate_unit(denoiser, autoencoder, settings, _volume(pair.source, device), factor, steps, seed=i,
                           use_bf16=True, progress=Progress("none"))
        out.append(x[0, 0].cpu().numpy())
        progress.update(i + 1)
    return out


def _decayed(optimizer, base_lr: float, step: int, start: int, steps: int) -> None:
    """Linear decay to a tenth over a stage: the last steps settle instead of jittering."""
    fraction = (step - start) / max(steps, 1)
    for group in optimizer.param_groups:
        group["lr"] = base_lr * (1.0 - 0.9 * fraction)


def encode_aligned(pairs, velnet, autoencoder, factor, device, progress):
    """Latent of each target pulled back onto its source, with the source packed at latent resolution."""
    items = []
    progress.stage("encoding aligned targets", len(pairs))
    with torch.no_grad():
        for i, pair in enumerate(pairs):
            source, target = _volume(pair.source, device), _volume(pair.target, device)
            aligned = warp(target, VelocityNet.displacement(velnet(source), source.shape[2:], inverse=True))
            latent = encode_latent(autoencoder, aligned)[0].cpu()
            items.append((latent, space_to_depth(source, factor)[0].cpu(), 0))
            progress.update(i + 1)
    return items


def train_translator(request: TrainTranslatorRequest, *, progress=None) -> Result:
    """Train a traceable translator: the velocity network (spatial stage), the intensity translator on
    the target autoencoder's latents, and optionally the refinement stage; write a translator package.

    Args:
        request: the training request (engine/requests/training.py: TrainTranslatorRequest); run it with
            engine.commands.run.run_request, which checks its paths first, or from the CLI / torchrun.
        progress: a Progress or its mode ("bar", "json", "none"); ranks other than the main one stay silent.

    Returns:
        Result with outputs {"out": the translator package folder} and the resolved request's parameters.
    """
    unsupported = [modality(m) for m in (request.source_modality, request.target_modality) if not modality(m).translatable]
    if unsupported:
        supported = " and ".join(m.display_name for m in MODALITIES.values() if m.translatable)
        raise SynthError(f"train-translator normalizes {supported} contrasts only so far; {unsupported[0].display_name} "
                         "sources or targets are not supported yet")
    run = TrainingRun(request, progress)
    ctx, progress, rng = run.ctx, run.progress, run.rng
    package = load_package(request.autoencoder, need_diffusion=False, device=str(ctx.device))
    if package.label_aware:
        # Its decoder paints from a label map's priors, and a translation has no label map to give it.
        raise SynthError(f"--autoencoder {request.autoencoder} is a label-aware autoencoder (its decoder needs a label "
                         "map, which translation does not have); train a plain one from it on the target images with "
                         f"`semanticsynth train-autoencoder --init {request.autoencoder}` (no --label-table) and pass "
                         "that as --autoencoder")
    factor = package.factor
    multiple = int(np.lcm(factor * UNET_MULTIPLE, VELOCITY_MULTIPLE))
    files = list_pairs(request.data)
    progress.stage("loading pairs", len(files))
    pairs = []
    for i, (s, t) in enumerate(files):
        pairs.append(load_pair(s, t, package.working_spacing, multiple))
        progress.update(i + 1)

    velnet = VelocityNet(default_velocity_config()).to(ctx.device)
    config = default_translator_config()
    latent_channels = package.metadata["autoencoder"]["config"]["embedding_dim"]
    denoiser = TranslationDenoiser(latent_channels, factor, config).to(ctx.device)
    ema = copy.deepcopy(denoiser).eval()
    opt_v = torch.optim.Adam(velnet.parameters(), lr=request.spatial_lr)
    opt_d = torch.optim.AdamW(denoiser.parameters(), lr=request.lr, weight_decay=0.0)
    info = run.resume({"velocity": velnet, "denoiser": denoiser, "ema": ema}, {"velocity": opt_v, "denoiser": opt_d})
    start = run.start_step
    total = request.spatial_steps + request.steps + request.refine_steps
    diffusion_end = request.spatial_steps + request.steps

    # 1. the spatial transform
    similarity = LocalNormalizedCrossCorrelationLoss(spatial_dims=3, kernel_size=request.ncc_kernel)
    smoothness = DiffusionLoss()
    spatial_model = ctx.wrap(velnet)
    step_v = GuardedStep(opt_v, velnet.parameters(), max_norm=10.0)
    progress.stage("training spatial transform", request.spatial_steps)
    losses = []
    for step in range(start, request.spatial_steps):
        pair = pairs[rng.integers(len(pairs))]
        _decayed(opt_v, request.spatial_lr, step, 0, request.spatial_steps)
        loss = spatial_loss(spatial_model, _volume(pair.source, ctx.device), _volume(pair.target, ctx.device),
                            similarity, smoothness, request.smoothness)
        backward_step(loss, step, opt_v, step_v)
        losses.append(loss.item())
        done = step + 1
        run.log_losses(losses, done, request.spatial_steps, key="spatial_loss")
        run.save(done, request.spatial_steps, total)
    spatial_final = final_loss(losses, info.get("spatial_loss"))

    # 2. the intensity translator, on targets aligned by the (now fixed) spatial transform
    velnet.eval()
    items = encode_aligned(pairs, velnet, package.autoencoder, factor, ctx.device, progress)
    latent_scale = 1.0 / max(float(torch.cat([i[0].flatten() for i in items]).std()), 1e-2)
    # What sampling needs, as the package will store it (stage 3 samples with it too).
    settings = {"schedule": default_schedule(), "latent_scale": latent_scale, "default_steps": request.default_steps,
                "window": 64, "decode_window": 64}
    smallest = min(min(request.latent_patch[0], item[0].shape[1]) for item in items) // UNET_MULTIPLE
    use_bf16 = bf16_training_safe(ctx.device, smallest)
    model = ctx.wrap(denoiser)
    scheduler = ddpm(default_schedule())
    guarded_step = GuardedStep(opt_d, denoiser.parameters(), max_norm=1.0)
    progress.stage("training intensity translator", request.steps)
    losses = []
    for step in range(max(start, request.spatial_steps), diffusion_end):
        latent, source, _ = latent_batch(items, request.latent_patch, request.batch, rng, latent_scale)
        latent, source = latent.to(ctx.device), source.to(ctx.device)
        noisy, t, target = noised(scheduler, latent)
        with autocast(ctx.device, use_bf16):
            pred = model(noisy, t, source)
        loss = F.mse_loss(pred.float(), target)
        if backward_step(loss, step, opt_d, guarded_step):
            ema_update(ema, denoiser, step - request.spatial_steps, request.ema)
        losses.append(loss.item())
        done = step + 1
        run.log_losses(losses, done, diffusion_end, key="diffusion_loss", shown_step=done - request.spatial_steps,
                       skipped_steps=guarded_step.skipped)
        run.save(done, request.spatial_steps, total, spatial_loss=spatial_final)
    diffusion_final = final_loss(losses, info.get("diffusion_loss"))

    # 3. refinement of the spatial transform against the translations
    refine_final = None
    if request.refine_steps and max(start, diffusion_end) < total:
        ema.eval()
        translations = translate_sources(pairs, ema, package.autoencoder, settings, factor, request.refine_sample_steps,
                                         ctx.device, progress)
        velnet.train()
        refine_lr = request.spatial_lr * 0.2
        losses = []
        progress.stage("refining spatial transform", request.refine_steps)
        for step in range(max(start, diffusion_end), total):
            k = int(rng.integers(len(pairs)))
            _decayed(opt_v, refine_lr, step, diffusion_end, request.refine_steps)
            loss = refine_loss(spatial_model, _volume(pairs[k].source, ctx.device), _volume(translations[k], ctx.device),
                               _volume(pairs[k].target, ctx.device), smoothness, request.refine_smoothness)
            backward_step(loss, step, opt_v, step_v)
            losses.append(loss.item())
            done = step + 1
            run.log_losses(losses, done, total, key="refine_loss", shown_step=done - diffusion_end)
            run.save(done, request.spatial_steps, total, spatial_loss=spatial_final, diffusion_loss=diffusion_final)
        refine_final = final_loss(losses)

    def write_package():
        meta = {
            "name": Path(request.out).name, "kind": "translator",
            "source": {"modality": request.source_modality, "contrast": request.source_contrast,
                       "normalization": mri_normalization(float(np.median([p.source_scale for p in pairs])))},
            "target": {"modality": request.target_modality, "contrast": request.target_contrast,
                       "normalization": mri_normalization(float(np.median([p.target_scale for p in pairs])))},
            "working_spacing": list(package.working_spacing),
            "autoencoder": {"config": package.metadata["autoencoder"]["config"], "weights": "autoencoder.safetensors"},
            "translator": {"config": config, "weights": DIFFUSION_WEIGHTS, **settings},
            "spatial": {"config": default_velocity_config(), "weights": "velocity.safetensors",
                        "resolution_factor": SPATIAL_FACTOR, "squaring_steps": 7,
                        "field_convention": FIELD_CONVENTION},
            "training": {"translator": run.record(
                pairs=len(pairs), autoencoder=str(request.autoencoder), spatial_steps=request.spatial_steps,
                latent_patch=list(request.latent_patch), lr=request.lr, smoothness=request.smoothness,
                refine_steps=request.refine_steps, refine_sample_steps=request.refine_sample_steps,
                final_spatial_loss=spatial_final, final_diffusion_loss=diffusion_final, final_refine_loss=refine_final,
                skipped_steps=guarded_step.skipped)},
        }
        save_package(request.out, meta, {AUTOENCODER_WEIGHTS: package.autoencoder, DIFFUSION_WEIGHTS: ema,
                                      "velocity.safetensors": velnet})

    return run.finish(write_package, "translator package")
