"""evaluate's independent realism (FRD v1 with frd-score, two masks, the real-vs-real floor and the painting) and its
memorisation check (generation from training against held-out maps, compared with their real scans)."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk

from SemanticSynthLib.cli import main
from SemanticSynthLib.engine.evaluation.memorisation import memorisation
from SemanticSynthLib.engine.evaluation.metrics import ncc_in_mask
from SemanticSynthLib.engine.evaluation.radiomics_distance import foreground_mask, unavailable
from testdata import IXI, crop_case

HELD_OUT = ["IXI016-HH-1237", "IXI017-Guys-0698", "IXI019-Guys-0702", "IXI020-Guys-0700"]


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    """Four real subjects the tiny model never saw (crops of 40 voxels: texture for the radiomics features)."""
    root = tmp_path_factory.mktemp("held_out")
    ids = [i for i in HELD_OUT if (IXI / "t1" / f"{i}.nii.gz").exists()]
    if len(ids) < 4:  # other IXI releases: any four subjects the tiny model was not trained on
        from testdata import IXI_IDS
        ids = [p.name.split(".nii")[0] for p in sorted((IXI / "labels").glob("*.nii.gz"))
               if p.name.split(".nii")[0] not in IXI_IDS][:4]
    rows = []
    for case_id in ids:
        image, labels = crop_case(case_id, 40)
        sitk.WriteImage(image, str(root / f"{case_id}_t1.nii.gz"))
        sitk.WriteImage(labels, str(root / f"{case_id}_labels.nii.gz"))
        rows.append([str(root / f"{case_id}_t1.nii.gz"), str(root / f"{case_id}_labels.nii.gz"), "mri"])
    with open(root / "cases.csv", "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([["image", "label", "modality"], *rows])
    return root / "cases.csv"


def test_ncc_and_foreground_mask_known_answers():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(10, 10, 10))
    mask = np.zeros(a.shape, bool)
    mask[2:8, 2:8, 2:8] = True
    assert ncc_in_mask(a, 2 * a + 3, mask) == pytest.approx(1.0)
    assert ncc_in_mask(a, -a, mask) == pytest.approx(-1.0)
    assert ncc_in_mask(a, np.ones_like(a), mask) == 0.0
    scan = np.zeros((30, 30, 30))
    scan[5:25, 5:25, 5:25] = 100.0
    scan[12:18, 12:18, 12:18] = 0.0  # a dark hole inside the head (a ventricle): filled
    scan[0, 0, 0] = 100.0            # a speck of noise outside: not the largest component
    head = foreground_mask(scan, np.zeros(scan.shape, bool))
    assert head[5:25, 5:25, 5:25].all() and head.sum() == 20 ** 3


def test_memorisation_gap_and_nearest_scan_on_known_cases():
    """A 'generator' that returns its training scans (memorised) and something else for held-out maps: a large
    gap, and each held-out volume's nearest training scan found."""
    rng = np.random.default_rng(1)
    grid = sitk.Image(12, 12, 12, sitk.sitkFloat32)
    labels = np.ones((12, 12, 12), bool)
    scans = [rng.normal(size=(12, 12, 12)).astype(np.float32) for _ in range(5)]
    training = [{"case": f"t{i}", "grid": grid, "real": s, "generated": s.copy(), "labels": labels}
                for i, s in enumerate(scans[:3])]
    held_out = [{"case": f"h{i}", "grid": grid, "real": s, "generated": scans[i] + 0.1 * s, "labels": labels}
                for i, s in zip(range(2), scans[3:])]  # held-out generated volume i looks like training scan i
    m = memorisation(held_out, training)
    assert m["training"]["ncc"] == pytest.approx(1.0) and m["ncc_gap"] > 0.5 and m["ssim_gap"] > 0.5
    assert [n["nearest_training_scan"] for n in m["nearest"]] == ["t0", "t1"]
    assert m["closer_to_a_training_scan"] == 2


def test_evaluate_frd_and_memorisation(tiny_model, tiny_segmenter, tiny_dataset, held_out, tmp_path):
    out = tmp_path / "report"
    args = ["evaluate", "--model", str(tiny_model), "--segmenter", str(tiny_segmenter), "--data", str(held_out),
            "--out", str(out), "--steps", "1", "--pictures", "0", "--frd", "--training-data", str(tiny_dataset),
            "--progress", "none"]
    assert main(args) == 0
    summary = json.loads((out / "report.json").read_text(encoding="utf-8"))["summary"]
    m = summary["memorisation"]
    assert m["cases"] == {"training": 3, "held_out": 4}
    assert m["ssim_gap"] == pytest.approx(m["training"]["ssim"] - m["held_out"]["ssim"])
    assert {n["nearest_training_scan"] for n in m["nearest"]} <= {f"case_{i:03d}" for i in range(3)}
    text = (out / "report.md").read_text(encoding="utf-8")
    assert "Memorisation check" in text
    if unavailable():
        assert summary["frd"] is None and summary["skipped"] == [unavailable()] and unavailable() in text
        return
    regions = summary["frd"]["regions"]
    assert set(regions) == {"labels", "foreground"} and summary["frd"]["cases_per_half"] == 2
    assert all(set(v) == {"floor", "generated", "reconstruction", "painting"} for v in regions.values())
    for values in regions.values():
        assert all(np.isfinite(v) for v in values.values())
    # Flat label means have none of a scan's texture: further from real than a real half is.
    assert regions["labels"]["painting"] > regions["labels"]["floor"]
    assert "Fréchet Radiomics Distance" in text


def test_evaluate_frd_needs_four_cases(tiny_model, tiny_segmenter, tiny_dataset, tmp_path):
    out = tmp_path / "report"
    assert main(["evaluate", "--model", str(tiny_model), "--segmenter", str(tiny_segmenter), "--data",
                 str(tiny_dataset), "--out", str(out), "--steps", "1", "--pictures", "0", "--max-cases", "2", "--frd",
                 "--progress", "none"]) == 0
    summary = json.loads((out / "report.json").read_text(encoding="utf-8"))["summary"]
    assert summary["frd"] is None and len(summary["skipped"]) == 1 and "FRD skipped" in summary["skipped"][0]
