"""Checks on a command's paths before any work: what it reads, what it writes, and that these never meet.

The request's fields say, by their role (engine/requests/base.py), which are inputs (data, input), models, output
files and the output folder. Outputs must not be any input (resolved path or inode), an output folder must not hold an input
or the current folder, and existing outputs need --overwrite. Training also checks its checkpoint
folder, and --resume a readable checkpoint, so a bad one fails now rather than after loading the data.
"""
from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

from ...errors import SynthError
from ..model.store import resolve_model
from ..volume.outputs import check_not_an_input, check_output_folder, is_inside, nearest_existing, same_file, writable_folder


def _csv_paths(path: Path) -> list[Path]:
    """Every cell of a dataset CSV that names an existing file (relative to the CSV's folder)."""
    found = []
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            for row in csv.reader(fh):
                for cell in row:
                    cell = cell.strip()
                    if cell:
                        candidate = Path(cell) if Path(cell).is_absolute() else path.parent / cell
                        if candidate.is_file():
                            found.append(candidate)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SynthError(f"cannot read the dataset CSV {path} ({exc.__class__.__name__}); give a UTF-8 CSV file") from None
    return found


def _is_training(request) -> bool:
    return "resume" in type(request).model_fields


def _inputs(request) -> list[Path]:
    found = []
    for value in request.paths("data") + request.paths("input"):
        found.append(Path(value))
        if Path(value).suffix.lower() == ".csv" and Path(value).is_file():
            found += _csv_paths(Path(value))
    for value in request.paths("model"):
        found.append(resolve_model(value))
    return found


def _check_files(request, outputs: list[str], inputs: list[Path]) -> None:
    from ..volume.io import check_output_path

    for i, out in enumerate(outputs):
        for other in outputs[:i]:
            if Path(out).resolve() == Path(other).resolve() or same_file(out, other):
                raise SynthError(f"two outputs are the same file ({out}); give each output its own path")
        check_not_an_input(out, inputs)
        check_output_path(out, request.overwrite)


def _check_checkpoint(request, out: Path, inputs: list[Path]) -> None:
    from ..training.checkpoint import has_checkpoint, inspect_checkpoint

    explicit = request.checkpoint_dir
    ckpt = Path(explicit or f"{out}.checkpoint")
    if ckpt.exists() and not ckpt.is_dir():
        raise SynthError(f"checkpoint folder {ckpt} is a file; pass --checkpoint-dir with a folder path")
    if is_inside(ckpt, out):
        raise SynthError(f"--checkpoint-dir {ckpt} is inside --out {out}, which is replaced at the end; choose a folder beside it")
    for given in inputs:
        if given.exists() and (is_inside(given, ckpt) or same_file(given, ckpt)):
            raise SynthError(f"--checkpoint-dir {ckpt} holds the input {given}; choose another folder")
    writable_folder(nearest_existing(ckpt.parent))
    if request.resume:
        if explicit and not ckpt.exists():
            raise SynthError(f"--resume: checkpoint folder {ckpt} does not exist; check --checkpoint-dir, or leave out --resume")
        if ckpt.exists():
            inspect_checkpoint(ckpt)
    elif has_checkpoint(ckpt) and not request.overwrite:
        raise SynthError(f"{ckpt} holds a checkpoint of an earlier run; pass --resume to continue it, "
                         "or --overwrite to start over")


def _training_side_paths(request, out: Path) -> dict:
    """What a training run writes beside its package: the checkpoint folder, the loss log, new parent folders."""
    ckpt = Path(request.checkpoint_dir or f"{out}.checkpoint")
    parents, folder = [], Path(os.path.abspath(out.parent))
    while not folder.exists():
        parents.append(folder)
        folder = folder.parent
    return {"checkpoint": ckpt, "log": ckpt.parent / f"{out.name}.log.jsonl", "parents": parents}


def new_side_paths(request) -> dict | None:
    """The side paths of a training run that do not exist yet (so a failed run can take them away again)."""
    if not _is_training(request):
        return None
    side = _training_side_paths(request, Path(request.paths("folder")[0]))
    return {"checkpoint": None if side["checkpoint"].exists() else side["checkpoint"],
            "log": None if side["log"].exists() else side["log"], "parents": side["parents"]}


def discard_new_side_paths(side: dict | None) -> None:
    """After a failed run: remove what it created beside the package, unless it saved a checkpoint to resume."""
    from ..training.checkpoint import has_checkpoint

    if not side:
        return
    ckpt = side["checkpoint"]
    if ckpt is not None and ckpt.is_dir() and has_checkpoint(ckpt):
        return  # resumable: keep the checkpoint and its log
    if ckpt is not None and ckpt.is_dir():
        shutil.rmtree(ckpt, ignore_errors=True)
    if side["log"] is not None and side["log"].is_file():
        side["log"].unlink()
    for folder in side["parents"]:  # deepest first
        try:
            folder.rmdir()
        except OSError:
            break


def check_paths(request) -> None:
    """Everything about the request's paths that can be known before work starts."""
    inputs = _inputs(request)
    files = request.paths("output")
    if files:
        _check_files(request, files, inputs)
    for folder in request.paths("folder"):
        out = Path(folder)
        check_output_folder(out, request.overwrite, inputs)
        if _is_training(request):
            _check_checkpoint(request, out, inputs)
