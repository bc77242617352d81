"""The Logic end to end on slicer-core's real vtkMRMLScene with a real child process (no mocks)."""
from __future__ import annotations

import time

import numpy as np
import pytest
import SimpleITK as sitk

from SemanticSynthLib.errors import SynthError
from SemanticSynthLib.bridge.generate_logic import LABELS_REFERENCE, GenerationLogic
from SemanticSynthLib.bridge.scene import SOURCE_REFERENCE, ijk_to_ras_of, sitk_geometry

from slicer_testdata import SAMPLE_SEGMENTATION
from SemanticSynthLib.engine.volume.label_merges import read_merge, relabel


# every test stages its jobs in a temp folder of its own (conftest.py); staging_folders() lists the jobs' folders there
pytestmark = pytest.mark.usefixtures("staging_folders")


def _label_map_ijk_to_ras():
    """The sample label map's IJKToRAS from its file (ITK LPS -> Slicer RAS)."""
    image = sitk.ReadImage(str(SAMPLE_SEGMENTATION))
    direction = np.array(image.GetDirection()).reshape(3, 3)
    m = np.eye(4)
    m[:3, :3] = np.diag([-1, -1, 1]) @ direction @ np.diag(image.GetSpacing())
    m[:3, 3] = np.diag([-1, -1, 1]) @ np.array(image.GetOrigin())
    return m


def test_generate_end_to_end_and_scene_round_trip(scene, sample_segmentation, tiny_ct_model, tmp_path, staging_folders):
    import slicer

    before = staging_folders()
    records = []
    node = GenerationLogic().generate(sample_segmentation, model=str(tiny_ct_model), modality="ct", steps=2, seed=3,
                                      on_progress=records.append)
    assert any(r.get("stage") == "denoising" for r in records)
    np.testing.assert_allclose(ijk_to_ras_of(node), _label_map_ijk_to_ras(), atol=1e-6)
    assert node.GetImageData().GetDimensions() == sitk.ReadImage(str(SAMPLE_SEGMENTATION)).GetSize()
    assert node.GetNodeReferenceID(SOURCE_REFERENCE) == sample_segmentation.GetID()
    assert node.GetAttribute("SemanticSynth.modality") == "ct"
    assert node.GetAttribute("SemanticSynth.seed") == "3"
    assert node.GetAttribute("SemanticSynth.steps") == "2"
    assert node.GetAttribute("SemanticSynth.conditioning") == "concat"
    assert node.GetAttribute("SemanticSynth.model") == "model"
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    assert sh.GetItemParent(sh.GetItemByDataNode(node)) == sh.GetItemParent(sh.GetItemByDataNode(sample_segmentation))
    assert node.GetDisplayNode().GetWindow() == pytest.approx(400) and node.GetDisplayNode().GetLevel() == pytest.approx(40)
    assert staging_folders() == before

    # Save (Commit) and reload into a new scene: the output, its reference and its stored label map (hidden, with a
    # storage node of its own from the start) survive.
    labels = node.GetNodeReference(LABELS_REFERENCE)
    assert labels.GetStorageNode() is not None and labels.GetStorageNode().GetDefaultWriteFileExtension() == "nrrd"
    for storable in [node, sample_segmentation, labels]:
        if storable.GetStorageNode() is None:
            storable.AddDefaultStorageNode()
        storage = storable.GetStorageNode()
        storage.SetFileName(str(tmp_path / (storable.GetName().replace(" ", "_") + "." + storage.GetDefaultWriteFileExtension())))
        assert storage.WriteData(storable)
    scene.SetRootDirectory(str(tmp_path))
    scene.SetURL(str(tmp_path / "scene.mrml"))
    assert scene.Commit()
    reloaded = slicer.vtkMRMLScene()
    reloaded.SetURL(str(tmp_path / "scene.mrml"))
    assert reloaded.Connect()
    again = reloaded.GetFirstNodeByName(node.GetName())
    assert again is not None and again.GetImageData() is not None
    source = again.GetNodeReference(SOURCE_REFERENCE)
    assert source is not None and source.GetName() == sample_segmentation.GetName()
    np.testing.assert_allclose(ijk_to_ras_of(again), _label_map_ijk_to_ras(), atol=1e-6)
    assert again.GetAttribute("SemanticSynth.seed") == "3"
    stored = again.GetNodeReference(LABELS_REFERENCE)
    assert stored.GetHideFromEditors() and stored.GetImageData() is not None
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(stored), slicer.util.arrayFromVolume(labels))


