"""Train the detail refiner (engine/model/refiner.py) on real scans degraded to a coarser spacing and restored.

Each case is read on its own grid (the target). Each --factors entry makes a degraded copy, as generation makes its
coarse volume: smoothed (a Gaussian against aliasing), resampled onto a grid FACTOR times coarser, and linearly
resampled back. Where that coarse spacing is the model's working spacing, the model's autoencoder also reconstructs the
smoothed case there, where the case has labels: the decoder's own texture and edges, which are what the refiner meets
in generation. Crops are flipped at random along each axis (anatomy mirrored, edges alike). The guide is
the case's labels painted with the package's priors on the case's own grid; an unlabelled case gets the background's
painting, as unlabelled voxels do in generation, so the refiner learns to sharpen from the image where no label says
more.

Loss: L1 plus the gradient-difference loss (edges as steep as the real ones). The output package is the --model
package with the refiner added; its other networks are copied as stored.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from ...errors import SynthError
from ..model.package import AUTOENCODER_WEIGHTS, DIFFUSION_WEIGHTS, load_package, read_weights, save_package
from ..model.precision import autocast, bf16_training_safe
from ..model.refiner import REFINER_WEIGHTS, build_refiner, fine_priors
from ..model.store import resolve_model
from ..reporting.results import Result
from ..requests import TrainRefinerRequest
from ..synthesis.reconstruction import reconstruct_volume
from ..volume.cases import list_cases
from ..volume.geometry import extend_edges, resample_intensity, working_grid
from ..volume.intensity import normalize
from ..volume.io import array_of, read_volume
from ..volume.labels import to_class_indices
from .autoencoder import gradient_difference
from .common import GuardedStep, final_loss
from .dataset import random_crop
from .run import TrainingRun


@dataclass
class DegradedPair:
    coarse: np.ndarray  # the restored copy, model units, (x, y, z)
    guide: np.ndarray   # (2, x, y, z): painted prior, kind
    target: np.ndarray  # the real case, model units
    name: str


def degrade(image: sitk.Image, factor: float) -> tuple[sitk.Image, sitk.Image]:
    """The image smoothed for a grid `factor` times coarser, and that coarse grid (covering the same extent)."""
    spacing = np.array(image.GetSpacing(), float)
    coarse = spacing * factor
    # A Gaussian of 0.4 coarse voxels (FWHM ~ one coarse voxel) before sampling, as a scanner's slice profile blurs.
    smoothed = sitk.SmoothingRecursiveGaussian(sitk.Cast(image, sitk.sitkFloat32), [float(s) for s in 0.4 * coarse])
    return smoothed, working_grid(image, tuple(coarse))


def restored_copies(package, image: sitk.Image, label_map: sitk.Image | None, modality: str, factor: float):
    """The degraded-and-restored copies of one case (HU or scanner units, on the case's grid)."""
    smoothed, grid = degrade(image, factor)
    lowest = float(sitk.GetArrayViewFromImage(image).min())
    down = resample_intensity(smoothed, grid, default=lowest)
    copies = [("linear", array_of(resample_intensity(extend_edges(down, image), image, default=lowest)))]
    # The autoencoder only where the case has labels: without them its reconstruction has lost every edge (measured on
    # aorta_ct_crop: 61 HU/mm across the real tissue boundaries against 95 for linear upsampling and 194 real), far
    # from what generation, which always has labels, gives the refiner.
    if label_map is not None and np.allclose(grid.GetSpacing(), package.working_spacing, rtol=0.05):
        copies.append(("autoencoder", array_of(reconstruct_volume(package, smoothed, label_map, modality))))
    return copies


def degraded_pairs(package, files, factors, progress) -> list[DegradedPair]:
    progress.stage("degrading cases", len(files) * len(factors))
    pairs, done = [], 0
    for f in files:
        image = read_volume(f.image)
        label_map = read_volume(f.label) if f.label else None
        if label_map is not None and (label_map.GetSize() != image.GetSize()
                                      or not np.allclose(label_map.GetSpacing(), image.GetSpacing())):
            raise SynthError(f"{f.label}: the label map is not on its image's grid; resample it onto {f.image}")
        norm = package.normalization(f.modality)
        priors = package.priors(f.modality)
        if priors is None:
            raise SynthError("the refiner needs a label-aware generator package (one with priors); train one with "
                             "train-autoencoder --label-table")
        classes = (to_class_indices(array_of(label_map), package.labels, unknown="background") if label_map is not None
                   else np.zeros(image.GetSize(), np.int64))
        guide = fine_priors(priors, image.GetSpacing(), package.working_spacing).guide(classes).astype(np.float32)
        target = normalize(array_of(image), norm).astype(np.float32)
        name = Path(f.image).name.split(".nii")[0]
        for factor in factors:
            for how, values in restored_copies(package, image, label_map, f.modality, factor):
                pairs.append(DegradedPair(normalize(values, norm).astype(np.float32), guide, target,
                                          f"{name} x{factor:g} {how}"))
            done += 1
            progress.update(done)
    return pairs


def _batch(pairs: list[DegradedPair], patch, batch: int, rng):
    coarse, guide, target = [], [], []
    for _ in range(batch):
        p = pairs[rng.integers(len(pairs))]
        low = float(p.target.min())
        c, t, g = random_crop([p.coarse, p.target, np.moveaxis(p.guide, 0, -1)], patch, rng,
                              [low, low, float(p.guide[0].min())])
        flips = tuple(axis for axis in range(3) if rng.random() < 0.5)
        c, t, g = (np.flip(a, flips) if flips else a for a in (c, t, g))
        coarse.append(c)
        target.append(t)
        guide.append(np.moveaxis(g, -1, 0))
    as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(np.stack(a))).float()
    return as_tensor(coarse)[:, None], as_tensor(guide), as_tensor(target)[:, None]


