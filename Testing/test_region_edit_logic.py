"""Region edits, new tissue and uncertainty through the bridge, on slicer-core's real MRML scene with the engine in a
real child process (no mocks of the scene, the files, the process or SimpleITK).

(a) a volume generated from the bundled sample, a 'Tumor' painted inside the liver, "Regenerate edited region" in
    place: every voxel further than the margin is the volume's own, the region changed, the hidden label map updated;
    a cancelled or failed regeneration leaves the scene as it was.
(b) a real CT with its TotalSegmentator segmentation, a 'Tumor' segment in the liver regenerated into a new volume:
    the CT's voxels outside region + margin, a hypodense lesion.
(c) two samples with uncertainty: the standard deviation as an overlay volume with a legend, a table per label, and
    0 outside the edit.
(d) the stored label map saved with the scene (.mrb) and found after reloading it; a later run without samples clears
    the earlier one's report; deleting the volume takes its stored label map, not its std and table.
"""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from SemanticSynthLib.bridge.generate_logic import (EDITED_REFERENCE, LABELS_REFERENCE, UNCERTAINTY_REFERENCE,
                                                     UNCERTAINTY_TABLE_REFERENCE, GenerationLogic)
from SemanticSynthLib.errors import SynthError

from slicer_testdata import REPO, SAMPLE_CT, SAMPLE_SEGMENTATION, segmentation_from_file

BUNDLED_SAMPLE = REPO / "SemanticSynth" / "Resources" / "Samples" / "abdomen_ct_totalseg_labels.nii.gz"
TOTALSEG_NAMES = SAMPLE_SEGMENTATION.parent / "total_v2_labels.json"
LIVER = 5
SPACING_MM = 3.0  # the sample's isotropic spacing


# every test stages its jobs in a temp folder of its own (conftest.py); staging_folders() lists the jobs' folders there
pytestmark = pytest.mark.usefixtures("staging_folders")


def _array(node):
    import slicer

    return np.array(slicer.util.arrayFromVolume(node))


def _matrix(node):
    import vtk

    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    return m


def paint_segment(segmentation_node, name: str, mask, reference_volume) -> str:
    """A new segment of the (k, j, i) mask on the reference volume's grid, as painting it in the Segment Editor
    would add it (through the segmentations logic)."""
    import slicer
    import vtk

    scene = segmentation_node.GetScene()
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "painted")
    image = vtk.vtkImageData()
    image.SetDimensions(reference_volume.GetImageData().GetDimensions())
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    labelmap.SetAndObserveImageData(image)
    labelmap.SetIJKToRASMatrix(_matrix(reference_volume))
    slicer.util.updateVolumeFromArray(labelmap, mask.astype(np.uint8))
    segment_id = segmentation_node.GetSegmentation().AddEmptySegment(name, name)
    ids = vtk.vtkStringArray()
    ids.InsertNextValue(segment_id)
    logic = slicer.vtkSlicerSegmentationsModuleLogic()
    logic.SetMRMLScene(scene)
    assert logic.ImportLabelmapToSegmentationNode(labelmap, segmentation_node, ids)
    scene.RemoveNode(labelmap)
    return segment_id


MASS_TERMINOLOGY = ("Segmentation category and type - 3D Slicer General Anatomy list~SCT^49755003^Morphologically "
                    "Altered Structure~SCT^4147007^Mass~^^~Anatomic codes - DICOM master list~^^~^^")


def save_and_reopen(scene, folder):
    """The scene saved as a Slicer data bundle (.mrb) and opened into a new scene, through the application logic
    that Slicer's scene bundle writer and reader call (SaveSceneToSlicerDataBundleDirectory + Zip, then
    OpenSlicerDataBundle)."""
    import slicer

    folder.mkdir()
    saver = slicer.vtkMRMLApplicationLogic()
    saver.SetMRMLScene(scene)
    (folder / "bundle").mkdir()
    assert saver.SaveSceneToSlicerDataBundleDirectory(str(folder / "bundle"))
    assert saver.Zip(str(folder / "scene.mrb"), str(folder / "bundle"))
    reopened = slicer.vtkMRMLScene()
    reopened.RegisterNodeClass(slicer.vtkMRMLColorLegendDisplayNode())  # as Slicer's Colors module does on its scene
    opener = slicer.vtkMRMLApplicationLogic()
    opener.SetMRMLScene(reopened)
    (folder / "opened").mkdir()
    assert opener.OpenSlicerDataBundle(str(folder / "scene.mrb"), str(folder / "opened"))
    return reopened


