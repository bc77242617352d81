"""The displacement field's magnitude (the web app's overlay): known fields, the field's own grid, the file form."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from SemanticSynthLib.engine.translation.field_magnitude import field_magnitude, write_field_magnitude
from SemanticSynthLib.errors import SynthError

SIZE = (7, 5, 4)
SPACING = (1.5, 0.8, 2.5)
ORIGIN = (-12.0, 30.5, 7.25)
# an oblique, left-handed direction: anything kept by accident from an identity grid would show
DIRECTION = tuple(np.array([[0, -1, 0], [0.6, 0, 0.8], [0.8, 0, -0.6]], float).ravel())


def _field(vectors_zyx: np.ndarray) -> sitk.Image:
    field = sitk.GetImageFromArray(vectors_zyx.astype(np.float64), isVector=True)
    field.SetSpacing(SPACING)
    field.SetOrigin(ORIGIN)
    field.SetDirection(DIRECTION)
    return field


def _assert_field_grid(image: sitk.Image):
    assert image.GetSize() == SIZE
    assert np.allclose(image.GetSpacing(), SPACING) and np.allclose(image.GetOrigin(), ORIGIN)
    assert np.allclose(image.GetDirection(), DIRECTION)


def test_constant_shift_is_its_length_everywhere():
    shift = np.broadcast_to([3.0, 4.0, 0.0], (*SIZE[::-1], 3))
    magnitude = field_magnitude(_field(shift))
    _assert_field_grid(magnitude)
    assert magnitude.GetPixelID() == sitk.sitkFloat32 and magnitude.GetNumberOfComponentsPerPixel() == 1
    assert np.allclose(sitk.GetArrayViewFromImage(magnitude), 5.0)


def test_varying_field_matches_each_vectors_length():
    vectors = np.random.default_rng(3).normal(scale=4.0, size=(*SIZE[::-1], 3))
    magnitude = sitk.GetArrayFromImage(field_magnitude(_field(vectors)))
    assert np.allclose(magnitude, np.linalg.norm(vectors, axis=-1), rtol=1e-6)
    # the voxel order is the field's: the largest displacement sits where the field has it
    assert np.unravel_index(magnitude.argmax(), magnitude.shape) == np.unravel_index(
        np.linalg.norm(vectors, axis=-1).argmax(), magnitude.shape)


def test_a_scalar_image_is_not_a_field():
    with pytest.raises(SynthError, match="3 components per voxel; this image has 1"):
        field_magnitude(sitk.Image(list(SIZE), sitk.sitkFloat32))


def test_field_file_to_magnitude_file(tmp_path):
    vectors = np.zeros((*SIZE[::-1], 3))
    vectors[..., 2] = -2.0
    vectors[1, 2, 3] = [6.0, 0.0, 8.0]  # one voxel moved 10 mm
    field_path, out_path = tmp_path / "field.nrrd", tmp_path / "magnitude.nrrd"
    sitk.WriteImage(_field(vectors), str(field_path))
    assert write_field_magnitude(field_path, out_path) == pytest.approx(10.0)
    written = sitk.ReadImage(str(out_path))
    _assert_field_grid(written)
    values = sitk.GetArrayFromImage(written)
    assert values[1, 2, 3] == pytest.approx(10.0) and np.count_nonzero(np.isclose(values, 2.0)) == values.size - 1


def test_unreadable_field_file_is_one_line(tmp_path):
    broken = tmp_path / "field.nrrd"
    broken.write_bytes(b"not a field")
    with pytest.raises(SynthError, match="cannot read the displacement field"):
        write_field_magnitude(broken, tmp_path / "magnitude.nrrd")
    assert not (tmp_path / "magnitude.nrrd").exists()
