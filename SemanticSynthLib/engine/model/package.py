"""Model packages: a folder with metadata.json and safetensors weights. Loading never runs code."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ... import __version__
from ...errors import SynthError
from .cpu_convolution import for_inference
from ..volume.labels import LabelTable
from ..volume.memory import check_network_size
from ..volume.atomic import commit_dir, temp_dir_beside
from ..volume.outputs import may_replace
from .package_metadata import FORMAT, FORMAT_VERSION, for_modality, read_package_metadata, resolved_guidance, sampling_defaults
from .schema import validate_metadata
from .networks import LatentDenoiser, autoencoder_factor, build_autoencoder, is_label_aware, latent_channels
from .priors import ClassPriors, class_priors
from .refiner import REFINER_WEIGHTS, build_refiner

AUTOENCODER_WEIGHTS = "autoencoder.safetensors"
DIFFUSION_WEIGHTS = "diffusion.safetensors"


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """A package's safetensors file as a state dict, or a one-line error naming the file."""
    if not path.exists():
        raise SynthError(f"model file missing: {path}; reinstall or retrain the model package")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise SynthError(f"model file corrupt: {path.name} ({str(exc).splitlines()[0]}); reinstall the model package") from None


def load_weights(module: torch.nn.Module, path: Path, state: dict | None = None) -> None:
    """`path`'s weights into `module`, all of them and of the same shapes; `state`: already read (and adapted)."""
    state = read_weights(path) if state is None else state
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
    refiner: torch.nn.Module | None = None  # the detail refiner at the output spacing, where the package has one

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
        return sampling_defaults(self.metadata)["steps"]

    def guidance(self, asked: float | None = None) -> float:
        """The classifier-free guidance scale: `asked`, else the package's default (1: none)."""
        return resolved_guidance(self.metadata, asked, self.metadata.get("name", self.path.name))

    def temperature(self, asked: float | None = None) -> float:
        """The sampling temperature: `asked` (range-checked by the request), else the package's default."""
        return sampling_defaults(self.metadata)["temperature"] if asked is None else float(asked)

    @property
    def conditioning(self) -> str:
        return self.metadata["diffusion"]["conditioning"]

    def normalization(self, modality: str) -> dict:
        return self.metadata["normalization"][modality]

    @property
    def label_aware(self) -> bool:
        return is_label_aware(self.metadata["autoencoder"]["config"])

    @property
    def latent_channels(self) -> int:
        return latent_channels(self.metadata["autoencoder"]["config"])

    def priors(self, modality: str, phase: str | None = None, overrides: dict | None = None) -> ClassPriors | None:
        """Per-class priors of a label-aware package (None for older packages, which condition on ids)."""
        if not self.label_aware:
            return None
        meta = for_modality(self.metadata.get("priors", {}), modality)
        return class_priors(self.labels, self.normalization(modality), meta, phase, overrides)

    def seen_labels(self, modality: str) -> set[int]:
        """Label ids that the training data of this modality contained."""
        return set(for_modality(self.metadata.get("priors", {}), modality).get("seen_labels", []))

    def modality_index(self, modality: str) -> int:
        if modality not in self.modalities:
            raise SynthError(f"this model generates {', '.join(self.modalities)}, not {modality}; choose --modality {self.modalities[0]} or another model")
        return self.modalities.index(modality)


def load_networks(model: str | Path, kind: str, networks, device: str = "cpu", complete: bool = True):
    """The one loader of the three package kinds (generator, translator, segmenter).

    Args:
        model: a package folder, or a bundled, cached or manifest name (downloaded now: store.resolve_model).
        kind: the kind the package must be; its metadata is read and checked against the schema first.
        networks: metadata -> {name: (build, weights file)}: each network is built (refused when its weights alone
            would not fit in memory), given its safetensors weights (no code runs) and set up for inference.
        device: where the networks go. complete: a generator must hold its diffusion U-Net too.

    Returns:
        (package folder, metadata, {name: network}).
    """
    from .store import resolve_model

    path = resolve_model(str(model))
    meta = read_package_metadata(path, kind, complete=complete)
    built = {}
    for name, (build, weights) in networks(meta).items():
        network = check_network_size(build, name)
        load_weights(network, path / weights)
        built[name] = for_inference(network, device)
    return path, meta, built


