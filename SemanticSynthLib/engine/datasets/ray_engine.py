"""make-dataset's cases on Ray: workers (actors) that each load the model package once and make one case at a time.

Local by default: Ray starts in this process (127.0.0.1, no dashboard) with one worker per core, fewer where memory
would not hold them, and the cores' torch threads split between the workers; --address joins a running cluster
(one worker per CPU, or per GPU where the request's device is cuda or auto and the cluster has GPUs). The driver
(this process) hands each ready worker one case at a time, so a worker that dies (killed, out of memory, its node
lost) takes only its case with it: the case goes back in the queue (at most RETRIES times) and a new worker is
started in its place. Files: a worker that reads the driver's token file in --out shares its file system and writes
the case there itself (atomically: .partial-* temp files, read back, renamed); one that cannot returns the encoded
files, and the label maps are sent to it the same way. Provenance is the driver's alone (make_dataset's
`finished`), so a case made twice by a retry is still finished once.
"""
from __future__ import annotations

import collections
import contextlib
import logging
import os
import signal
import socket
import time
import uuid
from pathlib import Path

import ray
from ray.exceptions import RayActorError

from ...errors import SynthError
from ..requests.dataset import MakeDatasetRequest
from ..volume.atomic import PARTIAL_PREFIX
from ..volume.io import read_volume
from ..volume.memory import BYTES_PER_INPUT_VOXEL, BYTES_PER_WORKING_VOXEL, available_bytes
from .cases import Case, CaseJob, case_volumes, encode_case, one_line, read_encoded_map, write_case, write_encoded

# One torch thread per worker: on CPUs processes scale better than threads (scripts/benchmark.py --throughput, 2 busy
# cores: two 1-thread workers made 1992 brain-mri volumes per hour, one 2-thread process 409).
THREADS_PER_WORKER = 1
WORKER_BYTES = 1 << 30  # torch, the networks and their buffers (brain-mri on 120x120x90: 0.9 GB peak RSS, grids too)
RETRIES = 3             # times a case may take its worker down before it is listed as failed
POLL_S = 1.0
WAIT_S = float(os.environ.get("SEMANTICSYNTH_RAY_WAIT_S", 600))  # for a worker to start where none is running


class CaseWorker:
    """One Ray worker: the package loaded once, then case after case (its methods run in the worker's process)."""

    def __init__(self, job: CaseJob, threads: int, token: Path, token_text: str):
        import torch

        from ..model.package import load_package
        from ..model.store import resolve_model
        from ..synthesis.sampling import resolved_device

        torch.set_num_threads(threads)
        self.job, self.token, self.token_text, self.error = job, token, token_text, None
        try:
            # The driver's package folder where this node sees it; else the bundled or cached model of that name.
            model = job.model if job.model.is_dir() else resolve_model(job.request.model, job.request.modality)
            self.package = load_package(model, device="cpu")
            self.job.base = job.base.model_copy(update={"device": resolved_device(job.request.device)})
        except SynthError as exc:
            self.error = one_line(exc)

    def shares_out(self) -> bool:
        try:
            return self.token.read_text(encoding="utf-8") == self.token_text
        except OSError:
            return False

    def ready(self) -> dict:
        return {"error": self.error, "shares_out": self.shares_out()}

    def make(self, case: Case, map_bytes: bytes | None) -> dict:
        try:
            label_map = (read_volume(case.plan.path) if map_bytes is None
                         else read_encoded_map(map_bytes, case.plan.path.name))
            image, labels, record = case_volumes(self.package, self.job, case, label_map)
            if self.job.request.results == "auto" and self.shares_out():
                write_case(self.job.out, case.name, image, labels)
                return {"record": record, "files": None}
            return {"record": record, "files": encode_case(image, labels)}
        except SynthError as exc:
            return {"error": one_line(exc)}


