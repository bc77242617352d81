"""Where outputs may go: never onto an input, never over the user's data without --overwrite.

Checked before any work. Inputs and outputs are compared by resolved path and by inode (hard links,
symlinks, `./x` against `x`); an output folder must not hold an input or the current folder. Package
folders that --overwrite allows to be replaced are recorded here, so `save_package` refuses any other
non-empty target even when called from a library.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ...errors import SynthError

_replace_allowed: set[str] = set()


def _key(path: Path) -> str:
    return str(Path(path).resolve())


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Same resolved path, or the same inode on the same device."""
    a, b = Path(a), Path(b)
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def is_inside(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """True when `path` is `folder` or lies somewhere below it (resolved; inode for the folder itself)."""
    path, folder = Path(path).resolve(), Path(folder).resolve()
    if path == folder or folder in path.parents:
        return True
    try:
        return any(os.path.samefile(p, folder) for p in (path, *path.parents) if p.exists())
    except OSError:
        return False


def check_not_an_input(out: str | os.PathLike, inputs, what: str = "output") -> None:
    """The output file must not be any input (the input would be replaced by the result)."""
    for given in inputs:
        if given and Path(given).exists() and same_file(out, given):
            raise SynthError(f"the {what} {out} is the input {given}; choose another output path")


def writable_folder(folder: Path) -> None:
    """Probe with a real file: permission bits say nothing for root or read-only mounts."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError:
        raise SynthError(f"output folder {folder} is not writable; choose another output path") from None


def nearest_existing(folder: Path) -> Path:
    folder = Path(os.path.abspath(folder))
    while not folder.exists():
        folder = folder.parent
    return folder


def check_output_folder(out: str | os.PathLike, overwrite: bool, inputs=(), what: str = "--out") -> Path:
    """A folder output (model package, report): new, empty, or replaced only with --overwrite; never a file,
    never holding an input or the current folder; its parent writable. Records the permission to replace."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SynthError(f"{what} {out} is a file; give a folder path (a new or empty folder)")
    for given in inputs:
        if given and Path(given).exists() and same_file(given, out):
            raise SynthError(f"{what} {out} is the input {given}; writing there would delete it, choose another folder")
        if given and Path(given).exists() and is_inside(given, out):
            raise SynthError(f"{what} {out} holds the input {given}; writing there would delete it, choose another folder")
    if is_inside(Path.cwd(), out):
        raise SynthError(f"{what} {out} is the current folder or holds it; choose a new folder for the output")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise SynthError(f"{what} {out} exists and is not empty; pass --overwrite to replace it or choose a new folder")
        _replace_allowed.add(_key(out))
    parent = nearest_existing(out.parent)
    if not parent.is_dir():
        raise SynthError(f"{what} {out}: {parent} is a file, not a folder; choose another output path")
    writable_folder(parent)
    return out


def may_replace(out: str | os.PathLike) -> bool:
    """Whether an existing non-empty folder was cleared for replacement by --overwrite."""
    return _key(Path(out)) in _replace_allowed


def allow_replace(out: str | os.PathLike) -> None:
    """For library callers that have their own --overwrite: let save_package replace this folder."""
    _replace_allowed.add(_key(Path(out)))
