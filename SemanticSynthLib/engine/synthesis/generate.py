"""Label map -> volume: resample in, denoise latents (in overlapping windows), decode, resample out."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from ..model.conditioning import label_condition
from ..model.cpu_convolution import releasing_layers
from ..volume.geometry import edge_margins, extend_edges, inside_input, resample_intensity, resample_labels, working_grid
from ..volume.intensity import denormalize, model_units
from ..volume.io import array_of, check_output_path, read_volume, write_volume, write_volumes
from ..volume.memory import release_freed_memory, voxel_limit
from ..volume.labels import (class_index_dtype, load_name_mapping, segment_names, segment_names_as_written,
                             to_class_indices)
from .label_vocabulary import read_in_vocabulary
from .uncertainty import SampleStatistics, spread_per_label
from ..volume.vocabularies import candidates
from .bowel_gas import place_bowel_gas
from .bone_thickness import bone_priors
from .body_outline import shape_body
from .detail import refine_detail, refines
from .scanner_texture import add_texture
from .unlabelled_intensity import map_unlabelled
from ..volume.modalities import MODALITIES
from ..model.package import ModelPackage, load_package
from .calibration import calibrate as calibrate_output, calibration_check
from ..model.package_metadata import sampling_defaults
from ..reporting.results import Result, flagged_labels
from ..requests import GenerationRequest
from ..model.priors import lesion_entries, load_overrides
from .lesions import lesion_requests, present_ids, with_lesions, without_lesions
from ..model.store import download_reporter, resolve_model
from ..reporting.progress import Progress
from ..reporting.provenance import generation_provenance, stamp
from .region_edit import (KnownLatents, RegionEdit, blend_box, blend_edit, changed_on_grid, crop_of, decoded_box,
                          edit_normalization,
                          encoded, existing_priors, known_units, latent_box, latent_mask, matched_noise, region_edit,
                          sub_grid, working_box)
from .sampling import (EDGE_MARGIN, UNET_MULTIPLE, check_steps, decode, denoise, initial_noise,
                       resolved_device, torch_device, with_fp32_fallback)


# From this many voxels of the label map's own grid (about 406^3; 0.25 GB of float32 output), the C heap's free pages
# are given back between the stages and after each large layer of the networks (volume/memory.release_freed_memory,
# model/cpu_convolution.releasing_layers): the map's full-resolution arrays then take much of the memory. A 512^3 map
# at 1 mm (brain-mri) peaked at 1.45-1.50 GB without the layers' releases, 1.63 GB with neither, 1.31 GB with both
# (the layers' 8% slower). On smaller maps they would mostly cost time, the pages being faulted in again: 18% on
# 256x256x128 for the layers', about 0.1 s of 1.2 s on 128^3 for the stages' (alternated runs, 2 shared cores).
RELEASE_VOXELS = 2 ** 26


def generate_volume(package: ModelPackage, label_map: sitk.Image, *, modality: str | None = None,
                    steps: int | None = None, seed: int = 0, device: str = "cpu", progress: Progress | None = None,
                    window: int | None = None,
                    use_bf16: bool = True, mapping: dict | None = None, unknown: str = "error",
                    phase: str | None = None, prior_overrides: dict | None = None,
                    calibrate: bool = True, guidance: float | None = None,
                    temperature: float | None = None, bowel_gas: str | None = None, refine: bool = True,
                    texture: bool = True, edit: RegionEdit | None = None) -> sitk.Image:
    """Generate a volume on exactly the label map's grid; intensities in HU (CT) or scanner units (MRI).

    The library call under `generate` (which reads and writes the files of a GenerationRequest): every option is
    keyword-only and named as the request's field is, except `use_bf16` (not fp32), `unknown` (unknown_labels),
    `mapping` (the loaded label mapping) and `prior_overrides` (the loaded priors file). None: the package's default.

    A label-aware package also checks the network's output against its priors: labels whose mean falls
    outside the prior's range, and labels it never saw in training, are reported in the progress stream
    and in the image's metadata (SemanticSynth_calibration, SemanticSynth_unseen_labels). With `calibrate`
    each label's mean is then moved onto its prior (texture kept).

    A package with a detail refiner, given a map finer than its working spacing, refines the upsampled volume on the
    map's own grid (`refine`; engine/synthesis/detail.py), recorded as SemanticSynth_refined.

    A package with a scanner-texture profile for the modality adds it on the working grid, where it was measured
    (`texture`; engine/synthesis/scanner_texture.py), recorded as SemanticSynth_scanner_texture; not to a region edit.
    A profile with an unlabelled-intensity map first maps the voxels outside the labels onto the training scans'
    intensities at their distance from the labels (engine/synthesis/unlabelled_intensity.py; also switched by
    `texture`).

    `edit` (engine/synthesis/region_edit.py): only the region of an existing volume is regenerated, the rest of it is
    returned unchanged; the calibration then reads the box around the region.
    """
    progress = progress or Progress("none")
    dev = torch_device(device)
    large = math.prod(label_map.GetSize()) >= RELEASE_VOXELS

    def release():  # between the stages, on a large map (RELEASE_VOXELS)
        if large:
            release_freed_memory()

    modality = modality or package.modalities[0]
    modality_index = package.modality_index(modality)
    diffusion = package.metadata["diffusion"]
    steps = check_steps(int(steps or package.default_steps), diffusion["schedule"])
    factor = package.factor
    # Where the map's outermost slices hold labels, a margin of replicated labels puts them inside the volume.
    grid = working_grid(label_map, package.working_spacing, factor * UNET_MULTIPLE,
                        edge_margins(label_map, EDGE_MARGIN * factor))
    norm = package.normalization(modality)
    priors = package.priors(modality, phase, prior_overrides)
    # The working grid reaches past the label map: replicate the edge labels there (cropped later).
    classes = to_class_indices(array_of(resample_labels(extend_edges(label_map, grid), grid)), package.labels, mapping, unknown)
    gas, bones, body = {}, {}, {}
    table_classes = package.labels.num_classes  # classes added for this map (gas, the body's outline) come after
    if priors is not None and MODALITIES[modality].phases:
        # CT: classes added for this map (gas and content, the body's outline), then each bone's prior from its
        # thickness; the priors are built once, on the final table.
        if bowel_gas is not None:
            package, classes, gas = place_bowel_gas(package, classes, grid, bowel_gas, seed)
        package, classes, body = shape_body(package, classes, grid.GetSpacing())
        bones = bone_priors(classes, grid.GetSpacing(), package.labels)
        if gas or body or bones:
            priors = package.priors(modality, phase, {**bones, **(prior_overrides or {})})
    # From here on the class map is held in the smallest integer type that holds every class and the spare index
    # num_classes (the calibration's voxels outside the map): on a 256^3 working grid 17 MB instead of int64's 134 MB
    # (a 512^3 map at 1 mm, brain-mri: denoising peaked at 1.38 GB with int64 classes, 1.27 GB with uint8).
    classes = classes.astype(class_index_dtype(package.labels.num_classes))
    if edit is not None:  # denoised: the region's box with context (inner); decoded: the region's own (output)
        norm = edit_normalization(norm, edit.existing)
        region = changed_on_grid(edit, label_map, grid)
        inner, output = latent_box(region, factor), decoded_box(region, factor)
    else:
        inner = output = tuple(slice(0, n // factor) for n in classes.shape)
    box_classes = classes[working_box(output, factor)]
    latent_shape = (1, package.latent_channels, *(s.stop - s.start for s in inner))
    modality_t = torch.tensor([modality_index], device=dev)
    denoiser = package.denoiser.to(dev)
    autoencoder = package.autoencoder.to(dev)

    def sample(bf16: bool) -> torch.Tensor:
        inpaint = None
        if edit is not None:  # the existing volume's latents, kept outside the region
            known = encoded(autoencoder, known_units(edit.existing, grid, norm), classes, priors, inner, factor, dev,
                            bf16) * float(diffusion["latent_scale"])
            # New latents in the region only: in the margin the decoder continues the existing volume's latents, so
            # the blend there mixes the existing volume with its own reconstruction and the new tissue's edge.
            core = changed_on_grid(edit, label_map, grid, margin=False)
            inpaint = KnownLatents(known, latent_mask(core[working_box(inner, factor)], factor), seed)
        # The condition is built here, not kept for the fp32 retry, and inline, so that denoise() holds its only
        # reference and frees it once packed beside the latent.
        latent = denoise(lambda packed, t: denoiser.forward_packed(packed, t, modality_t.expand(packed.shape[0])),
                         initial_noise(latent_shape, seed, dev, package.temperature(temperature)),
                         label_condition(torch.from_numpy(classes[working_box(inner, factor)])[None, None],
                                         package.labels.num_classes, factor, package.conditioning, priors,
                                         (grid.GetSpacing(), grid.GetDirection())).to(dev),
                         diffusion["schedule"], steps, int(window or diffusion.get("window", 32)), bf16, progress,
                         package.guidance(guidance), inpaint)
        del inpaint
        release()  # decoding starts without denoising's freed blocks
        return decode(autoencoder, latent[crop_of(output, inner)], diffusion["latent_scale"],
                      int(diffusion.get("decode_window", 64)), bf16, progress, decoder_guide(priors, box_classes),
                      factor)

    with releasing_layers(large):
        unit = with_fp32_fallback(sample, use_bf16, progress)
    unit = unit[0, 0].float().cpu().numpy()
    release()
    values = denormalize(unit, norm)
    box_grid = sub_grid(grid, working_box(output, factor))
    report = None
    if priors is not None:
        inside = inside_input(label_map, box_grid)
        # The check reads the network's own output; the calibration (on by default) then limits each label's
        # spread and moves its mean onto its prior, keeping the texture (engine/synthesis/calibration.py). Both are recorded.
        flagged = calibration_check(values, box_classes, package.labels, priors, norm, inside)
        if calibrate:
            values = calibrate_output(unit, box_classes, priors, norm, inside)
        report = _report(package, modality, box_classes[inside], flagged, calibrate, progress)
    profile = (package.metadata.get("texture") or {}).get(modality) if texture and edit is None else None
    if profile is not None and profile.get("unlabelled"):  # before the texture, which is measured on its output
        values = map_unlabelled(values, box_classes > 0, box_grid.GetSpacing(), profile["unlabelled"],
                                lambda v: model_units(v, norm), lambda u: denormalize(u, norm))
    if profile is not None:  # after the calibration: its texture-keeping spread limit would damp the noise
        values = add_texture(values, box_classes > 0, profile, seed, lambda v: model_units(v, norm),
                             lambda u: denormalize(u, norm))
    background = float(denormalize(np.zeros(1), norm)[0])
    target = label_map if edit is None else blend_box(edit, label_map)
    working = sitk.GetImageFromArray(np.ascontiguousarray(values.transpose(2, 1, 0)))
    working.CopyInformation(box_grid)
    if refine and priors is not None and refines(package, label_map):
        image, refined = refine_detail(package, working, target, box_classes, table_classes, priors, mapping, unknown,
                                       norm, background, use_bf16, progress)
    else:
        # The working grid's arrays go before the map's grid is filled; the resampled volume is then the one
        # full-resolution array besides the map (a 512^3 map at 1 mm, brain-mri: this stage peaked at 1.48 GB with
        # them kept, 1.31 GB without).
        classes = box_classes = unit = values = inside = None
        release()
        image, refined = resample_intensity(working, target, default=background), None
    if edit is not None:
        image, noise = matched_noise(edit, label_map, image, target, seed)
        image = blend_edit(edit, label_map, image, target)
        image.SetMetaData("SemanticSynth_edit", json.dumps({"region_voxels": int(edit.region.sum()),
                                                            "margin_mm": edit.margin_mm, "noise_added": round(noise, 3)}))
    names = {lab.id: lab.name for lab in package.labels.labels}
    bone_means = {names[i]: b["mean"] for i, b in bones.items() if i not in (prior_overrides or {})}  # --priors won
    extra = {"bowel_gas": gas, "body_outline": body, "bone_priors": bone_means, "refined": refined,
             "scanner_texture": profile is not None and {"cases": profile["cases"], "seed": int(seed)}}
    for key, value in {**(report or {}), **{k: v for k, v in extra.items() if v}}.items():
        image.SetMetaData(f"SemanticSynth_{key}", json.dumps(value))
    return image


def decoder_guide(priors, classes: np.ndarray):
    """The decoder's guide for sampling.decode: None without priors; where the painting is voxel by voxel (no
    surround), a function that paints the guide of a tile's region of the class map, so that it is never made for
    the whole working grid; else (a surround spreads the painting) the whole guide, as a tensor."""
    if priors is None:
        return None
    if priors.surround is None:
        return lambda region: torch.from_numpy(priors.guide(classes[region]))[None]
    return torch.from_numpy(priors.guide(classes))[None]


def _report(package, modality: str, classes: np.ndarray, flagged: list, calibrated: bool, progress) -> dict:
    """Unseen labels and the calibration check, to the progress stream and the output's metadata."""
    present = {package.labels.labels[i - 1].id for i in np.flatnonzero(np.bincount(classes)) if i > 0}
    unseen = sorted(present - package.seen_labels(modality))
    if unseen:
        progress.message(f"{len(unseen)} label(s) were not in the training data and follow their priors: "
                         f"{', '.join(map(str, unseen[:20]))}", unseen_labels=unseen)
    if flagged:
        shown = flagged_labels(flagged[:10])
        action = "moved onto their priors" if calibrated else "left as generated (--no-calibrate)"
        progress.message(f"calibration check: {len(flagged)} label(s) came out of the network outside their prior "
                         f"range, {action}: {shown}", calibration=flagged)
    return {"calibration": {"outside_prior_range": flagged, "means_matched_to_priors": calibrated},
            "unseen_labels": unseen}