def check_address(address: str | None) -> None:
    """A TCP connect to --address's cluster, before any work (ray.init waits minutes on an address that does not
    answer)."""
    if address is None:
        return
    if address == "auto":
        from ray._private.services import canonicalize_bootstrap_address

        try:
            target = canonicalize_bootstrap_address("auto")
        except ConnectionError:
            raise SynthError("--address auto found no running Ray cluster on this machine; start one (ray start "
                             "--head), give its HOST:PORT, or leave --address out") from None
    else:
        target = address[len("ray://"):] if address.startswith("ray://") else address
    host, _, port = target.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise SynthError(f"cannot reach the Ray cluster at --address {address} ({reason}); start it (ray start "
                         "--head), fix the address, or leave --address out to run on this machine") from None


@contextlib.contextmanager
def connected(request: MakeDatasetRequest, cores: int):
    """Ray connected to --address, or started on this machine, for the block. Ray already initialised by the
    caller (a library user's session) is used as it is and left running."""
    if ray.is_initialized():
        yield
        return
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        if request.address is None:
            ray.init(address="local", num_cpus=max(cores, request.workers or 1), include_dashboard=False,
                     _node_ip_address="127.0.0.1", logging_level=logging.ERROR, log_to_driver=False)
        else:
            ray.init(address=request.address, logging_level=logging.ERROR, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError, ImportError) as exc:  # ray:// needs ray[client], too
        raise SynthError(f"cannot connect to Ray at --address {request.address or 'local'}: {one_line(exc)}; "
                         "check the cluster (ray status) or leave --address out") from None
    finally:
        for s, handler in handlers.items():  # ray.init sets its own; the CLI's remove temp files on a signal
            signal.signal(s, handler)
    try:
        yield
    finally:
        ray.shutdown()