def _generator_networks(meta: dict) -> dict:
    ae_config = meta["autoencoder"]["config"]
    networks = {"autoencoder": (lambda: build_autoencoder(ae_config), AUTOENCODER_WEIGHTS)}
    if "diffusion" in meta:
        d = meta["diffusion"]
        classes = LabelTable.from_json(meta["label_table"]).num_classes
        networks["diffusion U-Net"] = (
            lambda: LatentDenoiser(latent_channels(ae_config), classes, d["conditioning"], len(meta["modalities"]),
                                   d["config"], priors=is_label_aware(ae_config), factor=autoencoder_factor(ae_config)),
            DIFFUSION_WEIGHTS)
    if "refiner" in meta:
        r = meta["refiner"]
        networks["detail refiner"] = (lambda: build_refiner(r["config"]), r.get("weights", REFINER_WEIGHTS))
    return networks


def load_package(path: str | Path, need_diffusion: bool = True, device: str = "cpu") -> ModelPackage:
    """A generator package (its autoencoder, and its diffusion U-Net where it has one), ready for inference."""
    path, meta, built = load_networks(path, "generator", _generator_networks, device, complete=need_diffusion)
    return ModelPackage(path, meta, built["autoencoder"], built.get("diffusion U-Net"),
                        LabelTable.from_json(meta["label_table"]), built.get("detail refiner"))


def _written_correctly(folder: Path, metadata_text: str, tensors: dict[str, dict]) -> str | None:
    """Read the temp package back; the first difference from what was meant to be written, or None."""
    try:
        if (folder / "metadata.json").read_text(encoding="utf-8") != metadata_text:
            return "metadata.json"
        for name, state in tensors.items():
            back = load_file(str(folder / name))
            if back.keys() != state.keys() or any(not torch.equal(back[k], v) for k, v in state.items()):
                return name
    except (OSError, SafetensorError, ValueError, UnicodeDecodeError):
        return "the package files"
    return None


def save_package(path: str | Path, metadata: dict, weights: dict[str, "torch.nn.Module | dict"], overwrite: bool = False,
                 bf16_files: frozenset[str] = frozenset()) -> Path:
    """Write into a temp folder beside the target, read it back, then swap it in, so a reader never sees half
    a package and a failure leaves the previous folder as it was. A non-empty existing folder is replaced only
    with overwrite=True or after the CLI's --overwrite check (engine/volume/outputs.py).

    Files named in `bf16_files` store their floating-point tensors in bfloat16 (half the size; loading casts
    back to the network's dtype). Meant for the diffusion U-Net, which samples under bf16 autocast anyway."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SynthError(f"cannot write the package: {path} is a file; give a folder path")
    if path.is_dir() and any(path.iterdir()) and not (overwrite or may_replace(path)):
        raise SynthError(f"{path} exists and is not empty; pass --overwrite to replace it or choose a new folder")
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "version": __version__, **metadata}
    text = json.dumps(metadata, indent=1)
    validate_metadata(json.loads(text), f"the package for {path}")
    def stored(name, value):
        value = value.detach().cpu().contiguous()
        return value.to(torch.bfloat16) if name in bf16_files and value.is_floating_point() else value

    # A module, or a state dict carried over as it was stored (a diffusion U-Net kept across decoder fine-tuning).
    tensors = {name: {k: stored(name, v) for k, v in (module if isinstance(module, dict) else module.state_dict()).items()}
               for name, module in weights.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with temp_dir_beside(path) as tmp:
        try:
            for name, state in tensors.items():
                save_file(state, str(tmp / name))
            (tmp / "metadata.json").write_text(text, encoding="utf-8")
            os.chmod(tmp, 0o755)  # a package is meant to be shared
            for f in tmp.iterdir():
                os.chmod(f, 0o644)
        except (OSError, SafetensorError) as exc:
            raise SynthError(f"cannot write the package {path}: {getattr(exc, 'strerror', None) or exc} (disk full?); "
                             "free space or choose another --out") from None
        bad = _written_correctly(tmp, text, tensors)
        if bad:
            raise SynthError(f"cannot write the package {path}: {bad} did not read back as written (disk full?); "
                             "free space or choose another --out")
        commit_dir(tmp, path)
    return path
