"""Translation in the Slicer scene without the GUI: volume node -> translated volume node + grid transform node.

    volume, transform = TranslationLogic().translate(volumeNode)
    carried = carry_segmentation(segmentationNode, transform)

The translated volume and the transform are linked to the source and to each other by node references
and share the source's subject-hierarchy parent. The transform maps output points to source points
(Slicer's "from parent"), so a segmentation placed under it and hardened lands on the translated image.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import slicer

from ..engine.model import store as model_store
from ..engine.model.package_metadata import DEFAULT_TRANSLATOR, read_package_metadata
from ..engine.reporting.provenance import translation_provenance
from ..errors import SynthError
from .jobs import EngineJob, staged_inputs, start_with_model
from .scene import (ATTRIBUTE_PREFIX, SOURCE_REFERENCE, apply_window_level, check_same_grid, check_source_volume,
                    export_volume, import_transform, import_volume, link_output)

FIELD_REFERENCE = "SemanticSynthField"
TRANSLATED_REFERENCE = "SemanticSynthTranslated"
FIELD_CONVENTION = "output point -> source point (transform from parent)"


class TranslationJob(EngineJob):
    """One running translation (see EngineJob); result_node is (volume node, grid transform node)."""

    def __init__(self, logic_args: dict, workdir: Path, ijk_to_ras: np.ndarray, on_progress):
        self.ijk_to_ras = ijk_to_ras
        super().__init__(logic_args, workdir, on_progress)

    def _command(self) -> list[str]:
        a = self.args
        cmd = ["translate", str(self.workdir / "source.nrrd"), str(self.workdir / "translated.nrrd"),
               "--field", str(self.workdir / "field.nrrd"), "--model", str(a["model_path"]), "--seed", str(a["seed"])]
        return cmd + ([] if a["deform"] else ["--no-deform"]) + self._common_options()

    def _import(self):
        a = self.args
        source = a["volume_node"]
        scene = source.GetScene()
        meta = a["metadata"]
        contrast = meta["target"].get("contrast", "translated")
        created = []
        try:
            volume = import_volume(scene, self.workdir / "translated.nrrd", f"{source.GetName()} {contrast}")
            created.append(volume)
            check_same_grid(volume, self.ijk_to_ras, "translated volume", "source")
            transform = import_transform(scene, self.workdir / "field.nrrd", f"{source.GetName()} {contrast} field")
            created.append(transform)
        except BaseException:
            for node in created:
                scene.RemoveNode(node)
            raise
        record = translation_provenance(meta.get("name", a["model_path"].name), meta,
                                        a.get("steps") or meta["translator"]["default_steps"], a["seed"], a["deform"],
                                        FIELD_CONVENTION)
        link_output(volume, source, record)
        link_output(transform, source, record)
        volume.SetNodeReferenceID(FIELD_REFERENCE, transform.GetID())
        transform.SetNodeReferenceID(TRANSLATED_REFERENCE, volume.GetID())
        apply_window_level(volume, meta["target"]["modality"])
        return volume, transform


class TranslationLogic:
    """Translate a volume node with a translator package; see the module docstring."""

    @staticmethod
    def available_models() -> list[str]:
        """Bundled translators and those of the model manifest (downloaded on first use)."""
        return model_store.offered("translator")

    @staticmethod
    def model_info(model: str | None) -> dict:
        path = model_store.resolve_local(model or DEFAULT_TRANSLATOR)
        return {"path": path, "metadata": read_package_metadata(path, "translator")}

    def start(self, volume_node, model: str | None = None, steps: int | None = None, seed: int = 0, deform: bool = True,
              on_progress=None, device: str | None = None):
        """A TranslationJob; for a manifest model not downloaded yet, a job that downloads it first."""
        check_source_volume(volume_node)
        return start_with_model(model or DEFAULT_TRANSLATOR,
                                lambda m: self._start(volume_node, m, steps, seed, deform, on_progress, device), on_progress)

    def _start(self, volume_node, model, steps, seed, deform, on_progress, device) -> TranslationJob:
        info = self.model_info(model)
        workdir, ijk_to_ras = staged_inputs(lambda folder: export_volume(volume_node, folder / "source.nrrd"))
        args = {"volume_node": volume_node, "model_path": info["path"], "metadata": info["metadata"], "steps": steps,
                "seed": int(seed), "deform": bool(deform), "device": device}
        return TranslationJob(args, workdir, ijk_to_ras, on_progress).start()

    def translate(self, volume_node, **kwargs):
        """Blocking: returns (translated volume node, grid transform node); raises SynthError with one line."""
        return self.start(volume_node, **kwargs).wait()


def carry_segmentation(segmentation_node, transform_node, name: str | None = None):
    """A copy of the segmentation moved onto the translated image: cloned, put under the transform, hardened.

    The original is untouched; on any failure no node is left behind.
    """
    if segmentation_node is None or transform_node is None:
        raise SynthError("choose a segmentation and a translation field to carry it through")
    if segmentation_node.GetSegmentation().GetNumberOfSegments() == 0:
        raise SynthError("the segmentation has no segments; nothing to carry")
    scene = segmentation_node.GetScene()
    clone = scene.AddNewNodeByClass("vtkMRMLSegmentationNode",
                                    scene.GenerateUniqueName(name or f"{segmentation_node.GetName()} carried"))
    try:
        clone.GetSegmentation().DeepCopy(segmentation_node.GetSegmentation())
        clone.CreateDefaultDisplayNodes()
        clone.SetAndObserveTransformNodeID(transform_node.GetID())
        if not slicer.vtkSlicerTransformLogic().hardenTransform(clone):
            raise SynthError("hardening the transform on the segmentation failed")
        clone.SetNodeReferenceID(SOURCE_REFERENCE, segmentation_node.GetID())
        clone.SetNodeReferenceID(FIELD_REFERENCE, transform_node.GetID())
        clone.SetAttribute(ATTRIBUTE_PREFIX + "carriedBy", transform_node.GetName())
        sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
        parent = sh.GetItemParent(sh.GetItemByDataNode(transform_node)) or sh.GetSceneItemID()
        item = sh.GetItemByDataNode(clone)
        sh.SetItemParent(item, parent) if item else sh.CreateItem(parent, clone)
    except BaseException:
        scene.RemoveNode(clone)
        raise
    return clone
