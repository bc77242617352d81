"""Train the latent diffusion U-Net (DDPM, linear schedule, T = 1000) on a frozen autoencoder's latents."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import SynthError
from ..model.conditioning import label_condition, widen_pooled_prior
from ..model.conditioning_modes import conditioning_mode
from ..synthesis.sampling import UNET_MULTIPLE, decode_window
from ..model.outside_layout import measure_layout
from ..model.package_metadata import for_modality
from ..model.networks import LatentDenoiser, default_unet_config, latent_channels
from ..model.package import AUTOENCODER_WEIGHTS, DIFFUSION_WEIGHTS, load_package, load_weights, read_weights, save_package
from ..model.store import resolve_model
from ..model.precision import autocast, bf16_for_training, bf16_training_safe, encode_latent
from ..reporting.progress import Progress
from ..synthesis.schedule import ddpm, default_schedule, training_target
from .augment import random_affine, random_intensity
from .common import GuardedStep, backward_step, final_loss, load_cases
from .dataset import random_crop
from .label_merging import LabelMerge, load_label_merge
from ..reporting.results import Result
from ..requests import TrainDiffusionRequest
from .run import TrainingRun


def encode_cases(autoencoder, cases, package, mode: str, copies: int, rng, progress: Progress, device,
                 merge: LabelMerge | None = None, merge_fraction: float = 0.5):
    """Latent and condition of every labelled case, plus `copies` augmented versions of each; with a label merge,
    each also once more with a merged condition (the same latent: the image does not change)."""
    factor = package.factor
    priors = {m: package.priors(m) for m in package.modalities}
    merged_priors = {m: merge.package.priors(m) for m in package.modalities} if merge else {}
    labelled = [c for c in cases if c.image is not None and c.classes is not None]
    if not labelled:
        raise SynthError("the dataset has no image/label pairs; the diffusion model needs labelled cases")
    items = []
    progress.stage("encoding latents", len(labelled) * (1 + copies) * (2 if merge else 1))
    for case in labelled:
        for k in range(1 + copies):
            image, classes = case.image, case.classes
            if k:
                image, classes = random_affine(image, classes, rng)
                image = random_intensity(image, rng)
            x = torch.from_numpy(np.ascontiguousarray(image))[None, None].to(device)
            case_priors = priors[case.modality]
            guide = torch.from_numpy(case_priors.guide(classes.astype(np.int64)))[None].to(device) if case_priors else None
            with torch.no_grad():
                latent = encode_latent(autoencoder, x, guide=guide)[0].cpu()
            geometry = (case.spacing, case.direction)  # an augmented copy's few degrees are not worth re-deriving
            cond = label_condition(torch.from_numpy(classes.astype(np.int64))[None, None], package.labels.num_classes,
                                   factor, mode, case_priors, geometry)[0]
            items.append((latent, cond, package.modality_index(case.modality)))
            if merge is not None:
                merged = merge.sample(classes.astype(np.int64), rng, merge_fraction)
                items.append((latent, label_condition(torch.from_numpy(merged)[None, None], merge.package.labels.num_classes,
                                                      factor, mode, merged_priors[case.modality], geometry)[0],
                              package.modality_index(case.modality)))
            progress.update(len(items))
    return items


def add_outside_layout(package, cases, progress: Progress) -> None:
    """--outside-layout: each modality's layout outside the labels, measured on its training cases, goes into the
    package's priors, where the conditions (encode_cases, generation) find it."""
    for modality in package.modalities:
        layout = measure_layout([c for c in cases if c.modality == modality])
        for_modality(package.metadata["priors"], modality)["outside_layout"] = layout.metadata()
        progress.message(f"outside layout ({modality}): {layout.mean.shape} bins, mean {float(layout.mean.mean()):.3f}")


def noised(scheduler, latent: torch.Tensor):
    """A DDPM training sample: noisy latent at random timesteps, the timesteps, and the target to predict."""
    noise = torch.randn_like(latent)
    t = torch.randint(0, scheduler.num_train_timesteps, (latent.shape[0],), device=latent.device)
    return scheduler.add_noise(latent, noise, t), t, training_target(scheduler, latent, noise, t)


def drop_condition(cond: torch.Tensor, rate: float, rng) -> torch.Tensor:
    """Classifier-free guidance training: each sample's label condition is replaced by the null condition (zeros)
    with probability `rate`, so the one U-Net also learns the unconditional prediction that guidance needs."""
    if rate <= 0:
        return cond
    keep = torch.from_numpy(rng.random(cond.shape[0]) >= rate).to(cond.device, cond.dtype)
    return cond * keep.view(-1, *([1] * (cond.dim() - 1)))


