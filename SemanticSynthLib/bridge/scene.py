"""MRML bridge (slicer-core, no Qt): segmentation node -> label map file; result file -> linked volume node.

RAS (Slicer) and LPS (ITK files) meet here and only here: `LPS_FROM_RAS`.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import slicer
import vtk

from ..engine.volume.labels import BUILTIN_DIR, LabelTable, normalized_name
from ..engine.volume.modalities import modality as registered_modality
from ..engine.reporting.provenance import as_text
from ..errors import SynthError

LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])
SOURCE_REFERENCE = "SemanticSynthSource"
ATTRIBUTE_PREFIX = "SemanticSynth."
GEOMETRY_TOLERANCE_MM = 1e-4
# The engine's lesion terms (engine/synthesis/lesions.py reads the same file; importing it here would load torch)
LESION_TABLE = BUILTIN_DIR / "groups" / "lesions.json"
# Colour tables of Slicer's colors logic for the uncertainty overlay, in order of preference (vtkMRMLColorLogic.h)
OVERLAY_COLOR_IDS = ("vtkMRMLColorTableNodeFileInferno.txt", "vtkMRMLColorTableNodeFileColdToHotRainbow.txt",
                     "vtkMRMLColorTableNodeIron")
# Inferno's anchors (matplotlib), for a scene without Slicer's colour tables (slicer-core)
INFERNO = ((0.0, (0.001, 0.000, 0.014)), (0.25, (0.258, 0.039, 0.406)), (0.5, (0.735, 0.216, 0.330)),
           (0.75, (0.978, 0.557, 0.035)), (1.0, (0.988, 0.998, 0.645)))


def matrix_to_array(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def ijk_to_ras_of(volume_node) -> np.ndarray:
    m = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(m)
    return matrix_to_array(m)


def check_same_grid(node, ijk_to_ras: np.ndarray, result: str, source: str) -> None:
    """The engine writes results on its input's grid; a result elsewhere is a bug, never something to import."""
    error = np.abs(ijk_to_ras_of(node) - ijk_to_ras).max()
    if error > GEOMETRY_TOLERANCE_MM:
        raise SynthError(f"the {result}'s grid differs from the {source}'s by {error:.2g} mm; report this bug")


def sitk_geometry(ijk_to_ras: np.ndarray) -> dict:
    """ITK spacing, origin and direction (LPS) of a Slicer IJKToRAS matrix."""
    spacing = np.linalg.norm(ijk_to_ras[:3, :3], axis=0)
    direction = LPS_FROM_RAS @ (ijk_to_ras[:3, :3] / spacing)
    origin = LPS_FROM_RAS @ ijk_to_ras[:3, 3]
    return {"spacing": tuple(spacing), "origin": tuple(origin), "direction": tuple(direction.flatten())}


def _terminology_names(segment) -> list[str]:
    """Code meanings of the segment's terminology entry (category~type~modifier fields, 'code^scheme^meaning')."""
    if hasattr(segment, "GetTerminology"):
        tag = segment.GetTerminology()
    else:
        value = vtk.reference("")
        tag = str(value) if segment.GetTag("TerminologyEntry", value) else ""
    if not isinstance(tag, str) or not tag:
        return []
    fields = tag.split("~")
    names = []
    for field_text in fields[2:4]:  # type and type modifier
        parts = field_text.split("^")
        if len(parts) >= 3 and parts[2]:
            names.append(parts[2])
    if len(names) == 2:
        names.insert(0, f"{names[1]} {names[0]}")  # e.g. "left kidney"
    return names


@lru_cache(maxsize=1)
def _lesion_terms() -> tuple:
    terms = json.loads(LESION_TABLE.read_text(encoding="utf-8"))["terms"]
    return tuple((normalized_name(term), kind) for term, kind in terms.items())


def lesion_kind_of_name(name: str) -> str | None:
    """The lesion kind a name says (its first lesion term: 'Liver tumor' -> hypodense, 'Cyst_2' -> cyst), or None;
    the engine's rule (engine/synthesis/lesions.py kind_of_name)."""
    key = normalized_name(name)
    hits = [(key.find(term), kind) for term, kind in _lesion_terms() if term in key]
    return min(hits)[1] if hits else None


