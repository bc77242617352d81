"""One engine run in a child process, seen from the scene: progress, cancel, and nodes only on success."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from pathlib import Path

from ..engine.model import store as model_store
from ..errors import SynthError
from .process import EngineProcess


class EngineJob:
    """poll() from a GUI timer, or wait(); cancel() at any time.

    Subclasses give the request (`_request`: an engine request whose paths lie in the job's folder) and turn the
    files into nodes (`_import`). The request is written to REQUEST.json in that folder and the child runs
    `python -m SemanticSynthLib run REQUEST.json --result RESULT.json --progress json`: the same request, checks
    and code path as the command line, and `self.result` (outputs, provenance, report) is read back before
    `_import`. Nodes are created only once the engine has succeeded, so a cancel or an error leaves the scene as
    it was; the temporary folder is removed in every case.
    """

    module = "SemanticSynthLib"

    def __init__(self, logic_args: dict, workdir: Path, on_progress):
        self.args, self.workdir = logic_args, workdir
        self.last_progress: dict = {}
        self._on_progress = on_progress
        self._lock = threading.Lock()
        self.result_node = None
        self.result: dict = {}
        self.error: str | None = None
        self.process = EngineProcess(self._arguments(), self._progress, module=self.module)

    def _request(self):
        raise NotImplementedError

    def _arguments(self) -> list[str]:
        request_file = self._request().write(self.workdir / "request.json")
        return ["run", str(request_file), "--result", str(self.workdir / "result.json")]

    def _import(self):
        raise NotImplementedError

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
            result_file = self.workdir / "result.json"
            if result_file.is_file():
                self.result = json.loads(result_file.read_text(encoding="utf-8"))
            self.result_node = self._import()
        except SynthError as exc:
            self.error = str(exc)
        finally:
            self._cleanup()

    def _cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


class DownloadJob(EngineJob):
    """Downloads a manifest model into the user cache in a child process (`python -m SemanticSynthLib models
    fetch`), so that Cancel can end it like any engine run; result_node is the package folder. The staging
    folder lies in the cache and is removed in every case, so a cancelled download leaves nothing partial."""


    def __init__(self, name: str, on_progress=None, cache: Path | None = None):
        cache = Path(cache or model_store.cache_dir())
        cache.mkdir(parents=True, exist_ok=True)
        super().__init__({"name": name, "cache": cache}, Path(tempfile.mkdtemp(prefix=".partial-", dir=cache)), on_progress)
        self.process.env["SEMANTICSYNTH_CACHE"] = str(cache)
        if os.environ.get("SEMANTICSYNTH_MODEL_MANIFEST"):
            self.process.env["SEMANTICSYNTH_MODEL_MANIFEST"] = os.environ["SEMANTICSYNTH_MODEL_MANIFEST"]

    def _arguments(self) -> list[str]:
        return ["models", "fetch", self.args["name"], "--workdir", str(self.workdir / "staging")]

    def _import(self):
        path = model_store.local_package(self.args["name"], cache=self.args["cache"])
        if path is None:
            raise SynthError(f"model '{self.args['name']}' was downloaded but is not in the cache; try again")
        return path


class ChainedJob:
    """A job that first runs `first` (a DownloadJob) and then the job that `then(first's result)` starts.

    It has the EngineJob interface (poll, wait, cancel, last_progress, result_node, error), so callers and the
    Slicer widget treat it like the job it ends with; attributes of that job (unmatched_segments) show through."""

    def __init__(self, first, then):
        self.current, self._then, self._started_second = first, then, False
        self.result_node = None
        self.error: str | None = None

    @property
    def last_progress(self) -> dict:
        return self.current.last_progress

    @property
    def running(self) -> bool:
        return self.error is None and self.result_node is None

    def __getattr__(self, name):
        if name in ("current", "_then", "_started_second"):
            raise AttributeError(name)
        return getattr(self.current, name)

    def poll(self) -> bool:
        if not self.current.poll():
            return False
        if self.current.error:
            self.error = self.current.error
            return True
        if not self._started_second:
            self._started_second = True
            try:
                self.current = self._then(self.current.result_node)
            except SynthError as exc:
                self.error = str(exc)
                return True
            return False
        self.result_node = self.current.result_node
        return True

    def wait(self):
        import time

        while not self.poll():
            time.sleep(0.05)
        if self.error:
            raise SynthError(self.error)
        return self.result_node

    def cancel(self) -> None:
        self.current.cancel()
        self.error = "cancelled"


def staged_inputs(write):
    """(folder, write(folder)): a fresh temporary folder with the engine's inputs written into it. The folder is
    removed here when writing fails, and otherwise by the job that runs on it."""
    workdir = Path(tempfile.mkdtemp(prefix="SemanticSynth-"))
    try:
        return workdir, write(workdir)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


def start_with_model(model: str | None, start, on_progress=None, modality: str | None = None):
    """start(model) at once when the package is here (a folder, bundled or cached); otherwise download it
    first (a manifest name; None: the modality's default generator, which a released extension does not bundle)
    and start with the downloaded folder: the returned job covers both."""
    if model_store.needs_download(model, modality=modality):
        name = model or model_store.default_generator(modality)
        return ChainedJob(DownloadJob(name, on_progress).start(), lambda path: start(str(path)))
    return start(model)
