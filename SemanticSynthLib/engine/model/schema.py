"""The model package's metadata.json, validated in one place (pydantic) before any work.

Every field that the engine reads is type- and range-checked: spacings > 0, finite scales, a known
noise schedule, label ids in range, network sizes that a laptop can hold, weight file names without
folders. Keys that this version does not know are allowed (newer packages add them), so validation is
strict about what exists and silent about the rest. A failure is one line naming the field.
"""
from __future__ import annotations

import re
from typing import Annotated, Literal, Union

from pydantic import (AfterValidator, BaseModel, ConfigDict, Discriminator, Field, StrictBool, StrictInt, StrictStr,
                      Tag, ValidationError, field_validator, model_validator)

from ...errors import SynthError
from ..volume.modalities import DEFAULT_MODALITY, MODALITIES
from ...checks import GUIDANCE, STEPS, TEMPERATURE
from .conditioning_modes import MODES

MAX_CHANNELS = 1024     # per network level; the bundled models use 16..64
MAX_LEVELS = 8
MAX_LABEL_ID = 2 ** 31 - 1
SCHEDULES = ("linear_beta", "scaled_linear_beta", "sigmoid_beta", "cosine")  # MONAI's NoiseSchedules
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")

Finite = Annotated[float, Field(allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Channels = Annotated[StrictInt, Field(ge=1, le=MAX_CHANNELS)]


def _weights_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\.safetensors", name):
        raise ValueError("must be a file name in the package folder ending in .safetensors")
    return name


WeightsName = Annotated[StrictStr, AfterValidator(_weights_name)]
def _registered_modality(name: str) -> str:
    """A modality of the registry (engine/volume/modalities.py), read when a package is checked."""
    if name not in MODALITIES:
        names = [repr(m) for m in MODALITIES]
        raise ValueError(f"Input should be {', '.join(names[:-1])} or {names[-1]}" if len(names) > 1
                         else f"Input should be {names[0]}")
    return name


Modality = Annotated[StrictStr, AfterValidator(_registered_modality)]


def _units_of_modality(normalization: dict, modalities) -> None:
    """A normalization that records its units records its modality's: priors and calibration find the modality by them."""
    for name in modalities:
        norm = normalization.get(name)
        units = getattr(norm, "units", None) if norm is not None else None
        if units is not None and units != MODALITIES[name].units:
            raise ValueError(f"normalization of {name} is in {units!r}, but {name} is in {MODALITIES[name].units!r}")


class Open(BaseModel):
    """Known fields strict, unknown ones kept: newer packages may add keys."""

    model_config = ConfigDict(extra="allow", strict=True)


class PiecewiseLinear(Open):
    kind: Literal["piecewise_linear"]
    source_knots: list[Finite] = Field(min_length=2)
    unit_knots: list[Finite] = Field(min_length=2)

    @model_validator(mode="after")
    def _increasing(self):
        if len(self.source_knots) != len(self.unit_knots):
            raise ValueError("source_knots and unit_knots must have the same length")
        for name in ("source_knots", "unit_knots"):
            knots = getattr(self, name)
            if any(b <= a for a, b in zip(knots, knots[1:])):
                raise ValueError(f"{name} must increase strictly")
        return self


class PercentileScale(Open):
    kind: Literal["percentile_scale"]
    percentile: Annotated[float, Field(gt=0, le=100, allow_inf_nan=False)]
    scale: Positive


Normalization = Annotated[Union[PiecewiseLinear, PercentileScale], Field(discriminator="kind")]


class Label(Open):
    id: Annotated[StrictInt, Field(ge=1, le=MAX_LABEL_ID)]
    name: StrictStr = Field(min_length=1)
    color: list[Annotated[StrictInt, Field(ge=0, le=255)]] | None = Field(default=None, min_length=3, max_length=4)
    synonyms: list[StrictStr] = []


class LabelTable(Open):
    name: StrictStr = "custom"
    labels: list[Label]

    @field_validator("labels")
    @classmethod
    def _unique(cls, labels):
        ids = [lab.id for lab in labels]
        if len(set(ids)) != len(ids):
            raise ValueError("label ids must be unique")
        return labels


def _check_levels(values: list, name: str) -> None:
    if not 1 <= len(values) <= MAX_LEVELS:
        raise ValueError(f"{name} must have 1 to {MAX_LEVELS} levels")


class VQVAEConfig(Open):
    spatial_dims: Literal[3] = 3
    in_channels: Channels = 1
    out_channels: Channels = 1
    channels: list[Channels]
    num_res_channels: list[Channels]
    num_res_layers: Annotated[StrictInt, Field(ge=0, le=16)]
    downsample_parameters: list[list[Annotated[StrictInt, Field(ge=0, le=16)]]]
    upsample_parameters: list[list[Annotated[StrictInt, Field(ge=0, le=16)]]]
    num_embeddings: Annotated[StrictInt, Field(ge=2, le=65536)]
    embedding_dim: Annotated[StrictInt, Field(ge=1, le=256)]

    @model_validator(mode="after")
    def _levels(self):
        _check_levels(self.channels, "channels")
        n = len(self.channels)
        if len(self.num_res_channels) != n or len(self.downsample_parameters) != n or len(self.upsample_parameters) != n:
            raise ValueError("channels, num_res_channels, downsample_parameters and upsample_parameters need one entry per level")
        if any(len(p) != 4 or p[0] < 1 for p in self.downsample_parameters):
            raise ValueError("downsample_parameters are [stride >= 1, kernel, dilation, padding] per level")
        if any(len(p) != 5 or p[0] < 1 for p in self.upsample_parameters):
            raise ValueError("upsample_parameters are [stride >= 1, kernel, dilation, padding, output_padding] per level")
        return self


# Label-modulated refinement blocks in the label-aware decoder's full-resolution head. One at most: the decoder's
# reach (VQVAE +-31 voxels, head +-2, each block +-2) must stay within the tile halo (sampling.DECODE_HALO, 36).
MAX_HEAD_BLOCKS = 1


class LabelVQVAEConfig(Open):
    kind: Literal["label_vqvae"]
    vqvae: VQVAEConfig
    head_channels: Channels
    guide_hidden: Channels
    kind_embedding: Channels
    codebook_groups: Annotated[StrictInt, Field(ge=1, le=256)] = 1
    head_blocks: Annotated[StrictInt, Field(ge=0, le=MAX_HEAD_BLOCKS)] = 0

    @model_validator(mode="after")
    def _groups(self):
        if self.vqvae.embedding_dim % self.codebook_groups:
            raise ValueError(f"codebook_groups ({self.codebook_groups}) must divide embedding_dim ({self.vqvae.embedding_dim})")
        return self


def _autoencoder_kind(value) -> str:
    kind = value.get("kind") if isinstance(value, dict) else None
    return "plain" if kind is None else str(kind)


class Autoencoder(Open):
    config: Annotated[Union[Annotated[LabelVQVAEConfig, Tag("label_vqvae")], Annotated[VQVAEConfig, Tag("plain")]],
                      Discriminator(_autoencoder_kind, custom_error_type="kind",
                                    custom_error_message="unknown autoencoder kind")]
    weights: WeightsName = "autoencoder.safetensors"


class Schedule(Open):
    num_train_timesteps: Annotated[StrictInt, Field(ge=1, le=100000)]
    schedule: Literal[SCHEDULES]
    beta_start: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = 1e-4
    beta_end: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = 2e-2
    prediction_type: Literal[PREDICTION_TYPES] = "epsilon"

    @model_validator(mode="after")
    def _order(self):
        if self.beta_start >= self.beta_end:
            raise ValueError("beta_start must be below beta_end")
        return self


class UNetConfig(Open):
    channels: list[Channels]
    attention_levels: list[StrictBool]
    num_res_blocks: Annotated[StrictInt, Field(ge=1, le=8)]
    num_head_channels: Channels
    norm_num_groups: Channels

    @model_validator(mode="after")
    def _levels(self):
        _check_levels(self.channels, "channels")
        if len(self.attention_levels) != len(self.channels):
            raise ValueError("attention_levels needs one entry per level of channels")
        if any(c % self.norm_num_groups for c in self.channels):
            raise ValueError("every channel count must be a multiple of norm_num_groups")
        return self


Window = Annotated[StrictInt, Field(ge=4, le=4096)]


class Sampler(Open):
    """What generation and translation share: the schedule, the latent scale, steps and windows."""

    config: UNetConfig
    weights: WeightsName = "diffusion.safetensors"
    schedule: Schedule
    latent_scale: Positive
    default_steps: Annotated[StrictInt, AfterValidator(STEPS)] = 20
    window: Window = 32
    decode_window: Window = 64  # decoded tiles hold at most decode_window^3 latent voxels (sampling.decode)

    @model_validator(mode="after")
    def _steps(self):
        if self.default_steps > self.schedule.num_train_timesteps:
            raise ValueError(f"default_steps must be at most schedule.num_train_timesteps ({self.schedule.num_train_timesteps})")
        return self


def _conditioning(name: str) -> str:
    if name not in MODES:  # read when a package is validated: the registry, not a copy of it
        raise ValueError(f"must be one of {', '.join(MODES)}")
    return name


class Diffusion(Sampler):
    conditioning: Annotated[StrictStr, AfterValidator(_conditioning)]
    ema: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] | None = None
    # Classifier-free guidance: the fraction of training samples given the null condition, and the default scale.
    condition_dropout: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)] = 0.0
    # The package's defaults for generation, range-checked by the same checks as the requests (SemanticSynthLib/checks.py).
    guidance: Annotated[float, AfterValidator(GUIDANCE)] = 1.0
    # The default sampling temperature: the starting noise's scale (engine/sampling.initial_noise).
    temperature: Annotated[float, AfterValidator(TEMPERATURE)] = 1.0

    @model_validator(mode="after")
    def _guidance(self):
        if self.guidance != 1.0 and self.condition_dropout == 0.0:
            raise ValueError("guidance above 1 needs a U-Net trained with condition_dropout above 0")
        return self