def ball_in(labels, label_id: int, radius_mm: float):
    """A ball around the centre of a label, clipped to the label."""
    centre = np.argwhere(labels == label_id).mean(0)
    grid = np.indices(labels.shape).astype(float)
    distance = np.sqrt(sum(((g - c) * SPACING_MM) ** 2 for g, c in zip(grid, centre)))
    return (distance <= radius_mm) & (labels == label_id)


def near(region, margin_mm: float):
    """The region and every voxel within margin_mm of it (what an edit may change)."""
    return ndimage.distance_transform_edt(~region, sampling=(SPACING_MM,) * 3) <= margin_mm


def sample_labels():
    """The sample label map's ids, (k, j, i) as slicer.util.arrayFromVolume gives them."""
    return sitk.GetArrayFromImage(sitk.ReadImage(str(SAMPLE_SEGMENTATION)))


def totalseg_segmentation(scene, name: str):
    """The sample label map as a segmentation whose segments carry TotalSegmentator v2 names (as its import names
    them in Slicer)."""
    segmentation = segmentation_from_file(scene, SAMPLE_SEGMENTATION, name)
    names = json.loads(TOTALSEG_NAMES.read_text(encoding="utf-8"))
    seg = segmentation.GetSegmentation()
    for i in range(seg.GetNumberOfSegments()):
        segment = seg.GetNthSegment(i)
        segment.SetName(names[str(int(segment.GetLabelValue()))])
    return segmentation


@pytest.fixture()
def generated(scene, tiny_ct_model):
    """(segmentation of the bundled sample, the volume generated from it, the label map as an array)."""
    segmentation = segmentation_from_file(scene, BUNDLED_SAMPLE, "Abdomen labels")
    volume = GenerationLogic().generate(segmentation, model=str(tiny_ct_model), modality="ct", steps=2, seed=1)
    labels = _array(volume.GetNodeReference(LABELS_REFERENCE))
    return segmentation, volume, labels


def test_regenerate_edited_region_in_place(scene, tiny_ct_model, generated, staging_folders):
    segmentation, volume, labels = generated
    hidden = volume.GetNodeReference(LABELS_REFERENCE)
    assert hidden.IsA("vtkMRMLLabelMapVolumeNode") and hidden.GetHideFromEditors()
    assert hidden.GetAttribute("SemanticSynth.label_table") == "totalseg_v2"
    assert LIVER in np.unique(labels) and labels.shape == _array(volume).shape
    before, nodes, folders = _array(volume), scene.GetNumberOfNodes(), staging_folders()

    tumor = ball_in(labels, LIVER, 15.0)
    paint_segment(segmentation, "Tumor", tumor, volume)
    job = GenerationLogic().start(segmentation, model=str(tiny_ct_model), modality="ct", steps=2, seed=1,
                                  edit_volume_node=volume, output_node=volume, margin=6.0)
    assert job.wait() is volume
    after = _array(volume)
    assert after.dtype == before.dtype
    outside = ~near(tumor, 6.0)
    assert np.array_equal(after[outside], before[outside])  # bit for bit
    assert (after[tumor] != before[tumor]).mean() > 0.9
    assert job.lesion_segments == {"Tumor": {"id": 118, "kind": "hypodense", "by_name": True}}
    assert any(line.startswith("New tissue: Tumor (hypodense") for line in job.notes()), job.notes()
    # the tumour is new to the model: the note names its segment, not the id it was exported with
    unseen = [line for line in job.notes() if line.startswith("Not in the model's training data")]
    assert len(unseen) == 1 and "Tumor" in unseen[0] and "118" not in unseen[0], job.notes()
    # the stored label map is the new one, in the same hidden node; nothing else was added
    assert volume.GetNodeReference(LABELS_REFERENCE) is hidden
    updated = _array(hidden)
    assert np.all(updated[tumor] == 118) and np.array_equal(updated[~tumor], labels[~tumor])
    assert scene.GetNumberOfNodes() == nodes and staging_folders() == folders
    record = json.loads(volume.GetAttribute("SemanticSynth.request"))
    # the sources by their node names, not the job's temporary files
    assert record["edit"] == volume.GetName() and record["previous_labels"] == hidden.GetName()
    assert record["margin"] == 6.0

    # Nothing changed since: nothing to regenerate, refused in one line; the scene stays as it is
    with pytest.raises(SynthError, match="no voxel changed") as info:
        GenerationLogic().generate(segmentation, model=str(tiny_ct_model), modality="ct", steps=2,
                                   edit_volume_node=volume, output_node=volume)
    assert "\n" not in str(info.value)
    assert np.array_equal(_array(volume), after) and scene.GetNumberOfNodes() == nodes


