"""Evaluation: the metrics on cases with known answers, label groups, and train-segmenter + evaluate end to end."""
from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.torch import save_file

from SemanticSynthLib.cli import main
from SemanticSynthLib.engine.volume.label_groups import LabelGroups
from SemanticSynthLib.engine.evaluation.metrics import dice_per_class, frechet_distance, ms_ssim_in_mask, psnr_in_mask, ssim_in_mask
from SemanticSynthLib.errors import SynthError

from testdata import IXI, IXI_IDS


def test_similarity_of_a_volume_with_itself_and_with_a_known_noisy_copy():
    rng = np.random.default_rng(0)
    volume = rng.random((40, 40, 40)).astype(np.float32)
    mask = np.ones(volume.shape, bool)
    assert psnr_in_mask(volume, volume, mask) == float("inf")
    assert ssim_in_mask(volume, volume, mask) == pytest.approx(1.0, abs=1e-6)
    assert ms_ssim_in_mask(volume, volume, mask) == pytest.approx(1.0, abs=1e-6)
    # A constant 0.5 plus Gaussian noise of sigma 0.03 (data range 1): PSNR = 10 log10(1 / sigma^2) = 30.46 dB;
    # SSIM = C2 / (C2 + sigma^2) with C2 = (0.03)^2, i.e. 0.5 (the luminance term is 1, the reference has no variance).
    sigma = 0.03
    flat = np.full((40, 40, 40), 0.5, np.float32)
    noisy = flat + rng.normal(0, sigma, flat.shape).astype(np.float32)
    assert psnr_in_mask(noisy, flat, mask) == pytest.approx(10 * np.log10(1 / sigma ** 2), abs=0.1)
    assert ssim_in_mask(noisy, flat, mask) == pytest.approx(0.03 ** 2 / (0.03 ** 2 + sigma ** 2), abs=0.02)
    assert ms_ssim_in_mask(noisy, flat, mask) < 1.0


def test_dice_of_a_label_map_with_itself_is_one_and_fid_of_a_set_with_itself_is_zero():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, (20, 20, 20))
    dice = dice_per_class(labels, labels, 5)
    np.testing.assert_allclose(dice[:3], 1.0)
    assert np.isnan(dice[3])  # class 4 is in neither map
    shifted = np.where(labels == 1, 2, labels)
    assert dice_per_class(shifted, labels, 4)[0] == 0.0
    features = rng.normal(size=(400, 16))
    assert abs(frechet_distance(features, features)) < 1e-6
    assert frechet_distance(features, features + 1.0) == pytest.approx(16.0, rel=1e-6)  # |mean shift|^2, same covariance
    broken = features.copy()
    broken[3, 5] = np.nan
    with pytest.raises(SynthError, match="FID features are not finite"):
        frechet_distance(features, broken)


def test_muse_groups_cover_the_table():
    import SimpleITK as sitk

    groups = LabelGroups.from_spec("muse_groups")
    assert groups.names[:4] == ["cortical grey matter", "deep grey matter", "white matter", "ventricles"]
    ids = sitk.GetArrayFromImage(sitk.ReadImage(str(IXI / "labels" / f"{IXI_IDS[0]}.nii.gz")))
    grouped = groups.group_map(ids)
    assert set(np.unique(grouped)) == set(range(8))
    assert (grouped[np.isin(ids, [51, 52])] == 4).all()  # lateral ventricles
    assert (grouped[ids == 0] == 0).all()


def test_train_segmenter_writes_a_package_with_painting_means(tiny_segmenter):
    meta = json.loads((tiny_segmenter / "metadata.json").read_text(encoding="utf-8"))
    assert meta["kind"] == "segmenter" and meta["groups"]["name"] == "muse_groups"
    means = meta["label_means"]
    assert 0.0 < means["51"] < means["61"]  # lateral ventricle (CSF) darker than ventral DC in T1
    assert (tiny_segmenter / "segmenter.safetensors").exists()


def test_evaluate_writes_the_report(tiny_model, tiny_segmenter, tiny_dataset, tmp_path):
    out = tmp_path / "report"
    assert main(["evaluate", "--model", str(tiny_model), "--segmenter", str(tiny_segmenter), "--data", str(tiny_dataset),
                 "--out", str(out), "--steps", "2", "--samples", "2", "--pictures", "1", "--progress", "none"]) == 0
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    summary = report["summary"]
    assert summary["cases"] == 3 and len(report["cases"]) == 3
    for source in ("generated", "painting"):
        assert np.isfinite(summary[source]["psnr"]) and 0 <= summary[source]["ssim"] <= 1
        assert len(summary[source]["dice"]) == 7
        assert summary["fid"][source]["all planes"] >= 0
    assert "auxiliary segmenter" in summary["fid_features"]
    assert summary["fid"]["real vs real (halves)"] >= 0  # the floor of the feature space, for reading the others
    for name in ("report.md", "dice.png", f"{report['cases'][0]['case']}.png"):
        assert (out / name).stat().st_size > 1000
    # A user's own feature network: MONAI resnet10 weights in safetensors (random here; Med3D weights in practice).
    from monai.networks.nets import resnet10

    net = resnet10(spatial_dims=3, n_input_channels=1, feed_forward=False, shortcut_type="A", bias_downsample=False)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "med3d.safetensors"))
    # Into the same folder with --overwrite: the report's own files are replaced (the first run's case picture goes),
    # the user's notes and subfolder stay.
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    (out / "ct").mkdir()
    (out / "ct" / "report.json").write_text("{}", encoding="utf-8")
    assert main(["evaluate", "--model", str(tiny_model), "--segmenter", str(tiny_segmenter), "--data", str(tiny_dataset),
                 "--out", str(out), "--steps", "2", "--max-cases", "2", "--pictures", "0", "--overwrite",
                 "--feature-weights", str(tmp_path / "med3d.safetensors"), "--no-calibrate", "--progress", "none"]) == 0
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine" and (out / "ct" / "report.json").is_file()
    assert not (out / f"{report['cases'][0]['case']}.png").exists()
    summary2 = json.loads((out / "report.json").read_text(encoding="utf-8"))["summary"]
    assert "resnet10" in summary2["fid_features"] and "med3d.safetensors" in summary2["fid_features"]
    # --no-calibrate scores the network's own output, and the report says so
    assert summary["calibrated"] is True and summary2["calibrated"] is False
    assert "uncalibrated (--no-calibrate)" in (out / "report.md").read_text(encoding="utf-8")


def test_evaluate_bad_input(tiny_model, tiny_segmenter, tiny_dataset, tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine", encoding="utf-8")
    cases = [
        (["--segmenter", str(tiny_model), "--out", str(tmp_path / "a")], "not a segmenter package"),
        (["--segmenter", str(tiny_segmenter), "--out", str(tmp_path / "full")], "not empty"),
    ]
    for extra, expected in cases:
        code = main(["evaluate", "--model", str(tiny_model), "--data", str(tiny_dataset), "--progress", "none", *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and expected in err[0], err
    assert not (tmp_path / "a").exists()
    assert (tmp_path / "full" / "keep.txt").read_text(encoding="utf-8") == "mine"
