"""A broad sweep of bad and awkward inputs across every command, run as a hostile new user would.

python scripts/bad_input_sweep.py [--only SUBSTRING] [--keep] [--verbose]

Each case runs the real CLI (`python -m SemanticSynthLib ...`) in a child process, in a fresh folder of
its own holding the files it needs (tiny real crops from ../shared/data, a tiny model trained here in
seconds, copies of bundled packages where a case corrupts one). Before and after, every file there and
in the shared assets is hashed. Outcomes:

  handled     a bad input refused: non-zero exit, one stderr line starting "error:", nothing changed
  ok          a good (or merely awkward) input: exit 0 and the result checked
  traceback   a Python traceback, or the "unexpected ... this is a bug" line
  wrong       exit 0 for a bad input, or exit 0 with a result that fails its check
  partial     a temp file, or a new output, left behind by a failed run
  data lost   a file that existed before the run changed or disappeared
  unclear     refused, but not in one "error:" line (e.g. C-library noise on stderr)

Prints the counts per outcome, and every case that is not handled/ok.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("SEMANTICSYNTH_DATA", REPO.parent / "shared" / "data"))
IXI_IDS = ["IXI013-HH-1212", "IXI014-HH-1236"]
MODELS = REPO / "SemanticSynthLib" / "models"

import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402

sitk.ProcessObject_SetGlobalWarningDisplay(False)


# ---------------------------------------------------------------------------------------------------------
# assets

def crop(path: Path, size=32) -> sitk.Image:
    image = sitk.ReadImage(str(path))
    start = [(s - size) // 2 for s in image.GetSize()]
    return sitk.RegionOfInterest(image, [size] * 3, start)


def cli(args, cwd, env_extra=None, fsize=None, timeout=300):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1", **(env_extra or {})}

    def limit():
        if fsize is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    return subprocess.Popen([sys.executable, "-m", "SemanticSynthLib", *map(str, args)], cwd=cwd, env=env,
                            preexec_fn=limit, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def build_assets(root: Path) -> dict:
    """Tiny crops, a tiny dataset, a tiny generator package (trained here), the bundled packages' paths."""
    a = {"root": root}
    data = root / "dataset"
    (data / "imagesTr").mkdir(parents=True)
    (data / "labelsTr").mkdir()
    for i, case in enumerate(IXI_IDS):
        sitk.WriteImage(crop(SHARED / "ixi_muse" / "t1" / f"{case}.nii.gz"), str(data / "imagesTr" / f"c{i}_0000.nii.gz"))
        sitk.WriteImage(crop(SHARED / "ixi_muse" / "labels" / f"{case}.nii.gz"), str(data / "labelsTr" / f"c{i}.nii.gz"))
    a["dataset"] = data
    a["labels"] = data / "labelsTr" / "c0.nii.gz"
    a["t1"] = data / "imagesTr" / "c0_0000.nii.gz"
    ct = crop(SHARED / "totalseg" / "aorta_ct_crop.nii.gz")
    sitk.WriteImage(ct, str(root / "ct.nii.gz"))
    a["ct"] = root / "ct.nii.gz"
    for stage in (["train-autoencoder", "--data", data, "--out", root / "ae", "--label-table", "muse", "--steps", "3",
                   "--patch", "32", "--adv-start", "2", "--progress", "none"],
                  ["train-diffusion", "--data", data, "--autoencoder", root / "ae", "--out", root / "model", "--steps", "3",
                   "--latent-patch", "8", "--progress", "none", "--default-steps", "2"]):
        proc = cli(stage, root)
        out, err = proc.communicate(timeout=900)
        if proc.returncode:
            raise SystemExit(f"could not train the tiny model: {err}")
    a["ae"], a["model"] = root / "ae", root / "model"
    a["translator"] = MODELS / "brain-t1-to-t2like"
    a["segmenter"] = MODELS / "brain-mri-segmenter"
    return a


# ---------------------------------------------------------------------------------------------------------
# helpers to make bad files inside a case folder

def write(image: sitk.Image, path: Path) -> Path:
    sitk.WriteImage(image, str(path))
    return path


def labels_array(a) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(a["labels"])))


def like(a, values, path: Path) -> Path:
    image = sitk.GetImageFromArray(values)
    image.CopyInformation(sitk.ReadImage(str(a["labels"])))
    return write(image, path)