def outside_to_background(image, label_map, norm: dict):
    """Every voxel of the label map's background set to the model's zero (CT: -1024 HU; MRI: no signal), in place
    (the generated volume is the one full-resolution copy; its metadata, the calibration report and the unseen
    labels, stays with it). Returns the image."""
    image[label_map == 0] = float(denormalize(np.zeros(1), norm)[0])
    return image


def resolve(request: GenerationRequest, package: ModelPackage) -> GenerationRequest:
    """The request with the package's defaults filled in (modality, steps, guidance, temperature) and the device
    resolved: what the output's provenance records. The one place a generation's defaults are resolved; the phase
    stays as asked (None: each label follows the training data's phase, as recorded in the package)."""
    defaults = sampling_defaults(package.metadata, request.modality)
    modality = defaults["modality"]
    package.modality_index(modality)  # a modality the model does not generate fails here
    return request.model_copy(update={
        "modality": modality, "device": resolved_device(request.device),
        "steps": check_steps(request.steps or defaults["steps"], package.metadata["diffusion"]["schedule"]),
        "guidance": package.guidance(request.guidance),  # one the model was not trained for fails here
        "temperature": package.temperature(request.temperature)})


def generate(request: GenerationRequest, *, progress: Progress | str | None = None) -> Result:
    """Run a GenerationRequest: read the label map, generate on its grid, write OUT atomically.

    Args:
        request: the generation request (engine/requests/generation.py).
        progress: a Progress or its mode ("bar", "json", "none").

    Returns:
        Result with outputs {"out": OUT} (and "uncertainty"), the provenance stamped on OUT (model, version, software
        and the resolved request) and the report: the calibration check's flags, the labels unseen in training and,
        with --samples K >= 2, the spread per label (engine/synthesis/uncertainty.py).

    Every check that can fail runs before any work (paths, model, modality, phase, priors, guidance), and the
    request's max_voxels bounds every grid allocated on the way (engine/volume/memory.py).
    """
    with voxel_limit(request.max_voxels):
        return _generate(request, progress if isinstance(progress, Progress) else Progress(progress or "none"))