def lesion_kind(segment) -> tuple[str | None, bool]:
    """(lesion kind, whether the engine reads it from the segment's name) of a segment named with a lesion term
    (Mass, Tumor, Cyst, Lesion, ...) or whose terminology type is one; (None, False) for any other segment."""
    kind = lesion_kind_of_name(segment.GetName())
    if kind:
        return kind, True
    for name in _terminology_names(segment):
        kind = lesion_kind_of_name(name)
        if kind:
            return kind, False
    return None, False


def match_segments(segmentation_node, table: LabelTable) -> tuple[dict[str, int], list[str]]:
    """Segment id -> model label id by name (case/separator-insensitive, synonyms) or terminology.

    A name such as "Label_5", "Segment_5" or "5" (what importing a label map without a colour table
    gives) matches model id 5. Returns the matches and the names of segments that match nothing.
    """
    by_name = table.id_by_name()
    known_ids = {lab.id for lab in table.labels}
    segmentation = segmentation_node.GetSegmentation()
    matches, unmatched = {}, []
    for index in range(segmentation.GetNumberOfSegments()):
        segment_id = segmentation.GetNthSegmentID(index)
        segment = segmentation.GetSegment(segment_id)
        name = segment.GetName()
        found = None
        for candidate in [name, *_terminology_names(segment)]:
            found = by_name.get(normalized_name(candidate))
            if found is not None:
                break
        if found is None:
            numbered = re.fullmatch(r"(?:label|segment)?[ _-]*(\d+)", name.strip().lower())
            if numbered and int(numbered.group(1)) in known_ids:
                found = int(numbered.group(1))
        if found is None:
            unmatched.append(name)
        else:
            matches[segment_id] = found
    return matches, unmatched


def unused_segments(segmentation_node, table: LabelTable) -> list[str]:
    """Names of the segments a generation leaves out: those that match no label of the table and are no lesion
    (export_label_map exports lesions as new tissue). What a GUI lists as "Not used" before generating."""
    matches, unmatched = match_segments(segmentation_node, table)
    segmentation = segmentation_node.GetSegmentation()
    lesions = {segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())
               if segmentation.GetNthSegmentID(i) not in matches and lesion_kind(segmentation.GetNthSegment(i))[0]}
    return [name for name in unmatched if name not in lesions]


def _geometry_volume(scene, segmentation_node, reference_volume_node):
    """A volume node that carries the output grid: the chosen reference volume, or the segmentation's
    reference image geometry (made into a temporary, empty volume node)."""
    if reference_volume_node is not None:
        return reference_volume_node
    geometry = segmentation_node.GetSegmentation().GetConversionParameter(
        slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName())
    if not geometry:
        raise SynthError("the segmentation has no reference geometry; choose a reference volume")
    oriented = slicer.vtkOrientedImageData()
    slicer.vtkSegmentationConverter.DeserializeImageGeometry(geometry, oriented, False)
    extent = oriented.GetExtent()
    m = vtk.vtkMatrix4x4()
    oriented.GetImageToWorldMatrix(m)
    ijk_to_ras = matrix_to_array(m)
    ijk_to_ras[:3, 3] = ijk_to_ras[:3, :3] @ np.array(extent[::2], float) + ijk_to_ras[:3, 3]
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "SemanticSynth geometry (temporary)")
    image = vtk.vtkImageData()
    image.SetDimensions(extent[1] - extent[0] + 1, extent[3] - extent[2] + 1, extent[5] - extent[4] + 1)
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    node.SetAndObserveImageData(image)
    node.SetIJKToRASMatrix(_vtk_matrix(ijk_to_ras))
    return node


def _vtk_matrix(array: np.ndarray) -> vtk.vtkMatrix4x4:
    m = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            m.SetElement(r, c, float(array[r, c]))
    return m


def _node_ids(scene) -> set[str]:
    return {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())}


def _voxels(volume_node) -> np.ndarray:
    """Voxel array in (k, j, i) order, as SimpleITK's GetImageFromArray expects."""
    from vtk.util.numpy_support import vtk_to_numpy

    image = volume_node.GetImageData()
    dims = image.GetDimensions()
    return vtk_to_numpy(image.GetPointData().GetScalars()).reshape(dims[::-1])