Spacing = list[Annotated[float, Field(gt=0, le=100, allow_inf_nan=False)]]


class Package(Open):
    format: Literal["semanticsynth-model"]
    format_version: Annotated[StrictInt, Field(ge=0)] = 1
    version: StrictStr | None = None
    name: StrictStr | None = None
    working_spacing: Spacing = Field(min_length=3, max_length=3)


class RefinerConfig(Open):
    channels: Channels
    blocks: Annotated[StrictInt, Field(ge=1, le=8)]
    guide_hidden: Channels
    kind_embedding: Channels


class Refiner(Open):
    """The detail refiner at the output spacing (engine/model/refiner.py)."""

    config: RefinerConfig
    weights: WeightsName = "refiner.safetensors"


def _increasing(values: list, what: str, strictly: bool = True) -> None:
    if any((b <= a) if strictly else (b < a) for a, b in zip(values, values[1:])):
        raise ValueError(f"{what} must {'increase' if strictly else 'not decrease'}")


class Unlabelled(Open):
    """The unlabelled voxels' intensity map of a texture profile (engine/synthesis/unlabelled_intensity.py)."""

    shells_mm: list[Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(min_length=1, max_length=64)
    levels: list[Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]] = Field(min_length=2, max_length=257)
    generated: list[list[Finite]]
    real: list[list[Finite]]

    @model_validator(mode="after")
    def _shapes(self):
        _increasing(self.shells_mm, "shells_mm")
        _increasing(self.levels, "levels")
        for name in ("generated", "real"):
            rows = getattr(self, name)
            if len(rows) != len(self.shells_mm) or any(len(r) != len(self.levels) for r in rows):
                raise ValueError(f"{name} must have one row per shell and one value per level")
            for row in rows:
                _increasing(row, f"each shell's {name} quantiles", strictly=name == "generated")
        return self


