"""Bad input: a one-line error naming problem and fix, exit code 2, and no output file."""
from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk

from SemanticSynthLib.cli import main

from testdata import REPO


def _run(args, capsys):
    code = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def _labels_like(reference: sitk.Image, array_zyx, path):
    image = sitk.GetImageFromArray(array_zyx)
    image.CopyInformation(reference)
    sitk.WriteImage(image, str(path))
    return path


@pytest.fixture()
def bad_inputs(tmp_path, tiny_labels):
    arr = sitk.GetArrayFromImage(tiny_labels)
    paths = {
        "non_integer": _labels_like(tiny_labels, arr.astype(np.float32) + 0.5, tmp_path / "float.nii.gz"),
        "unknown": _labels_like(tiny_labels, np.where(arr > 0, 999, 0).astype(np.int16), tmp_path / "unknown.nii.gz"),
        "empty": _labels_like(tiny_labels, np.zeros_like(arr), tmp_path / "empty.nii.gz"),
    }
    flat = sitk.Image(16, 16, sitk.sitkUInt8)
    sitk.WriteImage(flat, str(tmp_path / "flat.nii.gz"))
    paths["2d"] = tmp_path / "flat.nii.gz"
    good = tmp_path / "good.nii.gz"
    sitk.WriteImage(tiny_labels, str(good))
    paths["good"] = good
    return paths


@pytest.mark.parametrize("case,expected", [
    ("non_integer", "non-integer"), ("unknown", "unknown to the model"), ("empty", "empty"), ("2d", "2D image"),
])
def test_bad_label_maps(case, expected, bad_inputs, tiny_model, tmp_path, capsys):
    out = tmp_path / "out.nii.gz"
    code, err = _run(["generate", str(bad_inputs[case]), str(out), "--model", str(tiny_model), "--progress", "none"], capsys)
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error:") and expected in err[0], err
    assert "999" in err[0] if case == "unknown" else True
    assert not out.exists()
    assert not list(tmp_path.glob(".partial-*"))


def test_unknown_labels_background_is_accepted(bad_inputs, tiny_model, tmp_path, capsys):
    arr = sitk.GetArrayFromImage(sitk.ReadImage(str(bad_inputs["good"]))).astype(np.int16)
    arr[0, 0, :4] = 999
    path = _labels_like(sitk.ReadImage(str(bad_inputs["good"])), arr, tmp_path / "mixed.nii.gz")
    out = tmp_path / "out.nii.gz"
    args = ["generate", str(path), str(out), "--model", str(tiny_model), "--progress", "none", "--steps", "1"]
    assert _run(args, capsys)[0] == 2
    assert _run(args + ["--unknown-labels", "background"], capsys)[0] == 0
    assert out.exists()


def test_missing_and_corrupt_model(bad_inputs, tiny_model, tmp_path, capsys):
    out = tmp_path / "out.nii.gz"
    code, err = _run(["generate", str(bad_inputs["good"]), str(out), "--model", str(tmp_path / "nope"), "--progress", "none"], capsys)
    assert code == 2 and len(err) == 1 and "not found" in err[0]
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    data = (broken / "diffusion.safetensors").read_bytes()
    (broken / "diffusion.safetensors").write_bytes(data[: len(data) // 2])
    code, err = _run(["generate", str(bad_inputs["good"]), str(out), "--model", str(broken), "--progress", "none"], capsys)
    assert code == 2 and len(err) == 1 and "corrupt" in err[0], err
    (broken / "metadata.json").write_text("{ not json", encoding="utf-8")
    code, err = _run(["generate", str(bad_inputs["good"]), str(out), "--model", str(broken), "--progress", "none"], capsys)
    assert code == 2 and len(err) == 1 and "metadata.json" in err[0], err
    assert not out.exists()


def test_existing_output_is_not_overwritten(bad_inputs, tiny_model, tmp_path, capsys):
    out = tmp_path / "out.nii.gz"
    out.write_bytes(b"user data")
    code, err = _run(["generate", str(bad_inputs["good"]), str(out), "--model", str(tiny_model), "--progress", "none"], capsys)
    assert code == 2 and "--overwrite" in err[0]
    assert out.read_bytes() == b"user data"
    code, _ = _run(["generate", str(bad_inputs["good"]), str(out), "--model", str(tiny_model), "--progress", "none",
                    "--overwrite", "--steps", "1"], capsys)
    assert code == 0 and sitk.ReadImage(str(out)).GetSize() == sitk.ReadImage(str(bad_inputs["good"])).GetSize()


def test_unwritable_folder_and_memory_limit(bad_inputs, tiny_model, tmp_path, capsys):
    code, err = _run(["generate", str(bad_inputs["good"]), "/sys/semanticsynth_out.nii.gz", "--model", str(tiny_model),
                      "--progress", "none"], capsys)
    assert code == 2 and len(err) == 1 and "not writable" in err[0], err
    out = tmp_path / "out.nii.gz"
    code, err = _run(["generate", str(bad_inputs["good"]), str(out), "--model", str(tiny_model), "--progress", "none",
                      "--max-voxels", "1000"], capsys)
    assert code == 2 and len(err) == 1 and "too large" in err[0], err
    assert not out.exists()


def test_console_entry_point_reports_one_line(bad_inputs, tiny_model, tmp_path):
    """The real child process, as Slicer runs it: exit status 2 and one stderr line, no traceback."""
    out = tmp_path / "out.nii.gz"
    result = subprocess.run([sys.executable, "-m", "SemanticSynthLib", "generate", str(bad_inputs["2d"]), str(out),
                             "--model", str(tiny_model)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "2D image" in result.stderr
    assert not out.exists()


def test_console_script_is_installed():
    """`pip install` gives the `semanticsynth` command (pyproject console script)."""
    from pathlib import Path

    script = Path(sys.executable).parent / "semanticsynth"
    assert script.exists(), "install the package: pip install -e ."
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "generate" in result.stdout and "train-diffusion" in result.stdout


def test_main_gives_the_callers_signal_handlers_back(tmp_path):
    """A script that calls main() and then forks workers (nnU-Net's integrity check does) must not hand them our
    SIGTERM handler: main() restores what the caller had."""
    import signal

    from SemanticSynthLib.cli import main

    def mine(signum, frame):
        pass

    before = signal.signal(signal.SIGTERM, mine)
    try:
        assert main(["generate", str(tmp_path / "missing.nii.gz"), str(tmp_path / "out.nii.gz")]) == 2
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, before)