def train_refiner(request: TrainRefinerRequest, *, progress=None) -> Result:
    """Add a detail refiner to a generator package, trained on degraded-and-restored real scans.

    Args:
        request: the training request (engine/requests/training.py: TrainRefinerRequest).
        progress: a Progress or its mode ("bar", "json", "none").

    Returns:
        Result with outputs {"out": the generator package with its refiner}.
    """
    run = TrainingRun(request, progress)
    ctx, progress, rng = run.ctx, run.progress, run.rng
    model_path = resolve_model(request.model)
    package = load_package(model_path, device="cpu")
    files = [f for f in list_cases(request.data, request.modality) if f.image is not None]
    for f in files:
        package.modality_index(f.modality)  # a modality the model does not generate is refused before any work
    pairs = degraded_pairs(package, files, request.factors, progress)
    config = {"channels": request.channels, "blocks": request.blocks, "guide_hidden": 8, "kind_embedding": 4}
    network = build_refiner(config)
    init = None
    if package.refiner is not None:
        old = package.metadata["refiner"]["config"]
        if old != config:
            raise SynthError(f"{request.model} has a refiner of another size ({old}); give --channels "
                             f"{old['channels']} --blocks {old['blocks']} to train it on, or a package without one")
        network.load_state_dict(package.refiner.state_dict())
        init = str(request.model)
    network = network.to(ctx.device)
    optimizer = torch.optim.Adam(network.parameters(), lr=request.lr)
    run.resume({"refiner": network}, {"opt": optimizer})
    model = ctx.wrap(network)
    use_bf16 = bf16_training_safe(ctx.device, min(request.patch))
    guarded_step = GuardedStep(optimizer, network.parameters(), max_norm=1.0)
    losses = []
    progress.stage("training refiner", request.steps)
    for step in range(run.start_step, request.steps):
        coarse, guide, target = (t.to(ctx.device) for t in _batch(pairs, request.patch, request.batch, rng))
        with autocast(ctx.device, use_bf16):
            refined = model(coarse, guide)
        refined = refined.float()
        loss = torch.nn.functional.l1_loss(refined, target) + request.gradient_weight * gradient_difference(refined, target)
        run.step_taken(loss, step, optimizer, guarded_step, losses, request.steps)

    def write_package():
        meta = {k: v for k, v in package.metadata.items() if k not in ("format", "format_version", "version")}
        meta["refiner"] = {"config": config, "weights": REFINER_WEIGHTS}
        meta["training"] = {**meta.get("training", {}), "refiner": run.record(
            cases=len(files), pairs=[p.name for p in pairs], factors=list(request.factors),
            patch=list(request.patch), lr=request.lr, gradient_weight=request.gradient_weight, init=init,
            final_loss=final_loss(losses), skipped_steps=guarded_step.skipped)}
        weights = {AUTOENCODER_WEIGHTS: read_weights(model_path / AUTOENCODER_WEIGHTS), REFINER_WEIGHTS: network}
        if (model_path / DIFFUSION_WEIGHTS).exists():
            weights[DIFFUSION_WEIGHTS] = read_weights(model_path / DIFFUSION_WEIGHTS)
        save_package(request.out, meta, weights, overwrite=request.overwrite)

    return run.finish(write_package, "generator package with its refiner")