class Texture(Open):
    """The scanner-texture profile of one modality (engine/synthesis/scanner_texture.py)."""

    bin_edges: list[Finite] = Field(min_length=2, max_length=257)
    strength: dict[Literal["labels", "outside"], list[Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]]]
    widths: list[Annotated[float, Field(ge=0, le=4, allow_inf_nan=False)]] = Field(min_length=3, max_length=3)
    gain: Positive
    cases: Annotated[StrictInt, Field(ge=1)]
    unlabelled: Unlabelled | None = None

    @model_validator(mode="after")
    def _bins(self):
        if set(self.strength) != {"labels", "outside"}:
            raise ValueError("strength must have the regions labels and outside")
        if any(len(s) != len(self.bin_edges) - 1 for s in self.strength.values()):
            raise ValueError("strength must have one value per bin (len(bin_edges) - 1) in each region")
        _increasing(self.bin_edges, "bin_edges")
        return self


class Generator(Package):
    kind: Literal["generator"] = "generator"
    label_table: LabelTable
    modalities: list[Modality] = Field(min_length=1)
    normalization: dict[Modality, Normalization]
    autoencoder: Autoencoder
    diffusion: Diffusion | None = None
    refiner: Refiner | None = None
    texture: dict[Modality, Texture] | None = None

    @model_validator(mode="after")
    def _modalities(self):
        if len(set(self.modalities)) != len(self.modalities):
            raise ValueError("modalities must not repeat")
        missing = [m for m in self.modalities if m not in self.normalization]
        if missing:
            raise ValueError(f"normalization lacks the modality {missing[0]}")
        return self

    @field_validator("normalization")
    @classmethod
    def _units(cls, normalization):
        _units_of_modality(normalization, normalization)
        return normalization


