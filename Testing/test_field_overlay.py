"""The web app's overlays in slicer-core's real scene: a grid transform node -> its magnitude volume (mm), through
the bridge's own export and load, on the field's grid, coloured from 0 to the largest displacement; and the std of K
samples, coloured from 0 to its largest value."""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from SemanticSynthLib.bridge.scene import ijk_to_ras_of, import_transform
from SemanticSynthLib.web.field_overlay import COLORMAP_ID, legend_gradient, magnitude_volume, uncertainty_overlay


def _field_file(path) -> tuple[sitk.Image, np.ndarray]:
    """An oblique grid with a field that varies voxel by voxel (LPS mm), written as ITK writes displacement fields."""
    rng = np.random.default_rng(5)
    vectors = rng.normal(scale=3.0, size=(6, 9, 11, 3))  # z, y, x, component
    vectors[2, 4, 7] = [0.0, 12.0, -5.0]  # the largest: 13 mm
    field = sitk.GetImageFromArray(vectors, isVector=True)
    field.SetDirection(sitk.VersorTransform((1, -2, 0.5), 0.6).GetMatrix())
    field.SetSpacing((1.5, 2.5, 3.0))
    field.SetOrigin((30.0, -20.0, 11.0))
    sitk.WriteImage(field, str(path))
    return field, np.linalg.norm(vectors, axis=-1)


def test_magnitude_volume_of_a_grid_transform(scene, tmp_path):
    import slicer

    logic = slicer.vtkMRMLColorLogic()  # as the web app's SlicerApp does: the default colour nodes
    logic.SetMRMLScene(scene)
    logic.AddDefaultColorNodes()
    field, expected = _field_file(tmp_path / "field.nrrd")
    transform = import_transform(scene, tmp_path / "field.nrrd", "field")

    node, largest = magnitude_volume(transform)

    assert node.GetName() == "field magnitude (mm)" and largest == np.float32(expected.max())
    assert np.isclose(largest, 13.0, atol=0.2)
    assert np.allclose(slicer.util.arrayFromVolume(node), expected, rtol=1e-5)
    # the field's own grid, in RAS: Slicer's IJK->RAS is LPS->RAS after the file's IJK->LPS
    ijk_to_lps = np.eye(4)
    ijk_to_lps[:3, :3] = np.array(field.GetDirection()).reshape(3, 3) @ np.diag(field.GetSpacing())
    ijk_to_lps[:3, 3] = field.GetOrigin()
    assert np.allclose(ijk_to_ras_of(node), np.diag([-1.0, -1.0, 1.0, 1.0]) @ ijk_to_lps, atol=1e-4)
    display = node.GetDisplayNode()
    assert display.GetColorNodeID() == COLORMAP_ID
    assert np.isclose(display.GetWindow(), largest) and np.isclose(display.GetLevel(), largest / 2)
    assert not display.GetApplyThreshold()  # a displacement of 0 mm is drawn (black): the whole field is shown
    # the page's legend carries the same colours: PET-Heat's black at 0 mm to white at the largest
    gradient = legend_gradient(node)
    assert gradient.startswith("linear-gradient(to right, rgb(0, 0, 0)") and gradient.endswith("rgb(255, 255, 255))")


def test_no_file_is_left_behind(scene, tmp_path):
    import tempfile
    from pathlib import Path

    _field_file(tmp_path / "field.nrrd")
    transform = import_transform(scene, tmp_path / "field.nrrd", "field")
    before = set(Path(tempfile.gettempdir()).glob("SemanticSynth-field-*"))
    magnitude_volume(transform)
    assert set(Path(tempfile.gettempdir()).glob("SemanticSynth-field-*")) == before


def test_uncertainty_overlay_runs_from_zero_to_the_largest_std(scene, tmp_path):
    """The std volume (0 wherever the samples agreed, e.g. outside an edited region; never below 0) coloured like the
    field's magnitude: PET-Heat from 0 to its largest value, which the legend shows."""
    import slicer

    from SemanticSynthLib.bridge.scene import import_volume

    logic = slicer.vtkMRMLColorLogic()
    logic.SetMRMLScene(scene)
    logic.AddDefaultColorNodes()
    std = np.zeros((6, 9, 11), np.float32)
    std[2:4, 3:6, 4:8] = np.random.default_rng(1).uniform(0.5, 20.0, (2, 3, 4))
    std[3, 4, 5] = 37.5
    image = sitk.GetImageFromArray(std)
    image.SetSpacing((3.0, 3.0, 3.0))
    sitk.WriteImage(image, str(tmp_path / "std.nrrd"))
    node = import_volume(scene, tmp_path / "std.nrrd", "generated uncertainty")

    largest = uncertainty_overlay(node)

    assert largest == 37.5
    display = node.GetDisplayNode()
    assert display.GetColorNodeID() == COLORMAP_ID and not display.GetAutoWindowLevel()
    assert np.isclose(display.GetWindow(), 37.5) and np.isclose(display.GetLevel(), 37.5 / 2)
    # zeros (every sample agreed) are not drawn: the volume underneath shows as it is
    assert display.GetApplyThreshold() and 0 < display.GetLowerThreshold() < 0.5 and display.GetUpperThreshold() >= 37.5
    assert legend_gradient(node).startswith("linear-gradient(to right, rgb(0, 0, 0)")
    # all samples equal everywhere: the legend still runs from 0 (to a small positive top, never an empty window)
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 4, 4), np.float32)), str(tmp_path / "zero.nrrd"))
    flat = import_volume(scene, tmp_path / "zero.nrrd", "flat uncertainty")
    assert uncertainty_overlay(flat) == 0.0 and flat.GetDisplayNode().GetWindow() > 0
