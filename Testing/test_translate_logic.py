"""Translation in slicer-core's real scene: field conventions against SimpleITK, the Logic end to end,
carrying a segmentation, and bad input leaving the scene unchanged."""
from __future__ import annotations

import glob
import os
import tempfile

import numpy as np
import pytest
import SimpleITK as sitk

from SemanticSynthLib.cli import main
from SemanticSynthLib.engine.translation.fields import field_image
from SemanticSynthLib.errors import SynthError
from SemanticSynthLib.bridge.scene import SOURCE_REFERENCE, ijk_to_ras_of, import_transform
from SemanticSynthLib.bridge.translate_logic import FIELD_REFERENCE, TRANSLATED_REFERENCE, TranslationLogic, carry_segmentation

from slicer_testdata import SAMPLE_CT, grid_transform_points, segmentation_from_file
from testdata import IXI_IDS, crop_case, map_points


def _oblique_grid(size=(14, 12, 10)) -> sitk.Image:
    grid = sitk.Image(list(size), sitk.sitkUInt8)
    grid.SetDirection(sitk.VersorTransform((1, -2, 0.5), 0.6).GetMatrix())
    grid.SetSpacing((1.5, 2.5, 3.0))
    grid.SetOrigin((30.0, -20.0, 11.0))
    return grid


def _analytic_field(grid: sitk.Image, kind: str) -> tuple[sitk.Image, callable]:
    """u(p) in LPS mm: a translation, or the rotation-like u(p) = (R - I)(p - c); both exact under linear interpolation."""
    if kind == "translation":
        shift = np.array([3.25, -1.5, 2.0])
        truth = lambda p: p + shift  # noqa: E731
    else:
        rotation = np.array(sitk.VersorTransform((0.2, 0.3, 1.0), 0.15).GetMatrix()).reshape(3, 3)
        centre = np.array(grid.TransformContinuousIndexToPhysicalPoint([s / 2 for s in grid.GetSize()]))
        truth = lambda p: centre + (p - centre) @ rotation.T  # noqa: E731
    size = grid.GetSize()
    index = np.stack(np.meshgrid(*[np.arange(s) for s in size], indexing="ij"), -1).reshape(-1, 3)
    points = np.array([grid.TransformIndexToPhysicalPoint([int(v) for v in i]) for i in index])
    physical = (truth(points) - points).reshape(*size, 3)
    to_index = np.linalg.inv(np.array(grid.GetDirection()).reshape(3, 3) @ np.diag(grid.GetSpacing()))
    voxels = np.einsum("ij,xyzj->ixyz", to_index, physical)
    return field_image(voxels, grid), truth


@pytest.mark.parametrize("kind", ["translation", "rotation"])
@pytest.mark.parametrize("suffix", [".nrrd", ".nii.gz"])
def test_engine_simpleitk_and_slicer_agree_on_an_oblique_field(kind, suffix, scene, tmp_path):
    grid = _oblique_grid()
    field, truth = _analytic_field(grid, kind)
    path = tmp_path / f"field{suffix}"
    sitk.WriteImage(field, str(path))
    rng = np.random.default_rng(3)
    points = np.array([grid.TransformContinuousIndexToPhysicalPoint(list(rng.uniform(1, np.array(grid.GetSize()) - 2)))
                       for _ in range(25)])
    expected = truth(points)
    engine = map_points(sitk.ReadImage(str(path)), points)
    transform = sitk.DisplacementFieldTransform(sitk.Cast(sitk.ReadImage(str(path)), sitk.sitkVectorFloat64))
    itk = np.array([transform.TransformPoint(tuple(p)) for p in points])
    node = import_transform(scene, path, "field")
    assert node.IsA("vtkMRMLGridTransformNode")
    slicer_points = grid_transform_points(node, points)
    for got in (engine, itk, slicer_points):
        assert np.abs(got - expected).max() < 1e-3


def _load_volume(scene, image: sitk.Image, path, name):
    import slicer

    sitk.WriteImage(image, str(path))
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    assert storage.ReadData(node)
    return node


def _oblique_crop():
    image, labels = crop_case(IXI_IDS[1])
    for im in (image, labels):
        im.SetDirection(sitk.VersorTransform((0, 1, 1), 0.3).GetMatrix())
    return image, labels


def _segment_mask(scene, segmentation, reference_volume) -> np.ndarray:
    """Union of all segments, exported onto the reference volume's grid, in (k, j, i) order."""
    import slicer
    import vtk
    from vtk.util.numpy_support import vtk_to_numpy

    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "export")
    logic = slicer.vtkSlicerSegmentationsModuleLogic()
    logic.SetMRMLScene(scene)
    ids = vtk.vtkStringArray()
    segmentation.GetSegmentation().GetSegmentIDs(ids)
    assert logic.ExportSegmentsToLabelmapNode(segmentation, ids, labelmap, reference_volume)
    dims = labelmap.GetImageData().GetDimensions()
    mask = vtk_to_numpy(labelmap.GetImageData().GetPointData().GetScalars()).reshape(dims[::-1]) > 0
    scene.RemoveNode(labelmap)
    return mask


