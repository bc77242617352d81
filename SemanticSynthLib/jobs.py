"""One engine run in a child process, seen from the scene: progress, cancel, and nodes only on success."""
from __future__ import annotations

import shutil
import threading
from pathlib import Path

from .errors import SynthError
from .process import EngineProcess


class EngineJob:
    """poll() from a GUI timer, or wait(); cancel() at any time.

    Subclasses give the command line (`_command`) and turn the files into nodes (`_import`). Nodes are
    created only once the engine has succeeded, so a cancel or an error leaves the scene as it was; the
    temporary folder is removed in every case.
    """

    def __init__(self, logic_args: dict, workdir: Path, on_progress):
        self.args, self.workdir = logic_args, workdir
        self.last_progress: dict = {}
        self._on_progress = on_progress
        self._lock = threading.Lock()
        self.result_node = None
        self.error: str | None = None
        self.process = EngineProcess(self._command(), self._progress)

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _import(self):
        raise NotImplementedError

    def _common_options(self) -> list[str]:
        """--steps and --device, passed on only when the caller chose them."""
        a = self.args
        return (["--steps", str(a["steps"])] if a.get("steps") else []) + (["--device", a["device"]] if a.get("device") else [])

    def _progress(self, record: dict) -> None:
        with self._lock:
            self.last_progress = record
        if self._on_progress:
            self._on_progress(record)

    def start(self) -> "EngineJob":
        self.process.start()
        return self

    @property
    def running(self) -> bool:
        return self.process.running

    def cancel(self) -> None:
        self.process.cancel()
        self.process.wait()
        self._cleanup()

    def poll(self) -> bool:
        """True once finished (then result_node or error is set). Call from the main thread."""
        if self.process.running:
            return False
        if self.result_node is None and self.error is None:
            self._finish()
        return True

    def wait(self):
        self.process.wait()
        self.poll()
        if self.error:
            raise SynthError(self.error)
        return self.result_node

    def _finish(self) -> None:
        try:
            if self.process.cancelled:
                self.error = "cancelled"
                return
            if self.process.process.returncode != 0:
                self.error = self.process.error_message
                return
            self.result_node = self._import()
        except SynthError as exc:
            self.error = str(exc)
        finally:
            self._cleanup()

    def _cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)
