"""Temp files and folders beside their targets, swapped in whole, and removed on any failure or signal.

Every output goes through here: a `.partial-*` temp file or folder is created in the target's folder
(same file system, so the final rename is atomic), filled, checked by the caller, then renamed into
place. A replaced target is first moved aside and only deleted once the new one is in place, so a
failure at any point leaves the user's previous output as it was. SIGINT, SIGTERM and SIGHUP raise
`Interrupted`, so the `finally` blocks remove what was half written; `remove_all()` is the last resort.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from pathlib import Path

PARTIAL_PREFIX = ".partial-"
_live: set[Path] = set()  # temp paths that exist right now and must not outlive the process
HANDLED_SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)


class Interrupted(KeyboardInterrupt):
    """A signal asked us to stop; raised in the main thread so cleanup code runs."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_owner = {"pid": None}  # the process that installed the handlers


def _raise_interrupted(signum, frame):
    if os.getpid() != _owner["pid"]:
        # A worker a library forked (multiprocessing.Pool: FRD's feature extraction) inherited this handler; its
        # pool ends it with SIGTERM, which must end it quietly, as the default action does, not raise in it.
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    raise Interrupted(signum)


def install_signal_handlers() -> dict:
    """SIGINT, SIGTERM and SIGHUP raise Interrupted (main thread only, as Python requires). Returns the handlers
    they had, for restore_signal_handlers: a caller that runs the CLI in its own process (a script, a notebook)
    gets its own handlers back, and the processes it forks later do not inherit ours."""
    before = {}
    _owner["pid"] = os.getpid()
    for sig in HANDLED_SIGNALS:
        with contextlib.suppress(ValueError, OSError):
            before[sig] = signal.signal(sig, _raise_interrupted)
    return before


def restore_signal_handlers(before: dict) -> None:
    for sig, handler in before.items():
        with contextlib.suppress(ValueError, OSError, TypeError):
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


@contextlib.contextmanager
def signals_deferred():
    """Hold the handled signals back while a few renames must happen together (delivered afterwards)."""
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
    except (AttributeError, OSError, ValueError):
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def remove_all() -> None:
    """Remove every temp path still alive (called on the way out, whatever happened)."""
    for path in list(_live):
        _remove(path)
        _live.discard(path)


@contextlib.contextmanager
def temp_file_beside(target: Path, suffix: str = ""):
    """A fresh empty file in the target's folder, with ordinary permissions; removed unless `commit`ted."""
    target = Path(target)
    fd, name = tempfile.mkstemp(prefix=PARTIAL_PREFIX, suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    _live.add(tmp)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; outputs get the usual permissions
        yield tmp
    finally:
        if tmp in _live:
            _remove(tmp)
            _live.discard(tmp)


@contextlib.contextmanager
def temp_dir_beside(target: Path):
    """A fresh empty folder in the target's folder, with ordinary permissions; removed unless committed."""
    target = Path(target)
    tmp = Path(tempfile.mkdtemp(prefix=f"{PARTIAL_PREFIX}{target.name}-", dir=target.parent))
    _live.add(tmp)
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
    finally:
        if tmp in _live:
            _remove(tmp)
            _live.discard(tmp)


def commit_file(tmp: Path, target: Path) -> None:
    """Rename a checked temp file over the target (atomic: readers see the old or the new file)."""
    with signals_deferred():
        os.replace(tmp, target)
        _live.discard(Path(tmp))


def _aside_name(target: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f"{PARTIAL_PREFIX}previous-", suffix=f"-{target.name}", dir=target.parent)
    os.close(fd)
    return Path(name)


def commit_files(pairs) -> None:
    """Rename several checked temp files over their targets, all or none: existing targets are moved aside
    first and put back if any rename fails; they are deleted only once every new file is in place."""
    pairs = [(Path(tmp), Path(target)) for tmp, target in pairs]
    moved, placed = [], []
    with signals_deferred():
        try:
            for tmp, target in pairs:
                if target.exists():
                    aside = _aside_name(target)
                    os.replace(target, aside)
                    moved.append((target, aside))
                os.replace(tmp, target)
                _live.discard(tmp)
                placed.append(target)
        except BaseException:
            for target in placed:
                with contextlib.suppress(OSError):
                    target.unlink()
            for target, aside in moved:
                os.replace(aside, target)
            raise
    for _, aside in moved:
        with contextlib.suppress(OSError):
            aside.unlink()


def commit_dir(tmp: Path, target: Path) -> None:
    """Swap a checked temp folder in for the target. An existing target is moved aside first and deleted
    only after the new folder is in place; if the swap fails, it is moved back."""
    tmp, target = Path(tmp), Path(target)
    with signals_deferred():
        if not target.exists():
            os.replace(tmp, target)
            _live.discard(tmp)
            return
        aside = Path(tempfile.mkdtemp(prefix=f"{PARTIAL_PREFIX}previous-{target.name}-", dir=target.parent))
        aside.rmdir()
        os.replace(target, aside)
        try:
            os.replace(tmp, target)
        except BaseException:
            os.replace(aside, target)
            raise
        _live.discard(tmp)
        _live.add(aside)
    _remove(aside)
    _live.discard(aside)


@contextlib.contextmanager
def staged_dir(target: Path):
    """A temp folder to fill; swapped in for `target` (commit_dir) only if the block completes."""
    with temp_dir_beside(Path(target)) as tmp:
        yield tmp
        commit_dir(tmp, Path(target))


def write_text_checked(target: Path, text: str, check) -> Path:
    """Write a small text file (a request, a result): temp file beside it, read back and `check`ed, then renamed."""
    target = Path(target)
    with temp_file_beside(target, suffix=target.suffix) as tmp:
        tmp.write_text(text, encoding="utf-8")
        if not check(tmp.read_text(encoding="utf-8")):
            raise OSError(f"{target} did not read back as written")
        commit_file(tmp, target)
    return target