def _export_segments(segmentation_node, segment_ids: list[str], reference_volume_node=None) -> tuple[np.ndarray, np.ndarray]:
    """(values 1..n in the order of segment_ids, (k, j, i) array; IJKToRAS) of segments exported with Slicer's
    segmentations logic onto the reference grid (the chosen volume's, else the segmentation's geometry). Every helper
    node the export makes is removed again."""
    scene = segmentation_node.GetScene()
    existing = _node_ids(scene)
    try:
        geometry_node = _geometry_volume(scene, segmentation_node, reference_volume_node)
        labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "SemanticSynth export (temporary)")
        ids = vtk.vtkStringArray()
        for segment_id in segment_ids:
            ids.InsertNextValue(segment_id)
        logic = slicer.vtkSlicerSegmentationsModuleLogic()
        logic.SetMRMLScene(scene)
        if not logic.ExportSegmentsToLabelmapNode(segmentation_node, ids, labelmap, geometry_node):
            raise SynthError("exporting the segments failed; check the segmentation's geometry or choose a reference volume")
        return np.array(_voxels(labelmap)), ijk_to_ras_of(labelmap)
    finally:
        # Export makes helper nodes (display, colour table) besides our temporary ones: remove them all.
        for node_id in _node_ids(scene) - existing:
            node = scene.GetNodeByID(node_id)
            if node is not None:
                scene.RemoveNode(node)


def write_image(values: np.ndarray, ijk_to_ras: np.ndarray, path: str | Path, metadata: dict | None = None) -> None:
    """A (k, j, i) array written on the grid of a Slicer IJKToRAS (NRRD keeps doubles), with metadata entries."""
    image = sitk.GetImageFromArray(values)
    geometry = sitk_geometry(ijk_to_ras)
    image.SetSpacing(geometry["spacing"])
    image.SetOrigin(geometry["origin"])
    image.SetDirection(geometry["direction"])
    for key, value in (metadata or {}).items():
        image.SetMetaData(key, str(value))
    sitk.WriteImage(image, str(path))


def export_label_map(segmentation_node, table: LabelTable, path: str | Path, reference_volume_node=None) -> dict:
    """Write the matched segments as one label map of model ids on the reference grid (NRRD keeps doubles).

    Lesion segments (named with a lesion term, or of a lesion terminology type: Mass, Tumor, Cyst, Lesion, ...) that
    match no label are new tissue: each gets its own id above the table's (in segment order, so the same segments
    get the same ids on every export), drawn over the organs, and its name in the file's metadata as a Slicer
    .seg.nrrd has it (SegmentN_Name, SegmentN_LabelValue), which the engine reads.

    Returns {"ijk_to_ras", "matched" (segment name -> id), "unmatched" (names of segments left out), "lesions"
    (segment name -> {"id", "kind", "by_name": whether the engine reads the kind from the name})}.
    """
    if segmentation_node is None:
        raise SynthError("no segmentation selected; choose a segmentation node")
    segmentation = segmentation_node.GetSegmentation()
    if segmentation.GetNumberOfSegments() == 0:
        raise SynthError("the segmentation has no segments; draw or load segments first")
    matches, unmatched = match_segments(segmentation_node, table)
    lesions = {}
    next_id = max(lab.id for lab in table.labels) + 1
    for index in range(segmentation.GetNumberOfSegments()):
        segment_id = segmentation.GetNthSegmentID(index)
        segment = segmentation.GetSegment(segment_id)
        kind, by_name = lesion_kind(segment) if segment_id not in matches else (None, False)
        if kind:
            lesions[segment_id] = {"name": segment.GetName(), "id": next_id, "kind": kind, "by_name": by_name}
            next_id += 1
    if not matches:
        raise SynthError(f"no segment matches a label of the model ({', '.join(unmatched[:8])}); rename segments or choose another model")
    order = list(matches) + list(lesions)  # lesions last: drawn over the organ they lie in
    values, ijk_to_ras = _export_segments(segmentation_node, order, reference_volume_node)
    # Exported values are 1..n in that order; turn them into the model's label ids and the lesions' own.
    lookup = np.array([0, *matches.values(), *(entry["id"] for entry in lesions.values())], np.uint16)
    labels = lookup[values]
    if not labels.any():
        raise SynthError("the segmentation is empty (no voxels in any matched segment); draw segments first")
    present = set(np.unique(labels).tolist())
    lesions = {s: entry for s, entry in lesions.items() if entry["id"] in present}
    metadata = {}
    for n, entry in enumerate(lesions.values()):
        metadata[f"Segment{n}_Name"], metadata[f"Segment{n}_LabelValue"] = entry["name"], entry["id"]
    write_image(labels, ijk_to_ras, path, metadata)
    names = {segmentation.GetSegment(s).GetName(): i for s, i in matches.items()}
    lesion_names = {entry["name"] for entry in lesions.values()}
    return {"ijk_to_ras": ijk_to_ras, "matched": names, "unmatched": [n for n in unmatched if n not in lesion_names],
            "lesions": {entry["name"]: {k: entry[k] for k in ("id", "kind", "by_name")} for entry in lesions.values()}}


