"""Shared fixtures: tiny real-data crops and a tiny model package trained on them (seconds, not minutes)."""
from __future__ import annotations

from pathlib import Path

import pytest
import SimpleITK as sitk

from testdata import IXI_IDS, crop_case


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
def tiny_segmenter(tiny_dataset, tmp_path_factory) -> Path:
    from SemanticSynthLib.cli import main

    out = tmp_path_factory.mktemp("segmenter") / "segmenter"
    assert main(["train-segmenter", "--data", str(tiny_dataset), "--out", str(out), "--steps", "3", "--patch", "32",
                 "--progress", "none"]) == 0
    return out


@pytest.fixture(scope="session")
def tiny_labels(tiny_dataset) -> sitk.Image:
    return sitk.ReadImage(str(tiny_dataset / "labelsTr" / "case_000.nii.gz"))


@pytest.fixture(scope="session")
def tiny_translator(tmp_path_factory) -> Path:
    from testdata import train_tiny_translator

    return train_tiny_translator(tmp_path_factory.mktemp("tiny_translator"))
