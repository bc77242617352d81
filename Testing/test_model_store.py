"""Models outside git: the manifest, the download into the user cache, and offline use of bundled packages.

The archives are served by a real HTTP server on 127.0.0.1 started here; the packages are real (bundled or
trained by the fixtures), and the first-use path runs its download and generation in real child processes.
"""
from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import threading
import time
import zipfile
from pathlib import Path

import pytest

from SemanticSynthLib.engine.model import store as model_store
from SemanticSynthLib.engine.model.package_metadata import default_model_dir, read_metadata
from SemanticSynthLib.errors import SynthError


class ArchiveServer:
    """Serves bytes on 127.0.0.1: /NAME whole, /cut/NAME half then a closed connection, /slow/NAME slowly."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.hits: list[str] = []
        files, hits = self.files, self.hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                hits.append(self.path)
                parts = self.path.strip("/").split("/")
                mode, name = (parts[0], parts[1]) if len(parts) == 2 else ("whole", parts[0])
                if name not in files:
                    self.send_error(404)
                    return
                data = files[name]
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if mode == "cut":
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(2)
                elif mode == "slow":
                    for i in range(0, len(data), 1 << 16):
                        self.wfile.write(data[i:i + (1 << 16)])
                        time.sleep(0.2)
                else:
                    self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server():
    s = ArchiveServer()
    yield s
    s.close()


def _entry(server, package: Path, name: str, tmp_path: Path, mode: str = "whole") -> dict:
    """Pack a copy of the package under a new name, serve it, and describe it as the manifest would."""
    copy = tmp_path / "packages" / name
    shutil.copytree(package, copy)
    archive = tmp_path / f"{name}.zip"
    packed = model_store.pack(copy, archive)
    server.files[archive.name] = archive.read_bytes()
    url = f"{server.url}/{archive.name}" if mode == "whole" else f"{server.url}/{mode}/{archive.name}"
    return {"name": name, "kind": read_metadata(copy).get("kind", "generator"), "version": "0.1.0", "url": url, **packed}


def _leftovers(cache: Path) -> list[str]:
    return sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*")) if cache.exists() else []


SEGMENTER = default_model_dir() / "brain-mri-segmenter"


def test_good_download_is_verified_and_then_found_offline(server, tmp_path):
    cache = tmp_path / "cache"
    entry = _entry(server, SEGMENTER, "tiny-seg", tmp_path)
    manifest = {"tiny-seg": entry}
    assert model_store.needs_download("tiny-seg", manifest, cache)
    records = []
    path = model_store.fetch("tiny-seg", manifest=manifest, cache=cache, on_progress=records.append)
    assert path.parent.parent == cache and (path / ".sha256").read_text(encoding="utf-8").strip() == entry["sha256"]
    assert read_metadata(path)["kind"] == "segmenter"
    assert sorted(p.name for p in path.iterdir()) == sorted([".sha256"] + [p.name for p in SEGMENTER.iterdir()])
    assert records[0]["stage"] == "downloading" and records[-1]["fraction"] == 1.0
    assert [r["step"] for r in records] == sorted(r["step"] for r in records) and records[-1]["total"] == 5
    assert [p for p in _leftovers(cache) if ".partial" in p] == []
    server.close()  # offline from now on: the cached copy is used
    assert model_store.fetch("tiny-seg", manifest=manifest, cache=cache) == path
    assert not model_store.needs_download("tiny-seg", manifest, cache)


def test_wrong_checksum_leaves_nothing(server, tmp_path):
    cache = tmp_path / "cache"
    entry = _entry(server, SEGMENTER, "tiny-seg", tmp_path)
    entry["sha256"] = hashlib.sha256(b"another file").hexdigest()
    with pytest.raises(SynthError, match="wrong SHA-256") as info:
        model_store.fetch("tiny-seg", manifest={"tiny-seg": entry}, cache=cache)
    assert "\n" not in str(info.value)
    assert _leftovers(cache) == []


def test_interrupted_download_leaves_no_partial_package(server, tmp_path):
    cache = tmp_path / "cache"
    entry = _entry(server, SEGMENTER, "tiny-seg", tmp_path, mode="cut")
    with pytest.raises(SynthError, match="interrupted|failed"):
        model_store.fetch("tiny-seg", manifest={"tiny-seg": entry}, cache=cache)
    assert _leftovers(cache) == []
    entry["url"] = entry["url"].replace("/cut/", "/")  # the next try succeeds
    assert model_store.fetch("tiny-seg", manifest={"tiny-seg": entry}, cache=cache).is_dir()


def test_an_archive_that_writes_outside_its_folder_is_refused(server, tmp_path):
    cache = tmp_path / "cache"
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("evil/metadata.json", "{}")
        z.writestr("evil/../../outside.txt", "x")
    data = archive.read_bytes()
    server.files["evil.zip"] = data
    entry = {"name": "evil", "kind": "generator", "version": "1", "url": f"{server.url}/evil.zip",
             "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    with pytest.raises(SynthError, match="unexpected entry"):
        model_store.fetch("evil", manifest={"evil": entry}, cache=cache)
    assert _leftovers(cache) == [] and not (tmp_path / "outside.txt").exists()


def test_offline_bundled_packages_need_no_network(tmp_path, monkeypatch):
    """CI and the tests use the bundled packages: with every manifest URL unreachable, they still resolve."""
    manifest = model_store.load_manifest()
    assert {"abdomen-ct", "brain-mri", "brain-t1-to-t2like"} <= set(manifest)
    offline = {n: {**e, "url": "http://127.0.0.1:9/unreachable.zip"} for n, e in manifest.items()}
    path = tmp_path / "manifest.json"
    model_store.write_manifest(list(offline.values()), path)
    monkeypatch.setenv("SEMANTICSYNTH_MODEL_MANIFEST", str(path))
    monkeypatch.setenv("SEMANTICSYNTH_CACHE", str(tmp_path / "cache"))
    from SemanticSynthLib.bridge.generate_logic import GenerationLogic
    from SemanticSynthLib.bridge.translate_logic import TranslationLogic

    for name in offline:
        assert not model_store.needs_download(name)
        assert model_store.fetch(name) == default_model_dir() / name
    assert GenerationLogic.model_info("abdomen-ct")["path"] == default_model_dir() / "abdomen-ct"
    assert TranslationLogic.model_info(None)["path"] == default_model_dir() / "brain-t1-to-t2like"
    assert "abdomen-ct" in GenerationLogic.available_models() and "brain-t1-to-t2like" in TranslationLogic.available_models()
    # a model that is neither bundled nor cached, offline: one clear line, nothing left
    model_store.write_manifest([{**offline["abdomen-ct"], "name": "not-here-yet"}], path)
    with pytest.raises(SynthError, match="downloading model 'not-here-yet' .* failed") as info:
        model_store.fetch("not-here-yet")
    assert "\n" not in str(info.value) and _leftovers(tmp_path / "cache") == []


def test_the_manifest_describes_the_bundled_packages(tmp_path):
    """Its checksums are those of the reproducible archives of today's bundled packages (after changing a
    package: semanticsynth models manifest --base-url URL)."""
    data = json.loads((default_model_dir() / "manifest.json").read_text(encoding="utf-8"))
    assert data["format"] == model_store.MANIFEST_FORMAT
    names = sorted(p.name for p in default_model_dir().iterdir() if (p / "metadata.json").exists())
    assert sorted(e["name"] for e in data["models"]) == names
    for entry in data["models"]:
        meta = read_metadata(default_model_dir() / entry["name"])
        assert entry["kind"] == meta.get("kind", "generator") and entry["version"] == str(meta["version"])
        assert entry["url"].startswith("https://") and entry["url"].endswith(f"/{entry['name']}-{entry['version']}.zip")
        packed = model_store.pack(default_model_dir() / entry["name"], tmp_path / f"{entry['name']}.zip")
        assert packed == {"sha256": entry["sha256"], "size": entry["size"]}, (
            f"{entry['name']} changed: run semanticsynth models manifest --base-url URL")


def test_first_use_downloads_in_a_child_process_then_generates(server, tmp_path, monkeypatch, scene,
                                                               sample_segmentation, tiny_ct_model):
    from SemanticSynthLib.bridge.jobs import ChainedJob
    from SemanticSynthLib.bridge.generate_logic import GenerationLogic

    entry = _entry(server, tiny_ct_model, "tiny-ct", tmp_path)
    model_store.write_manifest([entry], tmp_path / "manifest.json")
    monkeypatch.setenv("SEMANTICSYNTH_MODEL_MANIFEST", str(tmp_path / "manifest.json"))
    monkeypatch.setenv("SEMANTICSYNTH_CACHE", str(tmp_path / "cache"))
    assert "tiny-ct" in GenerationLogic.available_models()
    records = []
    job = GenerationLogic().start(sample_segmentation, model="tiny-ct", modality="ct", steps=1, on_progress=records.append)
    assert isinstance(job, ChainedJob)
    node = job.wait()
    assert any(r.get("stage") == "downloading" for r in records) and any(r.get("stage") == "denoising" for r in records)
    assert node.GetAttribute("SemanticSynth.model") is not None and job.unmatched_segments == []
    cached = model_store.local_package("tiny-ct")
    assert cached is not None and cached.parent.parent == tmp_path / "cache"
    assert [p for p in _leftovers(tmp_path / "cache") if ".partial" in p] == []


def test_a_cancelled_download_leaves_nothing(server, tmp_path, monkeypatch):
    import psutil

    from SemanticSynthLib.bridge.jobs import DownloadJob

    entry = _entry(server, SEGMENTER, "tiny-seg", tmp_path, mode="slow")
    model_store.write_manifest([entry], tmp_path / "manifest.json")
    monkeypatch.setenv("SEMANTICSYNTH_MODEL_MANIFEST", str(tmp_path / "manifest.json"))
    cache = tmp_path / "cache"
    job = DownloadJob("tiny-seg", cache=cache).start()
    deadline = time.monotonic() + 60
    while job.last_progress.get("step", 0) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.running and job.last_progress["stage"] == "downloading"
    pid = job.process.process.pid
    job.cancel()
    assert job.poll() and job.error == "cancelled" and job.result_node is None
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert _leftovers(cache) == []
    assert os.environ["SEMANTICSYNTH_MODEL_MANIFEST"].endswith("manifest.json")


def test_a_gui_lookup_never_downloads_a_model_that_is_not_here(server, tmp_path, monkeypatch):
    """resolve_local (what the panels read model defaults with) names a manifest model that is not downloaded
    yet, without any request; resolve_model downloads it, with progress, and then both find it."""
    entry = _entry(server, SEGMENTER, "tiny-seg", tmp_path)
    manifest = tmp_path / "manifest.json"
    model_store.write_manifest([entry], manifest)
    monkeypatch.setenv("SEMANTICSYNTH_MODEL_MANIFEST", str(manifest))
    monkeypatch.setenv("SEMANTICSYNTH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(SynthError, match=r"model 'tiny-seg' is not downloaded yet; .*semanticsynth models fetch tiny-seg"):
        model_store.resolve_local("tiny-seg")
    assert _leftovers(tmp_path / "cache") == [] and server.hits == []
    assert model_store.needs_download("tiny-seg")
    records = []
    path = model_store.resolve_model("tiny-seg", on_progress=records.append)
    assert records and records[-1]["fraction"] == 1.0
    assert model_store.resolve_local("tiny-seg") == path and not model_store.needs_download("tiny-seg")
    assert len(server.hits) == 1
    with pytest.raises(SynthError, match="model 'no-such-model' not found"):
        model_store.resolve_local("no-such-model")
