"""Run the engine in a child process: JSON progress lines read on a thread, cancel kills the whole tree."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

LIBRARY_ROOT = str(Path(__file__).resolve().parents[1])


def engine_python() -> str:
    """The Python that runs the engine: Slicer's PythonSlicer inside Slicer, else this interpreter."""
    slicer_python = shutil.which("PythonSlicer")
    if slicer_python and "Slicer" in os.path.basename(sys.executable):
        return slicer_python
    return sys.executable


class EngineProcess:
    """`python -m SemanticSynthLib <command> ... --progress json` in its own process group.

    on_progress receives each JSON object the child prints. stderr is kept so that a failure reaches the
    user as the child's one-line `error: ...` message rather than a traceback.
    """

    def __init__(self, arguments: list[str], on_progress: Callable[[dict], None] | None = None,
                 python: str | None = None, env: dict | None = None):
        self.arguments = list(arguments)
        self.on_progress = on_progress or (lambda record: None)
        self.python = python or engine_python()
        # The child must import this very library, wherever Slicer installed it.
        self.env = dict(env if env is not None else os.environ)
        self.env["PYTHONPATH"] = os.pathsep.join(p for p in [LIBRARY_ROOT, self.env.get("PYTHONPATH", "")] if p)
        self.process: subprocess.Popen | None = None
        self.cancelled = False
        self._stderr: list[str] = []
        self._threads: list[threading.Thread] = []

    def start(self) -> "EngineProcess":
        self.process = subprocess.Popen(
            [self.python, "-m", "SemanticSynthLib", *self.arguments, "--progress", "json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, encoding="utf-8", errors="replace", bufsize=1,
            start_new_session=True, env=self.env)
        self._threads = [threading.Thread(target=self._read_stdout, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for t in self._threads:
            t.start()
        return self

    def _read_stdout(self) -> None:
        for line in self.process.stdout:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            self.on_progress(record)

    def _read_stderr(self) -> None:
        for line in self.process.stderr:
            self._stderr.append(line.rstrip("\n"))

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def cancel(self, grace_s: float = 3.0) -> None:
        """Terminate the child's whole process group (torch may have started workers), then kill it."""
        if not self.running:
            return
        self.cancelled = True
        pgid = os.getpgid(self.process.pid)
        os.killpg(pgid, signal.SIGTERM)
        try:
            self.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.process.wait()

    def wait(self, timeout: float | None = None) -> int:
        code = self.process.wait(timeout)
        for t in self._threads:
            t.join(5)
        return code

    @property
    def error_message(self) -> str:
        """The child's one-line error, or the last stderr line if it died another way."""
        for line in reversed(self._stderr):
            if line.startswith("error: "):
                return line[len("error: "):]
        if self.cancelled:
            return "cancelled"
        tail = [line for line in self._stderr if line.strip()]
        return tail[-1] if tail else f"the engine exited with status {self.process.returncode}"
