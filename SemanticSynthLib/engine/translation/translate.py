"""Source volume -> translated volume + displacement field (+ carried labels), all on the source's grid.

output(x) = translation(x + u(x)): the intensity translator works on the source's working grid, the
spatial transform gives u = exp(v), and the final resampling goes through SimpleITK's
DisplacementFieldTransform, so the written field is exactly the one that made the output.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from ...errors import SynthError
from ..volume.geometry import same_grid, working_grid
from ..volume.intensity import denormalize
from ..volume.io import check_output_path, read_volume, write_volumes
from ..model.networks import autoencoder_factor, build_autoencoder
from ..model.package import load_networks
from ..model.package_metadata import DEFAULT_TRANSLATOR
from ..reporting.progress import Progress
from ..reporting.provenance import stamp, translation_provenance
from ..volume.labels import check_label_volume
from ..volume.volume_kind import volume_kind
from ..synthesis.sampling import (UNET_MULTIPLE, check_steps, decode, denoise, initial_noise, resolved_device,
                                  torch_device)
from ..reporting.results import Result
from ..requests import TranslationRequest
from ..volume.working_image import units_on_grid
from .fields import FIELD_CONVENTION, displacement_transform, field_image, resample_field
from ..model.packing import space_to_depth
from .networks import SPATIAL_FACTOR, TranslationDenoiser, VelocityNet

VELOCITY_MULTIPLE = SPATIAL_FACTOR * 8  # half resolution, then three stride-2 levels


@dataclass
class Translator:
    path: Path
    metadata: dict
    autoencoder: torch.nn.Module
    denoiser: TranslationDenoiser
    velocity: VelocityNet

    @property
    def factor(self) -> int:
        return autoencoder_factor(self.metadata["autoencoder"]["config"])

    @property
    def multiple(self) -> int:
        return int(np.lcm(self.factor * UNET_MULTIPLE, VELOCITY_MULTIPLE))

    @property
    def name(self) -> str:
        return self.path.name  # the package folder, as users name it (bundled name or their path)


def _translator_networks(meta: dict) -> dict:
    ae_config = meta["autoencoder"]["config"]
    return {"autoencoder": (lambda: build_autoencoder(ae_config), "autoencoder.safetensors"),
            "translation U-Net": (lambda: TranslationDenoiser(ae_config["embedding_dim"], autoencoder_factor(ae_config),
                                                              meta["translator"]["config"]), meta["translator"]["weights"]),
            "velocity network": (lambda: VelocityNet(meta["spatial"]["config"]), meta["spatial"]["weights"])}


def load_translator(path: str | Path | None, device: str = "cpu") -> Translator:
    """A translator package (autoencoder, translation U-Net, velocity network), ready for inference."""
    path, meta, built = load_networks(path or DEFAULT_TRANSLATOR, "translator", _translator_networks, device)
    return Translator(path, meta, built["autoencoder"], built["translation U-Net"], built["velocity network"])


def check_source_modality(image: sitk.Image, translator: Translator) -> None:
    """The source must be an intensity volume of the model's source modality (rules: engine/volume/volume_kind.py)."""
    expected = translator.metadata["source"]["modality"]
    contrast = translator.metadata["source"].get("contrast", "")
    values = sitk.GetArrayViewFromImage(image)
    if values.min() == values.max():  # whole numbers in one uniform region: volume_kind would call it a label map
        raise SynthError(f"the source is {'empty' if values.min() == 0 else 'constant'}: every voxel is "
                         f"{float(values.min()):g}, there is no image to translate; give the {expected.upper()} "
                         f"{contrast} volume".rstrip() + " (check that the file is the image you meant)")
    found = volume_kind(image)
    if found == "labels":
        raise SynthError(f"the source looks like a label map (whole-number values in uniform regions), but model "
                         f"{translator.name} translates {expected.upper()} {contrast}".rstrip()
                         + " images; give the intensity volume (carry labels with --labels SEG --labels-out OUT_SEG)")
    if found != expected:
        raise SynthError(f"the source looks like {found.upper()} but model {translator.name} translates "
                         f"{expected.upper()} {contrast}".rstrip() + "; give a matching source or another --model")


def source_unit(translator: Translator, source: sitk.Image) -> tuple[sitk.Image, np.ndarray]:
    """The translator's working grid for this source, and the source on it in model units."""
    grid = working_grid(source, translator.metadata["working_spacing"], translator.multiple)
    return grid, units_on_grid(source, grid, translator.metadata["source"]["normalization"])


def translate_unit(denoiser, autoencoder, settings: dict, source: torch.Tensor, factor: int, steps: int, seed: int,
                   use_bf16: bool, progress: Progress) -> torch.Tensor:
    """The intensity translator alone: source (1,1,X,Y,Z, model units) -> target contrast on the same grid."""
    condition = space_to_depth(source, factor)
    latent_shape = (1, denoiser.latent_channels, *condition.shape[2:])
    latent = denoise(denoiser.forward_packed, initial_noise(latent_shape, seed, source.device), condition,
                     settings["schedule"], steps, int(settings.get("window", 64)), use_bf16, progress)
    return decode(autoencoder, latent, settings["latent_scale"], int(settings.get("decode_window", 64)), use_bf16, progress)


