"""Paths shared by the Slicer-side tests."""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The engine-side helpers (data paths, tiny real crops, the tiny translator) live with the engine tests.
sys.path.insert(0, str(REPO / "tests"))
from testdata import SHARED  # noqa: E402  (../shared/data, or $SEMANTICSYNTH_DATA)

SAMPLE_SEGMENTATION = SHARED / "totalseg" / "example_seg.nii.gz"
SAMPLE_CT = SHARED / "totalseg" / "example_ct_sm.nii.gz"


def grid_transform_points(transform_node, points_lps):
    """Where Slicer's grid transform node sends output points (LPS mm): its "from parent" direction."""
    import numpy as np

    lps_from_ras = np.diag([-1.0, -1.0, 1.0])
    transform = transform_node.GetTransformFromParent()
    out = []
    for p in np.atleast_2d(points_lps):
        moved = [0.0, 0.0, 0.0]
        transform.TransformPoint(list(lps_from_ras @ np.asarray(p, float)), moved)
        out.append(lps_from_ras @ np.array(moved))
    return np.array(out)


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
