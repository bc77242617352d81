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
from .package_metadata import FORMAT, FORMAT_VERSION, read_metadata
from .networks import LatentDenoiser, autoencoder_factor, build_autoencoder

AUTOENCODER_WEIGHTS = "autoencoder.safetensors"
DIFFUSION_WEIGHTS = "diffusion.safetensors"


def load_weights(module: torch.nn.Module, path: Path) -> None:
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
    def default_steps(self) -> int:
        return int(self.metadata["diffusion"].get("default_steps", 20))

    @property
    def conditioning(self) -> str:
        return self.metadata["diffusion"]["conditioning"]

    def normalization(self, modality: str) -> dict:
        return self.metadata["normalization"][modality]

    def modality_index(self, modality: str) -> int:
        if modality not in self.modalities:
            raise SynthError(f"this model generates {', '.join(self.modalities)}, not {modality}; choose --modality {self.modalities[0]} or another model")
        return self.modalities.index(modality)


def load_package(path: str | Path, need_diffusion: bool = True, device: str = "cpu") -> ModelPackage:
    path = Path(path)
    meta = read_metadata(path)
    if meta.get("kind", "generator") != "generator":
        raise SynthError(f"{path} is a {meta['kind']} package, not a generator; give a generator model (e.g. brain-mri)")
    if need_diffusion and "diffusion" not in meta:
        raise SynthError(f"{path} holds only an autoencoder; train the diffusion model with semanticsynth train-diffusion")
    labels = LabelTable.from_json(meta["label_table"])
    autoencoder = build_autoencoder(meta["autoencoder"]["config"])
    load_weights(autoencoder, path / AUTOENCODER_WEIGHTS)
    denoiser = None
    if "diffusion" in meta:
        d = meta["diffusion"]
        denoiser = LatentDenoiser(meta["autoencoder"]["config"]["embedding_dim"], labels.num_classes,
                                  d["conditioning"], len(meta["modalities"]), d["config"])
        load_weights(denoiser, path / DIFFUSION_WEIGHTS)
        denoiser.to(device).eval()
    return ModelPackage(path, meta, autoencoder.to(device).eval(), denoiser, labels)


def save_package(path: str | Path, metadata: dict, weights: dict[str, torch.nn.Module]) -> Path:
    """Write into a temp folder, then swap it into place, so a reader never sees half a package."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "version": __version__, **metadata}
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    try:
        for name, module in weights.items():
            save_file({k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}, str(tmp / name))
        (tmp / "metadata.json").write_text(json.dumps(metadata, indent=1))
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; a package is meant to be shared
        for f in tmp.iterdir():
            os.chmod(f, 0o644)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return path