def test_cancelled_or_failed_regeneration_leaves_the_scene_as_it_was(scene, tiny_ct_model, generated, staging_folders):
    segmentation, volume, labels = generated
    hidden = volume.GetNodeReference(LABELS_REFERENCE)
    paint_segment(segmentation, "Cyst", ball_in(labels, 1, 9.0), volume)  # in the spleen
    before, stored, nodes, folders = _array(volume), _array(hidden), scene.GetNumberOfNodes(), staging_folders()

    job = GenerationLogic().start(segmentation, model=str(tiny_ct_model), modality="ct", steps=500,
                                  edit_volume_node=volume, output_node=volume)
    deadline = time.monotonic() + 120
    while job.last_progress.get("stage") != "denoising" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.running, job.last_progress
    job.cancel()
    assert job.poll() and job.error == "cancelled" and job.result_node is None
    assert np.array_equal(_array(volume), before) and np.array_equal(_array(hidden), stored)
    assert volume.GetNodeReference(LABELS_REFERENCE) is hidden
    assert scene.GetNumberOfNodes() == nodes and staging_folders() == folders

    # an engine error (here a step count the model cannot take) changes nothing either
    with pytest.raises(SynthError, match="--steps"):
        GenerationLogic().generate(segmentation, model=str(tiny_ct_model), modality="ct", steps=5000,
                                   edit_volume_node=volume, output_node=volume)
    assert np.array_equal(_array(volume), before) and np.array_equal(_array(hidden), stored)
    assert scene.GetNumberOfNodes() == nodes and staging_folders() == folders


def test_real_ct_tumor_regenerated_into_a_new_volume(scene, tiny_ct_model):
    from SemanticSynthLib.bridge.scene import load_volume

    ct = load_volume(scene, SAMPLE_CT, "CT")
    segmentation = totalseg_segmentation(scene, "CT segmentation")
    labels = sample_labels()
    real = _array(ct)
    nodes = scene.GetNumberOfNodes()

    # a scan loaded from disk has no stored label map: the region must be chosen
    with pytest.raises(SynthError, match="not generated here.*choose the segment") as info:
        GenerationLogic().start(segmentation, model=str(tiny_ct_model), modality="ct", steps=2, edit_volume_node=ct)
    assert "\n" not in str(info.value) and scene.GetNumberOfNodes() == nodes

    tumor = ball_in(labels, LIVER, 15.0)
    tumor_id = paint_segment(segmentation, "Tumor", tumor, ct)
    job = GenerationLogic().start(segmentation, model=str(tiny_ct_model), modality="ct", steps=2, seed=2,
                                  edit_volume_node=ct, region_segment_ids=[tumor_id], margin=6.0)
    node = job.wait()
    assert node is not ct and node.GetName() == "CT regenerated"
    assert node.GetNodeReferenceID(EDITED_REFERENCE) == ct.GetID()
    assert np.array_equal(_array(ct), real)  # the real CT is untouched
    out = _array(node)
    assert out.dtype == real.dtype
    outside = ~near(tumor, 6.0)
    assert np.array_equal(out[outside], real[outside])
    liver = (labels == LIVER) & ~tumor
    lesion_mean, liver_mean = float(out[tumor].mean()), float(out[liver].mean())
    assert lesion_mean < liver_mean - 20, (lesion_mean, liver_mean)  # hypodense: the host's prior - 40 HU
    placed = json.loads(node.GetAttribute("SemanticSynth.lesions"))
    assert list(placed) == ["Tumor"] and placed["Tumor"]["kind"] == "hypodense" and placed["Tumor"]["host"] == "liver"
    request = json.loads(node.GetAttribute("SemanticSynth.request"))  # the sources as the scene names them
    assert request["edit"] == "CT" and request["region"] == ["Tumor"], request
    # the new volume keeps the map it was made from, with the tumour's own id
    stored = _array(node.GetNodeReference(LABELS_REFERENCE))
    assert np.all(stored[tumor] == 118) and np.array_equal(stored[~tumor], labels[~tumor])
    assert ct.GetNodeReference(LABELS_REFERENCE) is None


