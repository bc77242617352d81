"""Output grid == input grid (size, spacing, origin, direction), and seeds behave."""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from SemanticSynthLib.engine.synthesis.generate import generate_volume
from SemanticSynthLib.engine.volume.io import array_of
from SemanticSynthLib.engine.model.package import load_package
from SemanticSynthLib.engine.model.store import resolve_model

from testdata import IXI, assert_same_grid


def _rotation(ax, ay, az):
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def test_oblique_anisotropic_grid_is_kept(tiny_model, tiny_labels):
    labels = sitk.Image(tiny_labels)
    labels.SetSpacing((1.3, 2.1, 3.4))
    labels.SetDirection(tuple(_rotation(0.3, -0.2, 0.5).flatten()))
    labels.SetOrigin((-12.5, 40.25, 7.75))
    out = generate_volume(load_package(tiny_model), labels, steps=2, seed=1)
    assert_same_grid(out, labels)
    assert out.GetPixelID() == sitk.sitkFloat32
    assert np.isfinite(array_of(out)).all()


def test_ixi_permuted_affine_is_kept(tiny_model):
    labels = sitk.ReadImage(str(IXI / "labels" / "IXI012-HH-1211.nii.gz"))
    direction = np.array(labels.GetDirection()).reshape(3, 3)
    assert not np.allclose(direction, np.eye(3))  # the IXI files really have permuted axes
    out = generate_volume(load_package(tiny_model), labels, steps=1, seed=0, unknown="background")
    assert_same_grid(out, labels)


def _write_dicom_series(image: sitk.Image, folder):
    """One CT-like DICOM file per slice with position, orientation and spacing tags."""
    image = sitk.Cast(image, sitk.sitkInt16)
    direction = image.GetDirection()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    series_uid = "1.2.826.0.1.3680043.2.1125.1.777"
    for k in range(image.GetDepth()):
        sl = image[:, :, k]
        position = image.TransformIndexToPhysicalPoint((0, 0, k))
        tags = {
            "0008|0060": "CT", "0020|000e": series_uid, "0020|000d": series_uid + ".1",
            "0020|0032": "\\".join(f"{v:.6f}" for v in position),
            "0020|0037": "\\".join(f"{v:.6f}" for v in (direction[0], direction[3], direction[6], direction[1], direction[4], direction[7])),
            "0020|0013": str(k + 1), "0028|0030": f"{image.GetSpacing()[1]:.6f}\\{image.GetSpacing()[0]:.6f}",
            "0018|0050": f"{image.GetSpacing()[2]:.6f}", "0008|0018": f"{series_uid}.{k + 1}",
        }
        for key, value in tags.items():
            sl.SetMetaData(key, value)
        writer.SetFileName(str(folder / f"slice_{k:03d}.dcm"))
        writer.Execute(sl)


def test_dicom_series_input(tiny_model, tiny_labels, tmp_path):
    from SemanticSynthLib.engine.volume.io import read_volume

    labels = sitk.Image(tiny_labels)
    labels.SetSpacing((1.5, 1.5, 2.5))
    labels.SetDirection(tuple(_rotation(0.0, 0.0, 0.4).flatten()))
    _write_dicom_series(labels, tmp_path)
    series = read_volume(tmp_path)
    assert series.GetSize() == labels.GetSize()
    np.testing.assert_array_equal(array_of(series), array_of(labels))
    out = generate_volume(load_package(tiny_model), series, steps=1)
    assert_same_grid(out, series)
    assert_same_grid(out, labels)


def test_same_seed_same_output_different_seed_differs(tiny_labels):
    # A trained model (the bundled one): the 4-step tiny model's untrained codebook quantizes every sampled
    # latent to the same code, so there the seed cannot show in the image.
    package = load_package(resolve_model("brain-mri"))
    a = array_of(generate_volume(package, tiny_labels, steps=2, seed=7))
    b = array_of(generate_volume(package, tiny_labels, steps=2, seed=7))
    c = array_of(generate_volume(package, tiny_labels, steps=2, seed=8))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).mean() > 1e-3 * (np.abs(a).mean() + 1e-6)


def test_temperature_scales_the_start_and_narrows_the_spread_between_seeds(tiny_labels):
    import torch

    from SemanticSynthLib.engine.synthesis.sampling import initial_noise

    cpu = torch.device("cpu")
    assert torch.equal(initial_noise((1, 8, 4, 4, 4), 3, cpu, 0.5), 0.5 * initial_noise((1, 8, 4, 4, 4), 3, cpu))
    package = load_package(resolve_model("brain-mri"))

    def spread(temperature):
        a, b = (array_of(generate_volume(package, tiny_labels, steps=2, seed=s, temperature=temperature)) for s in (7, 8))
        return float(np.abs(a - b).mean())

    full, low = spread(1.0), spread(0.4)
    assert 0 < low < 0.8 * full, (low, full)


def test_formats_round_trip_with_geometry(tiny_labels, tmp_path):
    from SemanticSynthLib.engine.volume.io import read_volume, write_volume

    labels = sitk.Image(tiny_labels)
    labels.SetSpacing((0.7, 1.1, 2.9))
    labels.SetDirection(tuple(_rotation(0.2, 0.1, -0.3).flatten()))
    for name in ("a.nii.gz", "a.nii", "a.nrrd", "a.mha"):
        write_volume(labels, tmp_path / name)
        back = read_volume(tmp_path / name)
        assert_same_grid(back, labels)
        np.testing.assert_array_equal(array_of(back), array_of(labels))
    assert not list(tmp_path.glob(".partial-*"))


def test_written_files_get_ordinary_permissions(tiny_labels, tmp_path):
    import os

    from SemanticSynthLib.engine.volume.io import write_volume

    mask = os.umask(0o022)
    try:
        path = write_volume(tiny_labels, tmp_path / "out.nii.gz")
    finally:
        os.umask(mask)
    assert (path.stat().st_mode & 0o777) == 0o644