def truncated(src: Path, path: Path, fraction=0.5) -> Path:
    data = src.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def package_copy(src: Path, dst: Path, change: Callable[[dict], None] | None = None) -> Path:
    shutil.copytree(src, dst)
    if change:
        meta = json.loads((dst / "metadata.json").read_text(encoding="utf-8"))
        change(meta)
        (dst / "metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    return dst


def dicom_two_series(a, folder: Path) -> Path:
    folder.mkdir()
    values = labels_array(a)[:8].astype(np.int16)
    for uid in ("1.2.826.0.1.3680043.2.1125.1", "1.2.826.0.1.3680043.2.1125.2"):
        for z in range(values.shape[0]):
            sl = sitk.GetImageFromArray(values[z])
            sl.SetSpacing((2.0, 2.0))
            for tag, value in {"0020|000e": uid, "0020|000d": "1.2.826.0.1.3680043.2.1125.9", "0008|0060": "OT",
                               "0020|0013": str(z + 1), "0020|0032": f"0\\0\\{2.0 * z}", "0020|0037": "1\\0\\0\\0\\1\\0",
                               "0018|0050": "2.0", "0008|0016": "1.2.840.10008.5.1.4.1.1.7",
                               "0008|0018": f"{uid}.{z + 1}"}.items():
                sl.SetMetaData(tag, value)
            writer = sitk.ImageFileWriter()
            writer.KeepOriginalImageUIDOn()
            writer.SetFileName(str(folder / f"{uid[-1]}_{z:02d}.dcm"))
            writer.Execute(sl)
    return folder


def nhdr(path: Path, spacing="2,0,0) (0,2,0) (0,0,2") -> Path:
    """A hand-written NRRD header (detached raw data) with the given space directions."""
    (path.parent / "raw.raw").write_bytes(np.ones((8, 8, 8), np.int16).tobytes())
    path.write_text(f"NRRD0004\ntype: short\ndimension: 3\nspace: left-posterior-superior\nsizes: 8 8 8\n"
                    f"space directions: ({spacing})\nendian: little\nencoding: raw\nspace origin: (0,0,0)\n"
                    "data file: raw.raw\n")
    return path


# ---------------------------------------------------------------------------------------------------------
# cases

@dataclass
class Case:
    name: str
    args: Callable[[dict, Path], list]          # (assets, folder) -> argv after the command name
    expect: str = "error"                         # "error" or "ok"
    check: Callable[[dict, Path], bool] | None = None  # for "ok": is the result right?
    fsize: int | None = None
    sigterm_after: str | None = None              # "partial" (while writing) or "start"
    writes: list = field(default_factory=lambda: ["out.nii.gz", "pkg", "pkg.checkpoint", "pkg.log.jsonl"])  # may change when ok


def readable_with_grid(path_name: str, like_key: str = "labels"):
    def check(a, d):
        out = d / path_name
        if not out.exists():
            return False
        image, ref = sitk.ReadImage(str(out)), sitk.ReadImage(str(a[like_key]))
        values = sitk.GetArrayFromImage(image)
        return image.GetSize() == ref.GetSize() and np.allclose(image.GetOrigin(), ref.GetOrigin(), atol=1e-3) \
            and bool(np.isfinite(values).all()) and float(values.std()) > 0
    return check


def package_ok(name: str):
    def check(a, d):
        from SemanticSynthLib.engine.model.package_metadata import read_metadata

        try:
            read_metadata(d / name)
            return True
        except Exception:  # noqa: BLE001
            return False
    return check


def gen(*extra, out="out.nii.gz", labels=None):
    def args(a, d):
        src = labels(a, d) if callable(labels) else (labels or a["labels"])
        return ["generate", src, d / out if isinstance(out, str) else out(a, d), "--model", a["model"], "--steps", "1",
                "--progress", "none", *[e(a, d) if callable(e) else e for e in extra]]
    return args


def gen_model(change):
    return gen(labels=None, out="out.nii.gz") if change is None else (
        lambda a, d: ["generate", a["labels"], d / "out.nii.gz", "--model", package_copy(a["model"], d / "m", change),
                      "--steps", "1", "--progress", "none"])


def tr(*extra, source=None, out="t2.nii.gz", field_name="field.nrrd", model=None):
    def args(a, d):
        src = source(a, d) if callable(source) else (source or a["t1"])
        m = model(a, d) if callable(model) else (model or a["translator"])
        return ["translate", src, d / out, "--field", d / field_name, "--model", m, "--steps", "1", "--progress", "none",
                *[e(a, d) if callable(e) else e for e in extra]]
    return args


def train(command, *extra, out="pkg", data=None):
    def args(a, d):
        src = data(a, d) if callable(data) else (data or a["dataset"])
        base = [command, "--data", src, "--out", d / out if isinstance(out, str) else out(a, d), "--steps", "1",
                "--progress", "none"]
        if command == "train-autoencoder":
            base += ["--patch", "32"]
        if command in ("train-diffusion", "train-translator"):
            base += ["--autoencoder", a["ae"], "--latent-patch", "8"]
        if command == "train-segmenter":
            base += ["--patch", "16", "--label-groups", "muse_groups"]
        return base + [e(a, d) if callable(e) else e for e in extra]
    return args


def ev(*extra, out="report", data=None, model=None, segmenter=None):
    def args(a, d):
        return ["evaluate", "--model", model(a, d) if callable(model) else (model or a["model"]),
                "--segmenter", segmenter(a, d) if callable(segmenter) else (segmenter or a["segmenter"]),
                "--data", data(a, d) if callable(data) else (data or a["dataset"]),
                "--out", d / out if isinstance(out, str) else out(a, d), "--steps", "1", "--max-cases", "1",
                "--pictures", "0", "--progress", "none", *[e(a, d) if callable(e) else e for e in extra]]
    return args


def mapping(content):
    def make(a, d):
        (d / "map.json").write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
        return d / "map.json"
    return make


def text_file(name, text):
    """A file with this text in the case folder; returns its path."""
    def make(a, d):
        (d / name).write_text(text, encoding="utf-8")
        return d / name
    return make


def non_empty_folder(name):
    def make(a, d):
        (d / name).mkdir()
        (d / name / "notes.txt").write_text("the user's notes", encoding="utf-8")
        return d / name
    return make


def previous(name):
    def make(a, d):
        (d / name).write_bytes(b"the user's earlier result")
        return d / name
    return make


def cases() -> list[Case]:
    L = labels_array
    c = [
        # --- generate: inputs
        Case("gen: missing input", gen(labels=lambda a, d: d / "nope.nii.gz")),
        Case("gen: folder without DICOM", gen(labels=lambda a, d: (d / "empty").mkdir() or d / "empty")),
        Case("gen: empty file", gen(labels=text_file("e.nii.gz", ""))),
        Case("gen: text as .nii.gz", gen(labels=text_file("t.nii.gz", "hello"))),
        Case("gen: truncated .nii.gz", gen(labels=lambda a, d: truncated(a["labels"], d / "cut.nii.gz"))),
        Case("gen: truncated .nii", gen(labels=lambda a, d: truncated(write(sitk.ReadImage(str(a["labels"])), d / "l.nii"), d / "cut.nii"))),
        Case("gen: truncated .nrrd", gen(labels=lambda a, d: truncated(write(sitk.ReadImage(str(a["labels"])), d / "l.nrrd"), d / "cut.nrrd", 0.9))),
        Case("gen: truncated .mha", gen(labels=lambda a, d: truncated(write(sitk.ReadImage(str(a["labels"])), d / "l.mha"), d / "cut.mha", 0.9))),
        Case("gen: NaN in .nii.gz", gen(labels=lambda a, d: like(a, np.where(L(a) == 0, np.nan, L(a)).astype(np.float32), d / "nan.nii.gz"))),
        Case("gen: Inf in .nrrd", gen(labels=lambda a, d: like(a, np.where(L(a) == 0, np.inf, L(a)).astype(np.float32), d / "inf.nrrd"))),
        Case("gen: non-integer labels", gen(labels=lambda a, d: like(a, L(a).astype(np.float32) + 0.5, d / "f.nii.gz"))),
        Case("gen: negative ids", gen(labels=lambda a, d: like(a, np.where(L(a) > 0, -L(a).astype(np.int16), 0).astype(np.int16), d / "neg.nii.gz"))),
        Case("gen: huge ids", gen(labels=lambda a, d: like(a, np.where(L(a) > 0, 2 ** 40, 0).astype(np.int64), d / "big.nrrd"))),
        Case("gen: background only", gen(labels=lambda a, d: like(a, np.zeros_like(L(a)), d / "zero.nii.gz"))),
        Case("gen: only unknown ids", gen(labels=lambda a, d: like(a, np.where(L(a) > 0, 999, 0).astype(np.int16), d / "u.nii.gz"))),
        Case("gen: some unknown ids, background", gen("--unknown-labels", "background",
             labels=lambda a, d: like(a, np.where(L(a) == 4, 999, L(a)).astype(np.int16), d / "u.nii.gz")),
             expect="ok", check=readable_with_grid("out.nii.gz")),
        Case("gen: 2D image", gen(labels=lambda a, d: write(sitk.Image(16, 16, sitk.sitkUInt8) + 1, d / "flat.nii.gz"))),
        Case("gen: single slice 3D", gen(labels=lambda a, d: write(sitk.Image(16, 16, 1, sitk.sitkUInt8) + 1, d / "one.nii.gz"))),
        Case("gen: 4D image", gen(labels=lambda a, d: write(sitk.Image([8, 8, 8, 2], sitk.sitkFloat32), d / "4d.nrrd"))),
        Case("gen: vector image", gen(labels=lambda a, d: write(sitk.Image([8, 8, 8], sitk.sitkVectorUInt8, 3), d / "vec.nrrd"))),
        Case("gen: sheared direction", gen(labels=lambda a, d: (lambda im: (im.SetDirection((1, .3, 0, 0, 1, 0, 0, 0, 1)), write(im, d / "s.nrrd"))[1])(sitk.ReadImage(str(a["labels"]))))),
        Case("gen: zero spacing header", gen(labels=lambda a, d: nhdr(d / "z.nhdr", "0,0,0) (0,2,0) (0,0,2"))),
        Case("gen: NaN spacing header", gen(labels=lambda a, d: nhdr(d / "n.nhdr", "nan,0,0) (0,2,0) (0,0,2"))),
        Case("gen: unsupported input type", gen(labels=text_file("x.png", "not a volume"))),
        Case("gen: two DICOM series", gen(labels=lambda a, d: dicom_two_series(a, d / "dicom"))),
        Case("gen: --series unknown", gen("--series", "1.2.3", labels=lambda a, d: dicom_two_series(a, d / "dicom"))),
        Case("gen: --series chosen", gen("--series", "1.2.826.0.1.3680043.2.1125.2", labels=lambda a, d: dicom_two_series(a, d / "dicom")),
             expect="ok", check=lambda a, d: sitk.ReadImage(str(d / "out.nii.gz")).GetSize() == (32, 32, 8)),
        Case("gen: --series for a file", gen("--series", "1.2.3")),
        Case("gen: huge extent (100 mm spacing)", gen(labels=lambda a, d: (lambda im: (im.SetSpacing((100.0,) * 3), write(im, d / "h.nii.gz"))[1])(sitk.ReadImage(str(a["labels"]))))),
        Case("gen: --max-voxels 1000", gen("--max-voxels", "1000")),
        # --- generate: outputs
        Case("gen: output .png", gen(out="out.png")),
        Case("gen: output exists", gen(out=previous("previous.nii.gz"))),
        Case("gen: OUT = input, --overwrite", lambda a, d: ["generate", shutil.copy(a["labels"], d / "l.nii.gz"), d / "l.nii.gz", "--overwrite", "--model", a["model"]]),
        Case("gen: OUT hard link to input", lambda a, d: (shutil.copy(a["labels"], d / "l.nii.gz"), os.link(d / "l.nii.gz", d / "h.nii.gz"),
             ["generate", d / "l.nii.gz", d / "h.nii.gz", "--overwrite", "--model", a["model"]])[2]),
        Case("gen: OUT symlink to input", lambda a, d: (shutil.copy(a["labels"], d / "l.nii.gz"), os.symlink(d / "l.nii.gz", d / "s.nii.gz"),
             ["generate", d / "l.nii.gz", d / "s.nii.gz", "--overwrite", "--model", a["model"]])[2]),
        Case("gen: output folder missing", gen(out=lambda a, d: d / "no" / "out.nii.gz")),
        Case("gen: output is a folder", gen("--overwrite", out=lambda a, d: (d / "o.nii.gz").mkdir() or d / "o.nii.gz")),
        Case("gen: output folder unwritable", gen(out=lambda a, d: Path("/proc/out.nii.gz"))),
        Case("gen: disk full .nii.gz over previous", gen("--overwrite", out=previous("previous.nii.gz")), fsize=4000),
        Case("gen: disk full .nii", gen(out="out.nii"), fsize=40000),
        Case("gen: disk full .nrrd", gen(out="out.nrrd"), fsize=4000),
        Case("gen: disk full .mha", gen(out="out.mha"), fsize=4000),
        Case("gen: SIGTERM while working", gen("--overwrite", "--steps", "1000", out=previous("previous.nii.gz")), sigterm_after="start"),
        Case("gen: good run", gen(), expect="ok", check=readable_with_grid("out.nii.gz")),
        Case("gen: good run .nrrd --overwrite", gen("--overwrite", out=previous("previous.nrrd")), expect="ok",
             check=readable_with_grid("previous.nrrd"), writes=["previous.nrrd"]),
        # --- generate: options
        Case("gen: --steps 0", gen("--steps", "0")),
        Case("gen: --steps -1", gen("--steps", "-1")),
        Case("gen: --steps 5000", gen("--steps", "5000")),
        Case("gen: --steps abc", gen("--steps", "abc")),
        Case("gen: --seed -1", gen("--seed", "-1")),
        Case("gen: --seed 2**64", gen("--seed", str(2 ** 64))),
        Case("gen: --threads 0", gen("--threads", "0")),
        Case("gen: --threads -1", gen("--threads", "-1")),
        Case("gen: --window 0", gen("--window", "0")),
        Case("gen: --window 3", gen("--window", "3")),
        Case("gen: --max-voxels -5", gen("--max-voxels", "-5")),
        Case("gen: --modality ct on an MRI model", gen("--modality", "ct")),
        Case("gen: --device cuda without GPU", gen("--device", "cuda")),
        Case("gen: unknown option", gen("--frobnicate")),
        # --- generate: model packages
        Case("gen: model name unknown", lambda a, d: ["generate", a["labels"], d / "o.nii.gz", "--model", "no-such-model"]),
        Case("gen: model folder without metadata", lambda a, d: ["generate", a["labels"], d / "o.nii.gz", "--model", (d / "m").mkdir() or d / "m"]),
        Case("gen: metadata not JSON", lambda a, d: ["generate", a["labels"], d / "o.nii.gz", "--model",
             (package_copy(a["model"], d / "m"), (d / "m" / "metadata.json").write_text("{oops", encoding="utf-8"))[0]]),
        Case("gen: metadata a list", lambda a, d: ["generate", a["labels"], d / "o.nii.gz", "--model",
             (package_copy(a["model"], d / "m"), (d / "m" / "metadata.json").write_text("[1]", encoding="utf-8"))[0]]),
        Case("gen: latent_scale 0", gen_model(lambda m: m["diffusion"].update(latent_scale=0))),
        Case("gen: latent_scale NaN", gen_model(lambda m: m["diffusion"].update(latent_scale=float("nan")))),
        Case("gen: normalization scale NaN", gen_model(lambda m: m["normalization"]["mri"].update(scale=float("nan")))),
        Case("gen: normalization scale -1", gen_model(lambda m: m["normalization"]["mri"].update(scale=-1))),
        Case("gen: unknown schedule", gen_model(lambda m: m["diffusion"]["schedule"].update(schedule="quadratic"))),
        Case("gen: prediction type unknown", gen_model(lambda m: m["diffusion"]["schedule"].update(prediction_type="x0"))),
        Case("gen: working spacing a string", gen_model(lambda m: m.update(working_spacing="2"))),
        Case("gen: working spacing 0", gen_model(lambda m: m.update(working_spacing=[0, 2, 2]))),
        Case("gen: format_version a string", gen_model(lambda m: m.update(format_version="1"))),
        Case("gen: format_version 99", gen_model(lambda m: m.update(format_version=99))),
        Case("gen: label list not a list", gen_model(lambda m: m["label_table"].update(labels=5))),
        Case("gen: label id a string", gen_model(lambda m: m["label_table"]["labels"][0].update(id="x"))),
        Case("gen: duplicate label ids", gen_model(lambda m: m["label_table"]["labels"][1].update(id=m["label_table"]["labels"][0]["id"]))),
        Case("gen: modalities empty", gen_model(lambda m: m.update(modalities=[]))),
        Case("gen: conditioning unknown", gen_model(lambda m: m["diffusion"].update(conditioning="magic"))),
        Case("gen: huge U-Net", gen_model(lambda m: m["diffusion"]["config"].update(channels=[32, 64, 4096]))),
        Case("gen: default_steps 0", gen_model(lambda m: m["diffusion"].update(default_steps=0))),
        Case("gen: weights path traversal", gen_model(lambda m: m["diffusion"].update(weights="../x.safetensors"))),
        Case("gen: extra unknown keys", gen_model(lambda m: m.update(priors={"a": 1}, seen_labels=[1, 2])), expect="ok",
             check=readable_with_grid("out.nii.gz")),
        Case("gen: weights truncated", lambda a, d: ["generate", a["labels"], d / "o.nii.gz", "--model",
             (package_copy(a["model"], d / "m"), truncated(a["model"] / "diffusion.safetensors", d / "m" / "diffusion.safetensors"))[0]]),
        Case("gen: weights missing", lambda a, d: ["generate", a["labels"], d / "o.nii.gz", "--model",
             (package_copy(a["model"], d / "m"), (d / "m" / "diffusion.safetensors").unlink())[0]]),
        Case("gen: translator as generator", lambda a, d: ["generate", a["labels"], d / "o.nii.gz", "--model", a["translator"]]),
        Case("gen: segmenter as generator", lambda a, d: ["generate", a["labels"], d / "o.nii.gz", "--model", a["segmenter"]]),
        Case("gen: autoencoder-only package", lambda a, d: ["generate", a["labels"], d / "o.nii.gz", "--model", a["ae"]]),
        # --- generate: label mappings
        Case("map: file missing", gen("--label-mapping", lambda a, d: d / "none.json")),
        Case("map: not JSON", gen("--label-mapping", mapping("{oops"))),
        Case("map: a list", gen("--label-mapping", mapping([1, 2]))),
        Case("map: key -1", gen("--label-mapping", mapping({"-1": 0}))),
        Case("map: float target", gen("--label-mapping", mapping({"23": 1.7}))),
        Case("map: negative target, background", gen("--label-mapping", mapping({"23": -4}), "--unknown-labels", "background")),
        Case("map: unknown name", gen("--label-mapping", mapping({"23": "nonexistent structure"}))),
        Case("map: bool target", gen("--label-mapping", mapping({"23": True}))),
        Case("map: null target", gen("--label-mapping", mapping({"23": None}))),
        Case("map: name key without segment names", gen("--label-mapping", mapping({"liver": 23}))),
        Case("map: huge key", gen("--label-mapping", mapping({str(2 ** 40): 23}))),
        Case("map: name target", gen("--label-mapping", mapping({"23": "Amygdala_R"})), expect="ok", check=readable_with_grid("out.nii.gz")),
        # --- translate
        Case("tr: missing source", tr(source=lambda a, d: d / "none.nii.gz")),
        Case("tr: label map as source", tr(source=lambda a, d: a["labels"])),
        Case("tr: CT as source", tr(source=lambda a, d: a["ct"])),
        Case("tr: 2D source", tr(source=lambda a, d: write(sitk.Image(16, 16, sitk.sitkFloat32) + 1, d / "flat.nii.gz"))),
        Case("tr: NaN source", tr(source=lambda a, d: like(a, np.where(sitk.GetArrayFromImage(sitk.ReadImage(str(a["t1"]))) < 50, np.nan,
             sitk.GetArrayFromImage(sitk.ReadImage(str(a["t1"])))).astype(np.float32), d / "n.nii.gz"))),
        Case("tr: truncated source", tr(source=lambda a, d: truncated(a["t1"], d / "cut.nii.gz"))),
        Case("tr: OUT = source", lambda a, d: ["translate", shutil.copy(a["t1"], d / "s.nii.gz"), d / "s.nii.gz", "--field", d / "f.nrrd", "--overwrite"]),
        Case("tr: field = source", lambda a, d: ["translate", shutil.copy(a["t1"], d / "s.nii.gz"), d / "o.nii.gz", "--field", d / "s.nii.gz", "--overwrite"]),
        Case("tr: field = OUT", tr(field_name="t2.nii.gz")),
        Case("tr: labels-out = labels", lambda a, d: ["translate", a["t1"], d / "o.nii.gz", "--field", d / "f.nrrd", "--labels",
             shutil.copy(a["labels"], d / "l.nii.gz"), "--labels-out", d / "l.nii.gz", "--overwrite"]),
        Case("tr: --labels without --labels-out", tr("--labels", lambda a, d: a["labels"])),
        Case("tr: --labels-out without --labels", tr("--labels-out", lambda a, d: d / "lo.nii.gz")),
        Case("tr: labels on another grid", tr("--labels", lambda a, d: write(crop(a["labels"], 16), d / "small.nii.gz"), "--labels-out", lambda a, d: d / "lo.nii.gz")),
        Case("tr: field .png", tr(field_name="field.png")),
        Case("tr: output exists", lambda a, d: (previous("prev.nii.gz")(a, d), tr(out="prev.nii.gz")(a, d))[1]),
        Case("tr: generator as translator", tr(model=lambda a, d: a["model"])),
        Case("tr: translator latent_scale NaN", tr(model=lambda a, d: package_copy(a["translator"], d / "m", lambda m: m["translator"].update(latent_scale=float("nan"))))),
        Case("tr: translator spatial weights traversal", tr(model=lambda a, d: package_copy(a["translator"], d / "m", lambda m: m["spatial"].update(weights="/etc/x.safetensors")))),
        Case("tr: --steps 0", tr("--steps", "0")),
        Case("tr: disk full over previous files", lambda a, d: (previous("t2.nii.gz")(a, d), previous("field.nii")(a, d),
             tr("--overwrite", field_name="field.nii")(a, d))[2], fsize=300_000),
        Case("tr: SIGTERM", tr("--steps", "1000"), sigterm_after="start"),
        Case("gen: SIGTERM while writing", gen("--overwrite", out=previous("previous.nii.gz"),
             labels=lambda a, d: write(sitk.Resample(sitk.ReadImage(str(a["labels"])), [160] * 3, sitk.Transform(),
                                                     sitk.sitkNearestNeighbor, sitk.ReadImage(str(a["labels"])).GetOrigin(),
                                                     [0.4] * 3, sitk.ReadImage(str(a["labels"])).GetDirection()), d / "fine.nii.gz")),
             sigterm_after="partial"),
        Case("ae: SIGTERM while training", train("train-autoencoder", "--steps", "100000"), sigterm_after="start"),
        Case("tr: good run with labels", tr("--labels", lambda a, d: a["labels"], "--labels-out", lambda a, d: d / "lo.nii.gz"),
             expect="ok", check=lambda a, d: all((d / n).exists() for n in ("t2.nii.gz", "field.nrrd", "lo.nii.gz"))
             and readable_with_grid("t2.nii.gz", "t1")(a, d), writes=["t2.nii.gz", "field.nrrd", "lo.nii.gz"]),
        # --- train-autoencoder
        Case("ae: non-empty --out", train("train-autoencoder", out=non_empty_folder("o"))),
        Case("ae: --out = data", train("train-autoencoder", "--overwrite", out=lambda a, d: d / "ds", data=lambda a, d: shutil.copytree(a["dataset"], d / "ds"))),
        Case("ae: --out . holding data", lambda a, d: ["train-autoencoder", "--data", shutil.copytree(a["dataset"], d / "ds"), "--out", ".", "--overwrite", "--steps", "1"]),
        Case("ae: --out is a file", train("train-autoencoder", out=lambda a, d: previous("f.bin")(a, d))),
        Case("ae: --out unwritable", train("train-autoencoder", out=lambda a, d: Path("/proc/pkg"))),
        Case("ae: --steps 0", train("train-autoencoder", "--steps", "0")),
        Case("ae: --batch 0", train("train-autoencoder", "--batch", "0")),
        Case("ae: --lr nan", train("train-autoencoder", "--lr", "nan")),
        Case("ae: --lr -1", train("train-autoencoder", "--lr", "-1")),
        Case("ae: --spacing 0", train("train-autoencoder", "--spacing", "0")),
        Case("ae: --spacing nan", train("train-autoencoder", "--spacing", "nan")),
        Case("ae: --patch 30", train("train-autoencoder", "--patch", "30")),
        Case("ae: --patch 0", train("train-autoencoder", "--patch", "0")),
        Case("ae: --num-embeddings 1", train("train-autoencoder", "--num-embeddings", "1")),
        Case("ae: --checkpoint-every 0", train("train-autoencoder", "--checkpoint-every", "0")),
        Case("ae: data missing", train("train-autoencoder", data=lambda a, d: d / "nope")),
        Case("ae: CSV without header", train("train-autoencoder", data=text_file("d.csv", "a,b\n"))),
        Case("ae: CSV with a missing file", train("train-autoencoder", data=text_file("d.csv", "image,label\nnope.nii.gz,\n"))),
        Case("ae: CSV not UTF-8", train("train-autoencoder", data=lambda a, d: ((d / "d.csv").write_bytes(b"image\n\xff\xfe\n"), d / "d.csv")[1])),
        Case("ae: unknown label table", train("train-autoencoder", "--label-table", "nope")),
        Case("ae: label table not JSON", train("train-autoencoder", "--label-table", text_file("t.json", "{"))),
        Case("ae: --init missing", train("train-autoencoder", "--init", lambda a, d: d / "none")),
        Case("ae: --resume, --checkpoint-dir missing", train("train-autoencoder", "--resume", "--checkpoint-dir", lambda a, d: d / "nock")),
        Case("ae: earlier checkpoint without --resume", lambda a, d: ((d / "m.checkpoint").mkdir(),
             (d / "m.checkpoint" / "checkpoint.json").write_text("{}", encoding="utf-8"), train("train-autoencoder", out="m")(a, d))[2]),
        Case("ae: --out in missing folders, bad data", train("train-autoencoder", out=lambda a, d: d / "x" / "y" / "pkg",
             data=text_file("d.csv", "image,label\nnope.nii.gz,\n"))),
        Case("ae: --resume corrupt checkpoint", lambda a, d: ((d / "m.checkpoint").mkdir(), (d / "m.checkpoint" / "checkpoint.json").write_text("{oops", encoding="utf-8"),
             (d / "m.checkpoint" / "checkpoint.safetensors").write_bytes(b"junk"), train("train-autoencoder", "--resume", out="m")(a, d))[3]),
        Case("ae: disk full writing the package", train("train-autoencoder", "--checkpoint-every", "100"), fsize=20_000),
        Case("ae: good run", train("train-autoencoder", "--label-table", "muse"), expect="ok", check=package_ok("pkg")),
        Case("ae: good run --overwrite over a package", lambda a, d: (shutil.copytree(a["ae"], d / "pkg"),
             train("train-autoencoder", "--overwrite", "--label-table", "muse")(a, d))[1], expect="ok", check=package_ok("pkg")),
        # --- train-diffusion
        Case("dm: --autoencoder missing", lambda a, d: ["train-diffusion", "--data", a["dataset"], "--autoencoder", d / "none", "--out", d / "o"]),
        Case("dm: --autoencoder corrupt", lambda a, d: ["train-diffusion", "--data", a["dataset"], "--autoencoder",
             package_copy(a["ae"], d / "ae", lambda m: m.update(working_spacing=[2, 2])), "--out", d / "o", "--steps", "1"]),
        Case("dm: --out = autoencoder, --overwrite", lambda a, d: ["train-diffusion", "--data", a["dataset"], "--autoencoder",
             package_copy(a["ae"], d / "ae"), "--out", d / "ae", "--overwrite", "--steps", "1"]),
        Case("dm: --latent-patch 3", train("train-diffusion", "--latent-patch", "3")),
        Case("dm: --default-steps 0", train("train-diffusion", "--default-steps", "0")),
        Case("dm: --ema 1.5", train("train-diffusion", "--ema", "1.5")),
        Case("dm: --steps 0", train("train-diffusion", "--steps", "0")),
        Case("dm: --augment-copies -1", train("train-diffusion", "--augment-copies", "-1")),
        Case("dm: --resume with an autoencoder checkpoint", lambda a, d: ["train-diffusion", "--data", a["dataset"], "--autoencoder", a["ae"],
             "--out", d / "o", "--steps", "1", "--latent-patch", "8", "--progress", "none", "--resume", "--checkpoint-dir",
             shutil.copytree(Path(f"{a['ae']}.checkpoint"), d / "ck")]),
        # --- train-segmenter
        Case("seg: --out = data", train("train-segmenter", "--overwrite", out=lambda a, d: d / "ds", data=lambda a, d: shutil.copytree(a["dataset"], d / "ds"))),
        Case("seg: unknown label groups", train("train-segmenter", "--label-groups", "nope")),
        Case("seg: --patch 12", train("train-segmenter", "--patch", "12")),
        Case("seg: --filters 0", train("train-segmenter", "--filters", "0")),
        Case("seg: --steps 0", train("train-segmenter", "--steps", "0")),
        Case("seg: images without labels", train("train-segmenter", data=lambda a, d: text_file("d.csv", f"image,label\n{a['t1']},\n")(a, d))),
        # --- train-translator
        Case("trt: data missing", train("train-translator", data=lambda a, d: d / "nope")),
        Case("trt: data without source/target", train("train-translator", data=lambda a, d: (d / "p").mkdir() or d / "p")),
        Case("trt: no steps at all", train("train-translator", "--steps", "0", "--spatial-steps", "0")),
        Case("trt: --ncc-kernel 1", train("train-translator", "--ncc-kernel", "1")),
        Case("trt: --autoencoder missing", lambda a, d: ["train-translator", "--data", a["dataset"], "--autoencoder", d / "none", "--out", d / "o"]),
        Case("trt: non-empty --out", train("train-translator", out=non_empty_folder("o"))),
        # --- evaluate
        Case("ev: --out is a file", ev(out=lambda a, d: previous("r.txt")(a, d))),
        Case("ev: --out = data", ev("--overwrite", out=lambda a, d: d / "ds", data=lambda a, d: shutil.copytree(a["dataset"], d / "ds"))),
        Case("ev: --out non-empty", ev(out=non_empty_folder("r"))),
        Case("ev: generator as segmenter", ev(segmenter=lambda a, d: a["model"])),
        Case("ev: translator as model", ev(model=lambda a, d: a["translator"])),
        Case("ev: --samples 0", ev("--samples", "0")),
        Case("ev: --feature-depth 7", ev("--feature-depth", "7")),
        Case("ev: --feature-weights missing", ev("--feature-weights", lambda a, d: d / "none.safetensors")),
        Case("ev: --max-cases 0", ev("--max-cases", "0")),
        Case("ev: data without pairs", ev(data=lambda a, d: text_file("d.csv", f"image,label\n{a['t1']},\n")(a, d))),
        Case("ev: good run", ev(), expect="ok", writes=["report"],
             check=lambda a, d: json.loads((d / "report" / "report.json").read_text(encoding="utf-8"))["summary"]["cases"] == 1),
        Case("ev: --overwrite replaces a report", lambda a, d: (non_empty_folder("report")(a, d), ev("--overwrite")(a, d))[1],
             expect="ok", writes=["report"], check=lambda a, d: not (d / "report" / "notes.txt").exists()
             and (d / "report" / "report.md").exists()),
        Case("ev: segmenter NaN class weight", ev(segmenter=lambda a, d: package_copy(a["segmenter"], d / "s", lambda m: m["segmenter"].update(class_weights=[float("nan")])))),
        Case("ev: --out unwritable", ev(out=lambda a, d: Path("/proc/report"))),
        # --- the command line itself
        Case("cli: no command", lambda a, d: []),
        Case("cli: unknown command", lambda a, d: ["benchmark"]),
        Case("cli: generate without args", lambda a, d: ["generate"]),
    ]
    return c


# ---------------------------------------------------------------------------------------------------------
# running and judging

def snapshot(*roots: Path) -> dict:
    state = {}
    for root in roots:
        for path in root.rglob("*"):
            if path.is_symlink():
                state[str(path)] = ("link", os.readlink(path))
            elif path.is_dir():
                state[str(path)] = "dir"
            elif path.is_file():
                data = path.read_bytes()
                state[str(path)] = (len(data), hashlib.sha1(data).hexdigest())
    return state


def run_case(case: Case, assets: dict, folder: Path) -> tuple[str, str]:
    folder.mkdir()
    try:
        args = case.args(assets, folder)
    except Exception as exc:  # noqa: BLE001 - a broken case, not a broken program
        return "setup failed", repr(exc)
    watched = (folder, assets["root"])
    before = snapshot(*watched)
    proc = cli(args, folder, fsize=case.fsize)
    if case.sigterm_after:
        deadline = time.monotonic() + 120
        time.sleep(8.0 if case.sigterm_after == "start" else 1.0)  # "start": well into the work
        while proc.poll() is None and time.monotonic() < deadline and not list(folder.glob(".partial-*")) \
                and case.sigterm_after == "partial":
            time.sleep(0.005)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return "unclear", "timed out"
    after = snapshot(*watched)
    lines = [line for line in err.strip().splitlines() if line.strip()]
    detail = f"exit {proc.returncode}: " + (" | ".join(lines[-3:]) if lines else "(no stderr)")
    allowed = [folder / w for w in case.writes] if proc.returncode == 0 and case.expect == "ok" else []

    def expected(p: str) -> bool:
        return any(Path(p) == w or w in Path(p).parents for w in allowed)
    lost = [p for p, v in before.items() if after.get(p) != v and not expected(p)]
    new = [p for p in after if p not in before and not expected(p)]
    if lost:
        return "data lost", detail + f" [changed: {', '.join(Path(p).name for p in lost[:3])}]"
    if "Traceback (most recent call last)" in err or "this is a bug" in err:
        return "traceback", detail
    expected_ok = case.expect == "ok" or (case.sigterm_after and proc.returncode == 0)
    if proc.returncode == 0:
        if not expected_ok:
            return "wrong", detail + " (bad input accepted)"
        if case.check and not case.check(assets, folder):
            return "wrong", detail + " (result fails its check)"
        if any(".partial-" in p for p in new):
            return "partial", detail
        return "ok", detail
    if new:
        return "partial", detail + f" [left: {', '.join(Path(p).name for p in new[:3])}]"
    if case.expect == "ok":
        return "wrong", detail + " (good input refused)"
    if len(lines) == 1 and lines[0].startswith("error: "):
        return "handled", detail
    return "unclear", detail


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=None, help="run the cases whose name contains this")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--verbose", action="store_true", help="print every case")
    parser.add_argument("--jobs", type=int, default=2, help="cases run at once (each is its own child process)")
    opts = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="semanticsynth-sweep-"))
    t0 = time.monotonic()
    try:
        assets = build_assets(work / "assets")
        selected = [c for c in cases() if not opts.only or opts.only in c.name]
        counts: dict[str, int] = {}
        with ThreadPoolExecutor(max(1, opts.jobs)) as pool:
            results = pool.map(lambda item: run_case(item[1], assets, work / f"case{item[0]:03d}"), enumerate(selected))
            for case, (outcome, detail) in zip(selected, results):
                counts[outcome] = counts.get(outcome, 0) + 1
                if opts.verbose or outcome not in ("handled", "ok"):
                    print(f"[{outcome}] {case.name}: {detail}", flush=True)
        print(f"\n{len(selected)} cases in {time.monotonic() - t0:.0f} s")
        for outcome in ("handled", "ok", "traceback", "wrong", "partial", "data lost", "unclear", "setup failed"):
            print(f"  {outcome:12s} {counts.get(outcome, 0)}")
        return 0 if set(counts) <= {"handled", "ok"} else 1
    finally:
        if not opts.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")


if __name__ == "__main__":
    sys.exit(main())
