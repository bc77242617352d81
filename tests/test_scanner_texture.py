"""The scanner texture (engine/synthesis/scanner_texture.py): fitted from real/generated pairs, it restores the real
scans' fine-texture strength and correlation; at generation it is seeded, recorded, and left out on request, for
the mean of several samples and for a region edit."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from SemanticSynthLib.cli import main
from SemanticSynthLib.engine.synthesis.scanner_texture import BINS, add_texture, fine_texture, fit_profile

REPO = Path(__file__).resolve().parent.parent


def _anatomy(seed: int, shape=(40, 40, 40)) -> np.ndarray:
    """A smooth volume spanning model units 0.05..0.65, as a decoder would make it."""
    smooth = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal(shape), 4.0)
    return (0.35 + 0.3 * smooth / np.abs(smooth).max()).astype(np.float32)


def _pairs(noise_strength: float, width: float, seeds=(0, 1, 2)):
    for seed in seeds:
        generated = _anatomy(seed)
        noise = np.random.default_rng(100 + seed).standard_normal(generated.shape).astype(np.float32)
        if width:
            noise = ndimage.gaussian_filter(noise, width)
        noise *= noise_strength / fine_texture(noise).std()
        yield generated + noise, generated, np.ones(generated.shape, bool)


def _identity(v):
    return np.asarray(v, np.float32)


@pytest.mark.parametrize("width", [0.0, 1.0])
def test_the_fitted_texture_restores_the_real_strength_and_correlation(width):
    profile = fit_profile(_pairs(0.05, width))
    strength = np.asarray(profile["strength"]["labels"])
    assert profile["strength"]["outside"] == [0.0] * BINS  # no unlabelled voxel was seen
    assert abs(np.median(strength) - 0.05) < 0.005 and np.all(np.abs(strength - 0.05) < 0.0125), strength
    assert all(abs(w - width) < 0.2 for w in profile["widths"]), profile["widths"]
    real, generated, _ = next(_pairs(0.05, width, seeds=(7,)))
    textured = add_texture(generated, np.ones(generated.shape, bool), profile, seed=3, to_units=_identity,
                           from_units=_identity)
    assert abs(fine_texture(textured).std() - fine_texture(real).std()) < 0.1 * fine_texture(real).std()
    assert abs(float((textured - generated).mean())) < 0.005  # zero-mean: calibrated means stay


def test_no_missing_texture_adds_nothing_and_the_seed_decides():
    profile = fit_profile((g, g, m) for _, g, m in _pairs(0.05, 0.0))
    assert profile["strength"]["labels"] == [0.0] * BINS
    generated, everywhere = _anatomy(5), np.ones((40, 40, 40), bool)
    assert np.array_equal(add_texture(generated, everywhere, profile, 0, _identity, _identity), generated)
    strong = fit_profile(_pairs(0.05, 0.5))
    a, b = (add_texture(generated, everywhere, strong, s, _identity, _identity) for s in (0, 0))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, add_texture(generated, everywhere, strong, 1, _identity, _identity))


def test_labelled_and_unlabelled_voxels_get_their_own_strength():
    """A scalp voxel is rougher than brain of the same intensity: the two regions are fitted and applied apart."""
    def pairs():
        for real, generated, _ in _pairs(0.02, 0.0):
            labelled = np.zeros(real.shape, bool)
            labelled[:20] = True
            extra = np.random.default_rng(9).standard_normal(real.shape).astype(np.float32) * 0.06
            yield np.where(labelled, real, real + extra), generated, labelled
    profile = fit_profile(pairs())
    inside, outside = (float(np.median(profile["strength"][r])) for r in ("labels", "outside"))
    assert 0.015 < inside < 0.025 and outside > 2.5 * inside
    generated = _anatomy(11)
    labelled = np.zeros(generated.shape, bool)
    labelled[:20] = True
    added = fine_texture(add_texture(generated, labelled, profile, 0, _identity, _identity)) - fine_texture(generated)
    assert added[25:].std() > 2.5 * added[:15].std()


def test_a_margin_leaves_the_sharper_real_edges_out_of_the_strength():
    """Real label boundaries are sharper than generated ones; that difference is edge, not noise, and a margin
    keeps it out of the fitted strength."""
    def pairs():
        for seed in (0, 1):
            labels = np.zeros((40, 40, 40), np.int16)
            labels[:, :, 10:30] = 1 + seed  # a slab with two sharp faces
            real = np.where(labels > 0, 0.6, 0.2).astype(np.float32)
            yield real, ndimage.gaussian_filter(real, 1.5), labels
    edges_counted, edges_left_out = fit_profile(pairs()), fit_profile(pairs(), margin=3)
    assert max(edges_counted["strength"]["labels"]) > 0.02  # the blurred edge read as missing texture
    assert max(edges_left_out["strength"]["labels"] + edges_left_out["strength"]["outside"]) < 1e-3
    assert edges_left_out["margin"] == 3


def test_the_inverse_normalisation_clips_mri_at_zero():
    profile = fit_profile(_pairs(0.2, 0.0))
    dark = np.full((20, 20, 20), 0.01, np.float32)
    out = add_texture(dark * 100, np.ones(dark.shape, bool), profile, 0, lambda v: v / 100,
                      lambda u: np.clip(u, 0, 1) * 100)
    assert out.min() >= 0 and out.std() > 0


@pytest.fixture(scope="module")
def textured_model(tiny_model, tiny_dataset, tmp_path_factory):
    """The tiny model with a profile fitted by scripts/fit_texture.py on two of its training cases."""
    root = tmp_path_factory.mktemp("texture")
    images = sorted((tiny_dataset / "imagesTr").glob("*.nii.gz"))[:2]
    rows = [f"{image},{tiny_dataset / 'labelsTr' / image.name.replace('_0000', '')}" for image in images]
    (root / "train.csv").write_text("image,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    out = root / "model"
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "fit_texture.py"), "--model", str(tiny_model),
                           "--data", str(root / "train.csv"), "--cases", "2", "--out", str(out), "--version", "9.9"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return out


def test_fit_texture_writes_a_valid_package_beside_the_model(textured_model, tiny_model):
    meta = json.loads((textured_model / "metadata.json").read_text(encoding="utf-8"))
    assert meta["version"] == "9.9" and meta["texture"]["mri"]["cases"] == 2
    assert "texture" not in json.loads((tiny_model / "metadata.json").read_text(encoding="utf-8"))
    assert sorted(p.name for p in textured_model.iterdir()) == sorted(p.name for p in tiny_model.iterdir())


def test_generate_adds_it_records_it_and_leaves_it_out_on_request(textured_model, tiny_model, tiny_dataset,
                                                                   tmp_path):
    labels = sorted((tiny_dataset / "labelsTr").glob("*.nii.gz"))[0]
    common = ["--steps", "2", "--progress", "none", "--fp32"]

    def made(name, model, *extra):
        assert main(["generate", str(labels), str(tmp_path / name), "--model", str(model), *common, *extra]) == 0
        return sitk.ReadImage(str(tmp_path / name))

    plain, textured = made("plain.nrrd", tiny_model), made("textured.nrrd", textured_model)
    left_out = made("left_out.nrrd", textured_model, "--no-texture")
    assert json.loads(textured.GetMetaData("SemanticSynth_scanner_texture")) == {"cases": 2, "seed": 0}
    assert not left_out.HasMetaDataKey("SemanticSynth_scanner_texture")
    assert np.array_equal(sitk.GetArrayFromImage(left_out), sitk.GetArrayFromImage(plain))
    difference = sitk.GetArrayFromImage(textured) - sitk.GetArrayFromImage(plain)
    assert np.abs(difference).max() > 0
    assert abs(float(difference.mean())) < 0.05 * float(np.abs(difference).mean()) + 1e-3 * float(
        np.abs(sitk.GetArrayFromImage(plain)).max())
    # The mean of several samples is the model's expected image: no scanner noise in it or in its spread.
    mean_textured = made("mean_t.nrrd", textured_model, "--samples", "2")
    mean_plain = made("mean_p.nrrd", tiny_model, "--samples", "2")
    assert np.array_equal(sitk.GetArrayFromImage(mean_textured), sitk.GetArrayFromImage(mean_plain))


def test_make_dataset_adds_it_as_generate_does_and_leaves_it_out_on_request(textured_model, tiny_dataset, tmp_path):
    labels = sorted((tiny_dataset / "labelsTr").glob("*.nii.gz"))[:1]
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / labels[0].name).write_bytes(labels[0].read_bytes())
    common = ["--model", str(textured_model), "--steps", "2", "--progress", "none", "--workers", "1"]
    for name, extra in (("with", []), ("without", ["--no-texture"])):
        assert main(["make-dataset", str(tmp_path / "maps"), str(tmp_path / name), *common, *extra]) == 0
    images = {name: sitk.GetArrayFromImage(sitk.ReadImage(str(next((tmp_path / name / "imagesTr").glob("*.nii.gz")))))
              for name in ("with", "without")}
    expected = {}
    for name, extra in (("with", []), ("without", ["--no-texture"])):
        out = tmp_path / f"{name}.nii.gz"
        assert main(["generate", str(labels[0]), str(out), "--model", str(textured_model), "--steps", "2",
                     "--progress", "none", *extra]) == 0
        expected[name] = sitk.GetArrayFromImage(sitk.ReadImage(str(out)))
    assert not np.array_equal(images["with"], images["without"])
    for name in images:
        np.testing.assert_array_equal(images[name], expected[name])


def test_fit_texture_with_the_unlabelled_map_changes_only_the_voxels_outside_the_labels(tiny_model, tiny_dataset,
                                                                                      tmp_path):
    images = sorted((tiny_dataset / "imagesTr").glob("*.nii.gz"))[:2]
    rows = [f"{image},{tiny_dataset / 'labelsTr' / image.name.replace('_0000', '')}" for image in images]
    (tmp_path / "train.csv").write_text("image,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    mapped = tmp_path / "mapped"
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "fit_texture.py"), "--model", str(tiny_model),
                           "--data", str(tmp_path / "train.csv"), "--cases", "2", "--margin", "1", "--unlabelled",
                           "--out", str(mapped)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    meta = json.loads((mapped / "metadata.json").read_text(encoding="utf-8"))
    profile = meta["texture"]["mri"]
    assert profile["margin"] == 1 and profile["unlabelled"]["cases"] == 2
    # The same profile without the map: labelled voxels come out the same, the rest moves.
    unmapped = tmp_path / "unmapped"
    unmapped.mkdir()
    for item in mapped.iterdir():
        (unmapped / item.name).write_bytes(item.read_bytes())
    del profile["unlabelled"]
    (unmapped / "metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    labels = sorted((tiny_dataset / "labelsTr").glob("*.nii.gz"))[0]
    out = {}
    for name, model in (("mapped", mapped), ("unmapped", unmapped)):
        assert main(["generate", str(labels), str(tmp_path / f"{name}.nrrd"), "--model", str(model), "--steps", "2",
                     "--progress", "none", "--fp32"]) == 0
        out[name] = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / f"{name}.nrrd")))
    labelled = sitk.GetArrayFromImage(sitk.ReadImage(str(labels))) > 0
    scale = float(np.abs(out["unmapped"]).max())
    # Away from the labels' edge (the working grid is coarser than the map's), labelled voxels keep their values.
    core = ndimage.binary_erosion(labelled, iterations=3)
    assert np.abs(out["mapped"][core] - out["unmapped"][core]).max() < 1e-4 * scale
    assert np.abs(out["mapped"][~labelled] - out["unmapped"][~labelled]).max() > 1e-3 * scale
