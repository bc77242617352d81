"""Model packages: a folder with metadata.json and safetensors weights. Loading never runs code."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .. import __version__
from ..errors import SynthError
from .labels import LabelTable
from .networks import LatentDenoiser, autoencoder_factor, build_autoencoder

FORMAT = "semanticsynth-model"
FORMAT_VERSION = 1
AUTOENCODER_WEIGHTS = "autoencoder.safetensors"
DIFFUSION_WEIGHTS = "diffusion.safetensors"


def default_model_dir() -> Path:
    """The bundled default packages live beside the library so Slicer and pip installs both find them."""
    return Path(__file__).resolve().parents[1] / "models"


def resolve_model(name_or_path: str | None, modality: str | None = None) -> Path:
    """A folder path, or the name of a bundled package; None picks the bundled default for the modality."""
    if name_or_path:
        path = Path(name_or_path)
        if path.exists() or os.sep in name_or_path:
            return path
        bundled = default_model_dir() / name_or_path
        if bundled.exists():
            return bundled
        raise SynthError(f"model '{name_or_path}' not found; give a model folder or a bundled name: {', '.join(bundled_models())}")
    default = {"ct": "abdomen-ct", "mri": "brain-mri"}.get(modality or "mri", "brain-mri")
    return default_model_dir() / default


def bundled_models() -> list[str]:
    root = default_model_dir()
    return sorted(p.name for p in root.iterdir() if (p / "metadata.json").exists()) if root.exists() else []


def _load_weights(module: torch.nn.Module, path: Path) -> None:
    if not path.exists():
        raise SynthError(f"model file missing: {path}; reinstall or retrain the model package")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise SynthError(f"model file corrupt: {path.name} ({str(exc).splitlines()[0]}); reinstall the model package") from None
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError:
        raise SynthError(f"model file {path.name} does not match the network in metadata.json; the package is inconsistent") from None


@dataclass
class ModelPackage:
    path: Path
    metadata: dict
    autoencoder: torch.nn.Module
    denoiser: LatentDenoiser | None = None
    labels: LabelTable = field(default=None)

    @property
    def modalities(self) -> list[str]:
        return list(self.metadata["modalities"])

    @property
    def working_spacing(self) -> tuple[float, float, float]:
        return tuple(float(s) for s in self.metadata["working_spacing"])

    @property
    def factor(self) -> int:
        return autoencoder_factor(self.metadata["autoencoder"]["config"])

    @property
    def conditioning(self) -> str:
        return self.metadata["diffusion"]["conditioning"]

    def normalization(self, modality: str) -> dict:
        return self.metadata["normalization"][modality]

    def modality_index(self, modality: str) -> int:
        if modality not in self.modalities:
            raise SynthError(f"this model generates {', '.join(self.modalities)}, not {modality}; choose --modality {self.modalities[0]} or another model")
        return self.modalities.index(modality)


def _read_metadata(path: Path) -> dict:
    meta_path = path / "metadata.json"
    if not path.is_dir():
        raise SynthError(f"model folder not found: {path}; pass --model with a model package folder")
    if not meta_path.exists():
        raise SynthError(f"{path} is not a model package (no metadata.json); pass a folder made by semanticsynth training")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SynthError(f"metadata.json of {path} is corrupt ({exc.__class__.__name__}); reinstall the model package") from None
    if meta.get("format") != FORMAT:
        raise SynthError(f"{path} is not a SemanticSynth model package (format {meta.get('format')!r})")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise SynthError(f"model package {path.name} needs a newer SemanticSynth (format {meta['format_version']}); upgrade")
    for key in ("label_table", "modalities", "normalization", "working_spacing", "autoencoder"):
        if key not in meta:
            raise SynthError(f"metadata.json of {path} lacks '{key}'; the package is incomplete")
    return meta


def load_package(path: str | Path, need_diffusion: bool = True, device: str = "cpu") -> ModelPackage:
    path = Path(path)
    meta = _read_metadata(path)
    if need_diffusion and "diffusion" not in meta:
        raise SynthError(f"{path} holds only an autoencoder; train the diffusion model with semanticsynth train-diffusion")
    labels = LabelTable.from_json(meta["label_table"])
    autoencoder = build_autoencoder(meta["autoencoder"]["config"])
    _load_weights(autoencoder, path / AUTOENCODER_WEIGHTS)
    denoiser = None
    if "diffusion" in meta:
        d = meta["diffusion"]
        denoiser = LatentDenoiser(meta["autoencoder"]["config"]["embedding_dim"], labels.num_classes,
                                  d["conditioning"], len(meta["modalities"]), d["config"])
        _load_weights(denoiser, path / DIFFUSION_WEIGHTS)
        denoiser.to(device).eval()
    return ModelPackage(path, meta, autoencoder.to(device).eval(), denoiser, labels)


def save_package(path: str | Path, metadata: dict, autoencoder: torch.nn.Module, denoiser: torch.nn.Module | None) -> Path:
    """Write into a temp folder, then swap it into place, so a reader never sees half a package."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "version": __version__, **metadata}
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in autoencoder.state_dict().items()}, str(tmp / AUTOENCODER_WEIGHTS))
        if denoiser is not None:
            save_file({k: v.detach().cpu().contiguous() for k, v in denoiser.state_dict().items()}, str(tmp / DIFFUSION_WEIGHTS))
        (tmp / "metadata.json").write_text(json.dumps(metadata, indent=1))
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; a package is meant to be shared
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return path
