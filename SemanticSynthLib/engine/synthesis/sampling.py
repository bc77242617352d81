"""DDIM sampling shared by generation and translation: windows, the denoising loop, decoding."""
from __future__ import annotations

import math

import torch
from monai.inferers import sliding_window_inference

from ...errors import SynthError
from ..model.packing import depth_to_space
from ..model.precision import autocast, quantize_decode
from ..reporting.progress import Progress
from .schedule import ddim

UNET_MULTIPLE = 4  # the small U-Net halves the latent twice
# Latent voxels of replicated labels added at each end of an axis where the label map's outermost slice holds
# labels (geometry.edge_margins); the first end also gets half the grid's rounding slack (geometry.working_grid).
# abdomen-ct on its case cropped to slices 8:30 (scripts/edge_check.py --slices), first slice against the interior:
# reconstruction 1.72x with no margin, 1.18x with 1. Generated against painted, over seeds 0-2, measured
# 2026-11-27 (docs/edges.md): 1 latent voxel and the slack split left the first end 5 working slices and
# gave 1.38-1.45x, 2 gave 13 slices and 1.11-1.20x, 3 the same grid and figures as 2. On the whole case (30 slices
# on 48 working slices: 4 replicated before the first slice with 1 and no split, 9 now) the first slice's label
# means fell from 20-22 HU off their priors to 7-13 HU (interior 6-10 HU).
EDGE_MARGIN = 2


def windowed(fn, inputs: torch.Tensor, window: int, overlap: float = 0.5) -> torch.Tensor:
    """Run fn on the whole tensor when it fits in the window, else on Gaussian-blended windows."""
    spatial = inputs.shape[2:]
    roi = tuple(min(window, s) for s in spatial)
    if roi == tuple(spatial):
        return fn(inputs)
    return sliding_window_inference(inputs, roi, sw_batch_size=1, predictor=fn, overlap=overlap, mode="gaussian",
                                    progress=False)


def resolved_device(name: str | None) -> str:
    """"auto" (or None): CUDA where a GPU is available, else the CPU; "cpu" and "cuda" as asked."""
    if name in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def torch_device(name: str | None) -> torch.device:
    name = resolved_device(name)
    if name == "cuda" and not torch.cuda.is_available():
        raise SynthError("--device cuda was asked for but no CUDA GPU is available; use --device cpu")
    return torch.device(name)


def check_steps(steps: int, schedule: dict) -> int:
    if steps < 1 or steps > schedule["num_train_timesteps"]:
        raise SynthError(f"--steps must be between 1 and {schedule['num_train_timesteps']}")
    return int(steps)


def initial_noise(shape, seed: int, device: torch.device, temperature: float = 1.0) -> torch.Tensor:
    """From a CPU generator: the same seed gives the same start on any device.

    temperature < 1 starts DDIM from noise of a smaller spread (as in Glow's and BigGAN's truncated sampling): the
    deterministic DDIM path then lands nearer the most likely image for the labels, with less random texture.
    brain-mri on five validation subjects (docs/sampling_temperature.md): Dice ratio 0.949 at 1, 0.966 at 0.7,
    0.973 at 0.5; the spread between seeds falls in proportion; FID 0.34, 0.42, 0.46 (painting 8.2)."""
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(int(seed)))
    return (noise * float(temperature)).to(device)  # x * 1.0 == x exactly: temperature 1 is the old start