def export_segment_mask(segmentation_node, segment_ids, path: str | Path, reference_volume_node) -> np.ndarray:
    """Write the listed segments as one mask (1 inside any of them, else 0; uint8) on the reference volume's grid;
    returns its IJKToRAS. An unknown segment id or an empty mask is a one-line SynthError."""
    segmentation = segmentation_node.GetSegmentation()
    ids = list(segment_ids)
    missing = [s for s in ids if segmentation.GetSegment(s) is None]
    if not ids or missing:
        raise SynthError(f"segment(s) {', '.join(missing[:8]) or '(none)'} are not in segmentation "
                         f"{segmentation_node.GetName()}; choose the segments of the region to regenerate")
    values, ijk_to_ras = _export_segments(segmentation_node, ids, reference_volume_node)
    mask = (values != 0).astype(np.uint8)
    if not mask.any():
        names = ", ".join(segmentation.GetSegment(s).GetName() for s in ids[:8])
        raise SynthError(f"the region segment(s) {names} have no voxels on the volume's grid; paint the region first")
    write_image(mask, ijk_to_ras, path)
    return ijk_to_ras


def import_volume(scene, path: str | Path, name: str, output_node=None):
    """Read a result file into a new scalar volume node (or into output_node, replacing its voxels)."""
    node = output_node or scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", scene.GenerateUniqueName(name))
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    storage.SetSingleFile(True)
    if not storage.ReadData(node):
        if output_node is None:
            scene.RemoveNode(node)
        raise SynthError(f"cannot read the generated volume {path}")
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    return node


def read_volume_file(scene, path: str | Path, name: str, node_class: str = "vtkMRMLScalarVolumeNode",
                     hidden: bool = False):
    """A result file read into a new node of node_class (no display node yet); removed again if it cannot be read.
    hidden: hidden from the editors from the start (no subject hierarchy item is made for it in Slicer)."""
    node = scene.CreateNodeByClass(node_class)
    node.UnRegister(None)  # CreateNodeByClass hands over a reference of its own (as AddNewNodeByClass releases it)
    node.SetName(scene.GenerateUniqueName(name))
    node.SetHideFromEditors(hidden)
    node = scene.AddNode(node)
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    storage.SetSingleFile(True)
    if not storage.ReadData(node) or node.GetImageData() is None:
        scene.RemoveNode(node)
        raise SynthError(f"cannot read the engine's output {Path(path).name}; report this bug")
    return node


def replace_voxels(target, source) -> None:
    """The target volume node takes the source's voxels and grid (its name, display and references stay)."""
    image = vtk.vtkImageData()
    image.DeepCopy(source.GetImageData())
    target.SetIJKToRASMatrix(_vtk_matrix(ijk_to_ras_of(source)))
    target.SetAndObserveImageData(image)


def same_grid_as(node, ijk_to_ras: np.ndarray, dimensions) -> bool:
    """Whether a volume node lies on the grid of this IJKToRAS and size (i, j, k)."""
    image = node.GetImageData()
    return (image is not None and tuple(image.GetDimensions()) == tuple(dimensions)
            and np.abs(ijk_to_ras_of(node) - ijk_to_ras).max() <= GEOMETRY_TOLERANCE_MM)


