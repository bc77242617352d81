"""Train the 3D VQ-GAN: MONAI VQVAE + PatchDiscriminator with L1, adversarial and codebook losses."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from monai.losses import PatchAdversarialLoss

from ..volume.labels import LabelTable
from ...errors import SynthError
from ..model.schema import MAX_HEAD_BLOCKS
from ..model.networks import (autoencoder_factor, build_autoencoder, build_discriminator, default_autoencoder_config, plain_vqvae_config,
                        is_label_aware, label_autoencoder_config, latent_channels, vqvae_config)
from ..model.package_metadata import for_modality
from ..model.priors import class_priors, measure_class_means, measure_surround, priors_metadata, surround_steps
from ..model.package import AUTOENCODER_WEIGHTS, DIFFUSION_WEIGHTS, load_package, read_weights, save_package
from ..model.store import resolve_model
from ..volume.modalities import modality
from ..synthesis.sampling import decode_window
from ..model.precision import autocast, bf16_for_training, reconstruct
from .augment import random_affine, random_intensity
from .common import GuardedStep, load_cases, package_normalization
from .dataset import random_crop
from ..reporting.results import Result
from ..requests import TrainAutoencoderRequest
from .run import TrainingRun


def _batch(cases, patch, batch, rng, augment: bool, priors=None):
    """Image crops, and for a label-aware autoencoder the guides of the same crops (unlabelled cases: all
    background); `priors`: ClassPriors by modality."""
    crops, guides = [], []
    for _ in range(batch):
        case = cases[rng.integers(len(cases))]
        image = case.image
        classes = case.classes if case.classes is not None else np.zeros(image.shape, np.int16)
        if augment:
            image, classes = random_affine(image, classes, rng)
            image = random_intensity(image, rng)
        crop, classes = random_crop([image, classes], patch, rng, [float(image.min()), 0])
        crops.append(crop)
        if priors is not None:
            guides.append(priors[case.modality].guide(classes.astype(np.int64)))
    images = torch.from_numpy(np.stack(crops)[:, None])
    return images, (torch.from_numpy(np.stack(guides)) if priors is not None else None)


def train_autoencoder(request: TrainAutoencoderRequest, *, progress=None) -> Result:
    """Train the (label-aware) VQ-GAN autoencoder and write an autoencoder package (with --init and
    --decoder-only on a generator package: a whole generator package).

    Args:
        request: the training request (engine/requests/training.py: TrainAutoencoderRequest); run it with
            engine.commands.run.run_request, which checks its paths first, or from the CLI / torchrun.
        progress: a Progress or its mode ("bar", "json", "none"); ranks other than the main one stay silent.

    Returns:
        Result with outputs {"out": the autoencoder package folder} and the resolved request's parameters.
    """
    run = TrainingRun(request, progress)
    ctx, progress, rng = run.ctx, run.progress, run.rng
    table = LabelTable.from_spec(request.label_table) if request.label_table else None
    # With a label table the decoder is label-aware (engine/model/label_autoencoder.py); without, the plain VQVAE.
    config = label_autoencoder_config() if table else default_autoencoder_config()
    for option, value in (("--codebook-groups", request.codebook_groups), ("--latent-channels", request.latent_channels),
                          ("--surround-mm", request.surround_mm)):
        if value and not table:
            raise SynthError(f"{option} is for the label-aware autoencoder; give --label-table")
    config = with_latent_layout(config, request)
    init = warm = warm_config = None
    warm_skip = ()
    if request.init:
        init = load_package(resolve_model(request.init), need_diffusion=False)
        if table is not None and not init.label_aware:
            # A plain VQVAE package starts the label-aware one's VQVAE part (a warm start), not its config.
            warm, init = init.autoencoder, None
        elif table is None and init.label_aware:
            # The reverse (the translator's image-only autoencoder from the label-aware brain-mri): a plain VQVAE
            # of the same sizes, started from the label-aware one's VQVAE part.
            config = plain_vqvae_config(init.metadata["autoencoder"]["config"])
            warm, init = init.autoencoder.vqvae, None
        else:
            # Fine-tuning for a new contrast: start from another package's autoencoder and its config.
            config = warm_config = init.metadata["autoencoder"]["config"]
            if request.latent_channels and request.latent_channels < latent_channels(config):
                raise SynthError(f"--latent-channels {request.latent_channels} is fewer than the --init package's "
                                 f"{latent_channels(config)}; a latent can be widened, not narrowed")
            new_layout = with_latent_layout(config, request)
            if new_layout != config:
                if request.decoder_only:
                    raise SynthError("--decoder-only keeps the --init package's latent space; leave out "
                                     "--num-embeddings, --codebook-groups and --latent-channels, or train the whole "
                                     "autoencoder")
                # A new layout: every other tensor starts from the package's, so the latents change and a diffusion
                # U-Net must be trained anew. The codebook starts afresh where its codes have another size or
                # meaning; a wider latent of the same codes keeps it (widen_latent).
                widened = _same_codes(new_layout, config) and latent_channels(new_layout) > latent_channels(config)
                warm_skip = () if widened else ("vqvae.quantizer.",)
                config, warm, init = new_layout, init.autoencoder, None
    config = with_head_blocks(config, request, init)
    if request.decoder_only and init is None:
        raise SynthError("--decoder-only fine-tunes the decoder of an --init package of the same kind; give --init "
                         "(and the same --label-table as that package, or none for a plain one)")
    factor = autoencoder_factor(config)
    cases = load_cases(request.data, request.modality, request.spacing, table, factor, progress)
    images = [c for c in cases if c.image is not None]
    priors = priors_meta = None
    if is_label_aware(config):
        if table is None:
            raise SynthError("a label-aware autoencoder needs --label-table (its decoder is guided by the labels)")
        # Per modality: one label map paints differently in CT and MRI.
        norms = package_normalization(images)
        if request.decoder_only:
            # The decoder keeps painting what the package's diffusion U-Net was trained to expect (unless a
            # surround changes the painting; write_decoder_package then leaves the U-Net out).
            priors_meta = {m: dict(for_modality(init.metadata.get("priors", {}), m)) for m in norms}
        else:
            priors_meta = {m: priors_metadata(table, measure_class_means([c for c in images if c.modality == m],
                                                                         table.num_classes),
                                              norms[m], request.data_phase if modality(m).phases else None) for m in norms}
        for m in norms:
            # The surround asked for, else (fine-tuning a package that has one) the package's, measured again here.
            had = for_modality(init.metadata.get("priors", {}), m).get("surround") if init is not None else None
            if request.surround_mm:
                full, fade = surround_steps(request.spacing, *request.surround_mm)
            elif had and not request.decoder_only:
                full, fade = had["full_steps"], had["fade_steps"]
            else:
                continue
            ring = priors_meta[m]["surround"] = measure_surround([c for c in images if c.modality == m], full, fade)
            progress.message(f"surround ({m}): full for {full} growth steps from a label, gone at step {full + fade + 1}; "
                             f"mean {ring['mean']:.4g} (model units) over {ring['voxels']} voxels")
        priors = {m: class_priors(table, norms[m], priors_meta[m]) for m in norms}

    autoencoder = (init_autoencoder(init, config) if init else build_autoencoder(config)).to(ctx.device)
    frozen = freeze_latent_space(autoencoder) if request.decoder_only else None
    if warm is not None:
        whole = is_label_aware(config) and hasattr(warm, "vqvae")  # label-aware from label-aware
        state = {k: v for k, v in warm.state_dict().items() if not k.startswith(warm_skip)}
        copied = warm_start(autoencoder if whole or not is_label_aware(config) else autoencoder.vqvae, state)
        if whole:
            widen_latent(autoencoder, latent_channels(warm_config))
        progress.message(f"warm start from {request.init}: {copied} tensors copied (whole or their leading part)")
    discriminator = build_discriminator().to(ctx.device)
    trained = [p for p in autoencoder.parameters() if p.requires_grad]
    opt_g = torch.optim.Adam(trained, lr=request.lr)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=request.lr)
    last_l1 = run.resume({"autoencoder": autoencoder, "discriminator": discriminator}, {"g": opt_g, "d": opt_d}).get("l1")
    model_g, model_d = ctx.wrap(autoencoder), ctx.wrap(discriminator)
    adversarial = PatchAdversarialLoss(criterion="least_squares")
    step_g = GuardedStep(opt_g, trained)
    step_d = GuardedStep(opt_d, discriminator.parameters())
    progress.stage("training autoencoder", request.steps)
    for step in range(run.start_step, request.steps):
        x, guide = _batch(images, request.patch, request.batch, rng, request.augment, priors)
        x = x.to(ctx.device)
        guide = guide.to(ctx.device) if guide is not None else None
        recon, codebook_loss = (_ddp_reconstruct(model_g, x, guide) if ctx.enabled
                                else reconstruct(autoencoder, x, bf16_for_training(ctx.device), guide, frozen_latent=frozen is not None))
        l1 = torch.nn.functional.l1_loss(recon, x)
        last_l1 = ctx.mean(l1.detach().item())
        loss_g = l1 + codebook_loss
        gradient = gradient_difference(recon, x) if request.gradient_weight > 0 else torch.zeros(())
        loss_g = loss_g + request.gradient_weight * gradient
        use_adv = request.adv_weight > 0 and step >= request.adv_start
        if use_adv:
            # The bare discriminator: this backward must not start DDP's gradient all-reduce for it.
            with autocast(ctx.device, bf16_for_training(ctx.device)):
                logits_fake = discriminator(recon.contiguous())[-1]
            loss_g = loss_g + request.adv_weight * adversarial(logits_fake.float(), target_is_real=True, for_discriminator=False)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        step_g()
        loss_d = torch.zeros(())
        if use_adv:
            # One forward for fake and real: DDP expects one forward per backward.
            with autocast(ctx.device, bf16_for_training(ctx.device)):
                logits = model_d(torch.cat([recon.detach(), x]).contiguous())[-1].float()
            fake, real = logits[: len(x)], logits[len(x):]
            loss_d = 0.5 * (adversarial(fake, target_is_real=False, for_discriminator=True)
                            + adversarial(real, target_is_real=True, for_discriminator=True))
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            step_d()
        done = step + 1
        if done % request.log_every == 0 or done == request.steps:
            record = {"step": done, "l1": last_l1, "codebook": ctx.mean(float(codebook_loss.detach())),
                      **({"gradient": ctx.mean(float(gradient.detach()))} if request.gradient_weight > 0 else {}),
                      "disc": ctx.mean(float(loss_d.detach())),
                      "skipped_steps": step_g.skipped + step_d.skipped}
            run.log.write(**record)
            progress.update(done, l1=round(record["l1"], 4))
        run.save(done, request.steps, l1=last_l1)

    def write_package():
        if frozen is not None:
            return write_decoder_package(request, init, config, autoencoder, frozen, run.record(
                cases=len(images), patch=list(request.patch), final_l1=last_l1, init=str(request.init),
                gradient_weight=request.gradient_weight), priors_meta if request.surround_mm else None)
        label_ids = sorted({int(i) for c in cases if c.classes is not None for i in np.unique(c.classes)})
        # A label-aware model keeps the whole table: it generates unseen classes through kinds and priors.
        keep_all = request.all_labels or is_label_aware(config)
        used = table.subset([table.labels[i - 1].id for i in label_ids if i > 0]) if table and not keep_all else table
        metadata = {
            "name": Path(request.out).name,
            "label_table": (used or LabelTable("none", [])).to_json(),
            "modalities": sorted({c.modality for c in cases}),
            "normalization": package_normalization(images),
            "working_spacing": list(request.spacing),
            "autoencoder": {"config": config, "weights": "autoencoder.safetensors"},
            **({"priors": priors_meta} if priors_meta else {}),
            "training": {"autoencoder": run.record(cases=len(images), patch=list(request.patch), final_l1=last_l1,
                                                   init=str(request.init) if request.init else None,
                                                   gradient_weight=request.gradient_weight)},
        }
        save_package(request.out, metadata, {AUTOENCODER_WEIGHTS: autoencoder})

    return run.finish(write_package, "autoencoder")


def with_latent_layout(config: dict, request) -> dict:
    """`config` with the codebook size (--num-embeddings) and, for the label-aware kind, the latent's channels
    (--latent-channels) and codebook groups (--codebook-groups) that the command asks for; the same dict where it
    asks for nothing new. Without --codebook-groups, each code keeps `config`'s channels per group."""
    new = json.loads(json.dumps(config))
    if request.num_embeddings:
        vqvae_config(new)["num_embeddings"] = request.num_embeddings
    if is_label_aware(new):
        # Each code keeps its channels unless --codebook-groups says otherwise, so a wider latent has more groups.
        code_channels = latent_channels(config) // config.get("codebook_groups", 1)
        if request.latent_channels:
            vqvae_config(new)["embedding_dim"] = request.latent_channels
        groups = request.codebook_groups or max(latent_channels(new) // code_channels, 1)
        if latent_channels(new) % groups:
            raise SynthError(f"--codebook-groups {groups} must divide the latent's {latent_channels(new)} channels "
                             "(--latent-channels)")
        new["codebook_groups"] = groups
    return config if _same_layout(new, config) else new


def with_head_blocks(config: dict, request, init) -> dict:
    """`config` with --head-blocks label refinement blocks (label-aware kind only); the same dict where it asks for
    nothing new. An --init package's blocks can be added to (each starts as the identity), not taken away."""
    if request.head_blocks is None or config.get("head_blocks", 0) == request.head_blocks:
        return config
    if not is_label_aware(config):
        raise SynthError("--head-blocks is for the label-aware autoencoder; give --label-table")
    if request.head_blocks > MAX_HEAD_BLOCKS:
        raise SynthError(f"--head-blocks {request.head_blocks}: at most {MAX_HEAD_BLOCKS} (the decoder's reach must stay "
                         "within the tile halo)")
    if init is not None and request.head_blocks < init.metadata["autoencoder"]["config"].get("head_blocks", 0):
        raise SynthError(f"--head-blocks {request.head_blocks} is fewer than the --init package's; trained blocks are "
                         "not dropped, leave out --head-blocks")
    return {**config, "head_blocks": request.head_blocks}


def init_autoencoder(init, config: dict) -> torch.nn.Module:
    """The --init package's autoencoder in training mode, rebuilt with `config`'s refinement blocks where it adds
    some: every trained tensor is kept exactly, and each new block starts as the identity (its last convolution is
    zero), so the latent space and the decoder's output are unchanged at the start."""
    if config == init.metadata["autoencoder"]["config"]:
        return init.autoencoder.train()
    grown = build_autoencoder(config)
    missing, unexpected = grown.load_state_dict(init.autoencoder.state_dict(), strict=False)
    if unexpected or any(not k.startswith("refinement.") for k in missing):
        raise SynthError(f"--init package does not fit the grown decoder ({(unexpected or missing)[0]}); "
                         "this is a bug, please report it")
    return grown.train()


def _same_layout(a: dict, b: dict) -> bool:
    return _same_codes(a, b) and latent_channels(a) == latent_channels(b)


def _same_codes(a: dict, b: dict) -> bool:
    """Codebooks of the same shape: as many codes, each of as many channels (the latent's channels per group)."""
    return (vqvae_config(a)["num_embeddings"] == vqvae_config(b)["num_embeddings"]
            and latent_channels(a) // a.get("codebook_groups", 1) == latent_channels(b) // b.get("codebook_groups", 1))


def widen_latent(autoencoder: torch.nn.Module, old_channels: int) -> None:
    """After warm_start into a wider latent: the decoder's first convolution reads the new latent channels with
    zero weights, so the widened autoencoder starts out decoding exactly as the --init package did, and the new
    channels (the encoder's extra outputs, fresh) come into use as training gives them weights. LoRA's zero start,
    for the same reason: a trained model is not disturbed on its first step."""
    conv = autoencoder.vqvae.decoder.blocks[0].conv
    if conv.in_channels > old_channels:
        with torch.no_grad():
            conv.weight[:, old_channels:] = 0


def gradient_difference(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Gradient-difference loss (Mathieu et al., 2016): the mean L1 distance between the two images' finite
    differences along each spatial axis. A blurred edge has a lower gradient than the real one, so it costs
    here even where its L1 error is small."""
    total = recon.new_zeros(())
    for axis in range(2, recon.ndim):
        total = total + torch.nn.functional.l1_loss(torch.diff(recon, dim=axis), torch.diff(target, dim=axis))
    return total / (recon.ndim - 2)


def freeze_latent_space(autoencoder: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Decoder fine-tuning: the encoder and the codebook stop training, so every latent a diffusion U-Net learnt
    still means the same. The quantizer goes to eval mode too: MONAI's codebook moves by EMA in training mode,
    not by gradients. Returns copies of the frozen tensors for the check before the package is written."""
    vqvae = getattr(autoencoder, "vqvae", autoencoder)
    frozen = {}
    for name in ("encoder", "quantizer"):
        part = getattr(vqvae, name)
        part.eval().requires_grad_(False)
        frozen.update({f"{name}.{k}": v.detach().cpu().clone() for k, v in part.state_dict().items()})
    return frozen


def write_decoder_package(request, init, config: dict, autoencoder: torch.nn.Module, frozen: dict, record: dict,
                          new_priors: dict | None = None) -> None:
    """The --init package with the fine-tuned decoder (`config`: its own, or with refinement blocks added): its
    metadata (priors, normalization, diffusion, windows),
    its diffusion weights as stored, and a training record of the decoder run. Refused if the encoder or the
    codebook moved, because the diffusion U-Net would then sample a latent space the decoder no longer reads.
    With `new_priors` (a surround: the painting changed), the priors are those and the package is an autoencoder
    only: the U-Net was trained on the old painting, in its condition and in the latents the encoder made from it."""
    vqvae = getattr(autoencoder, "vqvae", autoencoder)
    now = {f"{name}.{k}": v for name in ("encoder", "quantizer") for k, v in getattr(vqvae, name).state_dict().items()}
    moved = [k for k, v in frozen.items() if not torch.equal(v, now[k].detach().cpu())]
    if moved:
        raise SynthError(f"decoder fine-tuning changed the latent space ({moved[0]}); this is a bug, please report it")
    metadata = {k: v for k, v in init.metadata.items() if k not in ("format", "format_version", "version")}
    metadata["name"] = Path(request.out).name
    metadata["autoencoder"] = {**metadata["autoencoder"], "config": config}
    metadata["training"] = {**metadata.get("training", {}), "decoder": record}
    if new_priors is not None:
        metadata["priors"] = new_priors
        for key in ("diffusion", "metrics"):  # the U-Net, and figures measured with it (scripts/quality.py --record)
            metadata.pop(key, None)
        metadata["training"].pop("diffusion", None)
    if "diffusion" in metadata:
        metadata["diffusion"]["decode_window"] = decode_window(init.label_aware)
    weights = {AUTOENCODER_WEIGHTS: autoencoder}
    if "diffusion" in metadata:
        weights[DIFFUSION_WEIGHTS] = read_weights(init.path / DIFFUSION_WEIGHTS)
    save_package(request.out, metadata, weights)


def warm_start(module: torch.nn.Module, state: dict) -> int:
    """Copy every tensor of `state` into `module`'s tensor of the same name, whole where the shapes agree,
    else their common leading slice (the image channel of a 2-channel input, the first output feature, the
    first codes of a codebook). The rest keeps its fresh initialisation."""
    own = module.state_dict()
    copied = 0
    with torch.no_grad():
        for name, value in state.items():
            target = own.get(name)
            if target is None or target.ndim != value.ndim:
                continue
            common = tuple(slice(0, min(v, t)) for v, t in zip(value.shape, target.shape))
            target[common] = value[common]
            copied += 1
    module.load_state_dict(own)
    return copied


def _ddp_reconstruct(model, x, guide=None):
    """Under DDP the forward must go through the wrapper so gradients are all-reduced."""
    recon, codebook_loss = model(x) if guide is None else model(x, guide)
    return recon.float(), codebook_loss