def translation_steps(translator: Translator, asked: int | None) -> int:
    """The DDIM steps of a translation: `asked`, else the package's default; checked against its schedule."""
    settings = translator.metadata["translator"]
    return check_steps(int(asked or settings["default_steps"]), settings["schedule"])


@dataclass
class Translation:
    image: sitk.Image         # translated volume on the source grid
    field: sitk.Image         # displacement field on the source grid, LPS mm, output -> source
    labels: sitk.Image | None  # source labels carried to the output


def translate_volume(translator: Translator, source: sitk.Image, steps: int | None = None, seed: int = 0,
                     deform: bool = True, labels: sitk.Image | None = None, device: str = "cpu",
                     progress: Progress | None = None, use_bf16: bool = True) -> Translation:
    progress = progress or Progress("none")
    dev = torch_device(device)
    meta = translator.metadata
    check_source_modality(source, translator)
    if labels is not None:
        check_label_volume(labels, "the --labels volume")
    if labels is not None and not same_grid(labels, source):
        raise SynthError("the label map is on another grid than the source (size, spacing, origin or direction differ); "
                         "resample it onto the source first")
    settings = meta["translator"]
    steps = translation_steps(translator, steps)
    grid, unit = source_unit(translator, source)
    source_t = torch.from_numpy(unit)[None, None].to(dev)

    progress.stage("spatial transform", 1)
    with torch.no_grad():
        if deform:
            displacement = VelocityNet.displacement(translator.velocity.to(dev)(source_t), source_t.shape[2:])[0]
        else:
            displacement = torch.zeros((3, *source_t.shape[2:]), device=dev)
    progress.update(1)

    translated = translate_unit(translator.denoiser.to(dev), translator.autoencoder.to(dev), settings, source_t,
                                translator.factor, steps, seed, use_bf16, progress)[0, 0].float().cpu().numpy()

    progress.stage("resampling", 1)
    target_norm = meta["target"]["normalization"]
    working = sitk.GetImageFromArray(np.ascontiguousarray(denormalize(translated, target_norm).transpose(2, 1, 0)))
    working.CopyInformation(grid)
    field = resample_field(field_image(displacement.cpu().numpy(), grid), source)
    transform = displacement_transform(field)
    background = float(denormalize(np.zeros(1), target_norm)[0])
    image = sitk.Resample(working, source, transform, sitk.sitkLinear, background, sitk.sitkFloat32)
    carried = None
    if labels is not None:
        carried = sitk.Resample(labels, source, transform, sitk.sitkNearestNeighbor, 0, labels.GetPixelID())
    progress.update(1)
    return Translation(image, field, carried)


def translate(request: TranslationRequest, *, progress: Progress | str | None = None) -> Result:
    """Run a TranslationRequest: every check before any work; every output written atomically, or none.

    Args:
        request: the translation request (engine/requests/translation.py).
        progress: a Progress or its mode ("bar", "json", "none").

    Returns:
        Result with outputs {"out", "field"[, "labels_out"]} and the provenance stamped on the translated volume.
    """
    progress = progress if isinstance(progress, Progress) else Progress(progress or "none")
    outputs = [request.out, request.field] + ([request.labels_out] if request.labels else [])
    if len({str(Path(p).resolve()) for p in outputs}) != len(outputs):
        raise SynthError("the output, field and label outputs must be different files")
    for path in outputs:
        check_output_path(path, request.overwrite)
    source = read_volume(request.source, request.series)
    labels = read_volume(request.labels) if request.labels else None
    translator = load_translator(request.model)
    resolved = request.model_copy(update={
        "device": resolved_device(request.device),
        "steps": translation_steps(translator, request.steps)})
    result = translate_volume(translator, source, resolved.steps, resolved.seed, resolved.deform, labels,
                              resolved.device, progress, not resolved.fp32)
    record = translation_provenance(translator.name, translator.metadata, resolved, FIELD_CONVENTION)
    stamp(result.image, record)
    # All or nothing: each output is written beside its target and read back, then all are renamed together,
    # and the user's previous files come back if any step fails.
    write_volumes([(image, path) for image, path in ((result.image, request.out), (result.field, request.field),
                                                      (result.labels, request.labels_out)) if image is not None],
                  request.overwrite)
    progress.message(f"wrote {request.out} and {request.field}", output=str(request.out), field=str(request.field))
    written = {"out": str(request.out), "field": str(request.field)}
    if request.labels_out:
        written["labels_out"] = str(request.labels_out)
    return Result("translate", written, record, {})