def test_two_samples_give_an_uncertainty_overlay_and_table_zero_outside_the_edit(scene):
    """With the bundled abdomen-ct model: the tiny test model's samples do not depend on the seed (no spread)."""
    import slicer

    from SemanticSynthLib.bridge.scene import load_volume

    ct = load_volume(scene, SAMPLE_CT, "CT")
    segmentation = totalseg_segmentation(scene, "CT segmentation")
    labels = sample_labels()
    region = ball_in(labels, LIVER, 12.0)
    region_id = paint_segment(segmentation, "Liver nodule", region, ct)
    # without two samples there is no spread: refused before anything is exported
    with pytest.raises(SynthError, match="samples"):
        GenerationLogic().start(segmentation, model="abdomen-ct", modality="ct", steps=2, uncertainty=True)
    job = GenerationLogic().start(segmentation, model="abdomen-ct", modality="ct", steps=2, seed=4,
                                  edit_volume_node=ct, region_segment_ids=[region_id], margin=3.0, samples=2,
                                  uncertainty=True)
    node = job.wait()
    std_node, table = job.uncertainty_node, job.table_node
    assert std_node is not None and node.GetNodeReference(UNCERTAINTY_REFERENCE) is std_node
    assert std_node.GetName() == "CT regenerated uncertainty"
    assert node.GetNodeReference(UNCERTAINTY_TABLE_REFERENCE) is table and table.IsA("vtkMRMLTableNode")
    std = _array(std_node)
    outside = ~near(region, 3.0)
    assert np.all(std[outside] == 0) and std[region].max() > 0
    # the overlay: a colour table, zero transparent, and a colour legend display node
    display = std_node.GetDisplayNode()
    assert display.GetColorNode() is not None and display.GetApplyThreshold() and display.GetLowerThreshold() > 0
    legends = [std_node.GetNthDisplayNode(i) for i in range(std_node.GetNumberOfDisplayNodes())]
    assert any(d.IsA("vtkMRMLColorLegendDisplayNode") for d in legends)
    # the table: one row per label with the engine's numbers
    per_label = json.loads(node.GetAttribute("SemanticSynth.uncertainty"))["per_label"]
    vtk_table = table.GetTable()
    columns = [vtk_table.GetColumnName(c) for c in range(vtk_table.GetNumberOfColumns())]
    assert columns == ["label", "voxels", "std", "boundary std", "interior std"]
    assert vtk_table.GetNumberOfRows() == len(per_label)
    rows = {vtk_table.GetValue(r, 0).ToString(): r for r in range(vtk_table.GetNumberOfRows())}
    liver = per_label[str(LIVER)]
    assert vtk_table.GetValue(rows[liver["name"]], 1).ToInt() == liver["voxels"]
    assert vtk_table.GetValue(rows[liver["name"]], 2).ToDouble() == pytest.approx(liver["std"])
    assert slicer.util.arrayFromVolume(std_node).dtype == np.float32