def ema_update(ema: torch.nn.Module, model: torch.nn.Module, step: int, rate: float) -> None:
    """Exponential moving average of the weights, with the usual warm-up of the decay."""
    with torch.no_grad():
        decay = min(rate, (1 + step) / (10 + step))
        for pe, p in zip(ema.parameters(), model.parameters()):
            pe.mul_(decay).add_(p.detach(), alpha=1 - decay)


def latent_batch(items, patch, batch, rng, scale):
    latents, conds, mods = [], [], []
    for _ in range(batch):
        latent, cond, mod = items[rng.integers(len(items))]
        size = [min(p, s) for p, s in zip(patch, latent.shape[1:])]
        stacked = np.concatenate([latent.numpy() * scale, cond.numpy()], axis=0)
        crop, = random_crop([stacked.transpose(1, 2, 3, 0)], size, rng, [0.0])
        crop = crop.transpose(3, 0, 1, 2)
        latents.append(crop[: latent.shape[0]])
        conds.append(crop[latent.shape[0]:])
        mods.append(mod)
    return (torch.from_numpy(np.stack(latents)).float(), torch.from_numpy(np.stack(conds)).float(), torch.tensor(mods))


def start_from_package_unet(denoiser: torch.nn.Module, name: str, conditioning: str, config: dict, factor: int) -> None:
    """--init: the denoiser (and so its EMA) starts from a generator package's U-Net of the same shape. Its
    latents may mean something else (a new codebook); the label and timestep features still carry over.
    A U-Net trained with the averaged prior may start a fine mode that differs from it only in folding the prior
    (concat -> detail): its label embedding is widened so that it computes the same thing (widen_pooled_prior).
    A U-Net of a narrower latent (an autoencoder widened with --latent-channels) is widened the same way
    (LatentDenoiser.widened_state)."""
    meta = load_package(resolve_model(name), need_diffusion=False).metadata
    diffusion = meta.get("diffusion")
    if diffusion is None:
        raise SynthError(f"--init {name} has no diffusion U-Net; give a generator package")
    old, new = conditioning_mode(diffusion["conditioning"]), conditioning_mode(conditioning)
    widen = (denoiser.label_aware and new.fine and not old.fine and (old.injection, old.boundary) == (new.injection, new.boundary))
    if (diffusion["conditioning"] != conditioning and not widen) or diffusion["config"] != config:
        raise SynthError(f"--init {name}'s U-Net ({diffusion['conditioning']} conditioning, config {diffusion['config']}) "
                         f"differs from this one ({conditioning}, {config}); give a package with the same U-Net")
    path = resolve_model(name) / DIFFUSION_WEIGHTS
    state = read_weights(path)  # a missing or corrupt file is its own error
    old_latent = latent_channels(meta["autoencoder"]["config"])
    try:
        if widen:
            state["label_embedding.weight"] = widen_pooled_prior(state["label_embedding.weight"], factor)
        if old_latent < denoiser.latent_channels:
            state = denoiser.widened_state(state, old_latent)
        load_weights(denoiser, path, state)
    except (SynthError, KeyError, RuntimeError):
        raise SynthError(f"--init {name}'s U-Net does not fit this autoencoder's latents or label table "
                         f"(other channel or class counts); give a package trained with the same ones") from None