def denoise(predict_packed, latent: torch.Tensor, condition: torch.Tensor, schedule: dict, steps: int, window: int,
            use_bf16: bool, progress: Progress, guidance: float = 1.0, inpaint=None) -> torch.Tensor:
    """DDIM from noise; predict_packed(packed, timesteps) sees latent and condition concatenated, so a
    sliding window crops both alike.

    inpaint(latent, scheduler, step_index) -> latent: called on the start and after every step (region editing,
    engine/synthesis/region_edit.py: the latents outside the region are the existing volume's, noised to the step).

    guidance > 1: classifier-free guidance (Ho & Salimans), u + guidance * (c - u) with u the prediction under the
    null condition (zeros, as in training's condition dropout). The two predictions run one after the other, not as
    one batch of two, so that guidance costs time but no memory."""
    scheduler = ddim(schedule, steps)
    channels = latent.shape[1]
    window -= window % UNET_MULTIPLE
    progress.stage("denoising", steps)
    if inpaint is not None:
        latent = inpaint(latent, scheduler, 0)
    # Latent and condition side by side in one tensor, the condition copied in once and each step's latent over
    # its channels: a caller that passes the condition inline frees it here (80 MB on a 64^3 latent).
    packed = torch.cat([latent, condition], dim=1)
    del condition
    with torch.no_grad():
        for i, t in enumerate(scheduler.timesteps):
            timesteps = torch.full((1,), int(t), device=latent.device, dtype=torch.long)

            def predict(packed, timesteps=timesteps):
                with autocast(packed.device, use_bf16):
                    conditional = predict_packed(packed, timesteps.expand(packed.shape[0])).float()
                    if guidance == 1.0:
                        return conditional
                    null = torch.cat([packed[:, :channels], torch.zeros_like(packed[:, channels:])], dim=1)
                    unconditional = predict_packed(null, timesteps.expand(packed.shape[0])).float()
                return unconditional + guidance * (conditional - unconditional)

            if i:
                packed[:, :channels] = latent
            output = windowed(predict, packed, window)
            latent, _ = scheduler.step(output, t, latent)
            if inpaint is not None:
                latent = inpaint(latent, scheduler, i + 1)
            progress.update(i + 1)
    return require_finite(latent, "denoiser")


class NonFiniteOutput(SynthError):
    """A network gave NaN or inf."""


def require_finite(values: torch.Tensor, stage: str) -> torch.Tensor:
    """Never a "success" with NaN voxels: a broken package or a faulty low-precision kernel stops here."""
    if not torch.isfinite(values).all():
        raise NonFiniteOutput(f"the model's {stage} produced non-finite values; the model package is broken, retrain or "
                         "reinstall it")
    return values


def decode(autoencoder, latent: torch.Tensor, latent_scale: float, window: int, use_bf16: bool,
           progress: Progress, guide=None, factor: int = 1) -> torch.Tensor:
    """Scaled latent -> image in model units, decoded in tiles of at most window^3 latent voxels (halo included).

    `guide` (label-aware autoencoder): the full-resolution painted prior and kinds (1, 2, X, Y, Z), packed
    space-to-depth beside the latent so each tile gets its own part of it; or a function that gives them for a
    region of the full-resolution grid (a tuple of slices), called for each tile's region, so that the whole guide
    is never made (134 MB on a 256^3 working grid).
    """
    progress.stage("decoding", 1)
    latent = latent / float(latent_scale)
    channels = latent.shape[1]
    with torch.no_grad():
        if guide is None:
            def fn(z):
                return quantize_decode(autoencoder, z, use_bf16)
            packed = latent
        elif callable(guide):
            def tile(outer):
                crop = (slice(None), slice(None), *(slice(a, b) for a, b in outer))
                return latent[crop], guide(tuple(slice(a * factor, b * factor) for a, b in outer)).to(latent.device)

            def fn(part):
                return quantize_decode(autoencoder, part[0], use_bf16, part[1])
            image = require_finite(in_tiles(fn, latent, window ** 3, DECODE_HALO, tile), "decoder")
            progress.update(1)
            return image
        else:
            packed = packed_beside(latent, guide.to(latent.device), factor)
            del guide  # the full-resolution guide lives on inside `packed` only (its tiles are cut from there)

            def fn(p):
                return quantize_decode(autoencoder, p[:, :channels], use_bf16, depth_to_space(p[:, channels:], factor))
        image = require_finite(in_tiles(fn, packed, window ** 3, DECODE_HALO), "decoder")
    progress.update(1)
    return image