def test_lesion_segments_are_exported_as_new_tissue(scene, sample_segmentation, tmp_path):
    """A segment named with a lesion term, and one of a lesion terminology type under another name, are exported
    with ids of their own (names in the file's metadata; the type-only one also as a priors entry), not left out."""
    from SemanticSynthLib.bridge.generate_logic import _stage_lesion_priors
    from SemanticSynthLib.bridge.scene import export_label_map, load_volume, match_segments, unused_segments
    from SemanticSynthLib.engine.volume.labels import LabelTable, segment_names

    labels = sample_labels()
    reference = sample_segmentation
    volume = load_volume(scene, SAMPLE_SEGMENTATION, "grid")  # a volume on the label map's grid to paint on
    paint_segment(reference, "Liver tumour", ball_in(labels, LIVER, 9.0), volume)
    typed = paint_segment(reference, "finding 2", ball_in(labels, 1, 6.0), volume)
    reference.GetSegmentation().GetSegment(typed).SetTag(
        "TerminologyEntry", "Segmentation category and type - 3D Slicer General Anatomy list~SCT^49755003^Morphologically "
        "Altered Structure~SCT^4147007^Mass~^^~Anatomic codes - DICOM master list~^^~^^")
    reference.GetSegmentation().AddEmptySegment("marker", "marker")  # neither an organ nor a lesion
    table = LabelTable.builtin("totalseg_v2")
    assert match_segments(reference, table)[1] == ["Liver tumour", "finding 2", "marker"]
    assert unused_segments(reference, table) == ["marker"]
    exported = export_label_map(reference, table, tmp_path / "labels.nrrd")
    assert exported["lesions"] == {"Liver tumour": {"id": 118, "kind": "hypodense", "by_name": True},
                                   "finding 2": {"id": 119, "kind": "hypodense", "by_name": False}}
    assert exported["unmatched"] == ["marker"] and len(exported["matched"]) == 41
    written = sitk.ReadImage(str(tmp_path / "labels.nrrd"))
    values = sitk.GetArrayFromImage(written)
    assert np.all(values[ball_in(labels, LIVER, 9.0)] == 118) and np.all(values[ball_in(labels, 1, 6.0)] == 119)
    assert segment_names(written) == {"livertumour": 118, "finding2": 119}  # as the engine reads them
    # the type-only lesion as a priors entry, merged with the user's file (whose entries win)
    user = tmp_path / "user.json"
    user.write_text(json.dumps({"liver": 60}), encoding="utf-8")
    assert _stage_lesion_priors(exported["lesions"], str(user), tmp_path / "priors.json") == {
        "119": {"lesion": "hypodense"}}  # the staged entries, for the volume's provenance
    assert json.loads((tmp_path / "priors.json").read_text(encoding="utf-8")) == {
        "119": {"lesion": "hypodense"}, "liver": 60}
    assert not _stage_lesion_priors({"a": {"id": 5, "kind": "cyst", "by_name": True}}, None, tmp_path / "none.json")