def overlay_color_node_id(scene) -> str:
    """The colour table of the uncertainty overlay: Slicer's Inferno (else ColdToHotRainbow, Iron) where the colors
    logic has added its tables; otherwise (slicer-core) an Inferno ramp of our own, made once per scene."""
    for node_id in OVERLAY_COLOR_IDS:
        if scene.GetNodeByID(node_id) is not None:
            return node_id
    name = "SemanticSynth Inferno"
    node = scene.GetFirstNodeByName(name)
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLColorTableNode", name)
        node.SetTypeToUser()
        node.SetNumberOfColors(256)
        positions = [p for p, _ in INFERNO]
        for i in range(256):
            rgb = [float(np.interp(i / 255, positions, [c[channel] for _, c in INFERNO])) for channel in range(3)]
            node.SetColor(i, f"{i}", *rgb, 1.0)
    return node.GetID()


def show_as_overlay(volume_node) -> None:
    """A volume of non-negative values (a per-voxel standard deviation) made ready to lie over another in the slice
    views: an Inferno colour table from 0 to its 99.5th percentile, zero voxels transparent (threshold), and a colour
    legend (what the Colors module's "Create color legend" adds)."""
    scene = volume_node.GetScene()
    if volume_node.GetDisplayNode() is None:
        volume_node.CreateDefaultDisplayNodes()
    display = volume_node.GetDisplayNode()
    display.SetAndObserveColorNodeID(overlay_color_node_id(scene))
    values = slicer.util.arrayFromVolume(volume_node)
    positive = values[values > 0]
    high = float(np.percentile(positive, 99.5)) if positive.size else 1.0
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(0.0, high)
    display.AutoThresholdOff()
    display.SetLowerThreshold(float(positive.min()) if positive.size else 1.0)
    display.SetUpperThreshold(float(values.max()) if positive.size else 1.0)
    display.SetApplyThreshold(1)
    if not scene.IsNodeClassRegistered("vtkMRMLColorLegendDisplayNode"):  # registered by the Colors module in Slicer
        scene.RegisterNodeClass(slicer.vtkMRMLColorLegendDisplayNode())
    slicer.vtkSlicerColorLogic.AddDefaultColorLegendDisplayNode(volume_node)


UNCERTAINTY_COLUMNS = (("label", "string"), ("voxels", "int"), ("std", "double"), ("boundary std", "double"),
                       ("interior std", "double"))


def uncertainty_table(scene, name: str, per_label: dict, table_node=None):
    """The engine's per-label spread (report["uncertainty"]["per_label"]: id -> name, voxels, std, boundary_std,
    interior_std) as a vtkMRMLTableNode, one row per label in id order (a part without voxels: NaN). Fills
    table_node, or a new one."""
    node = table_node or scene.AddNewNodeByClass("vtkMRMLTableNode", scene.GenerateUniqueName(name))
    table = vtk.vtkTable()
    arrays = {"string": vtk.vtkStringArray, "int": vtk.vtkIntArray, "double": vtk.vtkDoubleArray}
    columns = []
    for title, kind in UNCERTAINTY_COLUMNS:
        array = arrays[kind]()
        array.SetName(title)
        table.AddColumn(array)
        columns.append(array)
    for label_id in sorted(per_label, key=lambda k: int(k) if str(k).isdigit() else 0):
        entry = per_label[label_id]
        columns[0].InsertNextValue(str(entry.get("name", label_id)))
        columns[1].InsertNextValue(int(entry.get("voxels", 0)))
        for array, key in zip(columns[2:], ("std", "boundary_std", "interior_std")):
            value = entry.get(key)
            array.InsertNextValue(float(value) if value is not None else float("nan"))
    node.SetAndObserveTable(table)
    return node


