"""Shared fixtures: tiny real-data crops and a tiny model package trained on them (seconds, not minutes)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SEMANTICSYNTH_DATA", REPO.parent / "shared" / "data"))
IXI = SHARED / "ixi_muse"
IXI_IDS = ["IXI013-HH-1212", "IXI014-HH-1236", "IXI015-HH-1258"]


def crop_case(case_id: str, size=32):
    """A centred crop of a real IXI T1 and its MUSE labels, geometry kept (origin moves with the crop)."""
    image = sitk.ReadImage(str(IXI / "t1" / f"{case_id}.nii.gz"))
    labels = sitk.ReadImage(str(IXI / "labels" / f"{case_id}.nii.gz"))
    start = [(s - size) // 2 for s in image.GetSize()]
    return (sitk.RegionOfInterest(image, [size] * 3, start), sitk.RegionOfInterest(labels, [size] * 3, start))


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny_dataset")
    (root / "imagesTr").mkdir()
    (root / "labelsTr").mkdir()
    for i, case_id in enumerate(IXI_IDS):
        image, labels = crop_case(case_id)
        sitk.WriteImage(image, str(root / "imagesTr" / f"case_{i:03d}_0000.nii.gz"))
        sitk.WriteImage(labels, str(root / "labelsTr" / f"case_{i:03d}.nii.gz"))
    return root


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, tiny_dataset) -> Path:
    from SemanticSynthLib.cli import main

    root = tmp_path_factory.mktemp("tiny_model")
    assert main(["train-autoencoder", "--data", str(tiny_dataset), "--out", str(root / "ae"), "--label-table", "muse",
                 "--steps", "4", "--patch", "32", "--adv-start", "2", "--progress", "none", "--checkpoint-every", "100"]) == 0
    assert main(["train-diffusion", "--data", str(tiny_dataset), "--autoencoder", str(root / "ae"), "--out", str(root / "model"),
                 "--steps", "4", "--latent-patch", "8", "--progress", "none", "--default-steps", "3"]) == 0
    return root / "model"


@pytest.fixture(scope="session")
def tiny_labels(tiny_dataset) -> sitk.Image:
    return sitk.ReadImage(str(tiny_dataset / "labelsTr" / "case_000.nii.gz"))


def geometry_of(image: sitk.Image):
    return image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection()


def assert_same_grid(a: sitk.Image, b: sitk.Image):
    assert a.GetSize() == b.GetSize()
    np.testing.assert_allclose(a.GetSpacing(), b.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(a.GetDirection(), b.GetDirection(), atol=1e-6)