def test_cancel_leaves_no_node_and_no_temp_files(scene, sample_segmentation, tiny_ct_model, staging_folders):
    before_nodes = scene.GetNumberOfNodes()
    before = staging_folders()
    job = GenerationLogic().start(sample_segmentation, model=str(tiny_ct_model), modality="ct", steps=500)
    deadline = time.monotonic() + 120
    while job.last_progress.get("stage") != "denoising" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert job.running
    job.cancel()
    assert job.poll() and job.error == "cancelled" and job.result_node is None
    assert scene.GetNumberOfNodes() == before_nodes
    assert staging_folders() == before


def test_empty_segmentation_is_a_clear_error(scene, sample_segmentation, tiny_ct_model, staging_folders):
    import slicer

    empty = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "empty")
    before_nodes = scene.GetNumberOfNodes()
    before = staging_folders()
    with pytest.raises(SynthError, match="no segments"):
        GenerationLogic().generate(empty, model=str(tiny_ct_model), modality="ct")
    segment_id = empty.GetSegmentation().AddEmptySegment("liver")
    geometry = sample_segmentation.GetSegmentation().GetConversionParameter(
        slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName())
    empty.GetSegmentation().SetConversionParameter(slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName(), geometry)
    assert segment_id
    with pytest.raises(SynthError, match="empty"):
        GenerationLogic().generate(empty, model=str(tiny_ct_model), modality="ct")
    assert scene.GetNumberOfNodes() == before_nodes
    assert staging_folders() == before


def test_engine_error_reaches_the_user_as_one_line(scene, sample_segmentation, tiny_ct_model):
    with pytest.raises(SynthError) as info:
        GenerationLogic().generate(sample_segmentation, model=str(tiny_ct_model), modality="ct", steps=5000)
    assert "--steps" in str(info.value) and "\n" not in str(info.value) and "Traceback" not in str(info.value)


def test_segment_names_match_case_and_separator_insensitively(scene, sample_segmentation):
    from SemanticSynthLib.engine.volume.labels import LabelTable
    from SemanticSynthLib.bridge.scene import match_segments

    table = LabelTable.builtin("totalseg_v2")
    segmentation = sample_segmentation.GetSegmentation()
    segmentation.GetNthSegment(0).SetName("Spleen")
    segmentation.GetNthSegment(1).SetName("KIDNEY RIGHT")
    segmentation.GetNthSegment(2).SetName("my tumour")
    matches, unmatched = match_segments(sample_segmentation, table)
    names = {segmentation.GetSegment(s).GetName(): i for s, i in matches.items()}
    assert names["Spleen"] == 1 and names["KIDNEY RIGHT"] == 2
    assert unmatched == ["my tumour"]
    assert len(matches) == segmentation.GetNumberOfSegments() - 1


def test_geometry_conversion_ras_lps():
    m = np.array([[-0.8, 0.1, 0.0, 10.0], [0.2, 0.9, 0.0, -5.0], [0.0, 0.0, 2.5, 30.0], [0, 0, 0, 1]])
    g = sitk_geometry(m)
    image = sitk.Image(4, 4, 4, sitk.sitkUInt8)
    image.SetSpacing(g["spacing"])
    image.SetOrigin(g["origin"])
    image.SetDirection(g["direction"])
    lps = np.array(image.TransformContinuousIndexToPhysicalPoint((1.0, 2.0, 3.0)))
    ras = m @ np.array([1.0, 2.0, 3.0, 1.0])
    np.testing.assert_allclose(lps * [-1, -1, 1], ras[:3], atol=1e-9)