def _generate(request: GenerationRequest, progress: Progress) -> Result:
    check_output_path(request.out, request.overwrite)
    if request.uncertainty:
        check_output_path(request.uncertainty, request.overwrite)
    label_map = read_volume(request.labels, request.series)
    edit = read_edit(request, label_map)
    package = load_package(resolve_model(request.model, request.modality, download_reporter(progress)), device="cpu")
    if request.samples == 1:
        image, record = synthesize(package, label_map, request, progress, edit)
        write_volume(image, request.out, request.overwrite)
        progress.message(f"wrote {request.out}", output=str(request.out))
        return Result("generate", {"out": str(request.out)}, record, generation_report(image))
    statistics, record = SampleStatistics(), None
    for k in range(request.samples):
        progress.message(f"sample {k + 1} of {request.samples} (seed {request.seed + k})")
        image, first = synthesize(package, label_map, request.model_copy(update={"seed": request.seed + k}), progress,
                                  edit)
        statistics.add(image)
        record = record or first  # the first seed's record: with its samples, it reproduces all K
    mean, std = statistics.images(label_map)
    for key in image.GetMetaDataKeys():  # the last sample's report (calibration, unseen labels)
        mean.SetMetaData(key, image.GetMetaData(key))
    stamp(mean, record)
    spread = spread_per_label(std, label_map, label_names(package, record))
    report = {**generation_report(mean), "uncertainty": {"samples": request.samples, "per_label": spread}}
    outputs = {"out": str(request.out)}
    if request.uncertainty:
        stamp(std, {**record, "uncertainty_of": Path(request.out).name})
        write_volumes([(mean, request.out), (std, request.uncertainty)], request.overwrite)
        outputs["uncertainty"] = str(request.uncertainty)
    else:
        write_volume(mean, request.out, request.overwrite)
    progress.message(f"wrote {', '.join(outputs.values())}", **{"output": str(request.out)})
    return Result("generate", outputs, record, report)


