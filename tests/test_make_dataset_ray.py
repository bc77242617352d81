"""make-dataset on Ray, with real Ray (no mocks): a two-node cluster on this machine whose worker is killed mid-run
(every case still comes out exactly once), the files returned to the driver, Ray started in-process by default,
and the bad inputs (an address nobody answers, --workers out of range) refused before anything is written."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from SemanticSynthLib.cli import main

pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")

RAY = str(Path(sys.executable).with_name("ray"))
# No token to hand around between the test's processes, no usage report, a dead worker noticed at once.
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def _maps(tiny_dataset: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "maps"
    folder.mkdir()
    for p in sorted((tiny_dataset / "labelsTr").glob("*.nii.gz")):
        (folder / p.name).write_bytes(p.read_bytes())
    return folder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ours(temp: str) -> list:
    """Every process of the test's cluster: those started with its temp dir, and their children."""
    found = {}
    for p in psutil.process_iter(["cmdline"]):
        if any(temp in part for part in (p.info["cmdline"] or [])):
            for q in [p, *p.children(recursive=True)]:
                found[q.pid] = q
    return list(found.values())


def _raylets(temp: str) -> set[int]:
    return {p.pid for p in _ours(temp) if p.name() == "raylet"}


@pytest.fixture(scope="module")
def cluster():
    """A head node and a worker node, one CPU each, on 127.0.0.1; yields (address, the raylet pids: the worker
    node's, then the head's).

    Stopped by killing its own processes (found by its private temp dir), not `ray stop --force`, which would stop
    every Ray on the machine."""
    temp = tempfile.mkdtemp(prefix="ssray-", dir="/tmp")  # short: Ray's socket paths live under it
    env = {**os.environ, **RAY_ENV}
    port = _free_port()
    try:
        subprocess.run([RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=1",
                        "--include-dashboard=false", f"--temp-dir={temp}", "--disable-usage-stats",
                        f"--dashboard-port={_free_port()}"],
                       env=env, check=True, capture_output=True, timeout=120)
        head = _raylets(temp)
        subprocess.run([RAY, "start", f"--address=127.0.0.1:{port}", "--node-ip-address=127.0.0.1", "--num-cpus=1",
                        f"--temp-dir={temp}", "--disable-usage-stats"], env=env, check=True, capture_output=True,
                       timeout=120)
        worker, = _raylets(temp) - head
        yield f"127.0.0.1:{port}", [worker, *head]
    finally:
        for p in _ours(temp):
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        shutil.rmtree(temp, ignore_errors=True)


def _check_dataset(out: Path, cases: list[str]) -> dict:
    """Each case exactly once, whole; nothing half written; the card."""
    assert sorted(p.name for p in (out / "labelsTr").iterdir()) == [f"{c}.nii.gz" for c in cases]
    assert sorted(p.name for p in (out / "imagesTr").iterdir()) == [f"{c}_0000.nii.gz" for c in cases]
    assert sorted(p.name for p in (out / "provenance").iterdir()) == sorted([f"{c}.json" for c in cases]
                                                                             + ["plan.json"])
    for c in cases:
        assert json.loads((out / "provenance" / f"{c}.json").read_text(encoding="utf-8"))["case"] == c
        assert sitk.ReadImage(str(out / "imagesTr" / f"{c}_0000.nii.gz")).GetSize() == (32, 32, 32)
        assert sitk.ReadImage(str(out / "labelsTr" / f"{c}.nii.gz")).GetSize() == (32, 32, 32)
    assert json.loads((out / "dataset.json").read_text(encoding="utf-8"))["numTraining"] == len(cases)
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no .partial-* file, no token
    return json.loads((out / "dataset_card.json").read_text(encoding="utf-8"))