def test_translate_logic_end_to_end_and_carry(scene, tmp_path, tiny_translator):
    import slicer

    image, labels = _oblique_crop()
    source = _load_volume(scene, image, tmp_path / "source.nrrd", "T1")
    sitk.WriteImage(labels, str(tmp_path / "labels.nrrd"))
    segmentation = segmentation_from_file(scene, tmp_path / "labels.nrrd", "brain")
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    study = sh.CreateStudyItem(sh.CreateSubjectItem(sh.GetSceneItemID(), "patient"), "study")
    for node in (source, segmentation):
        item = sh.GetItemByDataNode(node)
        sh.SetItemParent(item, study) if item else sh.CreateItem(study, node)
    seen = []
    volume, transform = TranslationLogic().translate(source, model=str(tiny_translator), seed=4, on_progress=seen.append)
    assert any(r.get("stage") == "denoising" for r in seen)
    np.testing.assert_allclose(ijk_to_ras_of(volume), ijk_to_ras_of(source), atol=1e-6)
    assert volume.GetNodeReferenceID(SOURCE_REFERENCE) == source.GetID()
    assert transform.GetNodeReferenceID(SOURCE_REFERENCE) == source.GetID()
    assert volume.GetNodeReferenceID(FIELD_REFERENCE) == transform.GetID()
    assert transform.GetNodeReferenceID(TRANSLATED_REFERENCE) == volume.GetID()
    for node in (volume, transform):
        assert sh.GetItemParent(sh.GetItemByDataNode(node)) == study
    # The node maps points exactly as SimpleITK reads the engine's own field for the same source.
    field_path = tmp_path / "field.nrrd"
    assert main(["translate", str(tmp_path / "source.nrrd"), str(tmp_path / "out.nrrd"), "--field", str(field_path),
                 "--model", str(tiny_translator), "--seed", "4", "--progress", "none"]) == 0
    field = sitk.ReadImage(str(field_path))
    assert np.abs(sitk.GetArrayFromImage(field)).max() > 0  # not the identity, so the comparison means something
    sitk_transform = sitk.DisplacementFieldTransform(sitk.Cast(field, sitk.sitkVectorFloat64))
    rng = np.random.default_rng(0)
    points = np.array([image.TransformContinuousIndexToPhysicalPoint(list(rng.uniform(2, 29, 3))) for _ in range(20)])
    itk = np.array([sitk_transform.TransformPoint(tuple(p)) for p in points])
    assert np.abs(grid_transform_points(transform, points) - itk).max() < 1e-3
    # Carry the segmentation: same voxels as the engine's nearest-neighbour carry through the same field.
    carried = carry_segmentation(segmentation, transform)
    assert carried.GetParentTransformNode() is None  # hardened
    assert segmentation.GetParentTransformNode() is None  # the original is untouched
    assert main(["translate", str(tmp_path / "source.nrrd"), str(tmp_path / "out2.nrrd"), "--field", str(tmp_path / "f2.nrrd"),
                 "--model", str(tiny_translator), "--seed", "4", "--labels", str(tmp_path / "labels.nrrd"),
                 "--labels-out", str(tmp_path / "carried.nrrd"), "--progress", "none"]) == 0
    # Slicer's hardening drops the outermost voxel layer where a segment touches the grid's edge (measured:
    # every differing voxel lies there), so the comparison is inside it.
    inner = (slice(1, -1),) * 3
    engine_mask = (sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "carried.nrrd"))) > 0)[inner]
    slicer_mask = _segment_mask(scene, carried, volume)[inner]
    agreement = 2 * (engine_mask & slicer_mask).sum() / (engine_mask.sum() + slicer_mask.sum())
    assert agreement > 0.99, agreement


def _temp_folders():
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "SemanticSynth-*")))


def test_translate_bad_input_leaves_the_scene_unchanged(scene, tmp_path, tiny_translator):
    ct = _load_volume(scene, sitk.ReadImage(str(SAMPLE_CT)), tmp_path / "ct.nrrd", "CT")
    flat = _load_volume(scene, sitk.Image(20, 20, 1, sitk.sitkFloat32) + 5, tmp_path / "flat.nrrd", "flat")
    before, folders = scene.GetNumberOfNodes(), _temp_folders()
    with pytest.raises(SynthError, match="looks like CT") as info:
        TranslationLogic().translate(ct, model=str(tiny_translator))
    assert "\n" not in str(info.value) and "Traceback" not in str(info.value)
    with pytest.raises(SynthError, match="2D image"):
        TranslationLogic().translate(flat, model=str(tiny_translator))
    with pytest.raises(SynthError, match="no source volume"):
        TranslationLogic().translate(None, model=str(tiny_translator))
    assert scene.GetNumberOfNodes() == before
    assert _temp_folders() == folders


def test_cancel_translation_leaves_the_scene_unchanged(scene, tmp_path, tiny_translator):
    image, _ = crop_case(IXI_IDS[0], 64)
    source = _load_volume(scene, image, tmp_path / "source.nrrd", "T1")
    before, folders = scene.GetNumberOfNodes(), _temp_folders()
    job = TranslationLogic().start(source, model=str(tiny_translator), steps=200)
    import time

    deadline = time.monotonic() + 120
    while job.last_progress.get("stage") != "denoising" and time.monotonic() < deadline:
        time.sleep(0.05)
    job.cancel()
    assert job.poll() and job.error == "cancelled"
    assert scene.GetNumberOfNodes() == before
    assert _temp_folders() == folders
