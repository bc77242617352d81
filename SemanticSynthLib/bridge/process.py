"""Run the engine in a child process: JSON progress lines read on a thread, cancel kills the whole tree.

Cross-platform: the tree is found and ended with psutil (as MONAIAuto3DSeg does), so torch's worker processes
go too on Windows, macOS and Linux; the POSIX process group is only an extra net, behind a platform check."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

# The folder that holds the SemanticSynthLib package (a source checkout, or Slicer's qt-scripted-modules folder):
# the child's PYTHONPATH, so that it runs this very copy of the library.
LIBRARY_ROOT = str(Path(__file__).resolve().parents[2])


def engine_python() -> str:
    """The Python that runs the engine: inside Slicer its PythonSlicer, which lies beside the running executable
    (as slicer.util._executePythonModule finds it, on every platform); else this interpreter."""
    executable = Path(sys.executable)
    slicer_python = executable.with_name("PythonSlicer" + (".exe" if os.name == "nt" else ""))
    if "slicer" in executable.name.lower() and slicer_python.exists():
        return str(slicer_python)
    return sys.executable


class EngineProcess:
    """`python -m SemanticSynthLib <command> ... --progress json` (or another module's) in its own process group.

    on_progress receives each JSON object the child prints. stderr is kept so that a failure reaches the
    user as the child's one-line `error: ...` message rather than a traceback.
    """

    def __init__(self, arguments: list[str], on_progress: Callable[[dict], None] | None = None,
                 python: str | None = None, env: dict | None = None, module: str = "SemanticSynthLib"):
        self.arguments = list(arguments)
        self.module = module
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
        # Its own session (POSIX) or process group (Windows): Ctrl+C in Slicer's terminal does not reach it.
        group = ({"start_new_session": True} if os.name == "posix"
                 else {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)})
        self.process = subprocess.Popen(
            [self.python, "-m", self.module, *self.arguments, "--progress", "json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, encoding="utf-8",
            errors="replace", bufsize=1, env=self.env, **group)
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
        """End the child and all its descendants (torch may have started workers): terminate, then kill."""
        if not self.running:
            return
        self.cancelled = True
        kill_tree(self.process, grace_s)

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


def kill_tree(process: subprocess.Popen, grace_s: float = 3.0) -> None:
    """Terminate a child and its descendants, wait up to grace_s, then kill what is left (any platform).

    The descendants are listed before anything is ended (a dead parent's children are re-parented). The child
    itself is ended and reaped through its Popen, so its exit status stays that of the kill."""
    import psutil

    try:
        descendants = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    for proc in descendants:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    process.terminate()
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    _, alive = psutil.wait_procs(descendants, timeout=grace_s)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=grace_s)
    if os.name == "posix":  # anything that left the tree still shares the child's session and group
        import signal

        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
