"""Resumable training checkpoints without pickle: tensors in safetensors, the rest in JSON."""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


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
    save_file(tensors, str(path / "checkpoint.safetensors.tmp"))
    (path / "checkpoint.json.tmp").write_text(json.dumps(meta))
    os.replace(path / "checkpoint.safetensors.tmp", path / "checkpoint.safetensors")
    os.replace(path / "checkpoint.json.tmp", path / "checkpoint.json")


def load_checkpoint(path: str | Path, modules: dict, optimizers: dict) -> dict | None:
    """Restore modules and optimizers in place; returns the saved info, or None if there is none."""
    path = Path(path)
    if not (path / "checkpoint.json").exists():
        return None
    meta = json.loads((path / "checkpoint.json").read_text(encoding="utf-8"))
    tensors = load_file(str(path / "checkpoint.safetensors"))
    for name, module in modules.items():
        prefix = f"module.{name}."
        module.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
    for name, opt in optimizers.items():
        opt.load_state_dict(_unflatten_optimizer(f"optim.{name}", meta["optimizers"][name], tensors))
    return meta["info"]