def _workers(request: MakeDatasetRequest, cases: int, job_voxels: int, model: Path,
             cores: int) -> tuple[int, int, bool]:
    """(workers, torch threads per worker, a GPU per worker)."""
    resources = ray.cluster_resources()
    cpus, gpus = int(resources.get("CPU", 1)), int(resources.get("GPU", 0))
    gpu = request.device == "cuda" or (request.device == "auto" and gpus > 0)
    if request.device == "cuda" and gpus == 0:
        raise SynthError("--device cuda: the Ray cluster has no GPU; use --device cpu or auto, or a cluster with GPUs")
    if request.workers is not None and gpu and request.workers > gpus:
        raise SynthError(f"--workers {request.workers}: the cluster has {gpus} GPUs, one per worker; give at most "
                         f"--workers {gpus} or --device cpu")
    workers = request.workers or (gpus if gpu else max(1, cpus // THREADS_PER_WORKER))
    if request.workers is None and request.address is None and not gpu:
        weights = sum(p.stat().st_size for p in model.rglob("*.safetensors"))
        free = available_bytes()
        if free:  # as many as memory holds, each with the largest map's grids
            need = WORKER_BYTES + weights + job_voxels * (BYTES_PER_INPUT_VOXEL + BYTES_PER_WORKING_VOXEL)
            workers = max(1, min(workers, free // need))
    workers = min(workers, cases)  # no idle worker holding threads that a busy one could use
    threads = max(1, (cores if request.address is None else cpus) // workers)
    return workers, threads, gpu


def make_cases(job: CaseJob, todo: list[Case], finished, package, cores: int) -> dict:
    """make_dataset.make_cases_here's work on Ray workers, which load their own package (the driver's stays here)."""
    if not todo:
        return {"engine": "none", "results": "none: every case was finished before"}
    with connected(job.request, cores):
        return _make_cases(job, todo, finished, cores)


def _make_cases(job: CaseJob, todo: list[Case], finished, cores: int) -> dict:
    workers, threads, gpu = _workers(job.request, len(todo), max(c.plan.voxels for c in todo), job.model, cores)
    how = {"engine": "ray", "address": job.request.address or "local", "workers": workers,
           "threads_per_worker": threads, "gpus_per_worker": int(gpu), "results": "", "worker_deaths": 0}
    token = job.out / f"{PARTIAL_PREFIX}token-{uuid.uuid4().hex}"
    token_text = uuid.uuid4().hex
    token.write_text(token_text, encoding="utf-8")
    worker_class = ray.remote(CaseWorker).options(num_cpus=threads, num_gpus=1 if gpu else 0, max_restarts=0,
                                                  max_task_retries=0)
    starting, idle, running, shares = {}, [], {}, {}
    queue, tries, written = collections.deque(todo), collections.Counter(), collections.Counter()
    maps: dict = {}  # a map's bytes in Ray's object store, put once, for workers that do not see the driver's files
    deaths_starting = 0

    def start() -> None:
        actor = worker_class.remote(job, threads, token, token_text)
        starting[actor.ready.remote()] = actor

    try:
        for _ in range(how["workers"]):
            start()
        waited = time.monotonic()
        while queue or running:
            while queue and idle:
                actor, case = idle.pop(), queue.popleft()
                data = None
                if not shares[actor]:
                    if case.plan.path not in maps:
                        maps[case.plan.path] = ray.put(case.plan.path.read_bytes())
                    data = maps[case.plan.path]
                running[actor.make.remote(case, data)] = (actor, case)
            done, _ = ray.wait(list(running) + list(starting), num_returns=1, timeout=POLL_S)
            if not done:
                if not running and time.monotonic() - waited > WAIT_S:
                    raise SynthError(f"no Ray worker started in {WAIT_S:.0f} s ({threads} CPUs"
                                     + (" and a GPU" if gpu else "") + " each); give the cluster room, or lower "
                                     "--workers")
                continue
            waited = time.monotonic()
            ref = done[0]
            if ref in starting:
                actor = starting.pop(ref)
                try:
                    state = ray.get(ref)
                except RayActorError as exc:
                    if exc.actor_init_failed:  # e.g. SemanticSynthLib missing on a node
                        raise SynthError(f"a Ray worker cannot start: {_last_line(exc)}; install semanticsynth on "
                                         "every node of the cluster") from None
                    deaths_starting += 1
                    how["worker_deaths"] += 1
                    if deaths_starting > RETRIES * workers:
                        raise SynthError(f"Ray workers keep dying as they start ({_last_line(exc)}); check the "
                                         "cluster's memory (ray status) or lower --workers") from None
                    start()
                    continue
                if state["error"]:
                    raise SynthError(f"a Ray worker cannot load the model: {state['error']}")
                # --results driver: as where the worker does not see --out, the maps go to it from here too
                shares[actor] = state["shares_out"] and job.request.results == "auto"
                idle.append(actor)
                continue
            actor, case = running.pop(ref)
            try:
                result = ray.get(ref)
            except RayActorError as exc:  # the worker died: its case goes back in the queue, a new worker comes
                how["worker_deaths"] += 1
                tries[case.name] += 1
                ray.kill(actor)
                if tries[case.name] >= RETRIES:
                    finished(case, None, f"its Ray worker died {RETRIES} times making it ({_last_line(exc)}); "
                                         "out of memory? lower --workers")
                else:
                    queue.appendleft(case)
                if queue:
                    start()
                continue
            idle.append(actor)
            if "error" in result:
                finished(case, None, result["error"])
                continue
            if result["files"] is not None:
                try:
                    write_encoded(job.out, case.name, result["files"])
                except SynthError as exc:  # as a case that cannot be written in one process: listed, not fatal
                    finished(case, None, one_line(exc))
                    continue
            mode = "workers" if result["files"] is None else "driver"
            written[mode] += 1
            finished(case, result["record"], None, results=mode)
    finally:
        for actor in [*starting.values(), *idle, *(a for a, _ in running.values())]:
            ray.kill(actor)
        token.unlink(missing_ok=True)
    how["maps_sent"] = len(maps)  # to workers that do not read them where the driver does
    how["results"] = ("written by the workers" if not written["driver"] else
                      "returned to the driver and written by it" if not written["workers"] else
                      f"written by the workers ({written['workers']}) and returned to the driver ({written['driver']})")
    return how


def _last_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1] if lines else exc.__class__.__name__