def test_reopened_scene_regenerates_from_its_stored_labels_and_deleting_the_volume_takes_them(
        scene, tiny_ct_model, generated, tmp_path):
    """In place with 2 samples and uncertainty; saved as .mrb and reopened: the stored label map came back (its own
    storage node, NRRD) and a segment of Mass type ('finding 2') painted in the spleen is regenerated from it, with the user's
    priors file; that run (one sample) leaves no uncertainty report on the volume, and its provenance names the user's
    priors file and the staged lesion entry, not the job's temporary file. Deleting the volume removes its stored
    label map and that map's storage node; the std volume and the table stay, without the removed volume's id."""
    import slicer

    segmentation, volume, labels = generated
    tumor = ball_in(labels, LIVER, 12.0)
    paint_segment(segmentation, "Tumor", tumor, volume)
    job = GenerationLogic().start(segmentation, model=str(tiny_ct_model), modality="ct", steps=2, seed=1,
                                  edit_volume_node=volume, output_node=volume, margin=6.0, samples=2,
                                  uncertainty=True)
    assert job.wait() is volume
    assert json.loads(volume.GetAttribute("SemanticSynth.uncertainty"))["samples"] == 2
    hidden = volume.GetNodeReference(LABELS_REFERENCE)
    storage = hidden.GetStorageNode()
    assert storage.IsA("vtkMRMLVolumeArchetypeStorageNode") and storage.GetDefaultWriteFileExtension() == "nrrd"
    stored, saved = _array(hidden), _array(volume)

    reopened = save_and_reopen(scene, tmp_path / "saved")
    slicer.mrmlScene = reopened
    try:
        again = reopened.GetFirstNodeByName(volume.GetName())
        hidden = again.GetNodeReference(LABELS_REFERENCE)
        assert hidden is not None and hidden.GetHideFromEditors()
        assert hidden.GetStorageNode().GetFileName().endswith(".nrrd")
        assert np.array_equal(_array(hidden), stored) and np.array_equal(_array(again), saved)
        assert hidden.GetAttribute("SemanticSynth.label_table") == "totalseg_v2"
        std, table = (again.GetNodeReference(role) for role in (UNCERTAINTY_REFERENCE, UNCERTAINTY_TABLE_REFERENCE))
        assert std is not None and table is not None
        assert std.GetAttribute("SemanticSynth.uncertainty_of") == again.GetID()
        segmentation = reopened.GetFirstNodeByName(segmentation.GetName())

        finding = ball_in(labels, 1, 9.0)  # in the spleen
        typed = paint_segment(segmentation, "finding 2", finding, again)
        segmentation.GetSegmentation().GetSegment(typed).SetTag("TerminologyEntry", MASS_TERMINOLOGY)
        user = tmp_path / "user priors.json"
        user.write_text(json.dumps({"liver": 60}), encoding="utf-8")
        job = GenerationLogic().start(segmentation, model=str(tiny_ct_model), modality="ct", steps=2, seed=1,
                                      edit_volume_node=again, output_node=again, margin=6.0, priors=str(user))
        assert job.wait() is again
        after = _array(again)
        outside = ~near(finding, 6.0)
        assert np.array_equal(after[outside], saved[outside]) and (after[finding] != saved[finding]).mean() > 0.9
        assert again.GetNodeReference(LABELS_REFERENCE) is hidden
        updated = _array(hidden)
        assert np.all(updated[finding] == 119) and np.array_equal(updated[~finding], stored[~finding])
        # the report is this run's: no uncertainty of the earlier two samples; its lesions are there
        attributes = again.GetAttributeNames()
        assert "SemanticSynth.uncertainty" not in attributes and "SemanticSynth.lesions" in attributes
        assert set(json.loads(again.GetAttribute("SemanticSynth.lesions"))) == {"Tumor", "finding 2"}
        # the priors the user gave, and the entry staged for the lesion known by its type only
        request = json.loads(again.GetAttribute("SemanticSynth.request"))
        assert request["priors"] == str(user)
        assert json.loads(again.GetAttribute("SemanticSynth.lesion_priors")) == {"119": {"lesion": "hypodense"}}

        nodes, storage_id = reopened.GetNumberOfNodes(), hidden.GetStorageNode().GetID()
        reopened.RemoveNode(again)
        assert not reopened.IsNodePresent(hidden) and reopened.GetNodeByID(storage_id) is None
        assert reopened.IsNodePresent(std) and reopened.IsNodePresent(table)
        assert std.GetAttribute("SemanticSynth.uncertainty_of") is None
        assert reopened.GetNumberOfNodes() == nodes - 3  # the volume, its stored label map and that map's storage
    finally:
        slicer.mrmlScene = scene
        reopened.Clear(True)


def test_notes_name_lesions_and_provenance_records_the_users_priors():
    """Without a run: the unseen-labels note names a lesion by its segment; a job that staged lesion priors records
    the user's file (None without one) and the entries."""
    from SemanticSynthLib.bridge.generate_logic import GenerationJob, report_notes
    from SemanticSynthLib.engine.volume.labels import LabelTable

    table = LabelTable.builtin("totalseg_v2")
    liver = {lab.id: lab.name for lab in table.labels}[LIVER]
    notes = report_notes({"unseen_labels": [LIVER, 118]}, table, {118: "Liver tumour"})
    assert notes == [f"Not in the model's training data (they follow their priors): {liver}, Liver tumour"]
    job = GenerationJob.__new__(GenerationJob)  # its record only: nothing is started
    job.args = {"options": {"priors": None}}
    job.export = {"staged": ["priors"], "lesion_priors": {"119": {"lesion": "cyst"}}}
    job.result = {"provenance": {"request": {"priors": "/tmp/SemanticSynth-x/priors.json", "seed": 1}}}
    record = job._provenance()
    assert record["request"] == {"priors": None, "seed": 1} and record["lesion_priors"] == {"119": {"lesion": "cyst"}}
    job.export = {"staged": []}
    assert job._provenance() == job.result["provenance"]


def test_a_volume_regenerated_again_is_not_named_regenerated_twice():
    from SemanticSynthLib.bridge.generate_logic import regenerated_name

    assert regenerated_name("sample synthetic CT") == "sample synthetic CT regenerated"
    assert regenerated_name("sample synthetic CT regenerated") == "sample synthetic CT regenerated"