def read_edit(request: GenerationRequest, label_map: sitk.Image) -> RegionEdit | None:
    """--edit's volume and region, read and checked against the label map before any work (None: no edit)."""
    if not request.edit:
        return None
    previous = read_volume(request.previous_labels, request.series) if request.previous_labels else None
    mask = read_volume(request.region, request.series) if request.region else None
    return region_edit(label_map, read_volume(request.edit, request.series), previous, mask, request.margin)


def label_names(package: ModelPackage, record: dict) -> dict[int, str]:
    """The names of the label map's ids: those of the vocabulary it was read in (the model's table by default)."""
    table = (record.get("request") or {}).get("label_table")
    for vocabulary in candidates(package.labels):
        if vocabulary.name == table:
            return {lab.id: lab.name for lab in vocabulary.as_table().labels}
    return {lab.id: lab.name for lab in package.labels.labels}


REPORTED = ("calibration", "unseen_labels", "bowel_gas", "bone_priors", "body_outline", "refined", "scanner_texture",
            "lesions", "edit")


def generation_report(image: sitk.Image) -> dict:
    """What a generated volume's metadata reports beyond its provenance (calibration, unseen labels, the CT rules
    applied, the refinement), as the Result's report."""
    return {key: json.loads(image.GetMetaData(f"SemanticSynth_{key}")) for key in REPORTED
            if image.HasMetaDataKey(f"SemanticSynth_{key}")}


