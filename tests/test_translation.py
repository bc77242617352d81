"""Traceable translation: field maths, the field file's direction, the translate command, bad input."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from scipy.ndimage import gaussian_filter
from scipy.linalg import expm

from SemanticSynthLib.cli import main
from SemanticSynthLib.engine.volume.io import array_of
from SemanticSynthLib.engine.translation.fields import (compose, field_image, integrate_velocity, jacobian_determinant,
                                                         physical_to_voxels)
from SemanticSynthLib.engine.volume.intensity import mri_normalization, normalize
from SemanticSynthLib.engine.translation.synthetic_pairs import make_pair, t2_like_contrast

from testdata import IXI_IDS, SHARED, assert_same_grid, crop_case, map_points

INTERIOR = (slice(8, -8),) * 3


def _grid(shape):
    return np.stack(np.meshgrid(*[np.arange(s, dtype=np.float64) for s in shape], indexing="ij"))


def test_scaling_and_squaring_matches_translation_and_rotation():
    shape = (32, 32, 32)
    constant = torch.zeros((1, 3, *shape))
    constant[:, 0], constant[:, 1], constant[:, 2] = 1.7, -0.6, 2.2
    np.testing.assert_allclose(integrate_velocity(constant)[0].numpy()[(slice(None),) + INTERIOR],
                               constant[0].numpy()[(slice(None),) + INTERIOR], atol=1e-4)
    # v(x) = W (x - c) with W skew: its flow is the rotation expm(W) about c.
    angle = 0.2
    skew = np.array([[0, -angle, 0], [angle, 0, 0], [0, 0, 0]])
    centre = np.array([15.5, 15.5, 15.5])[:, None, None, None]
    points = _grid(shape) - centre
    velocity = np.einsum("ij,jxyz->ixyz", skew, points)
    expected = np.einsum("ij,jxyz->ixyz", expm(skew) - np.eye(3), points)
    got = integrate_velocity(torch.from_numpy(velocity).float()[None])[0].numpy()
    assert np.abs(got - expected)[(slice(None),) + INTERIOR].max() < 0.05


def test_inverse_consistency_and_positive_jacobian_of_a_smooth_field():
    rng = np.random.default_rng(0)
    velocity = np.stack([gaussian_filter(rng.normal(size=(40, 40, 40)), 5) for _ in range(3)])
    velocity *= 3.0 / np.abs(velocity).max()
    v = torch.from_numpy(velocity).float()[None]
    forward, inverse = integrate_velocity(v), integrate_velocity(-v)
    residual = compose(inverse, forward)[0].numpy()
    assert np.linalg.norm(residual, axis=0)[INTERIOR].max() < 0.1
    assert np.abs(forward[0].numpy()).max() > 1.5  # a real deformation, not a near-identity
    assert (jacobian_determinant(forward[0].numpy()) > 0).all()


def _oblique(image: sitk.Image) -> sitk.Image:
    rotation = sitk.VersorTransform((1, 2, 3), 0.5).GetMatrix()
    image = sitk.Image(image)
    image.SetDirection(rotation)
    image.SetSpacing((1.3, 2.1, 3.4))
    image.SetOrigin((-40.0, 12.5, 7.25))
    return image


def test_field_file_is_itk_convention_on_an_oblique_grid():
    """The written vectors are LPS mm; SimpleITK's transform and the engine's reader send points alike."""
    reference = _oblique(sitk.Image(12, 10, 9, sitk.sitkUInt8))
    rng = np.random.default_rng(1)
    displacement = np.stack([gaussian_filter(rng.normal(size=(12, 10, 9)), 2) * 4 for _ in range(3)])
    field = field_image(displacement, reference)
    np.testing.assert_allclose(physical_to_voxels(field), displacement, atol=1e-5)
    transform = sitk.DisplacementFieldTransform(sitk.Cast(field, sitk.sitkVectorFloat64))
    matrix = np.array(reference.GetDirection()).reshape(3, 3) @ np.diag(reference.GetSpacing())
    index = (3, 4, 5)
    point = np.array(reference.TransformIndexToPhysicalPoint(index))
    np.testing.assert_allclose(transform.TransformPoint(tuple(point)), point + matrix @ displacement[(slice(None),) + index], atol=1e-4)
    inside = np.array([reference.TransformContinuousIndexToPhysicalPoint(tuple(rng.uniform(1, 7, 3))) for _ in range(20)])
    expected = np.array([transform.TransformPoint(tuple(p)) for p in inside])
    np.testing.assert_allclose(map_points(field, inside), expected, atol=1e-4)


def test_synthetic_pair_target_is_the_source_seen_through_the_true_field():
    """target(x) = T2like(source)(x + u(x)): resampling through the written field reproduces it."""
    source, labels = crop_case(IXI_IDS[0], 40)
    target, field, target_labels = make_pair(source, labels)
    contrast = sitk.GetImageFromArray(t2_like_contrast(normalize(sitk.GetArrayFromImage(source), mri_normalization(1.0))) * 1000)
    contrast.CopyInformation(source)
    resampled = sitk.Resample(contrast, source, sitk.DisplacementFieldTransform(sitk.Cast(field, sitk.sitkVectorFloat64)),
                              sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    inner = (slice(6, -6),) * 3
    difference = np.abs(array_of(resampled) - array_of(target))[inner]
    assert difference.mean() < 5.0, difference.mean()  # of a 0..1000 range; the two linear interpolations differ slightly
    moved = np.linalg.norm(physical_to_voxels(field), axis=0)
    assert moved[inner].mean() > 1.0  # the pair is really misaligned
    assert_same_grid(target_labels, labels)


def _oblique_source(tmp_path):
    image, labels = crop_case(IXI_IDS[2])
    image, labels = _oblique(image), _oblique(labels)
    sitk.WriteImage(image, str(tmp_path / "source.nii.gz"))
    sitk.WriteImage(labels, str(tmp_path / "labels.nii.gz"))
    return image, labels


def test_translate_keeps_the_grid_and_carries_labels_along_the_field(tiny_translator, tmp_path):
    source, labels = _oblique_source(tmp_path)
    out, field_path, carried_path = tmp_path / "t2.nii.gz", tmp_path / "field.mha", tmp_path / "carried.nii.gz"
    assert main(["translate", str(tmp_path / "source.nii.gz"), str(out), "--field", str(field_path), "--model",
                 str(tiny_translator), "--labels", str(tmp_path / "labels.nii.gz"), "--labels-out", str(carried_path),
                 "--progress", "none"]) == 0
    translated, field, carried = sitk.ReadImage(str(out)), sitk.ReadImage(str(field_path)), sitk.ReadImage(str(carried_path))
    for image in (translated, field, carried):
        assert_same_grid(image, source)
    assert field.GetNumberOfComponentsPerPixel() == 3
    assert np.isfinite(array_of(translated)).all()
    # Direction: carried(x) = labels(x + u(x)) with u read from the file the command wrote.
    size = np.array(source.GetSize())
    indices = np.stack(np.meshgrid(*[np.arange(2, s - 2, 3) for s in size], indexing="ij"), -1).reshape(-1, 3)
    points = np.array([source.TransformIndexToPhysicalPoint(tuple(int(v) for v in i)) for i in indices])
    moved = map_points(field, points)
    landing = np.array([labels.TransformPhysicalPointToIndex(tuple(p)) for p in moved])
    inside = ((landing >= 0) & (landing < size)).all(axis=1)
    expected = array_of(labels)[tuple(landing[inside].T)]
    got = array_of(carried)[tuple(indices[inside].T)]
    assert (got == expected).mean() > 0.99
    # The identity field of --no-deform leaves the labels in place.
    assert main(["translate", str(tmp_path / "source.nii.gz"), str(tmp_path / "t2b.nii.gz"), "--field", str(tmp_path / "zero.nrrd"),
                 "--model", str(tiny_translator), "--no-deform", "--labels", str(tmp_path / "labels.nii.gz"),
                 "--labels-out", str(tmp_path / "same.nii.gz"), "--progress", "none"]) == 0
    assert not sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "zero.nrrd"))).any()
    np.testing.assert_array_equal(array_of(sitk.ReadImage(str(tmp_path / "same.nii.gz"))), array_of(labels))


@pytest.fixture()
def translate_inputs(tmp_path):
    source, labels = crop_case(IXI_IDS[0])
    sitk.WriteImage(source, str(tmp_path / "source.nii.gz"))
    sitk.WriteImage(sitk.Image(16, 16, sitk.sitkFloat32) + 100, str(tmp_path / "flat.nii.gz"))
    shifted = sitk.Image(labels)
    shifted.SetOrigin(tuple(np.array(labels.GetOrigin()) + 4.0))
    sitk.WriteImage(shifted, str(tmp_path / "other_grid.nii.gz"))
    (tmp_path / "field.nii.gz").write_bytes(b"user data")
    return tmp_path


@pytest.mark.parametrize("case,expected", [
    ("2d", "2D image"), ("ct", "looks like CT"), ("field_exists", "exists; pass --overwrite"), ("labels_grid", "another grid"),
])
def test_translate_bad_input(case, expected, translate_inputs, tiny_translator, capsys):
    d = translate_inputs
    source = {"2d": d / "flat.nii.gz", "ct": SHARED / "totalseg" / "example_ct_sm.nii.gz"}.get(case, d / "source.nii.gz")
    field = d / ("field.nii.gz" if case == "field_exists" else "new_field.nii.gz")
    args = ["translate", str(source), str(d / "out.nii.gz"), "--field", str(field), "--model", str(tiny_translator),
            "--progress", "none"]
    if case == "labels_grid":
        args += ["--labels", str(d / "other_grid.nii.gz"), "--labels-out", str(d / "carried.nii.gz")]
    before = sorted(p.name for p in d.iterdir())
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and expected in err[0], err
    assert sorted(p.name for p in d.iterdir()) == before  # no output, no partial file
    assert (d / "field.nii.gz").read_bytes() == b"user data"


def test_spatial_transform_learns_to_align(tmp_path):
    """Fifty steps of the spatial stage on tiny pairs lower the similarity loss (local NCC)."""
    import json

    from testdata import train_tiny_translator

    package = train_tiny_translator(tmp_path, spatial_steps=50, steps=0, refine_steps=0)
    log = [json.loads(line) for line in (tmp_path / "translator.log.jsonl").read_text(encoding="utf-8").splitlines()]
    losses = [r["spatial_loss"] for r in log if "spatial_loss" in r]
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.01, losses
    assert (package / "velocity.safetensors").exists()
