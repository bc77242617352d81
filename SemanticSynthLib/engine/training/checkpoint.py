"""Resumable training checkpoints without pickle: tensors in safetensors, the rest in JSON."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ...errors import SynthError
from ..volume.atomic import commit_files, temp_file_beside


def _flatten_optimizer(prefix: str, optimizer: torch.optim.Optimizer, tensors: dict) -> dict:
    state = optimizer.state_dict()
    meta = {"param_groups": state["param_groups"], "state": {}}
    for pid, pstate in state["state"].items():
        meta["state"][str(pid)] = {}
        for key, value in pstate.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}.{pid}.{key}"] = value.detach().cpu().contiguous()
                meta["state"][str(pid)][key] = "tensor"
            else:
                meta["state"][str(pid)][key] = value
    return meta


def _unflatten_optimizer(prefix: str, meta: dict, tensors: dict) -> dict:
    state = {}
    for pid, pstate in meta["state"].items():
        state[int(pid)] = {k: tensors[f"{prefix}.{pid}.{k}"] if v == "tensor" else v for k, v in pstate.items()}
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(path: str | Path, modules: dict, optimizers: dict, info: dict) -> None:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors, meta = {}, {"info": info, "optimizers": {}}
    for name, module in modules.items():
        for key, value in module.state_dict().items():
            tensors[f"module.{name}.{key}"] = value.detach().cpu().contiguous()
    for name, opt in optimizers.items():
        meta["optimizers"][name] = _flatten_optimizer(f"optim.{name}", opt, tensors)
    with temp_file_beside(path / "checkpoint.safetensors") as tensor_tmp, temp_file_beside(path / "checkpoint.json") as json_tmp:
        try:
            save_file(tensors, str(tensor_tmp))
            json_tmp.write_text(json.dumps(meta), encoding="utf-8")
            if load_file(str(tensor_tmp)).keys() != tensors.keys():
                raise OSError("the tensors did not read back")
        except (OSError, SafetensorError) as exc:
            raise SynthError(f"cannot write the checkpoint in {path}: {getattr(exc, 'strerror', None) or exc} (disk full?); "
                             "free space or pass another --checkpoint-dir") from None
        commit_files([(tensor_tmp, path / "checkpoint.safetensors"), (json_tmp, path / "checkpoint.json")])


def has_checkpoint(path: str | Path) -> bool:
    path = Path(path)
    return (path / "checkpoint.json").exists() or (path / "checkpoint.safetensors").exists()


def inspect_checkpoint(path: str | Path) -> tuple[dict, dict] | None:
    """The checkpoint's JSON part and tensors, or None if the folder holds none; a half-written or corrupt
    checkpoint is a SynthError naming the file."""
    path = Path(path)
    if not has_checkpoint(path):
        return None
    for name in ("checkpoint.json", "checkpoint.safetensors"):
        if not (path / name).is_file():
            raise SynthError(f"checkpoint {path} is incomplete ({name} is missing); remove the folder to start over, "
                             "or leave out --resume")
    try:
        meta = json.loads((path / "checkpoint.json").read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or not isinstance(meta.get("info"), dict) or not isinstance(meta.get("optimizers"), dict):
            raise ValueError("not a checkpoint description")
        step = meta["info"].get("step")
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise ValueError("no valid step")
        tensors = load_file(str(path / "checkpoint.safetensors"))
    except (OSError, ValueError, UnicodeDecodeError, SafetensorError) as exc:
        raise SynthError(f"checkpoint {path} is corrupt ({str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__}); "
                         "remove the folder to start over, or leave out --resume") from None
    return meta, tensors


def _mismatch(error: Exception) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= 160 else text[:157] + "..."


def load_checkpoint(path: str | Path, modules: dict, optimizers: dict) -> dict | None:
    """Restore modules and optimizers in place; returns the saved info, or None if there is none.

    Everything is checked before anything is restored: a checkpoint of another network or optimizer is a
    SynthError that names the part that does not match, and leaves the modules as they were."""
    path = Path(path)
    found = inspect_checkpoint(path)
    if found is None:
        return None
    meta, tensors = found
    states = {}
    for name, module in modules.items():
        prefix = f"module.{name}."
        state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        if not state:
            raise SynthError(f"checkpoint {path} has no '{name}' network; it is from another kind of training, "
                             "choose another --checkpoint-dir or leave out --resume")
        expected = module.state_dict()
        missing, unexpected = sorted(expected.keys() - state.keys()), sorted(state.keys() - expected.keys())
        shapes = [k for k in expected if k in state and tuple(expected[k].shape) != tuple(state[k].shape)]
        if missing or unexpected or shapes:
            what = (f"size of {shapes[0]} is {tuple(state[shapes[0]].shape)}, the network has {tuple(expected[shapes[0]].shape)}"
                    if shapes else f"{len(missing)} missing and {len(unexpected)} unexpected weights"
                    + (f" (e.g. {(missing or unexpected)[0]})" if missing or unexpected else ""))
            raise SynthError(f"checkpoint {path} does not match the '{name}' network of this run: {what}; "
                             "resume with the options of the run that made it, or leave out --resume")
        states[name] = state
    optimizer_states = {}
    for name, opt in optimizers.items():
        if name not in meta["optimizers"]:
            raise SynthError(f"checkpoint {path} has no '{name}' optimizer; it is from another kind of training")
        try:
            optimizer_states[name] = _unflatten_optimizer(f"optim.{name}", meta["optimizers"][name], tensors)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SynthError(f"checkpoint {path} is corrupt (optimizer '{name}': {_mismatch(exc)}); "
                             "remove the folder to start over") from None
    for name, module in modules.items():
        module.load_state_dict(states[name])
    for name, opt in optimizers.items():
        try:
            opt.load_state_dict(optimizer_states[name])
        except (ValueError, KeyError, RuntimeError) as exc:
            raise SynthError(f"checkpoint {path} does not match the '{name}' optimizer of this run ({_mismatch(exc)}); "
                             "resume with the options of the run that made it, or leave out --resume") from None
    return meta["info"]
