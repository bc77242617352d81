"""Paths shared by the Slicer-side tests."""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE_SEGMENTATION = REPO.parent / "shared" / "data" / "totalseg" / "example_seg.nii.gz"
SAMPLE_CT = REPO.parent / "shared" / "data" / "totalseg" / "example_ct_sm.nii.gz"
IXI_T1 = REPO.parent / "shared" / "data" / "ixi_muse" / "t1"

# The engine-side helpers (tiny real crops, the tiny translator) live with the engine tests.
sys.path.insert(0, str(REPO / "tests"))


def segmentation_from_file(scene, labels_path, name: str):
    """A label map file imported into a new segmentation node with the segmentations logic (the helper
    label map node is removed again)."""
    import slicer

    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", f"{name} labels")
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(labels_path))
    assert storage.ReadData(labelmap)
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(labelmap)
    logic = slicer.vtkSlicerSegmentationsModuleLogic()
    logic.SetMRMLScene(scene)
    assert logic.ImportLabelmapToSegmentationNode(labelmap, segmentation)
    scene.RemoveNode(labelmap)
    return segmentation