def test_export_on_a_reference_volume_grid(scene, sample_segmentation, tmp_path):
    """With a reference volume, the label map is written on that volume's grid (here: oblique, 2 mm)."""
    import vtk

    from SemanticSynthLib.engine.volume.labels import LabelTable
    from SemanticSynthLib.bridge.scene import export_label_map

    reference = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "reference")
    image = vtk.vtkImageData()
    image.SetDimensions(150, 120, 40)
    image.AllocateScalars(vtk.VTK_SHORT, 1)
    reference.SetAndObserveImageData(image)
    angle = np.deg2rad(12)
    m = np.eye(4)
    m[:3, :3] = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]) * 2.0
    m[:3, 3] = [-150.0, 30.0, 100.0]  # overlaps the sample (RAS x -178..188, y 11..314, z 94..184)
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, m[r, c])
    reference.SetIJKToRASMatrix(matrix)
    result = export_label_map(sample_segmentation, LabelTable.builtin("totalseg_v2"), tmp_path / "labels.nrrd", reference)
    np.testing.assert_allclose(result["ijk_to_ras"], m, atol=1e-9)
    written = sitk.ReadImage(str(tmp_path / "labels.nrrd"))
    assert written.GetSize() == (150, 120, 40)
    g = sitk_geometry(m)
    np.testing.assert_allclose(written.GetOrigin(), g["origin"], atol=1e-9)
    np.testing.assert_allclose(written.GetDirection(), g["direction"], atol=1e-9)
    values = set(np.unique(sitk.GetArrayFromImage(written)).tolist())
    assert {0, 1, 5} <= values  # spleen and liver ids survive resampling onto the new grid
    assert len(result["matched"]) == 41 and not result["unmatched"]


def test_segment_matched_through_its_terminology(scene, sample_segmentation):
    from SemanticSynthLib.engine.volume.labels import LabelTable
    from SemanticSynthLib.bridge.scene import match_segments

    segment = sample_segmentation.GetSegmentation().GetNthSegment(0)
    segment.SetName("organ of interest")
    segment.SetTag("TerminologyEntry", "Segmentation category and type - 3D Slicer General Anatomy list~SCT^123037004^"
                   "Anatomical Structure~SCT^10200004^Liver~^^~Anatomic codes - DICOM master list~^^~^^")
    matches, unmatched = match_segments(sample_segmentation, LabelTable.builtin("totalseg_v2"))
    assert matches[sample_segmentation.GetSegmentation().GetNthSegmentID(0)] == 5  # liver
    assert not unmatched


def test_unknown_labels_error_refuses_unmatched_segments_and_leaves_nothing(scene, sample_segmentation, tiny_ct_model,
                                                                              staging_folders):
    before = staging_folders()
    segmentation = sample_segmentation.GetSegmentation()
    segmentation.AddEmptySegment("not_an_organ", "not an organ")
    nodes = scene.GetNumberOfNodes()
    with pytest.raises(SynthError, match="not an organ match no label of model; rename them"):
        GenerationLogic().start(sample_segmentation, model=str(tiny_ct_model), modality="ct", steps=1,
                                unknown_labels="error")
    assert staging_folders() == before and scene.GetNumberOfNodes() == nodes


def test_segments_named_as_freesurfer_labels_are_read_in_that_vocabulary(scene, tmp_path):
    """A brain segmentation whose segments carry FreeSurfer aseg names (as a SynthSeg or FreeSurfer import names
    them) is exported in FreeSurfer ids and generated by the MUSE model; the job names the table it used."""
    import json

    from slicer_testdata import segmentation_from_file
    from SemanticSynthLib.engine.volume.vocabularies import builtin_vocabularies
    from testdata import IXI, IXI_IDS

    muse = sitk.ReadImage(str(IXI / "labels" / f"{IXI_IDS[0]}.nii.gz"))
    size = np.array(muse.GetSize())
    aseg = relabel(muse, read_merge("muse_to_aseg").merge)
    aseg = sitk.RegionOfInterest(aseg, [32, 32, 24], [int(s) for s in (size - [32, 32, 24]) // 2])
    path = tmp_path / "aseg.nii.gz"
    sitk.WriteImage(aseg, str(path))
    segmentation = segmentation_from_file(scene, path, "synthseg")
    names = {t.id: t.name for t in builtin_vocabularies()["freesurfer_aseg"].terms}
    seg = segmentation.GetSegmentation()
    for i in range(seg.GetNumberOfSegments()):
        segment = seg.GetSegment(seg.GetNthSegmentID(i))
        segment.SetName(names[int(segment.GetLabelValue())])
    job = GenerationLogic().start(segmentation, model="brain-mri", steps=1, unknown_labels="error")
    node = job.wait()
    assert job.notes()[0] == "Label table: freesurfer_aseg"
    assert json.loads(node.GetAttribute("SemanticSynth.request"))["label_table"] == "freesurfer_aseg"
    assert node.GetImageData().GetDimensions() == aseg.GetSize()