def train_diffusion(request: TrainDiffusionRequest, *, progress=None) -> Result:
    """Train the latent diffusion U-Net on an autoencoder package's latents and write a generator package.

    Args:
        request: the training request (engine/requests/training.py: TrainDiffusionRequest); run it with
            engine.commands.run.run_request, which checks its paths first, or from the CLI / torchrun.
        progress: a Progress or its mode ("bar", "json", "none"); ranks other than the main one stay silent.

    Returns:
        Result with outputs {"out": the generator package folder} and the resolved request's parameters.
    """
    run = TrainingRun(request, progress)
    ctx, progress, rng = run.ctx, run.progress, run.rng
    package = load_package(request.autoencoder, need_diffusion=False, device=str(ctx.device))
    if request.outside_layout and not package.label_aware:
        raise SynthError("--outside-layout needs a label-aware autoencoder (one with intensity priors); train one with "
                         "train-autoencoder --label-table")
    if request.guidance != 1.0 and request.condition_dropout == 0.0:
        raise SynthError("--guidance above 1 needs --condition-dropout above 0 (the U-Net must learn the null condition)")
    if any(p % UNET_MULTIPLE for p in request.latent_patch):
        raise SynthError(f"--latent-patch must be a multiple of {UNET_MULTIPLE}")
    cases = load_cases(request.data, request.modality, package.working_spacing, package.labels,
                       package.factor * UNET_MULTIPLE, progress)
    for c in cases:
        if c.modality not in package.modalities:
            raise SynthError(f"case {c.name} is {c.modality} but the autoencoder knows {package.modalities}; retrain it with that modality")
    if request.outside_layout:
        add_outside_layout(package, cases, progress)
    # Every rank encodes the same cases with the same augmentation seed, so all hold the same latents.
    merge = load_label_merge(package, request.merge_labels) if request.merge_labels else None
    items = encode_cases(package.autoencoder, cases, package, request.conditioning, request.augment_copies,
                         np.random.default_rng(request.seed), progress, ctx.device, merge, request.merge_fraction)
    # LDM's scale factor: unit-variance latents. A barely trained codebook can give near-constant latents,
    # so the std is floored rather than dividing by ~0.
    # The U-Net halves the latent crop twice; its thinnest feature map decides whether bf16 is safe.
    first_dim = min(min(request.latent_patch[0], item[0].shape[1]) for item in items) // UNET_MULTIPLE
    use_bf16 = bf16_for_training(ctx.device) and bf16_training_safe(ctx.device, first_dim)
    latent_scale = 1.0 / max(float(torch.cat([i[0].flatten() for i in items]).std()), 1e-2)

    config = default_unet_config()
    denoiser = LatentDenoiser(package.latent_channels, package.labels.num_classes, request.conditioning, len(package.modalities),
                              config, priors=package.label_aware, factor=package.factor).to(ctx.device)
    if request.init:
        start_from_package_unet(denoiser, request.init, request.conditioning, config, package.factor)
    ema = copy.deepcopy(denoiser).eval()
    optimizer = torch.optim.AdamW(denoiser.parameters(), lr=request.lr, weight_decay=0.0)
    run.resume({"denoiser": denoiser, "ema": ema}, {"opt": optimizer})  # a checkpoint, when resuming, wins over --init
    model = ctx.wrap(denoiser)
    schedule = default_schedule()
    scheduler = ddpm(schedule)
    losses = []
    guarded_step = GuardedStep(optimizer, denoiser.parameters(), max_norm=1.0)
    progress.stage("training diffusion", request.steps)
    for step in range(run.start_step, request.steps):
        latent, cond, mod = latent_batch(items, request.latent_patch, request.batch, rng, latent_scale)
        latent, cond, mod = latent.to(ctx.device), cond.to(ctx.device), mod.to(ctx.device)
        cond = drop_condition(cond, request.condition_dropout, rng)
        noisy, t, target = noised(scheduler, latent)
        with autocast(ctx.device, use_bf16):
            pred = model(noisy, t, cond, mod)
        loss = F.mse_loss(pred.float(), target)
        if backward_step(loss, step, optimizer, guarded_step):
            ema_update(ema, denoiser, step, request.ema)
        losses.append(loss.detach().item())
        done = step + 1
        run.log_losses(losses, done, request.steps, skipped_steps=guarded_step.skipped)
        run.save(done, request.steps)

    def write_package():
        meta = dict(package.metadata)
        for key in ("format", "format_version", "version"):
            meta.pop(key, None)
        meta["name"] = Path(request.out).name
        meta["diffusion"] = {
            "conditioning": request.conditioning, "config": config, "weights": "diffusion.safetensors",
            "schedule": schedule, "latent_scale": latent_scale, "default_steps": request.default_steps,
            "window": int(max(64, *request.latent_patch)), "decode_window": decode_window(package.label_aware), "ema": request.ema,
            "condition_dropout": request.condition_dropout, "guidance": request.guidance, "temperature": request.temperature,
        }
        meta["training"] = {**meta.get("training", {}), "diffusion": run.record(
            cases=len(cases), augment_copies=request.augment_copies, latent_patch=list(request.latent_patch), lr=request.lr,
            final_loss=final_loss(losses), skipped_steps=guarded_step.skipped,
            init=str(request.init) if request.init else None, merge_labels=request.merge_labels,
            merge_fraction=request.merge_fraction if request.merge_labels else None,
            outside_layout=request.outside_layout)}
        save_package(request.out, meta, {AUTOENCODER_WEIGHTS: package.autoencoder, DIFFUSION_WEIGHTS: ema}, bf16_files=frozenset({DIFFUSION_WEIGHTS}))

    return run.finish(write_package, "model package")
