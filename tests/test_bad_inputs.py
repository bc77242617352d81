"""Issue 12: nothing lost, nothing silently wrong.

Every case gives bad or awkward input to a real command and checks three things: the exact one-line
message, the exit status, and that no file in the working folder changed or appeared (sizes, bytes and
modification times, hidden temp files included). Disk-full and SIGTERM run the real CLI in a child
process: the write failure comes from a file-size limit (RLIMIT_FSIZE, with SIGXFSZ ignored, so the
write itself fails as on a full disk), the signal from os.kill.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from SemanticSynthLib.cli import main
from SemanticSynthLib.engine.commands.run import ENTRY_POINTS
from SemanticSynthLib.engine.model.package_metadata import default_model_dir

from testdata import REPO, SHARED

TRANSLATOR = default_model_dir() / "brain-t1-to-t2like"


def snapshot(root: Path) -> dict:
    """Every file and folder under root with its size, mtime and content hash."""
    state = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_dir():
            state[rel] = "dir"
        else:
            data = path.read_bytes()
            state[rel] = (len(data), path.stat().st_mtime_ns, hashlib.sha1(data).hexdigest())
    return state


def run_cli(args, capsys):
    code = main([str(a) for a in args])
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def assert_refused(args, message, capsys, root, code=2):
    before = snapshot(root)
    got, err = run_cli(args, capsys)
    assert err == [message], err
    assert got == code
    assert snapshot(root) == before, "files changed or appeared"


def child(args, cwd, fsize=None, **popen):
    """The real console entry point in a child process, optionally with a file-size limit."""
    def limit():
        if fsize is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.Popen([sys.executable, "-m", "SemanticSynthLib", *map(str, args)], cwd=cwd, env=env,
                            preexec_fn=limit, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def finish(proc, timeout=120):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, err.strip().splitlines()


@pytest.fixture()
def work(tmp_path, tiny_labels):
    """A working folder with a good label map, the user's previous output, and a T1 crop."""
    sitk.WriteImage(tiny_labels, str(tmp_path / "labels.nii.gz"))
    (tmp_path / "previous.nii.gz").write_bytes(b"the user's earlier result")
    image = sitk.ReadImage(str(SHARED / "ixi_muse" / "t1" / "IXI013-HH-1212.nii.gz"))
    start = [(s - 32) // 2 for s in image.GetSize()]
    sitk.WriteImage(sitk.RegionOfInterest(image, [32] * 3, start), str(tmp_path / "t1.nii.gz"))
    return tmp_path


# --- 1. outputs never destroy what the user had -------------------------------------------------------

def test_train_into_a_non_empty_folder_is_refused(work, tiny_dataset, capsys):
    out = work / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me", encoding="utf-8")
    assert_refused(["train-autoencoder", "--data", tiny_dataset, "--out", out, "--steps", "1", "--progress", "none"],
                   f"error: --out {out} exists and is not empty; pass --overwrite to replace it or choose a new folder",
                   capsys, work)


def test_train_out_equal_to_the_data_or_holding_it_is_refused_even_with_overwrite(work, tiny_dataset, capsys, monkeypatch):
    data = work / "ds"
    shutil.copytree(tiny_dataset, data)
    assert_refused(["train-segmenter", "--data", data, "--out", data, "--overwrite", "--steps", "1"],
                   f"error: --out {data} is the input {data}; writing there would delete it, choose another folder",
                   capsys, work)
    monkeypatch.chdir(work)
    assert_refused(["train-segmenter", "--data", "ds", "--out", ".", "--overwrite", "--steps", "1"],
                   "error: --out . holds the input ds; writing there would delete it, choose another folder", capsys, work)
    (work / "empty").mkdir()
    monkeypatch.chdir(work / "empty")
    assert_refused(["train-segmenter", "--data", data, "--out", ".", "--overwrite", "--steps", "1"],
                   "error: --out . is the current folder or holds it; choose a new folder for the output", capsys, work)


def test_train_out_that_is_a_file_or_unwritable_fails_before_any_work(work, tiny_dataset, capsys):
    assert_refused(["train-diffusion", "--data", tiny_dataset, "--autoencoder", "brain-mri", "--out", work / "labels.nii.gz"],
                   f"error: --out {work / 'labels.nii.gz'} is a file; give a folder path (a new or empty folder)", capsys, work)
    assert_refused(["train-autoencoder", "--data", tiny_dataset, "--out", "/proc/semanticsynth-model"],
                   "error: output folder /proc is not writable; choose another output path", capsys, work)
    assert_refused(["evaluate", "--segmenter", "brain-mri-segmenter", "--data", tiny_dataset, "--out", work / "labels.nii.gz"],
                   f"error: --out {work / 'labels.nii.gz'} is a file; give a folder path (a new or empty folder)", capsys, work)


def test_train_with_overwrite_replaces_only_after_the_new_package_is_complete(work, tiny_dataset, capsys):
    out = work / "model"
    out.mkdir()
    (out / "notes.txt").write_text("old", encoding="utf-8")
    bad = work / "bad.csv"
    bad.write_text("image,label\nmissing.nii.gz,\n", encoding="utf-8")
    assert_refused(["train-autoencoder", "--data", bad, "--out", out, "--overwrite", "--steps", "1", "--patch", "32",
                    "--progress", "none"], f"error: input not found: {work / 'missing.nii.gz'}; check the path", capsys, work)
    code, err = run_cli(["train-autoencoder", "--data", tiny_dataset, "--out", out, "--overwrite", "--steps", "1",
                         "--patch", "32", "--progress", "none"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["autoencoder.safetensors", "metadata.json"]
    assert not list(work.glob(".partial-*"))


def test_an_earlier_runs_checkpoint_is_not_overwritten_without_resume(work, tiny_dataset, capsys):
    ckpt = work / "model.checkpoint"
    ckpt.mkdir()
    (ckpt / "checkpoint.json").write_text("{}", encoding="utf-8")
    (ckpt / "checkpoint.safetensors").write_bytes(b"x")
    assert_refused(["train-autoencoder", "--data", tiny_dataset, "--out", work / "model", "--steps", "1"],
                   f"error: {ckpt} holds a checkpoint of an earlier run; pass --resume to continue it, or --overwrite to start over",
                   capsys, work)


def test_output_equal_to_an_input_is_refused(work, capsys):
    labels = work / "labels.nii.gz"
    assert_refused(["generate", labels, labels, "--overwrite", "--model", "brain-mri"],
                   f"error: the output {labels} is the input {labels}; choose another output path", capsys, work)
    os.link(labels, work / "hardlink.nii.gz")
    assert_refused(["generate", labels, work / "hardlink.nii.gz", "--overwrite", "--model", "brain-mri"],
                   f"error: the output {work / 'hardlink.nii.gz'} is the input {labels}; choose another output path", capsys, work)
    t1 = work / "t1.nii.gz"
    assert_refused(["translate", t1, t1, "--field", work / "f.nrrd", "--overwrite"],
                   f"error: the output {t1} is the input {t1}; choose another output path", capsys, work)
    assert_refused(["translate", t1, work / "o.nii.gz", "--field", t1, "--overwrite"],
                   f"error: the output {t1} is the input {t1}; choose another output path", capsys, work)
    assert_refused(["translate", t1, work / "o.nii.gz", "--field", work / "f.nrrd", "--labels", labels, "--labels-out", labels,
                    "--overwrite"], f"error: the output {labels} is the input {labels}; choose another output path", capsys, work)
    assert_refused(["translate", t1, work / "o.nii.gz", "--field", work / "o.nii.gz"],
                   f"error: two outputs are the same file ({work / 'o.nii.gz'}); give each output its own path", capsys, work)


# --- 2. writes that verify themselves -----------------------------------------------------------------

@pytest.mark.parametrize("suffix,limit", [(".nii.gz", 4000), (".nii", 40000), (".nrrd", 4000), (".mha", 4000)])
def test_disk_full_while_writing_keeps_the_previous_file(work, tiny_model, suffix, limit):
    out = work / f"previous{suffix}"
    out.write_bytes(b"the user's earlier result")
    before = snapshot(work)
    code, err = finish(child(["generate", work / "labels.nii.gz", out, "--model", tiny_model, "--steps", "1",
                              "--progress", "none", "--overwrite"], work, fsize=limit))
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"error: cannot write {out}: ") and "(disk full?)" in err[0], err
    assert snapshot(work) == before


def test_disk_full_message_for_nifti_is_exact(work, tiny_model):
    out = work / "out.nii.gz"
    code, err = finish(child(["generate", work / "labels.nii.gz", out, "--model", tiny_model, "--steps", "1",
                              "--progress", "none"], work, fsize=4000))
    assert err == [f"error: cannot write {out}: the file did not read back as written (disk full?); any previous file "
                   "is unchanged, free space or choose another output path"]
    assert code == 2 and not out.exists() and not list(work.glob(".partial-*"))


def test_translate_write_failure_restores_the_users_previous_files(work):
    out, field = work / "t2.nii.gz", work / "field.nii"
    out.write_bytes(b"previous translation")
    field.write_bytes(b"previous field")
    before = snapshot(work)
    # The translated volume (float32, compressed) fits under the limit; the field (3 x float64, uncompressed) does not.
    code, err = finish(child(["translate", work / "t1.nii.gz", out, "--field", field, "--steps", "1", "--overwrite",
                              "--progress", "none"], work, fsize=300_000), timeout=300)
    assert code == 2 and len(err) == 1 and err[0].startswith(f"error: cannot write {field}: "), err
    assert snapshot(work) == before


def test_package_write_failure_is_reported_and_leaves_nothing(work, tiny_dataset):
    before = snapshot(work)
    code, err = finish(child(["train-autoencoder", "--data", tiny_dataset, "--out", work / "new" / "ae", "--steps", "1",
                              "--patch", "32", "--progress", "none", "--checkpoint-every", "100"], work, fsize=20_000), timeout=300)
    assert code == 2 and len(err) == 1 and "(disk full?)" in err[0], err
    # No package, no temp folder, and neither the checkpoint folder, the log nor the parent folder it created
    # (there is nothing to resume from).
    assert snapshot(work) == before


def test_a_failed_training_run_removes_the_folders_and_log_it_created(work, capsys):
    bad = work / "bad.csv"
    bad.write_text("image,label\nmissing.nii.gz,\n", encoding="utf-8")
    assert_refused(["train-autoencoder", "--data", bad, "--out", work / "new" / "deeper" / "pkg", "--steps", "1",
                    "--progress", "none"], f"error: input not found: {work / 'missing.nii.gz'}; check the path", capsys, work)


def test_sigterm_while_writing_leaves_nothing_behind(work, tiny_model, tiny_labels):
    # A fine label map (0.4 mm) over the same 64 mm: generation works on a 32^3 grid, the output is 160^3.
    fine = sitk.Resample(tiny_labels, [160] * 3, sitk.Transform(), sitk.sitkNearestNeighbor, tiny_labels.GetOrigin(),
                         [0.4] * 3, tiny_labels.GetDirection(), 0, tiny_labels.GetPixelID())
    sitk.WriteImage(fine, str(work / "fine.nii.gz"))
    out = work / "previous.nii.gz"
    before = snapshot(work)
    proc = child(["generate", work / "fine.nii.gz", out, "--model", tiny_model, "--steps", "1", "--progress", "none",
                  "--overwrite"], work)
    deadline = time.monotonic() + 120
    while not list(work.glob(".partial-*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    assert list(work.glob(".partial-*")), "the write was not seen"
    proc.send_signal(signal.SIGTERM)
    code, err = finish(proc)
    assert err == ["error: interrupted by SIGTERM; nothing was written"]
    assert code == 128 + signal.SIGTERM
    assert snapshot(work) == before


# --- 3. strict reading ---------------------------------------------------------------------------------

def test_truncated_nii_gz_is_an_error(work, tiny_model, capsys):
    data = (work / "labels.nii.gz").read_bytes()
    (work / "cut.nii.gz").write_bytes(data[: len(data) // 2])
    assert_refused(["generate", work / "cut.nii.gz", work / "out.nii.gz", "--model", tiny_model],
                   "error: cut.nii.gz is truncated or corrupt (Compressed file ended before the end-of-stream marker was "
                   "reached); re-export or copy the file again", capsys, work)


def test_nan_in_a_nii_gz_label_map_is_an_error(work, tiny_labels, tiny_model, capsys):
    values = sitk.GetArrayFromImage(tiny_labels).astype(np.float32)
    values[3, 4, 5] = np.nan
    values[6, 7, 8] = np.inf
    image = sitk.GetImageFromArray(values)
    image.CopyInformation(tiny_labels)
    sitk.WriteImage(image, str(work / "nan.nii.gz"))
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(work / "nan.nii.gz")))[3, 4, 5] == 0  # what SimpleITK alone sees
    assert_refused(["generate", work / "nan.nii.gz", work / "out.nii.gz", "--model", tiny_model],
                   "error: nan.nii.gz has 2 NaN or infinite voxels; replace them (e.g. by 0) and try again", capsys, work)


def _dicom_series(folder: Path, labels: sitk.Image, uids) -> None:
    folder.mkdir()
    values = sitk.GetArrayFromImage(labels)[:8].astype(np.int16)
    for uid in uids:
        for z in range(values.shape[0]):
            sl = sitk.GetImageFromArray(values[z])
            sl.SetSpacing((2.0, 2.0))
            tags = {"0020|000e": uid, "0020|000d": "1.2.826.0.1.3680043.2.1125.9", "0008|0060": "OT",
                    "0020|0013": str(z + 1), "0020|0032": f"0\\0\\{2.0 * z}", "0020|0037": "1\\0\\0\\0\\1\\0",
                    "0018|0050": "2.0", "0008|0016": "1.2.840.10008.5.1.4.1.1.7", "0008|0018": f"{uid}.{z + 1}"}
            for tag, value in tags.items():
                sl.SetMetaData(tag, value)
            writer = sitk.ImageFileWriter()
            writer.KeepOriginalImageUIDOn()
            writer.SetFileName(str(folder / f"{uid[-1]}_{z:02d}.dcm"))
            writer.Execute(sl)


def test_a_dicom_folder_with_two_series_lists_them_and_series_chooses(work, tiny_labels, tiny_model, capsys):
    folder = work / "dicom"
    _dicom_series(folder, tiny_labels, ["1.2.826.0.1.3680043.2.1125.1", "1.2.826.0.1.3680043.2.1125.2"])
    found = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    assert_refused(["generate", folder, work / "out.nii.gz", "--model", tiny_model],
                   f"error: folder {folder} holds 2 DICOM series: {found[0]} (8 files), {found[1]} (8 files); "
                   "choose one with --series UID", capsys, work)
    assert_refused(["generate", folder, work / "out.nii.gz", "--model", tiny_model, "--series", "9.9"],
                   f"error: DICOM series 9.9 is not in folder {folder}; it holds: {found[0]}, {found[1]}", capsys, work)
    code, err = run_cli(["generate", folder, work / "out.nii.gz", "--model", tiny_model, "--series", found[1],
                         "--steps", "1", "--progress", "none"], capsys)
    assert code == 0, err
    assert sitk.ReadImage(str(work / "out.nii.gz")).GetSize() == (32, 32, 8)


def test_non_orthonormal_direction_is_refused(work, tiny_labels, tiny_model, capsys):
    sheared = sitk.Image(tiny_labels)
    sheared.SetDirection((1, 0.3, 0, 0, 1, 0, 0, 0, 1))
    sitk.WriteImage(sheared, str(work / "sheared.nrrd"))
    assert_refused(["generate", work / "sheared.nrrd", work / "out.nii.gz", "--model", tiny_model],
                   "error: sheared.nrrd has a non-orthonormal direction matrix (sheared or scaled axes); resample it onto "
                   "a grid with orthonormal axes first", capsys, work)


def test_a_label_map_or_a_ct_as_translation_source_is_refused(work, capsys):
    assert_refused(["translate", work / "labels.nii.gz", work / "o.nii.gz", "--field", work / "f.nrrd", "--model", TRANSLATOR],
                   "error: the source looks like a label map (whole-number values in uniform regions), but model "
                   "brain-t1-to-t2like translates MRI T1 images; give the intensity volume (carry labels with --labels "
                   "SEG --labels-out OUT_SEG)", capsys, work)
    ct = sitk.ReadImage(str(SHARED / "totalseg" / "aorta_ct_crop.nii.gz"))
    sitk.WriteImage(sitk.RegionOfInterest(ct, [32, 32, 32], [60, 40, 60]), str(work / "ct.nii.gz"))
    assert_refused(["translate", work / "ct.nii.gz", work / "o.nii.gz", "--field", work / "f.nrrd", "--model", TRANSLATOR],
                   "error: the source looks like CT but model brain-t1-to-t2like translates MRI T1; give a matching source "
                   "or another --model", capsys, work)


# --- 4. one validated schema for packages ----------------------------------------------------------------

def _broken_copy(model: Path, where: Path, change) -> Path:
    broken = where / "broken-model"
    shutil.copytree(model, broken)
    meta = json.loads((broken / "metadata.json").read_text(encoding="utf-8"))
    change(meta)
    (broken / "metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    return broken


@pytest.mark.parametrize("change,field,problem", [
    (lambda m: m["normalization"]["mri"].update(scale=float("nan")), "normalization.mri.scale", "Input should be a finite number (got nan)"),
    (lambda m: m["diffusion"].update(latent_scale=0), "diffusion.latent_scale", "Input should be greater than 0 (got 0)"),
    (lambda m: m.update(working_spacing=[2, -1, 2]), "working_spacing[1]", "Input should be greater than 0 (got -1)"),
    (lambda m: m.update(working_spacing="2"), "working_spacing", "Input should be a valid list (got '2')"),
    (lambda m: m["diffusion"]["schedule"].update(schedule="quadratic"), "diffusion.schedule.schedule",
     "Input should be 'linear_beta', 'scaled_linear_beta', 'sigmoid_beta' or 'cosine' (got 'quadratic')"),
    (lambda m: m.update(format_version="one"), "format_version", "Input should be a valid integer (got 'one')"),
    (lambda m: m["label_table"]["labels"][0].update(id=0), "label_table.labels[0].id",
     "Input should be greater than or equal to 1 (got 0)"),
    (lambda m: m["diffusion"]["config"].update(num_res_blocks=1000), "diffusion.config.num_res_blocks",
     "Input should be less than or equal to 8 (got 1000)"),
    (lambda m: m["diffusion"].update(weights="../../elsewhere.safetensors"), "diffusion.weights",
     "must be a file name in the package folder ending in .safetensors (got '../../elsewhere.safetensors')"),
    (lambda m: m.update(texture={"mri": {"bin_edges": [0, 0.5, 1], "strength": {"labels": [0.1], "outside": [0, 0]},
                                         "widths": [0.5, 0.5, 0.5], "gain": 0.4, "cases": 2}}),
     "texture.mri", "strength must have one value per bin (len(bin_edges) - 1) in each region"),
    (lambda m: m.update(texture={"mri": {"bin_edges": [0, 1], "strength": {"labels": [0.1], "outside": [0]},
                                         "widths": [0.5, 0.5, 0.5], "gain": 0.4, "cases": 2,
                                         "unlabelled": {"shells_mm": [0, 5], "levels": [0, 1],
                                                        "generated": [[0, 1], [0.5, 0.5]], "real": [[0, 1], [0, 1]]}}}),
     "texture.mri.unlabelled", "each shell's generated quantiles must increase"),
])
def test_a_broken_package_is_named_field_by_field(change, field, problem, work, tiny_model, capsys):
    broken = _broken_copy(tiny_model, work, change)
    assert_refused(["generate", work / "labels.nii.gz", work / "out.nii.gz", "--model", broken],
                   f"error: metadata.json of {broken}: field {field}: {problem}; the package is broken, retrain or "
                   "reinstall it", capsys, work)


def test_metadata_that_is_not_an_object_and_unknown_keys(work, tiny_model, capsys):
    broken = work / "list-model"
    shutil.copytree(tiny_model, broken)
    (broken / "metadata.json").write_text("[1, 2]", encoding="utf-8")
    assert_refused(["generate", work / "labels.nii.gz", work / "out.nii.gz", "--model", broken],
                   f"error: metadata.json of {broken} is not a JSON object; reinstall or retrain the model package", capsys, work)
    extra = _broken_copy(tiny_model, work, lambda m: m.update(priors={"future": True}, calibration=[1, 2]))
    code, err = run_cli(["generate", work / "labels.nii.gz", work / "out.nii.gz", "--model", extra, "--steps", "1",
                         "--progress", "none"], capsys)
    assert code == 0, err  # keys added by newer versions are allowed


def test_bundled_packages_validate():
    from SemanticSynthLib.engine.model.package_metadata import bundled_models, read_metadata

    for name in bundled_models():
        read_metadata(default_model_dir() / name)


# --- 5. arguments and label mappings -------------------------------------------------------------------

@pytest.mark.parametrize("extra,message", [
    (["--steps", "0"], "argument --steps: must be at least 1, not 0"),
    (["--threads", "-1"], "argument --threads: must be between 1 and 1024, not -1"),
    (["--seed", str(2 ** 64)], f"argument --seed: must be between 0 and {2 ** 63 - 1}, not {2 ** 64}"),
    (["--seed", "-1"], f"argument --seed: must be between 0 and {2 ** 63 - 1}, not -1"),
    (["--window", "2"], "argument --window: must be between 8 and 1024, not 2"),
    (["--max-voxels", "0"], "argument --max-voxels: must be at least 1, not 0"),
    (["--steps", "abc"], "argument --steps: 'abc' is not a whole number"),
])
def test_generate_options_are_range_checked(extra, message, work, tiny_model, capsys):
    assert_refused(["generate", work / "labels.nii.gz", work / "out.nii.gz", "--model", tiny_model, *extra],
                   f"error: {message}; see semanticsynth generate --help", capsys, work)


@pytest.mark.parametrize("command,extra,message", [
    ("train-autoencoder", ["--steps", "0"], "argument --steps: must be at least 1, not 0"),
    ("train-autoencoder", ["--batch", "0"], "argument --batch: must be between 1 and 1024, not 0"),
    ("train-autoencoder", ["--lr", "nan"], "argument --lr: 'nan' is not a finite number"),
    ("train-autoencoder", ["--spacing", "0,2,2"], "argument --spacing: spacing is one or three numbers in mm above 0 and "
                                                  "at most 100, e.g. 2 or 1.5,1.5,3"),
    ("train-autoencoder", ["--patch", "30"], "argument --patch: give one or three sizes, each a multiple of 4 between 8 "
                                             "and 512, e.g. 16"),
    ("train-segmenter", ["--steps", "0"], "argument --steps: must be at least 1, not 0"),
])
def test_training_options_are_range_checked(command, extra, message, work, tiny_dataset, capsys):
    assert_refused([command, "--data", tiny_dataset, "--out", work / "m", *extra],
                   f"error: {message}; see semanticsynth {command} --help", capsys, work)


@pytest.mark.parametrize("mapping,message", [
    ({"-1": 0}, "key '-1' is neither an input id (a whole number >= 0) nor a name in the label map (it names no segments); "
                "use the input's label ids as keys"),
    ({"23": 1.7}, "the target of '23', 1.7 is not a label id; ids are whole numbers from 0 to 2147483647"),
    ({"23": -4}, "the target of '23', -4 is not a label id; ids are whole numbers from 0 to 2147483647"),
    ({"23": True}, "the target of '23', True is not a label id; ids are whole numbers from 0 to 2147483647"),
    ({"23": 999}, "the target of '23', 999, is not a label of the model (muse); use one of its ids or names, or 0 for background"),
    ({"23": "no such structure"}, "'no such structure' is not a label of the model; use one of its names or ids"),
    ({"liver": 23}, "key 'liver' is neither an input id (a whole number >= 0) nor a name in the label map (it names no "
                    "segments); use the input's label ids as keys"),
])
def test_label_mapping_types_and_ranges(mapping, message, work, tiny_model, capsys):
    path = work / "map.json"
    path.write_text(json.dumps(mapping), encoding="utf-8")
    assert_refused(["generate", work / "labels.nii.gz", work / "out.nii.gz", "--model", tiny_model, "--label-mapping", path],
                   f"error: label mapping {path}: {message}", capsys, work)


def test_label_mapping_names_as_keys_from_the_label_maps_segments(work, tiny_labels, tiny_model, capsys):
    """Slicer's .seg.nrrd names its segments; those names may be the keys of a mapping."""
    values = sitk.GetArrayFromImage(tiny_labels)
    present = [int(v) for v in np.unique(values) if v]
    renumbered = np.searchsorted(present, values) + (values > 0)  # ids 1..N, as Slicer numbers segments
    image = sitk.GetImageFromArray(np.where(values > 0, renumbered, 0).astype(np.int16))
    image.CopyInformation(tiny_labels)
    for i, muse_id in enumerate(present):
        image.SetMetaData(f"Segment{i}_Name", f"structure {muse_id}")
        image.SetMetaData(f"Segment{i}_LabelValue", str(i + 1))
    sitk.WriteImage(image, str(work / "seg.nrrd"))
    (work / "map.json").write_text(json.dumps({f"structure {m}": m for m in present}), encoding="utf-8")
    code, err = run_cli(["generate", work / "seg.nrrd", work / "out.nii.gz", "--model", tiny_model, "--label-mapping",
                         work / "map.json", "--steps", "1", "--progress", "none"], capsys)
    assert code == 0, err


def test_a_huge_extent_is_refused_before_allocating_with_the_estimate(work, tiny_labels, tiny_model, capsys):
    coarse = sitk.Image(tiny_labels)
    coarse.SetSpacing((100.0, 100.0, 100.0))
    sitk.WriteImage(coarse, str(work / "coarse.nii.gz"))
    # 1600 working voxels per axis, plus 8 of replicated labels at each end (the map's labels touch every face:
    # geometry.edge_margins), rounded up to 16.
    assert_refused(["generate", work / "coarse.nii.gz", work / "out.nii.gz", "--model", tiny_model],
                   "error: input too large: the working grid is 1616x1616x1616 voxels at the model's 2x2x2 mm spacing "
                   "(4220112896 voxels, about 337.6 GB of memory), over the limit of 134217728 voxels; crop the volume to "
                   "the region you need, or resample it to a smaller extent, or raise --max-voxels", capsys, work)


def test_a_file_too_large_to_read_is_refused_from_its_header(work, tiny_model, capsys):
    from SemanticSynthLib.engine.volume.memory import available_bytes

    (work / "data.raw").write_bytes(b"")
    (work / "huge.nhdr").write_text("NRRD0004\ntype: float\ndimension: 3\nsizes: 8000 8000 8000\nspace: left-posterior-superior\n"
                                    "space directions: (1,0,0) (0,1,0) (0,0,1)\nendian: little\nencoding: raw\ndata file: data.raw\n")
    before = snapshot(work)
    code, err = run_cli(["generate", work / "huge.nhdr", work / "out.nii.gz", "--model", tiny_model], capsys)
    assert err == [f"error: huge.nhdr has 8000x8000x8000 voxels, about 2048.0 GB to read, and {available_bytes() / 1e9:.1f} GB "
                   "is available; crop or downsample it first"] or (len(err) == 1 and "GB is available" in err[0]), err
    assert code == 2 and snapshot(work) == before


# --- 6. resume -----------------------------------------------------------------------------------------

def test_resume_fails_cleanly_on_missing_corrupt_or_mismatched_checkpoints(work, tiny_dataset, capsys):
    base = ["--data", tiny_dataset, "--steps", "1", "--patch", "32", "--progress", "none"]
    assert_refused(["train-autoencoder", *base, "--out", work / "m", "--resume", "--checkpoint-dir", work / "nope"],
                   f"error: --resume: checkpoint folder {work / 'nope'} does not exist; check --checkpoint-dir, or leave out "
                   "--resume", capsys, work)
    assert run_cli(["train-autoencoder", *base, "--out", work / "ae", "--label-table", "muse"], capsys)[0] == 0
    ckpt = work / "ae.checkpoint"
    # An autoencoder checkpoint given to a diffusion run: another network.
    assert_refused(["train-diffusion", "--data", tiny_dataset, "--autoencoder", work / "ae", "--out", work / "dm", "--steps", "1",
                    "--latent-patch", "8", "--progress", "none", "--resume", "--checkpoint-dir", ckpt],
                   f"error: checkpoint {ckpt} has no 'denoiser' network; it is from another kind of training, choose another "
                   "--checkpoint-dir or leave out --resume", capsys, work)
    # A checkpoint of a network with another codebook size.
    before = snapshot(work)
    code, err = run_cli(["train-autoencoder", *base, "--out", work / "ae", "--overwrite", "--resume", "--label-table", "muse",
                         "--num-embeddings", "64"], capsys)
    assert code == 2 and len(err) == 1, err
    assert re.fullmatch(f"error: checkpoint {re.escape(str(ckpt))} does not match the 'autoencoder' network of this run: "
                        r"size of \S+ is \(256\S*\), the network has \(64\S*\); resume with the "
                        "options of the run that made it, or leave out --resume", err[0]), err
    assert snapshot(work) == before
    data = (ckpt / "checkpoint.safetensors").read_bytes()
    (ckpt / "checkpoint.safetensors").write_bytes(data[: len(data) // 3])
    before = snapshot(work)
    code, err = run_cli(["train-autoencoder", *base, "--out", work / "ae", "--overwrite", "--resume"], capsys)
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"error: checkpoint {ckpt} is corrupt (") and err[0].endswith(
        "); remove the folder to start over, or leave out --resume"), err
    assert snapshot(work) == before


# --- 7. no traceback reaches the user -----------------------------------------------------------------

def test_an_unexpected_exception_is_one_line_with_a_bug_hint(work, capsys, monkeypatch):
    # A real function that fails on the arguments it is given: json.loads of the request.
    monkeypatch.setitem(ENTRY_POINTS, "generate", lambda request, progress: json.loads(request))
    args = ["generate", work / "labels.nii.gz", work / "out.nii.gz", "--model", "brain-mri"]
    assert_refused(args, "error: unexpected TypeError: the JSON object must be str, bytes or bytearray, not "
                   "GenerationRequest; this is a bug, please report it with the command line; rerun with --debug for "
                   "the traceback", capsys, work, code=1)
    code = main([str(a) for a in args + ["--debug"]])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback (most recent call last)" in err


def test_a_bad_option_is_one_line_in_a_child_process(work):
    code, err = finish(child(["generate", work / "labels.nii.gz", work / "out.nii.gz", "--steps", "-3"], work))
    assert err == ["error: argument --steps: must be at least 1, not -3; see semanticsynth generate --help"]
    assert code == 2


# --- 8. hostile inputs of issue 31 (item 9) ------------------------------------------------------------

def _raw_volume(folder: Path, labels: sitk.Image) -> str:
    """The tiny label map's voxels as a raw int16 file, for hand-written NRRD and MetaImage headers."""
    (folder / "voxels.raw").write_bytes(sitk.GetArrayFromImage(labels).astype("<i2").tobytes())
    return "voxels.raw"


def _nifti_with_header(path: Path, labels: sitk.Image, pixdim=(2.0, 2.0, 2.0), sform=None) -> None:
    """A NIfTI-1 file of the tiny label map whose pixdim and sform are written byte for byte (nibabel and ITK
    both replace a zero pixdim by 1 when they write or read one)."""
    import struct

    import nibabel as nib

    raw = path.with_suffix(".tmp.nii")
    nib.save(nib.Nifti1Image(sitk.GetArrayFromImage(labels).transpose(2, 1, 0).astype(np.int16), np.eye(4)), str(raw))
    data = bytearray(raw.read_bytes())
    raw.unlink()
    struct.pack_into("<3f", data, 80, *pixdim)
    struct.pack_into("<hh", data, 252, 0, 1 if sform is not None else 0)  # qform_code, sform_code
    if sform is not None:
        struct.pack_into("<12f", data, 280, *np.asarray(sform, float).ravel())
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name,header,message", [
    ("zero.nhdr", "nrrd:(0,0,0) (0,2,0) (0,0,2)", "has a zero voxel spacing (0x2x2 mm) in its header; set the real voxel "
                                                  "size (mm) in the header, or re-export the file"),
    ("zero.mhd", "mhd:ElementSpacing = 2 0 2\nTransformMatrix = 1 0 0 0 1 0 0 0 1",
     "has a zero voxel spacing (2x0x2 mm) in its header; set the real voxel size (mm) in the header, or re-export the file"),
    ("zero_direction.mhd", "mhd:ElementSpacing = 2 2 2\nTransformMatrix = 0 0 0 0 0 0 0 0 0",
     "has an all-zero direction matrix in its header; set the axes' directions in the header, or re-export the file"),
    ("singular.nhdr", "nrrd:(2,0,0) (2,0,0) (0,0,2)", "has a singular direction matrix (determinant 0: an axis is zero or "
                                                      "two axes are parallel) in its header; set the axes' directions in "
                                                      "the header, or re-export the file"),
    ("zero_pixdim.nii", "nifti:pixdim", "has a zero voxel spacing (0x2x2 mm) in its header; set the real voxel size (mm) "
                                        "in the header, or re-export the file"),
    ("singular_sform.nii", "nifti:sform", "has a singular direction matrix (determinant 0: an axis is zero or two axes "
                                          "are parallel) in its header; set the axes' directions in the header, or "
                                          "re-export the file"),
    ("zero_sform.nii", "nifti:zero", "has an all-zero direction matrix in its header; set the axes' directions in the "
                                     "header, or re-export the file"),
])
def test_zero_spacing_and_zero_or_singular_directions_are_named(name, header, message, work, tiny_labels, tiny_model, capsys):
    kind, _, text = header.partition(":")
    path = work / name
    if kind == "nrrd":
        path.write_text(f"NRRD0004\ntype: short\ndimension: 3\nsizes: 32 32 32\nspace: left-posterior-superior\n"
                        f"space directions: {text}\nspace origin: (0,0,0)\nendian: little\nencoding: raw\n"
                        f"data file: {_raw_volume(work, tiny_labels)}\n")
    elif kind == "mhd":
        path.write_text(f"ObjectType = Image\nNDims = 3\nDimSize = 32 32 32\nElementType = MET_SHORT\n{text}\n"
                        f"Offset = 0 0 0\nElementDataFile = {_raw_volume(work, tiny_labels)}\n", encoding="utf-8")
    elif text == "pixdim":  # no sform or qform: ITK would read spacing 1 where the file says 0, and go on
        _nifti_with_header(path, tiny_labels, pixdim=(0.0, 2.0, 2.0))
    else:
        rows = [[2, 0, 0, 0], [2, 0, 0, 0], [0, 0, 2, 0]] if text == "sform" else np.zeros((3, 4))
        _nifti_with_header(path, tiny_labels, sform=rows)
    assert_refused(["generate", path, work / "out.nii.gz", "--model", tiny_model], f"error: {name} {message}", capsys, work)


def test_near_zero_spacing_is_refused_before_the_edge_padding_allocates(work, tiny_labels, tiny_model, capsys):
    # 32 voxels of 1e-4 mm: a working grid of a few voxels, but its margins are 16 mm of the input's own voxels.
    fine = sitk.Image(tiny_labels)
    fine.SetSpacing((1e-4, 1e-4, 1e-4))
    sitk.WriteImage(fine, str(work / "fine.nii.gz"))
    before = snapshot(work)
    code, err = run_cli(["generate", work / "fine.nii.gz", work / "out.nii.gz", "--model", tiny_model], capsys)
    assert code == 2 and len(err) == 1, err
    assert re.fullmatch(r"error: input too large: its voxels \(0\.0001x0\.0001x0\.0001 mm\) are so much finer than the "
                        r"model's 2x2x2 mm that replicating its edges over the working grid's margins needs a "
                        r"(\d+)x\1x\1 grid of them \(\d+ voxels, about [\d.]+ GB\), over the 10\.7 GB that the limit of "
                        r"134217728 working voxels allows; check the voxel spacing in the file's header, or resample the "
                        r"volume to about the model's spacing first", err[0]), err
    assert snapshot(work) == before


def test_a_512_cubed_map_at_2_mm_is_refused_by_the_memory_estimate(work, tiny_labels, tiny_model, capsys):
    # 512^3 working voxels at 80 bytes is 10.7 GB, the default allowance; the input's 512^3 voxels (read, and the output
    # resampled onto them and read back) come on top. A sparse raw file: 128 MiB of zeros, nothing on disk.
    with open(work / "big.raw", "wb") as f:
        f.truncate(512 ** 3)
    (work / "big.nhdr").write_text("NRRD0004\ntype: uchar\ndimension: 3\nsizes: 512 512 512\nspace: left-posterior-superior\n"
                                   "space directions: (2,0,0) (0,2,0) (0,0,2)\nendian: little\nencoding: raw\n"
                                   "data file: big.raw\n")
    assert_refused(["generate", work / "big.nhdr", work / "out.nii.gz", "--model", tiny_model],
                   "error: input too large: the working grid is 512x512x512 voxels at the model's 2x2x2 mm spacing, and the "
                   "input is 512x512x512 voxels, about 13.4 GB of memory in all, over the 10.7 GB that the limit of "
                   "134217728 working voxels allows (80 bytes each); crop the volume to the region you need, or resample "
                   "it to a smaller extent, or raise --max-voxels", capsys, work)
    # The largest bundled case (benchmark.py's 256x256x128 map at 2 mm, labels touching every face) stays well inside.
    from SemanticSynthLib.engine.volume.geometry import working_grid

    bench = sitk.Image([256, 256, 128], sitk.sitkUInt8)
    bench.SetSpacing((2.0, 2.0, 2.0))
    assert working_grid(bench, (2.0, 2.0, 2.0), 32, ((16, 16),) * 3).GetSize() == (288, 288, 160)


@pytest.mark.parametrize("text,message", [
    ('{"name": "mine", "groups": [{"id": 1, "name": "wm", "members": [1, 2', "label groups {path} is not valid JSON "
     "(Expecting ',' delimiter at line 1, column 69); fix the file"),
    ('{"name": "mine", "groups": [{"id": "one", "name": "wm", "members": [1]}]}', "label groups {path}: group 1 has id "
     "'one'; group ids are whole numbers 1..N, fix the file"),
    ('{"name": "mine", "groups": [{"id": 1, "name": "wm", "members": ["white", 2]}]}', "label groups {path}: group 1 (wm) "
     "has member 'white'; members are a non-empty list of label ids, whole numbers >= 0, fix the file"),
    ('{"name": "mine", "groups": [{"id": 1, "name": "wm", "members": [1.5]}]}', "label groups {path}: group 1 (wm) has "
     "member 1.5; members are a non-empty list of label ids, whole numbers >= 0, fix the file"),
    ('{"name": "mine", "labels": [{"id": 2.5, "name": "wm"}]}', "label table mine: label 'wm' has id 2.5; label ids are "
     "whole numbers, fix the table"),
])
def test_a_bad_label_groups_file_is_named(text, message, work, tiny_dataset, capsys):
    path = work / "groups.json"
    path.write_text(text, encoding="utf-8")
    assert_refused(["train-segmenter", "--data", tiny_dataset, "--out", work / "seg", "--label-groups", path, "--steps", "1",
                    "--progress", "none"], f"error: {message.format(path=path)}", capsys, work)


@pytest.mark.parametrize("text,message", [
    ("label\nlabels.nii.gz\n", "the CSV has a label column but no image column; every case needs its image: give a header "
                               "image,label[,modality] and each case's image and label map"),
    ("image,label\n,labels.nii.gz\n", "no row gives an image (labels only); training and evaluation need each case's image "
                                      "in the image column, beside its label map in the label column"),
])
def test_a_training_csv_with_labels_only_is_named(text, message, work, capsys):
    csv = work / "cases.csv"
    csv.write_text(text, encoding="utf-8")
    for command in ("train-autoencoder", "train-segmenter"):
        assert_refused([command, "--data", csv, "--out", work / "m", "--steps", "1", "--progress", "none"],
                       f"error: {csv}: {message}", capsys, work)


def test_an_empty_source_is_not_called_a_label_map(work, capsys):
    t1 = sitk.ReadImage(str(work / "t1.nii.gz"))
    for value, word in ((0, "empty"), (37, "constant")):
        flat = sitk.Image(t1.GetSize(), t1.GetPixelID()) + value
        flat.CopyInformation(t1)
        sitk.WriteImage(flat, str(work / f"{word}.nii.gz"))
        assert_refused(["translate", work / f"{word}.nii.gz", work / "o.nii.gz", "--field", work / "f.nrrd", "--model",
                        TRANSLATOR], f"error: the source is {word}: every voxel is {value}, there is no image to translate; "
                       "give the MRI T1 volume (check that the file is the image you meant)", capsys, work)


def test_a_float_image_as_translate_labels_is_refused(work, capsys):
    t1 = sitk.ReadImage(str(work / "t1.nii.gz"))
    image = sitk.Cast(t1, sitk.sitkFloat32) * 0.37
    sitk.WriteImage(image, str(work / "float.nii.gz"))
    values = sitk.GetArrayFromImage(image)
    example = float(values[values != np.round(values)].flat[0])
    assert_refused(["translate", work / "t1.nii.gz", work / "o.nii.gz", "--field", work / "f.nrrd", "--labels",
                    work / "float.nii.gz", "--labels-out", work / "l.nii.gz", "--model", TRANSLATOR],
                   f"error: the --labels volume has non-integer values (e.g. {example:g}), so it is not a label map; give "
                   "the segmentation, whose voxels are whole-number label ids", capsys, work)


def test_train_translator_refuses_a_label_aware_autoencoder(work, tiny_model, capsys):
    from testdata import write_tiny_pairs

    pairs = write_tiny_pairs(work / "pairs")
    autoencoder = tiny_model.parent / "ae"  # trained with --label-table muse: label-aware
    assert_refused(["train-translator", "--data", pairs, "--autoencoder", autoencoder, "--out", work / "translator",
                    "--spatial-steps", "1", "--steps", "1", "--latent-patch", "8", "--progress", "none"],
                   f"error: --autoencoder {autoencoder} is a label-aware autoencoder (its decoder needs a label map, which "
                   "translation does not have); train a plain one from it on the target images with `semanticsynth "
                   f"train-autoencoder --init {autoencoder}` (no --label-table) and pass that as --autoencoder", capsys, work)