def link_output(output_node, source_node, attributes: dict) -> None:
    """Reference from the output to its source, provenance attributes, and the source's study folder."""
    output_node.SetNodeReferenceID(SOURCE_REFERENCE, source_node.GetID())
    for key, value in attributes.items():
        output_node.SetAttribute(ATTRIBUTE_PREFIX + key, as_text(value))
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(output_node.GetScene())
    parent = sh.GetItemParent(sh.GetItemByDataNode(source_node)) or sh.GetSceneItemID()
    item = sh.GetItemByDataNode(output_node)
    if item:
        sh.SetItemParent(item, parent)
    else:  # without Slicer's SH plugins (slicer-core) new nodes get no item by themselves
        sh.CreateItem(parent, output_node)


def apply_window_level(volume_node, modality: str | None) -> None:
    """The modality's registered window/level (engine/volume/modalities.py; CT: the abdominal soft-tissue window
    W400/L40). A modality without one (MRI), or None (a volume of unknown modality): the 1st..99.5th percentile of the
    volume's positive voxels. An unregistered modality is a one-line SynthError."""
    fixed = registered_modality(modality).window_level if modality is not None else None
    display = volume_node.GetDisplayNode()
    if display is None:
        return
    display.AutoWindowLevelOff()
    if fixed is not None:
        window, level = fixed
    else:
        values = slicer.util.arrayFromVolume(volume_node)
        low, high = np.percentile(values[values > 0] if (values > 0).any() else values, [1, 99.5])
        window, level = float(high - low), float((high + low) / 2)
    display.SetWindowLevel(window, level)


def check_source_volume(volume_node) -> None:
    """A scalar 3D volume on its own grid; the engine reads it as a file, without any parent transform."""
    if volume_node is None:
        raise SynthError("no source volume selected; choose a volume")
    image = volume_node.GetImageData()
    if image is None:
        raise SynthError(f"volume {volume_node.GetName()} has no voxels; load image data first")
    if min(image.GetDimensions()) <= 1:
        raise SynthError(f"volume {volume_node.GetName()} is a 2D image (size {image.GetDimensions()}); choose a 3D volume")
    if image.GetNumberOfScalarComponents() != 1:
        raise SynthError(f"volume {volume_node.GetName()} has {image.GetNumberOfScalarComponents()} components; choose a scalar volume")
    if volume_node.GetParentTransformNode() is not None:
        raise SynthError(f"volume {volume_node.GetName()} is under a transform; harden or remove the transform first")


def export_volume(volume_node, path: str | Path) -> np.ndarray:
    """Write a volume node to a file with Slicer's own writer (RAS -> LPS done by it); returns IJKToRAS."""
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    storage.SetUseCompression(False)
    if not storage.WriteData(volume_node):
        raise SynthError(f"cannot write volume {volume_node.GetName()} to a temporary file; check disk space")
    return ijk_to_ras_of(volume_node)


def import_transform(scene, path: str | Path, name: str):
    """Read an ITK displacement field file into a new vtkMRMLGridTransformNode (displacements in RAS).

    Slicer reads it as the transform "from parent", which maps output points to source points: the same
    direction as the file. Interpolation is set to linear, as ITK and the engine use.
    """
    node = scene.AddNewNodeByClass("vtkMRMLGridTransformNode", scene.GenerateUniqueName(name))
    storage = slicer.vtkMRMLTransformStorageNode()
    storage.SetFileName(str(path))
    if not storage.ReadData(node):
        scene.RemoveNode(node)
        raise SynthError(f"cannot read the displacement field {path}")
    node.GetTransformFromParent().SetInterpolationModeToLinear()
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    return node


def remove_unshared(scene, node) -> None:
    """Remove a node that belonged to one just removed (its hidden label map, that map's storage node), unless a node
    still in the scene references it (a clone's)."""
    if node is None or not scene.IsNodePresent(node):
        return
    node_id = node.GetID()
    for i in range(scene.GetNumberOfNodeReferences()):
        referencing = scene.GetNthReferencingNode(i)
        if (scene.GetNthReferencedID(i) == node_id and referencing is not None and referencing is not node
                and scene.IsNodePresent(referencing)):
            return
    scene.RemoveNode(node)


def _remove_new_nodes(scene, existing: set[str]) -> None:
    for node_id in _node_ids(scene) - existing:
        node = scene.GetNodeByID(node_id)
        if node is not None:
            scene.RemoveNode(node)