def packed_beside(latent: torch.Tensor, guide: torch.Tensor, factor: int) -> torch.Tensor:
    """torch.cat([latent, space_to_depth(guide, factor)], dim=1), the guide's voxels copied straight into their
    channels: no packed copy of the whole guide is made on the way (134 MB on a 256^3 working grid)."""
    b, c, lx, ly, lz = latent.shape
    g, f = guide.shape[1], factor
    out = torch.empty((b, c + g * f ** 3, lx, ly, lz), dtype=torch.result_type(latent, guide), device=latent.device)
    out[:, :c] = latent
    # space_to_depth's channel c * f^3 + (i * f + j) * f + k holds the voxels at offset (i, j, k) of each block
    out[:, c:].view(b, g, f, f, f, lx, ly, lz).copy_(
        guide.reshape(b, g, lx, f, ly, f, lz, f).permute(0, 1, 3, 5, 7, 2, 4, 6))
    return out


def with_fp32_fallback(run, use_bf16: bool, progress: Progress):
    """run(use_bf16), and once more in fp32 if bf16 gave NaN: on an AMX Xeon (torch 2.13) bf16 autocast gave NaN
    now and then for the same input (the tiny test model's DICOM case, 2 of 3 runs; the segmenter's thin slices).
    An fp32 failure is the package's fault and is raised."""
    try:
        return run(use_bf16)
    except NonFiniteOutput:
        if not use_bf16:
            raise
        progress.message("bf16 gave non-finite values on this device; generating again in fp32")
        return run(False)


def decode_window(label_aware: bool) -> int:
    """A package's decode_window: decoded tiles hold at most decode_window^3 latent voxels, halo included. The
    label-aware decoder holds ~9x the plain one's full-resolution features; 48^3 keeps a 256x256x128 generation
    under 1.5 GB (two tiles), and 128^3 and smaller decode whole."""
    return 48 if label_aware else 64


# Latent voxels of context around each decoded tile. One latent voxel reaches +-31 output voxels of the VQVAE
# decoder at 4x, and the label-aware head 2 more (tests/test_decode_tiles.py measures it), so 9 latent voxels (36
# output voxels) make tiles join exactly. Gaussian-blended 50%-overlap windows, used before, cost 2.25x a
# whole decode at 256x256x128 and still differed at the seams.
DECODE_HALO = 9


def in_tiles(fn, inputs: torch.Tensor, max_voxels: int, halo: int, tile=None) -> torch.Tensor:
    """fn over tiles of `inputs` whose extent with `halo` holds at most `max_voxels` voxels, joined: each tile's
    output is cropped to its core. fn may upsample (its output's size / its input's size is the same factor on
    every axis). With a halo that covers fn's reach the result equals fn(inputs).

    `tile`: what fn gets for a tile, from its extent ((start, stop) per spatial axis of `inputs`); by default the
    crop of `inputs` there."""
    spatial = tuple(inputs.shape[2:])
    cores = _tile_cores([(0, s) for s in spatial], spatial, max_voxels, halo)
    if len(cores) == 1:
        return fn(inputs) if tile is None else fn(tile([(0, s) for s in spatial]))
    out = None
    for core in cores:
        outer = [(max(a - halo, 0), min(b + halo, s)) for (a, b), s in zip(core, spatial)]
        part = fn(inputs[(slice(None), slice(None), *(slice(a, b) for a, b in outer))] if tile is None else tile(outer))
        f = part.shape[2] // (outer[0][1] - outer[0][0])
        if out is None:
            out = part.new_empty((*part.shape[:2], *(s * f for s in spatial)))
        target = tuple(slice(a * f, b * f) for a, b in core)
        source = tuple(slice((a - oa) * f, (b - oa) * f) for (a, b), (oa, _) in zip(core, outer))
        out[(slice(None), slice(None), *target)] = part[(slice(None), slice(None), *source)]
    return out


def _tile_cores(core, spatial, max_voxels: int, halo: int) -> list:
    """Halve the longest axis of `core` until each part with its halo fits in max_voxels (or is one voxel thick)."""
    extent = [min(b + halo, s) - max(a - halo, 0) for (a, b), s in zip(core, spatial)]
    lengths = [b - a for a, b in core]
    if math.prod(extent) <= max_voxels or max(lengths) == 1:
        return [core]
    axis = max(range(len(core)), key=lambda i: lengths[i])
    a, b = core[axis]
    mid = (a + b) // 2
    low, high = list(core), list(core)
    low[axis], high[axis] = (a, mid), (mid, b)
    return _tile_cores(low, spatial, max_voxels, halo) + _tile_cores(high, spatial, max_voxels, halo)
