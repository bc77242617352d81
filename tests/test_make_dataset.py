"""make-dataset: many label maps -> an nnU-Net v2 training set, resumable, with bad maps skipped and listed, and
label-map augmentation (affine, elastic, mirror with paired labels swapped) on the map's own grid."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from SemanticSynthLib.cli import main
from SemanticSynthLib.engine.datasets.map_augmentation import augment_label_map, side_pairs
from SemanticSynthLib.engine.volume.geometry import same_grid
from SemanticSynthLib.engine.volume.labels import LabelTable


def _maps(tiny_dataset: Path, tmp_path: Path, bad: bool = False) -> Path:
    folder = tmp_path / "maps"
    folder.mkdir()
    for p in sorted((tiny_dataset / "labelsTr").glob("*.nii.gz")):
        (folder / p.name).write_bytes(p.read_bytes())
    if bad:
        (folder / "broken.nii.gz").write_bytes(b"not a volume")
        image = sitk.ReadImage(str(tiny_dataset / "imagesTr" / "case_000_0000.nii.gz"))  # an image, not labels
        sitk.WriteImage(sitk.Cast(image, sitk.sitkFloat32) + 0.5, str(folder / "image_not_labels.nii.gz"))
    return folder


def _make(maps, out, tiny_model, *extra) -> int:
    # One process: Ray's engine has its own tests (test_make_dataset_ray.py).
    return main(["make-dataset", str(maps), str(out), "--model", str(tiny_model), "--steps", "1", "--progress", "none",
                 "--workers", "1", *extra])


def _cases(out: Path) -> list[str]:
    return sorted(p.name[: -len(".nii.gz")] for p in (out / "labelsTr").glob("*.nii.gz"))


def test_nnunet_layout_bad_maps_skipped_and_listed(tiny_model, tiny_dataset, tmp_path):
    maps, out = _maps(tiny_dataset, tmp_path, bad=True), tmp_path / "ds"
    assert _make(maps, out, tiny_model, "--samples", "2", "--seed", "7") == 0
    cases = _cases(out)
    assert cases == [f"case_{i:03d}_s{k:02d}" for i in range(3) for k in range(2)]
    assert sorted(p.name for p in (out / "imagesTr").iterdir()) == [f"{c}_0000.nii.gz" for c in cases]
    meta = json.loads((out / "dataset.json").read_text(encoding="utf-8"))
    assert meta["numTraining"] == 6 and meta["file_ending"] == ".nii.gz" and meta["channel_names"] == {"0": "MRI"}
    ids = sorted(meta["labels"].values())
    assert ids == list(range(len(ids))) and meta["labels"]["background"] == 0  # nnU-Net: consecutive from 0
    for c in cases:
        labels = sitk.ReadImage(str(out / "labelsTr" / f"{c}.nii.gz"))
        image = sitk.ReadImage(str(out / "imagesTr" / f"{c}_0000.nii.gz"))
        source = sitk.ReadImage(str(maps / f"{c[:-4]}.nii.gz"))
        assert same_grid(labels, source) and same_grid(image, source)
        assert set(np.unique(sitk.GetArrayFromImage(labels))) <= set(ids)
        # The dataset's ids name the same structures as the source map's MUSE ids.
        src, dst = sitk.GetArrayFromImage(source), sitk.GetArrayFromImage(labels)
        assert np.array_equal(src > 0, dst > 0)
    record = json.loads((out / "provenance" / "case_001_s01.json").read_text(encoding="utf-8"))
    assert record["seed"] == 8 and record["sample"] == 1 and record["augmentation"] is None
    card = json.loads((out / "dataset_card.json").read_text(encoding="utf-8"))
    assert card["cases"] == 6 and card["written_now"] == 6 and card["seeds"] == [7, 8]
    failed = {Path(f["labels"]).name for f in card["failed"]}
    assert failed == {"broken.nii.gz", "image_not_labels.nii.gz"}
    assert "broken.nii.gz" in (out / "dataset_card.md").read_text(encoding="utf-8")
    assert not [p for p in out.rglob("*") if p.name.startswith(".") or "tmp" in p.name]  # no temp file left


def test_resume_keeps_finished_cases_and_refuses_other_options(tiny_model, tiny_dataset, tmp_path):
    maps, out = _maps(tiny_dataset, tmp_path), tmp_path / "ds"
    assert _make(maps, out, tiny_model) == 0
    kept = out / "imagesTr" / "case_000_s00_0000.nii.gz"
    before = kept.stat().st_mtime_ns
    (out / "provenance" / "case_002_s00.json").unlink()  # as if the run had stopped before finishing this case
    assert _make(maps, out, tiny_model) == 0
    card = json.loads((out / "dataset_card.json").read_text(encoding="utf-8"))
    assert (card["written_now"], card["kept_from_before"], card["cases"]) == (1, 2, 3)
    assert kept.stat().st_mtime_ns == before
    assert _make(maps, out, tiny_model, "--samples", "2") == 2  # another dataset than the one begun
    assert _make(maps, maps, tiny_model) == 2                   # the output is the input folder
    assert _make(maps, tmp_path, tiny_model) == 2               # the output holds the input maps
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("the user's", encoding="utf-8")
    assert _make(maps, foreign, tiny_model) == 2 and (foreign / "mine.txt").read_text(encoding="utf-8") == "the user's"


def test_interrupted_run_leaves_no_partial_case_and_resumes(tiny_model, tiny_dataset, tmp_path):
    """A real child process killed while it makes the dataset: whatever it left is whole cases only, and the
    rerun finishes the rest."""
    maps, out = _maps(tiny_dataset, tmp_path), tmp_path / "ds"
    command = [sys.executable, "-m", "SemanticSynthLib", "make-dataset", str(maps), str(out), "--model", str(tiny_model),
               "--steps", "1", "--samples", "4", "--progress", "none", "--workers", "1"]
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list((out / "provenance").glob("case_*.json"))) < 2:
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    finished = {p.name[: -len(".json")] for p in (out / "provenance").glob("case_*.json")}
    assert 2 <= len(finished) < 12
    for c in finished:  # every finished case is whole
        assert sitk.ReadImage(str(out / "labelsTr" / f"{c}.nii.gz")).GetSize() == (32, 32, 32)
        assert sitk.ReadImage(str(out / "imagesTr" / f"{c}_0000.nii.gz")).GetSize() == (32, 32, 32)
    assert _make(maps, out, tiny_model, "--samples", "4") == 0
    card = json.loads((out / "dataset_card.json").read_text(encoding="utf-8"))
    assert card["cases"] == 12 and card["kept_from_before"] == len(finished)
    assert len(_cases(out)) == 12 and len(list((out / "imagesTr").iterdir())) == 12


def test_augmented_maps_keep_grid_and_swap_sides(tiny_model, tiny_dataset, tmp_path):
    maps, out = _maps(tiny_dataset, tmp_path), tmp_path / "ds"
    assert _make(maps, out, tiny_model, "--augment", "affine,elastic,mirror", "--label-ids", "map", "--samples", "2") == 0
    for c in _cases(out):
        labels = sitk.ReadImage(str(out / "labelsTr" / f"{c}.nii.gz"))
        source = sitk.ReadImage(str(maps / f"{c[:-4]}.nii.gz"))
        assert same_grid(labels, source)
        # --label-ids map: the map's own (MUSE) ids, no new ones
        assert set(np.unique(sitk.GetArrayFromImage(labels))) <= set(np.unique(sitk.GetArrayFromImage(source)))
        record = json.loads((out / "provenance" / f"{c}.json").read_text(encoding="utf-8"))["augmentation"]
        assert set(record) == {"affine", "elastic", "mirror"} and len(record["affine"]["degrees"]) == 3
    assert main(["make-dataset", str(maps), str(tmp_path / "x"), "--augment", "affine,twist"]) == 2
    assert not (tmp_path / "x").exists()


def test_mirroring_swaps_paired_structures_on_the_same_side():
    """A map with a right and a left structure, mirrored: each side's structure stays on its own side."""
    table = LabelTable.builtin("muse")
    names = {lab.id: lab.name for lab in table.labels}
    right, left = (i for n in ("Hippocampus_R", "Hippocampus_L") for i, m in names.items() if m == n)
    assert side_pairs({right: "Hippocampus_R", left: "Hippocampus_L", 4: "3rdVentricle"}) == {right: left, left: right}
    assert side_pairs({1: "kidney_left", 2: "kidney_right", 3: "Left-Putamen", 4: "Right-Putamen", 5: "ctx-lh-x",
                       6: "ctx-rh-x"}) == {1: 2, 2: 1, 3: 4, 4: 3, 5: 6, 6: 5}
    ids = np.zeros((20, 8, 6), np.uint8)
    ids[2:6] = right   # low x index: patient right (LPS x grows to the left) with the identity direction
    ids[12:17] = left  # not the mirror image of the right one, so that a flip shows
    ids[0, :2] = 4     # an unpaired structure
    image = sitk.GetImageFromArray(ids.transpose(2, 1, 0).copy())
    image.SetSpacing((1.5, 1.0, 2.0))
    image.SetOrigin((3.0, -2.0, 1.0))
    rng = np.random.default_rng(0)
    while True:  # mirroring happens with probability 1/2
        out, record = augment_label_map(image, ("mirror",), rng, {right: "Hippocampus_R", left: "Hippocampus_L"})
        if record["mirror"]["mirrored"]:
            break
    a = sitk.GetArrayFromImage(out).transpose(2, 1, 0)
    assert same_grid(out, image) and record["mirror"] == {"mirrored": True, "axis": 0, "swapped_pairs": 1}
    expected = np.zeros_like(ids)
    expected[3:8] = right  # the left structure, mirrored onto the right side, is the right one
    expected[14:18] = left
    expected[19, :2] = 4
    assert np.array_equal(a, expected)
