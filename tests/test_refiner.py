"""The detail refiner: detail at the label map's own spacing where it is finer than the model's (issue 33 item 5)."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from safetensors.torch import load_file, save_file

from SemanticSynthLib.cli import main
from SemanticSynthLib.engine.evaluation.sharpness import boundary_pairs, gradient_magnitude, tissue_sharpness
from SemanticSynthLib.engine.model import refiner as refiner_module
from SemanticSynthLib.engine.model.refiner import DetailRefiner, refine_volume
from SemanticSynthLib.engine.model.schema import validate_metadata
from SemanticSynthLib.errors import SynthError
from testdata import SHARED, assert_same_grid

TOTALSEG = SHARED / "totalseg"
BUNDLED = Path(__file__).resolve().parents[1] / "SemanticSynthLib" / "models" / "abdomen-ct"
SAMPLE = Path(__file__).resolve().parents[1] / "SemanticSynth" / "Resources" / "Samples" / "abdomen_ct_totalseg_labels.nii.gz"


def _randomised(refiner: DetailRefiner) -> DetailRefiner:
    torch.manual_seed(0)
    with torch.no_grad():
        refiner.out.weight.normal_(0, 0.05)  # zero-initialised: an untrained refiner is the identity
        for block in refiner.blocks:
            block.project.weight.normal_(0, 0.05)
    return refiner.eval()


def test_an_untrained_refiner_is_the_identity_and_tiles_join_exactly():
    rng = np.random.default_rng(0)
    coarse = rng.random((40, 36, 28), dtype=np.float32)
    guide = np.stack([rng.random(coarse.shape, dtype=np.float32), rng.integers(0, 12, coarse.shape).astype(np.float32)])
    assert np.array_equal(refine_volume(DetailRefiner().eval(), coarse, guide, use_bf16=False), coarse)
    net = _randomised(DetailRefiner())
    whole = refine_volume(net, coarse, guide, use_bf16=False, tile=64)
    tiled = refine_volume(net, coarse, guide, use_bf16=False, tile=16)  # 3 x 3 x 2 tiles with their halos
    assert np.abs(whole - coarse).max() > 1e-3  # the randomised refiner does change the volume
    assert np.abs(tiled - whole).max() <= 1e-5 * np.abs(whole).max()


def test_a_step_blurred_twice_as_wide_has_half_the_gradient_and_tissue_boundaries_are_found():
    x = np.arange(64, dtype=np.float32)
    sharp = np.where(x < 32, -100.0, 60.0)
    blurred = np.convolve(np.pad(sharp, 8, mode="edge"), np.ones(4) / 4, mode="same")[8:-8]
    sharp_g = gradient_magnitude(np.broadcast_to(sharp, (8, 8, 64)), (1, 1, 1.5))[4, 4, 31]
    assert sharp_g == pytest.approx(160 / 2 / 1.5)  # central difference over two voxels of 1.5 mm
    volume = np.broadcast_to(np.where(x < 32, -100.0, 60.0), (16, 16, 64)).astype(np.float32)
    image = sitk.GetImageFromArray(np.ascontiguousarray(volume))
    measured = tissue_sharpness(image)
    assert set(measured["boundaries"]) == {"fat|soft"}
    assert measured["class_medians"][1:3] == [-100.0, 60.0]
    pairs = boundary_pairs(np.array([[0, 0, 3, 3]]))
    assert pairs.tolist() == [[-1, 3, 3, -1]]
    assert blurred.max() - blurred.min() == pytest.approx(160)


def _tiny_ct_data(root: Path) -> Path:
    """A 1.5 mm unlabelled crop of aorta_ct_crop and a labelled 3 mm crop of the training case, as train.csv."""
    aorta = sitk.ReadImage(str(TOTALSEG / "aorta_ct_crop.nii.gz"))
    sitk.WriteImage(sitk.RegionOfInterest(aorta, [48, 48, 40], [36, 40, 60]), str(root / "aorta.nii.gz"))
    for name in ("example_ct_sm", "example_seg"):
        image = sitk.ReadImage(str(TOTALSEG / f"{name}.nii.gz"))
        sitk.WriteImage(sitk.RegionOfInterest(image, [40, 40, 16], [40, 30, 8]), str(root / f"{name}.nii.gz"))
    # The labelled crop resampled to 1.5 mm: degraded to the working spacing, the autoencoder restores it too.
    for name, interpolator in (("example_ct_sm", sitk.sitkLinear), ("example_seg", sitk.sitkNearestNeighbor)):
        image = sitk.ReadImage(str(root / f"{name}.nii.gz"))
        fine = sitk.Image([2 * n for n in image.GetSize()], image.GetPixelID())
        fine.SetSpacing([1.5] * 3)
        fine.SetOrigin(image.TransformContinuousIndexToPhysicalPoint([-0.25] * 3))
        fine.SetDirection(image.GetDirection())
        sitk.WriteImage(sitk.Resample(image, fine, sitk.Transform(), interpolator, -1024 if "ct" in name else 0),
                        str(root / f"fine_{name}.nii.gz"))
    with open(root / "train.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "label", "modality"])
        w.writerow(["aorta.nii.gz", "", "ct"])
        w.writerow(["example_ct_sm.nii.gz", "example_seg.nii.gz", "ct"])
        w.writerow(["fine_example_ct_sm.nii.gz", "fine_example_seg.nii.gz", "ct"])
    return root / "train.csv"


def _finer_map(root: Path) -> tuple[Path, Path]:
    """A crop of the sample map at its own 3 mm, and the same crop at 1.5 mm (each voxel split in 8)."""
    sample = sitk.RegionOfInterest(sitk.ReadImage(str(SAMPLE)), [40, 36, 12], [40, 30, 9])
    fine = sitk.Image([2 * n for n in sample.GetSize()], sample.GetPixelID())
    fine.SetSpacing([1.5] * 3)
    fine.SetDirection(sample.GetDirection())
    fine.SetOrigin(sample.TransformContinuousIndexToPhysicalPoint([-0.25] * 3))
    # 28 voxels of background along x: with 16-voxel tiles some hold no label at all.
    fine = sitk.ConstantPad(sitk.Resample(sample, fine, sitk.Transform(), sitk.sitkNearestNeighbor, 0), [0, 0, 0], [28, 0, 0], 0)
    sitk.WriteImage(sample, str(root / "map3.nii.gz"))
    sitk.WriteImage(fine, str(root / "map15.nii.gz"))
    return root / "map3.nii.gz", root / "map15.nii.gz"


@pytest.fixture(scope="module")
def refined_package(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("refiner")
    data = _tiny_ct_data(root)
    out = root / "model"
    assert main(["train-refiner", "--data", str(data), "--model", "abdomen-ct", "--out", str(out), "--steps", "3",
                 "--batch", "2", "--patch", "16", "--progress", "none", "--checkpoint-every", "100"]) == 0
    return out


def test_train_refiner_adds_a_refiner_and_keeps_the_other_networks(refined_package):
    meta = json.loads((refined_package / "metadata.json").read_text(encoding="utf-8"))
    assert meta["refiner"]["config"]["blocks"] == 3
    record = meta["training"]["refiner"]
    # Degraded to 3 mm, the working spacing, a labelled case is also restored by the autoencoder; an unlabelled one
    # (whose reconstruction loses every edge) and coarser copies only linearly.
    assert record["pairs"] == ["aorta x2 linear", "aorta x3 linear", "example_ct_sm x2 linear", "example_ct_sm x3 linear",
                               "fine_example_ct_sm x2 linear", "fine_example_ct_sm x2 autoencoder",
                               "fine_example_ct_sm x3 linear"]
    for name in ("autoencoder.safetensors", "diffusion.safetensors"):
        before, after = load_file(str(BUNDLED / name)), load_file(str(refined_package / name))
        assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert meta["diffusion"] == json.loads((BUNDLED / "metadata.json").read_text(encoding="utf-8"))["diffusion"]


def test_generation_refines_a_finer_map_only(refined_package, tmp_path, monkeypatch):
    map3, map15 = _finer_map(tmp_path)
    common = ["--steps", "1", "--progress", "none"]
    assert main(["generate", str(map15), str(tmp_path / "refined.nrrd"), "--model", str(refined_package), *common]) == 0
    assert main(["generate", str(map15), str(tmp_path / "plain.nrrd"), "--model", str(refined_package), "--no-refine",
                 *common]) == 0
    refined, plain = sitk.ReadImage(str(tmp_path / "refined.nrrd")), sitk.ReadImage(str(tmp_path / "plain.nrrd"))
    assert_same_grid(refined, sitk.ReadImage(str(map15)))
    record = json.loads(refined.GetMetaData("SemanticSynth_refined"))
    assert record["factor"] == 2.0 and record["spacing"] == [1.5, 1.5, 1.5]
    assert "SemanticSynth_refined" not in plain.GetMetaDataKeys()
    a, b = sitk.GetArrayFromImage(refined), sitk.GetArrayFromImage(plain)
    assert np.isfinite(a).all() and np.abs(a - b).max() > 0.5  # HU: three steps of training moved the output
    # The refiner adds detail; each label keeps its mean (the background, a mixture, is left as refined).
    ids = sitk.GetArrayFromImage(sitk.ReadImage(str(map15)))
    for i in np.unique(ids[ids > 0]):
        assert a[ids == i].mean() == pytest.approx(b[ids == i].mean(), abs=0.05), i
    # Tiles of 16 voxels (5 x 5 x 2 with their halos, each painted on its own) give the volume of one tile.
    # A refiner with randomised output weights, whose residual is large, so that any seam would show.
    randomised = tmp_path / "randomised"
    shutil.copytree(refined_package, randomised)
    state = load_file(str(randomised / "refiner.safetensors"))
    generator = torch.Generator().manual_seed(0)
    for key in ("out.weight", "blocks.0.project.weight", "blocks.1.project.weight"):
        state[key] = torch.randn(state[key].shape, generator=generator) * 0.05
    save_file(state, str(randomised / "refiner.safetensors"))
    for name, tile in (("one", 96), ("tiled", 16)):
        monkeypatch.setattr(refiner_module, "TILE", tile)
        assert main(["generate", str(map15), str(tmp_path / f"{name}.nrrd"), "--model", str(randomised), "--fp32",
                     *common]) == 0
    one, tiled = (sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / f"{n}.nrrd"))) for n in ("one", "tiled"))
    plain_fp32 = sitk.GetArrayFromImage(plain)
    assert np.abs(one - plain_fp32).mean() > 10  # HU: the randomised residual is large (17 HU measured)
    assert np.abs(one - tiled).max() <= 1e-4 * np.abs(one).max()
    # At the working spacing the refiner does not run: the same volume as the package without it.
    assert main(["generate", str(map3), str(tmp_path / "own3.nrrd"), "--model", str(refined_package), *common]) == 0
    assert main(["generate", str(map3), str(tmp_path / "base3.nrrd"), "--model", "abdomen-ct", *common]) == 0
    own3, base3 = sitk.ReadImage(str(tmp_path / "own3.nrrd")), sitk.ReadImage(str(tmp_path / "base3.nrrd"))
    assert "SemanticSynth_refined" not in own3.GetMetaDataKeys()
    assert np.array_equal(sitk.GetArrayFromImage(own3), sitk.GetArrayFromImage(base3))


def test_refiner_bad_input_is_one_line(tmp_path, capsys):
    data = _tiny_ct_data(tmp_path)
    base = ["train-refiner", "--data", str(data), "--model", "abdomen-ct", "--out", str(tmp_path / "m"), "--steps", "1",
            "--progress", "none"]
    assert main([*base, "--factors", "1"]) == 2
    assert "between 1.25 and 8" in capsys.readouterr().err
    seg = sitk.ReadImage(str(tmp_path / "example_seg.nii.gz"))
    sitk.WriteImage(seg[:, :, :8], str(tmp_path / "example_seg.nii.gz"))  # no longer on its image's grid
    assert main(base) == 2
    err = capsys.readouterr().err.strip()
    assert "not on its image's grid" in err and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "m").exists()
    meta = json.loads((BUNDLED / "metadata.json").read_text(encoding="utf-8"))
    meta["refiner"] = {"config": {"channels": 8, "blocks": 0, "guide_hidden": 8, "kind_embedding": 4}}
    with pytest.raises(SynthError, match="refiner.config.blocks"):
        validate_metadata(meta, "test")
