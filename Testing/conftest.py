"""Fixtures for the Slicer-side tests: a real slicer-core MRML scene and a tiny CT model package."""
from __future__ import annotations

import glob
import os
import tempfile
from pathlib import Path

import pytest

from slicer_testdata import SAMPLE_CT, SAMPLE_SEGMENTATION, segmentation_from_file


@pytest.fixture(scope="session")
def tiny_ct_model(tmp_path_factory) -> Path:
    """A CT package trained for a few steps on the sample pair: enough to exercise every code path."""
    from SemanticSynthLib.cli import main

    root = tmp_path_factory.mktemp("tiny_ct")
    csv = root / "pairs.csv"
    csv.write_text(f"image,label,modality\n{SAMPLE_CT},{SAMPLE_SEGMENTATION},ct\n", encoding="utf-8")
    assert main(["train-autoencoder", "--data", str(csv), "--out", str(root / "ae"), "--label-table", "totalseg_v2",
                 "--modality", "ct", "--spacing", "3", "--steps", "3", "--patch", "32", "--adv-start", "100",
                 "--progress", "none"]) == 0
    assert main(["train-diffusion", "--data", str(csv), "--autoencoder", str(root / "ae"), "--out", str(root / "model"),
                 "--steps", "3", "--latent-patch", "16,16,8", "--progress", "none", "--default-steps", "2"]) == 0
    return root / "model"


@pytest.fixture()
def staging_folders(monkeypatch, tmp_path):
    """The jobs' staging folders in a folder of this test's own (other runs on the machine stage theirs too); returns
    a function listing the SemanticSynth-* folders staged there, to check that a job leaves none behind. The
    Slicer-side test modules use it for every test (pytestmark)."""
    folder = tmp_path / "temp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return lambda: set(glob.glob(os.path.join(tempfile.gettempdir(), "SemanticSynth-*")))


@pytest.fixture()
def scene():
    import slicer

    scene = slicer.vtkMRMLScene()
    slicer.mrmlScene = scene
    yield scene
    scene.Clear(True)


@pytest.fixture()
def sample_segmentation(scene):
    """The shared sample label map imported into a segmentation node with the segmentations logic."""
    import slicer

    segmentation = segmentation_from_file(scene, SAMPLE_SEGMENTATION, "sample segmentation")
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    study = sh.CreateStudyItem(sh.CreateSubjectItem(sh.GetSceneItemID(), "patient"), "study")
    item = sh.GetItemByDataNode(segmentation)
    sh.SetItemParent(item, study) if item else sh.CreateItem(study, segmentation)
    return segmentation


@pytest.fixture(scope="session")
def tiny_translator(tmp_path_factory) -> Path:
    from testdata import train_tiny_translator

    return train_tiny_translator(tmp_path_factory.mktemp("tiny_translator"))