def _make_on(address: str, maps: Path, out: Path, tiny_model: Path, *extra: str) -> subprocess.Popen:
    """make-dataset on the test's cluster, in a process of its own: a driver's Ray session keeps its first
    authentication mode, and the in-process runs of the other tests use Ray's default."""
    command = [sys.executable, "-m", "SemanticSynthLib", "make-dataset", str(maps), str(out), "--model",
               str(tiny_model), "--steps", "1", "--address", address, "--progress", "none", *extra]
    return subprocess.Popen(command, env={**os.environ, **RAY_ENV}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_a_worker_killed_mid_case_on_a_cluster_loses_no_case_and_doubles_none(cluster, tiny_model, tiny_dataset,
                                                                               tmp_path):
    """--address: the cluster's two workers (one per node) write into the shared --out; one of them (the worker
    node's where it has a case at that moment) is SIGKILLed while it makes a case, once some cases but not all are
    finished. Its case is made again by a new worker, and every case comes out exactly once. Then the same cluster
    with --results driver."""
    address, raylets = cluster
    maps, out = _maps(tiny_dataset, tmp_path), tmp_path / "ds"
    driver = _make_on(address, maps, out, tiny_model, "--samples", "4")
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and driver.poll() is None and time.monotonic() < deadline:
        finished = len(list((out / "provenance").glob("case_*.json")))
        if 1 <= finished < 12:
            busy = [p for r in raylets for p in psutil.Process(r).children()
                    if p.name().startswith("ray::CaseWorker.make")]
            if busy:
                os.kill(busy[0].pid, signal.SIGKILL)
                killed = finished
        time.sleep(0.01)
    _, stderr = driver.communicate(timeout=180)
    assert driver.returncode == 0, stderr.decode()
    assert killed is not None, "the run ended before a worker could be killed"
    cases = [f"case_{i:03d}_s{k:02d}" for i in range(3) for k in range(4)]
    card = _check_dataset(out, cases)
    how = card["made_by"]
    assert (how["engine"], how["address"], how["workers"]) == ("ray", address, 2)
    assert how["worker_deaths"] >= 1 and how["results"] == "written by the workers" and how["maps_sent"] == 0
    assert card["written_now"] == 12 and card["failed"] == []

    # The files returned to the driver and written by it (as where the workers do not share --out).
    out = tmp_path / "returned"
    driver = _make_on(address, maps, out, tiny_model, "--results", "driver")
    _, stderr = driver.communicate(timeout=180)
    assert driver.returncode == 0, stderr.decode()
    card = _check_dataset(out, [f"case_{i:03d}_s00" for i in range(3)])
    assert card["made_by"]["results"] == "returned to the driver and written by it"
    assert card["made_by"]["maps_sent"] == 3  # the maps went to the workers from the driver, too


def test_ray_starts_in_process_by_default_and_makes_what_one_process_makes(tiny_model, tiny_dataset, tmp_path):
    maps = _maps(tiny_dataset, tmp_path)
    common = ["--model", str(tiny_model), "--steps", "1", "--samples", "2", "--progress", "none"]
    assert main(["make-dataset", str(maps), str(tmp_path / "ray"), *common, "--workers", "2"]) == 0
    assert main(["make-dataset", str(maps), str(tmp_path / "one"), *common, "--workers", "1"]) == 0
    cases = [f"case_{i:03d}_s{k:02d}" for i in range(3) for k in range(2)]
    how = _check_dataset(tmp_path / "ray", cases)["made_by"]
    assert (how["engine"], how["address"], how["workers"], how["threads_per_worker"]) == ("ray", "local", 2, 1)
    assert how["results"] == "written by the workers"
    assert _check_dataset(tmp_path / "one", cases)["made_by"]["engine"] == "one process"
    for c in cases:  # the same seeds give the same cases, whichever process made them
        ray_labels, one_labels = (sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / d / "labelsTr" / f"{c}.nii.gz")))
                                  for d in ("ray", "one"))
        assert np.array_equal(ray_labels, one_labels)
        a, b = (sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / d / "imagesTr" / f"{c}_0000.nii.gz")))
                for d in ("ray", "one"))
        assert np.allclose(a, b, atol=1e-3 * (np.ptp(b) + 1e-6))


def test_without_ray_the_cases_are_made_in_one_process_with_a_note(tiny_model, tiny_dataset, tmp_path, monkeypatch,
                                                                    capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # as where the [scale] extra is not installed
    maps, out = _maps(tiny_dataset, tmp_path), tmp_path / "ds"
    assert main(["make-dataset", str(maps), str(out), "--model", str(tiny_model), "--steps", "1", "--workers", "2",
                 "--progress", "json"]) == 0
    messages = [json.loads(line)["message"] for line in capsys.readouterr().out.splitlines() if '"message"' in line]
    assert messages[0].startswith("Ray is not installed: making the cases in one process")
    assert _check_dataset(out, [f"case_{i:03d}_s00" for i in range(3)])["made_by"]["engine"] == "one process"
    assert main(["make-dataset", str(maps), str(tmp_path / "x"), "--address", "127.0.0.1:6379"]) == 2
    assert "needs Ray" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_an_address_nobody_answers_and_bad_workers_are_one_line_and_write_nothing(tiny_dataset, tmp_path, capsys):
    maps = _maps(tiny_dataset, tmp_path)
    port = _free_port()  # closed again: nothing listens there
    started = time.monotonic()
    assert main(["make-dataset", str(maps), str(tmp_path / "a"), "--address", f"127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err.strip()
    assert time.monotonic() - started < 30
    assert "\n" not in err and f"cannot reach the Ray cluster at --address 127.0.0.1:{port}" in err
    assert "leave --address out" in err and not (tmp_path / "a").exists()
    for bad, message in ((["--workers", "0"], "argument --workers: must be between 1 and 1024, not 0"),
                         (["--workers", "many"], "argument --workers: 'many' is not a whole number"),
                         (["--address", "headnode"], "argument --address: give HOST:PORT, ray://HOST:PORT or auto")):
        assert main(["make-dataset", str(maps), str(tmp_path / "b"), *bad]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and message in err and not (tmp_path / "b").exists()