class Contrast(Open):
    modality: Modality
    contrast: StrictStr | None = None
    normalization: Normalization

    @model_validator(mode="after")
    def _units(self):
        _units_of_modality({self.modality: self.normalization}, [self.modality])
        return self


class SpatialConfig(Open):
    channels: list[Channels]
    strides: list[Annotated[StrictInt, Field(ge=1, le=4)]]
    num_res_units: Annotated[StrictInt, Field(ge=0, le=8)] = 0

    @model_validator(mode="after")
    def _levels(self):
        _check_levels(self.channels, "channels")
        if len(self.strides) != len(self.channels) - 1:
            raise ValueError("strides needs one entry fewer than channels")
        return self


class Spatial(Open):
    config: SpatialConfig
    weights: WeightsName
    resolution_factor: Annotated[StrictInt, Field(ge=1, le=8)] = 2
    squaring_steps: Annotated[StrictInt, Field(ge=0, le=20)] = 7


class TranslatorSampler(Sampler):
    pass


class Translator(Package):
    kind: Literal["translator"]
    source: Contrast
    target: Contrast
    autoencoder: Autoencoder
    translator: TranslatorSampler
    spatial: Spatial


class Group(Open):
    id: Annotated[StrictInt, Field(ge=1, le=MAX_LABEL_ID)]
    name: StrictStr
    members: list[Annotated[StrictInt, Field(ge=1, le=MAX_LABEL_ID)]]


class Groups(Open):
    name: StrictStr = "groups"
    groups: list[Group] = Field(min_length=1)


class SegmenterConfig(Open):
    init_filters: Channels
    blocks_down: list[Annotated[StrictInt, Field(ge=1, le=16)]]
    blocks_up: list[Annotated[StrictInt, Field(ge=1, le=16)]]
    dropout_prob: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)] = 0.0

    @model_validator(mode="after")
    def _levels(self):
        _check_levels(self.blocks_down, "blocks_down")
        if len(self.blocks_up) != len(self.blocks_down) - 1:
            raise ValueError("blocks_up needs one entry fewer than blocks_down")
        return self


class SegmenterNet(Open):
    config: SegmenterConfig
    weights: WeightsName
    window: Annotated[StrictInt, Field(ge=8, le=4096)] = 80
    class_weights: list[Annotated[float, Field(ge=0, allow_inf_nan=False)]] | None = None


class Segmenter(Package):
    kind: Literal["segmenter"]
    groups: Groups
    modalities: list[Modality] = Field(default=[DEFAULT_MODALITY], min_length=1)
    normalization: dict[Modality, Normalization]
    segmenter: SegmenterNet
    label_means: dict[StrictStr, Finite] = {}

    @field_validator("normalization")
    @classmethod
    def _units(cls, normalization):
        _units_of_modality(normalization, normalization)
        return normalization


KINDS = {"generator": Generator, "translator": Translator, "segmenter": Segmenter}


def _where(loc) -> str:
    """pydantic's location as a dotted field name, without the union branch names it inserts."""
    parts = []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif part in ("label_vqvae", "plain", "piecewise_linear", "percentile_scale") or part.startswith("function-"):
            continue
        else:
            parts.append(("." if parts else "") + str(part))
    return "".join(parts) or "(top level)"


def _value(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def validate_metadata(meta, where: str) -> dict:
    """Check a package's metadata; raise one SynthError line naming the first bad field. Returns `meta`."""
    if not isinstance(meta, dict):
        raise SynthError(f"metadata.json of {where} is not a JSON object; reinstall or retrain the model package")
    kind = meta.get("kind", "generator")
    if kind not in KINDS:
        raise SynthError(f"{where} is a {kind!r} package, which this SemanticSynth does not know; upgrade")
    try:
        KINDS[kind].model_validate(meta)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        field = _where(first["loc"])
        shown = "input" in first and not isinstance(first["input"], (dict, list)) and first["type"] != "missing"
        got = f" (got {_value(first['input'])})" if shown else ""
        raise SynthError(f"metadata.json of {where}: field {field}: {message}{got}; the package is broken, "
                         "retrain or reinstall it") from None
    return meta
