"""Model package metadata without torch: what the Slicer bridge needs to match labels and list models."""
from __future__ import annotations

import json
from pathlib import Path

from ...errors import SynthError
from ..volume.modalities import DEFAULT_MODALITY, MODALITIES, default_generator

FORMAT = "semanticsynth-model"
FORMAT_VERSION = 1
DEFAULT_TRANSLATOR = "brain-t1-to-t2like"
# What to do when a package of another kind was given where one of these is needed (generators: kind_hint).
KIND_HINTS = {"translator": f"choose a translator model such as {DEFAULT_TRANSLATOR}",
              "segmenter": "train one with semanticsynth train-segmenter"}


def kind_hint(kind: str) -> str:
    """KIND_HINTS; for a generator, the registered modalities' default generators (the default modality's first)."""
    if kind != "generator":
        return KIND_HINTS[kind]
    names = dict.fromkeys([default_generator(DEFAULT_MODALITY)]
                          + [m.default_generator for m in MODALITIES.values() if m.default_generator])
    return f"choose a generator model such as {' or '.join(names)}"


def default_model_dir() -> Path:
    """The bundled default packages live beside the library so Slicer and pip installs both find them."""
    return Path(__file__).resolve().parents[2] / "models"  # SemanticSynthLib/models


def bundled_models(kind: str | None = None) -> list[str]:
    """Names of the bundled packages, optionally only generators or only translators."""
    root = default_model_dir()
    names = sorted(p.name for p in root.iterdir() if (p / "metadata.json").exists()) if root.exists() else []
    if kind is None:
        return names
    return [n for n in names if package_kind(json.loads((root / n / "metadata.json").read_text(encoding="utf-8"))) == kind]


def package_kind(meta: dict) -> str:
    """generator, translator or segmenter; packages from before kinds were recorded are generators."""
    return meta.get("kind", "generator")


def read_metadata(path: Path) -> dict:
    """A package's metadata.json, checked against the schema (engine/model/schema.py) before anything uses it."""
    path = Path(path)
    meta_path = path / "metadata.json"
    if not path.is_dir():
        raise SynthError(f"model package folder not found: {path}; check the path, or give a bundled name: "
                         f"{', '.join(bundled_models())}")
    if not meta_path.is_file():
        raise SynthError(f"{path} is not a model package (no metadata.json); pass a folder made by semanticsynth training")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise SynthError(f"metadata.json of {path} is corrupt ({exc.__class__.__name__}); reinstall the model package") from None
    if not isinstance(meta, dict):
        raise SynthError(f"metadata.json of {path} is not a JSON object; reinstall or retrain the model package")
    if meta.get("format") != FORMAT:
        raise SynthError(f"{path} is not a SemanticSynth model package (format {meta.get('format')!r})")
    version = meta.get("format_version", 0)
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise SynthError(f"model package {path.name} needs a newer SemanticSynth (format {version}); upgrade")
    from .schema import validate_metadata  # pydantic only where a package is read

    return validate_metadata(meta, str(path))


def read_package_metadata(path: Path, kind: str, complete: bool = True) -> dict:
    """read_metadata, for a package that must be of `kind`: one message for every place that needs a kind.

    complete: a generator must hold its diffusion model too (train-diffusion reads autoencoder-only ones)."""
    meta = read_metadata(path)
    found = package_kind(meta)
    if found != kind:
        raise SynthError(f"{Path(path).name} is a {found} package, not a {kind} package; {kind_hint(kind)}")
    if kind == "generator" and complete and "diffusion" not in meta:
        raise SynthError(f"{Path(path).name} holds only an autoencoder; train its diffusion model with semanticsynth "
                         "train-diffusion, or choose a complete model package")
    return meta


def for_modality(priors_meta: dict, modality: str) -> dict:
    """A package's priors for one modality: {"mri": {...}, "ct": {...}}, or (a single-modality package of the
    first label-aware version) the measured block itself."""
    if "measured" in priors_meta:
        return priors_meta
    return priors_meta.get(modality, {})


def sampling_defaults(meta: dict, modality: str | None = None) -> dict:
    """A generator package's defaults for the options a request may leave out: the one place they are read.

    modality: the package's first one unless given; steps, guidance and temperature from its diffusion record;
    phase: the contrast phase of its training data for that modality (CT; None where not recorded), which the
    priors follow when no --phase is given."""
    diffusion = meta.get("diffusion", {})
    modality = modality or (meta.get("modalities") or [None])[0]
    return {"modality": modality, "steps": int(diffusion.get("default_steps", 20)),
            "guidance": float(diffusion.get("guidance", 1.0)), "temperature": float(diffusion.get("temperature", 1.0)),
            "phase": for_modality(meta.get("priors") or {}, modality).get("phase")}


def resolved_guidance(meta: dict, asked: float | None, name: str = "the model") -> float:
    """The guidance scale to use: `asked`, else the package's. Above 1 needs a U-Net trained with condition dropout."""
    scale = sampling_defaults(meta)["guidance"] if asked is None else float(asked)
    if scale != 1.0 and not meta.get("diffusion", {}).get("condition_dropout", 0.0):
        raise SynthError(f"--guidance {scale:g} needs a model trained with --condition-dropout; {name} was not, "
                         "so leave --guidance out")
    return scale
