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

from functools import partial

from ..engine.model.package_metadata import DEFAULT_TRANSLATOR
from ..engine.requests import TranslationRequest
from ..errors import SynthError
from .jobs import EngineJob, staged_inputs, start_with_model
from .models import available_models, model_info
from .scene import (ATTRIBUTE_PREFIX, SOURCE_REFERENCE, apply_window_level, check_same_grid, check_source_volume,
                    export_volume, import_transform, import_volume, link_output)

FIELD_REFERENCE = "SemanticSynthField"
TRANSLATED_REFERENCE = "SemanticSynthTranslated"
FIELD_CONVENTION = "output point -> source point (transform from parent)"


STAGED = {"source": "source.nrrd", "out": "translated.nrrd", "field": "field.nrrd"}  # inside the job's folder


def translation_request(model_path, workdir: Path | str = ".", **options) -> TranslationRequest:
    """The request the bridge runs: the user's options (TranslationRequest fields; None: the default) with the
    staged source and outputs in `workdir`. SynthError (one line) on a bad option."""
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - set(TranslationRequest.model_fields) | set(given) & {*STAGED, "model", "labels",
                                                                                         "labels_out"})
    if unknown:
        raise SynthError(f"unknown translation option(s) {', '.join(unknown)}; the options are the fields of "
                         "TranslationRequest (the paths and model are set by the bridge; carry a segmentation with "
                         "carry_segmentation)")
    staged = {key: str(Path(workdir) / name) for key, name in STAGED.items()}
    return TranslationRequest.build({**given, **staged, "model": str(model_path)}, source="request field")


class TranslationJob(EngineJob):
    """One running translation (see EngineJob); result_node is (volume node, grid transform node)."""

    def __init__(self, logic_args: dict, workdir: Path, ijk_to_ras: np.ndarray, on_progress):
        self.ijk_to_ras = ijk_to_ras
        super().__init__(logic_args, workdir, on_progress)

    def _request(self) -> TranslationRequest:
        return translation_request(self.args["model_path"], self.workdir, **self.args["options"])

    def _import(self):
        a = self.args
        source = a["volume_node"]
        scene = source.GetScene()
        meta = a["metadata"]
        contrast = meta["target"].get("contrast", "translated")
        created = []
        try:
            volume = import_volume(scene, self.workdir / STAGED["out"], f"{source.GetName()} {contrast}")
            created.append(volume)
            check_same_grid(volume, self.ijk_to_ras, "translated volume", "source")
            transform = import_transform(scene, self.workdir / STAGED["field"], f"{source.GetName()} {contrast} field")
            created.append(transform)
        except BaseException:
            for node in created:
                scene.RemoveNode(node)
            raise
        # The engine's record, but the field is read as a transform here ("from parent"), not as the file's vectors.
        record = {**self.result.get("provenance", {}), "field_convention": FIELD_CONVENTION}
        link_output(volume, source, record)
        link_output(transform, source, record)
        volume.SetNodeReferenceID(FIELD_REFERENCE, transform.GetID())
        transform.SetNodeReferenceID(TRANSLATED_REFERENCE, volume.GetID())
        apply_window_level(volume, meta["target"]["modality"])
        return volume, transform


class TranslationLogic:
    """Translate a volume node with a translator package; see the module docstring."""

    available_models = staticmethod(partial(available_models, "translator"))

    @staticmethod
    def model_info(model: str | None) -> dict:
        """The package's folder and metadata (bridge/models.py)."""
        return model_info(model, "translator")

    def start(self, volume_node, model: str | None = None, on_progress=None, **options):
        """Start translating; returns a TranslationJob (for a manifest model not downloaded yet, a job that
        downloads it first).

        Args:
            volume_node: the source vtkMRMLScalarVolumeNode.
            model: a translator package folder, bundled or manifest name; None: brain-t1-to-t2like.
            on_progress: called with each progress record (a dict) from the engine's thread.
            **options: TranslationRequest fields: steps, seed, deform, device, fp32. None: the default.

        Returns:
            The running job; its result_node is (translated volume node, grid transform node).
        """
        check_source_volume(volume_node)
        translation_request(model or DEFAULT_TRANSLATOR, **options)  # a bad option fails here, before any export
        return start_with_model(model or DEFAULT_TRANSLATOR,
                                lambda m: self._start(volume_node, m, on_progress, options), on_progress)

    def _start(self, volume_node, model, on_progress, options) -> TranslationJob:
        info = self.model_info(model)
        workdir, ijk_to_ras = staged_inputs(lambda folder: export_volume(volume_node, folder / STAGED["source"]))
        args = {"volume_node": volume_node, "model_path": info["path"], "metadata": info["metadata"],
                "options": dict(options)}
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
