"""Model package metadata without torch: what the Slicer bridge needs to match labels and list models."""
from __future__ import annotations

import json
from pathlib import Path

from ...errors import SynthError

FORMAT = "semanticsynth-model"
FORMAT_VERSION = 1
DEFAULT_GENERATORS = {"ct": "abdomen-ct", "mri": "brain-mri"}
DEFAULT_TRANSLATOR = "brain-t1-to-t2like"
# What to do when a package of another kind was given where one of these is needed.
KIND_HINTS = {"generator": f"choose a generator model such as {DEFAULT_GENERATORS['mri']} or {DEFAULT_GENERATORS['ct']}",
              "translator": f"choose a translator model such as {DEFAULT_TRANSLATOR}",
              "segmenter": "train one with semanticsynth train-segmenter"}


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
        raise SynthError(f"{Path(path).name} is a {found} package, not a {kind} package; {KIND_HINTS[kind]}")
    if kind == "generator" and complete and "diffusion" not in meta:
        raise SynthError(f"{Path(path).name} holds only an autoencoder; train its diffusion model with semanticsynth "
                         "train-diffusion, or choose a complete model package")
    return meta
