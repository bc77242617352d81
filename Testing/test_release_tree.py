"""The released extension: the tree `scripts/release_tree.py` writes, committed as one commit and cloned as the
Extensions Index clones it, stays far below the index's 100 MB limit, and runs (CLI and Slicer module) with every
model downloaded on first use from a server on 127.0.0.1.

The source repository keeps its bundled models; only the released tree leaves them out. Each run here uses the
clone's own library (the venv's editable install is taken away), so a model that was not downloaded cannot come
from this checkout's bundled packages.
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from slicer_testdata import REPO

INDEX_LIMIT_MB = 100  # check_repository_size in Slicer/ExtensionsIndex scripts/check_description_files.py
TARGET_MB = 20
SAMPLE = Path("SemanticSynth") / "Resources" / "Samples" / "abdomen_ct_totalseg_labels.nii.gz"
GIT = ["git", "-c", "user.name=release", "-c", "user.email=release@127.0.0.1", "-c", "commit.gpgsign=false"]

# The clone's library only: this venv's editable install (the source checkout, with bundled models) is removed first.
_AS_RELEASED = "import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in getattr(f, '__module__', '')]\n"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _Remote(_Quiet):
    """Serves a file over about two seconds, as a remote server would, whatever its size: a download from
    127.0.0.1 otherwise ends between two ticks of the panel's 200 ms progress timer, and the panel never shows it."""
    SLICES, PAUSE_S = 20, 0.1

    def copyfile(self, source, outputfile):
        data = source.read()
        size = -(-len(data) // self.SLICES)
        for start in range(0, len(data), size):
            outputfile.write(data[start:start + size])
            outputfile.flush()
            time.sleep(self.PAUSE_S)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """(clone, archives folder, server hits): the release tree as one commit, cloned; its manifest points to a
    server on 127.0.0.1 that serves the model archives and counts the requests."""
    root = tmp_path_factory.mktemp("release")
    archives = root / "archives"
    archives.mkdir()
    hits = []

    class Counting(_Remote):
        def do_GET(self):
            hits.append(self.path)
            super().do_GET()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Counting, directory=str(archives)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        tree = root / "tree"
        made = subprocess.run([sys.executable, str(REPO / "scripts" / "release_tree.py"), str(tree), "--base-url",
                               f"http://127.0.0.1:{server.server_address[1]}/", "--archives", str(archives)],
                              capture_output=True, text=True, timeout=300)
        assert made.returncode == 0, made.stderr[-2000:]
        subprocess.run(GIT + ["init", "-q"], cwd=tree, check=True)
        subprocess.run(GIT + ["add", "-A"], cwd=tree, check=True)
        subprocess.run(GIT + ["commit", "-q", "-m", "SemanticSynth release"], cwd=tree, check=True)
        clone = root / "clone"
        subprocess.run(["git", "clone", "-q", "--no-local", str(tree), str(clone)], check=True)
        yield clone, archives, hits
    finally:
        server.shutdown()


def _run(clone: Path, code: str, cache: Path, *args, timeout=600):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SEMANTICSYNTH_MODEL_MANIFEST")}
    env["SEMANTICSYNTH_CACHE"] = str(cache)
    result = subprocess.run([sys.executable, "-c", _AS_RELEASED + code, *args], cwd=clone, env=env,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
    return result


def test_the_single_commit_clone_is_far_below_the_index_limit(release):
    clone, archives, _hits = release
    total = sum(p.stat().st_size for p in clone.rglob("*") if p.is_file())  # .git included, as the index counts
    mb = total / 2 ** 20
    print(f"release clone: {mb:.1f} MB ({total} bytes), .git included")
    assert mb < INDEX_LIMIT_MB and mb < TARGET_MB, f"{mb:.1f} MB"
    assert not [p for p in clone.rglob("*.safetensors")]
    assert not (clone / "checkpoints").exists()
    cmake = (clone / "SemanticSynthLib" / "CMakeLists.txt").read_text(encoding="utf-8")
    assert "models/manifest.json" in cmake and ".safetensors" not in cmake
    manifest = json.loads((clone / "SemanticSynthLib" / "models" / "manifest.json").read_text(encoding="utf-8"))
    served = sorted(p.name for p in archives.iterdir())
    assert sorted(Path(m["url"]).name for m in manifest["models"]) == served
    assert {m["name"] for m in manifest["models"]} == {"abdomen-ct", "brain-mri", "brain-mri-segmenter",
                                                       "brain-t1-to-t2like"}


def test_the_cli_downloads_the_default_model_and_generates(release, tmp_path):
    """`semanticsynth generate` with no --model: the CT default is not in the tree, so it is downloaded with
    progress, verified and cached; the output is on the sample's grid."""
    import SimpleITK as sitk

    clone, _archives, hits = release
    cache, out = tmp_path / "cache", tmp_path / "ct.nii.gz"
    before = len(hits)
    result = _run(clone, "import runpy; sys.argv[0] = 'semanticsynth'; "
                         "runpy.run_module('SemanticSynthLib', run_name='__main__', alter_sys=True)",
                  cache, "generate", str(SAMPLE), str(out), "--modality", "ct", "--steps", "2", "--progress", "json")
    stages = [json.loads(line).get("stage") for line in result.stdout.splitlines() if line.startswith("{")]
    assert "downloading model" in stages
    assert any(h.endswith(".zip") and "abdomen-ct" in h for h in hits[before:])
    assert [p.parent.name for p in cache.glob("abdomen-ct/*/.sha256")]  # verified copy in the cache
    labels, image = sitk.ReadImage(str(clone / SAMPLE)), sitk.ReadImage(str(out))
    assert image.GetSize() == labels.GetSize() and image.GetSpacing() == labels.GetSpacing()
    assert image.GetOrigin() == labels.GetOrigin() and image.GetDirection() == labels.GetDirection()
    values = sitk.GetArrayFromImage(image)
    assert values.min() < -500 < values.max()


_MODULE_GENERATES = r"""
import time
from pathlib import Path
clone = Path.cwd()
sys.path.insert(0, str(clone / "Testing"))
import fake_slicer_app
app = fake_slicer_app.install()
import slicer
from slicer_testdata import segmentation_from_file
scene = slicer.vtkMRMLScene()
slicer.mrmlScene = scene
module = fake_slicer_app.load_module(clone / "SemanticSynth" / "SemanticSynth.py")
import SemanticSynthLib
assert Path(SemanticSynthLib.__file__).is_relative_to(clone), SemanticSynthLib.__file__
segmentation = segmentation_from_file(scene, clone / sys.argv[1], "sample")
widget = fake_slicer_app.module_widget(module, scene)
p = widget._parameterNode
p.segmentation, p.steps = segmentation, 2
assert p.model == "abdomen-ct" and widget.ui.generateButton.enabled
widget.ui.generateButton.click()
task, seen, deadline = widget.tasks["generate"], set(), time.monotonic() + 600
while task.job is not None:
    assert time.monotonic() < deadline, "the job did not finish"
    app.processEvents()
    seen.add(widget.ui.generateStatusLabel.text.split(":")[0])
    time.sleep(0.05)
assert not app.messages, app.messages
values = slicer.util.arrayFromVolume(p.outputVolume)
print(json.dumps({"status": widget.ui.generateStatusLabel.text, "seen": sorted(seen),
                  "min": float(values.min()), "shape": list(values.shape)}))
widget.cleanup()
"""


def test_the_module_downloads_its_model_as_a_job_and_generates(release, tmp_path):
    """The Slicer module from the clone (Qt layer replaced, MRML scene real): Generate with the default CT model
    downloads it first as part of the job, then generates on the sample segmentation."""
    clone, _archives, hits = release
    before = len(hits)
    result = _run(clone, "import json\n" + _MODULE_GENERATES, tmp_path / "cache", str(SAMPLE))
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["status"].startswith("Done: "), report
    assert any(s.startswith("downloading") for s in report["seen"]), report["seen"]  # its progress in the panel
    assert report["min"] < -500 and report["shape"] == [30, 101, 122]
    assert any("abdomen-ct" in h for h in hits[before:])
    assert list((tmp_path / "cache").glob("abdomen-ct/*/.sha256"))


_SELF_TEST = r"""
from pathlib import Path
clone = Path.cwd()
sys.path.insert(0, str(clone / "Testing"))
import fake_slicer_app
app = fake_slicer_app.install()
app.testing = True  # Slicer --testing, as CTest runs the self-test
import slicer
slicer.mrmlScene = slicer.vtkMRMLScene()
module = fake_slicer_app.load_module(clone / "SemanticSynth" / "SemanticSynth.py")
shown = []
module.SemanticSynthTest.delayDisplay = lambda self, text, *a, **k: shown.append(text)
module.SemanticSynthTest().runTest()
print(shown[-1])
"""


def test_the_self_test_of_the_release_downloads_nothing(release, tmp_path):
    """CTest on a build machine: the released extension has no model, and the self-test says so instead of
    downloading it."""
    clone, _archives, hits = release
    before = len(hits)
    result = _run(clone, _SELF_TEST, tmp_path / "cache")
    assert result.stdout.strip().splitlines()[-1] == ("Generation skipped (the self-test installs and downloads "
                                                      "nothing): the abdomen-ct model is not downloaded")
    assert hits[before:] == [] and not (tmp_path / "cache").exists()