def load_label_map(scene, path: str | Path, name: str):
    """A label map file (NIfTI, NRRD, MHA) as a segmentation node, one segment per label value, plus the label map
    volume node it was read into (kept for display: it gives the slice views their extent).

    Returns (segmentation node, label map volume node). An unreadable file, a 2D image, a volume of fractional
    values or one without any label is a SynthError of one line; on any error no node is left in the scene.
    """
    existing = _node_ids(scene)
    try:
        labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", scene.GenerateUniqueName(f"{name} labels"))
        storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
        storage.SetFileName(str(path))
        storage.SetSingleFile(True)
        if not storage.ReadData(labelmap) or labelmap.GetImageData() is None:
            raise SynthError(f"cannot read {name}: not a NIfTI, NRRD or MHA image, or the file is damaged")
        image = labelmap.GetImageData()
        if min(image.GetDimensions()) <= 1:
            raise SynthError(f"{name} is a 2D image (size {image.GetDimensions()}); a label map must be a 3D volume")
        if image.GetNumberOfScalarComponents() != 1:
            raise SynthError(f"{name} has {image.GetNumberOfScalarComponents()} components; a label map has one")
        values = _voxels(labelmap)
        if not np.all(np.isfinite(values)) or not np.array_equal(values, np.round(values)):
            raise SynthError(f"{name} holds fractional values; a label map holds whole numbers (is it an image?)")
        if not values.any():
            raise SynthError(f"{name} is empty (every voxel is 0); a label map needs labelled voxels")
        segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", scene.GenerateUniqueName(name))
        segmentation.SetReferenceImageGeometryParameterFromVolumeNode(labelmap)
        logic = slicer.vtkSlicerSegmentationsModuleLogic()
        logic.SetMRMLScene(scene)
        if not logic.ImportLabelmapToSegmentationNode(labelmap, segmentation):
            raise SynthError(f"cannot turn {name} into segments")
        if segmentation.GetSegmentation().GetNumberOfSegments() == 0:
            raise SynthError(f"{name} has no segments (every voxel is 0); a label map needs labelled voxels")
        segmentation.CreateDefaultDisplayNodes()
        # after the import: a colour table on the label map would name the segments after its entries, not the ids
        if labelmap.GetDisplayNode() is None:
            labelmap.CreateDefaultDisplayNodes()
        sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
        for node in (segmentation, labelmap):
            if not sh.GetItemByDataNode(node):
                sh.CreateItem(sh.GetSceneItemID(), node)
    except BaseException:
        _remove_new_nodes(scene, existing)
        raise
    return segmentation, labelmap


def load_volume(scene, path: str | Path, name: str):
    """An image file as a scalar volume node (a translation source): unreadable, 2D or multi-component files are a
    one-line SynthError (check_source_volume), with no node left behind."""
    existing = _node_ids(scene)
    try:
        node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", scene.GenerateUniqueName(name))
        storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
        storage.SetFileName(str(path))
        storage.SetSingleFile(True)
        if not storage.ReadData(node) or node.GetImageData() is None:
            raise SynthError(f"cannot read {name}: not a NIfTI, NRRD or MHA image, or the file is damaged")
        check_source_volume(node)
        if node.GetDisplayNode() is None:
            node.CreateDefaultDisplayNodes()
        sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
        if not sh.GetItemByDataNode(node):
            sh.CreateItem(sh.GetSceneItemID(), node)
    except BaseException:
        _remove_new_nodes(scene, existing)
        raise
    return node


def export_transform(transform_node, path: str | Path) -> None:
    """Write a grid transform node as an ITK displacement field file (LPS, "from parent"), Slicer's own writer."""
    storage = slicer.vtkMRMLTransformStorageNode()
    storage.SetFileName(str(path))
    if not storage.WriteData(transform_node):
        raise SynthError(f"cannot write the displacement field {transform_node.GetName()}; check disk space")


def provenance(node) -> dict:
    """The SemanticSynth.* attributes of a result node, without the prefix."""
    names = node.GetAttributeNames() or []
    return {n[len(ATTRIBUTE_PREFIX):]: node.GetAttribute(n) for n in names if n.startswith(ATTRIBUTE_PREFIX)}