def synthesize(package: ModelPackage, label_map: sitk.Image, request: GenerationRequest,
               progress: Progress, edit: RegionEdit | None = None) -> tuple[sitk.Image, dict]:
    """A label map already read and a package already loaded -> the generated volume, stamped with its provenance,
    and that record: what `generate` does between reading and writing (also per case of make-dataset, whose
    package is loaded once). The request's defaults are resolved, the map's vocabulary read and the priors checked
    before any work. `edit`: the region edit read from request.edit (read_edit), regenerating only that region."""
    resolved = resolve(request, package)
    names, ids = segment_names(label_map), sitk.GetArrayViewFromImage(label_map)
    lesions = lesion_requests(lesion_entries(resolved.priors), segment_names_as_written(label_map), present_ids(ids),
                              package, resolved.priors)
    if resolved.label_mapping:  # the user's own id -> model label mapping: no vocabulary is read into it
        mapping = load_name_mapping(resolved.label_mapping, package.labels, names)
    else:  # the vocabulary is read from the map without its lesions, which no vocabulary names
        package, mapping, table = read_in_vocabulary(package, without_lesions(label_map, lesions), resolved.label_table,
                                                     {n: i for n, i in names.items() if i not in lesions})
        resolved = resolved.model_copy(update={"label_table": table})
    overrides = load_overrides(resolved.priors, package.labels)
    package.priors(resolved.modality, resolved.phase, overrides)  # a bad --phase or --priors fails here
    if edit is not None:  # the labels EXISTING shows keep its own intensities; the user's --priors win
        overrides = {**existing_priors(edit, label_map, package, mapping, resolved.modality), **overrides}
    package, mapping, overrides, placed = with_lesions(package, mapping, ids, lesions, resolved.modality,
                                                       resolved.phase, overrides)
    image = generate_volume(package, label_map, modality=resolved.modality, steps=resolved.steps, seed=resolved.seed,
                            device=resolved.device, progress=progress, window=resolved.window,
                            use_bf16=not resolved.fp32, mapping=mapping, unknown=resolved.unknown_labels,
                            phase=resolved.phase, prior_overrides=overrides,
                            calibrate=resolved.calibrate, guidance=resolved.guidance,
                            temperature=resolved.temperature, bowel_gas=resolved.bowel_gas, refine=resolved.refine,
                            texture=resolved.texture and resolved.samples == 1, edit=edit)
    if resolved.outside_labels == "background":
        image = outside_to_background(image, label_map, package.normalization(resolved.modality))
    if placed:
        image.SetMetaData("SemanticSynth_lesions", json.dumps(placed))
        progress.message("new tissue: " + ", ".join(f"{n} ({v['kind']}, {v['mean']:g} {v['units']})"
                                                     for n, v in placed.items()), lesions=placed)
    record = generation_provenance(package.metadata.get("name", package.path.name), package.metadata, resolved)
    stamp(image, record)
    return image, record
