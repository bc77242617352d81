"""Generation in the Slicer scene without the GUI: segmentation node -> synthetic CT or MRI volume node.

    node = GenerationLogic().generate(segmentationNode, modality="ct", phase="portal_venous", temperature=0.5)

The segments are exported as one label map of the model's ids, and a GenerationRequest (every option of
`semanticsynth generate`) is written beside it and run in a child process (`python -m SemanticSynthLib run`). The
result is imported on the segmentation's grid (or a reference volume's), linked to its source, and carries the
provenance the engine recorded as node attributes. Usable from Slicer's Python console, scripts and tests
(slicer-core, no Qt); the module's Logic class (SemanticSynth/SemanticSynth.py) adds nothing to it but Slicer's
ScriptedLoadableModuleLogic base.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

from ..engine.reporting.provenance import as_text
from ..engine.requests import GenerationRequest
from ..errors import SynthError
from .jobs import EngineJob, staged_inputs, start_with_model
from .models import available_models, model_info
from .scene import ATTRIBUTE_PREFIX, apply_window_level, check_same_grid, export_label_map, import_volume, link_output

# What the bridge passes unless asked otherwise: segments that match no label of the model are left out of the
# exported map and listed (job.unmatched_segments), as the panel always did; "error" refuses them instead.
BRIDGE_DEFAULTS = {"unknown_labels": "background"}
STAGED = {"labels": "labels.nrrd", "out": "generated.nrrd"}  # the request's paths, inside the job's folder


def generation_request(model_path, workdir: Path | str = ".", **options) -> GenerationRequest:
    """The request the bridge runs: the user's options (GenerationRequest fields; None: the request's default)
    with the staged label map and output in `workdir`. SynthError (one line) on a bad option."""
    given = {**BRIDGE_DEFAULTS, **{k: v for k, v in options.items() if v is not None}}
    unknown = sorted(set(given) - set(GenerationRequest.model_fields) | set(given) & {"labels", "out", "model"})
    if unknown:
        raise SynthError(f"unknown generation option(s) {', '.join(unknown)}; the options are the fields of "
                         "GenerationRequest (labels, out and model are set by the bridge)")
    staged = {key: str(Path(workdir) / name) for key, name in STAGED.items()}
    return GenerationRequest.build({**given, **staged, "model": str(model_path)}, source="request field")


class GenerationJob(EngineJob):
    """One running generation (see EngineJob); result_node is the volume node, `result` the engine's result
    (provenance, and the calibration check's flags and the unseen labels in result["report"])."""

    def __init__(self, logic_args: dict, workdir: Path, export: dict, on_progress):
        self.export = export
        self.unmatched_segments: list[str] = export["unmatched"]
        super().__init__(logic_args, workdir, on_progress)

    def _request(self) -> GenerationRequest:
        return generation_request(self.args["model_path"], self.workdir, **self.args["options"])

    def _import(self):
        a = self.args
        source, output = a["segmentation_node"], a.get("output_node")
        scene = source.GetScene()
        record = self.result.get("provenance", {})
        modality = record.get("modality") or a["options"].get("modality") or a["metadata"]["modalities"][0]
        node = import_volume(scene, self.workdir / STAGED["out"], f"{source.GetName()} synthetic {modality.upper()}",
                             output)
        try:
            check_same_grid(node, self.export["ijk_to_ras"], "generated volume", "label map")
        except BaseException:
            if output is None:
                scene.RemoveNode(node)
            raise
        link_output(node, source, record)
        for key, value in self.result.get("report", {}).items():
            node.SetAttribute(ATTRIBUTE_PREFIX + key, as_text(value))
        apply_window_level(node, modality)
        return node


class GenerationLogic:
    """Generate a CT or MRI volume from a segmentation node, on its grid (or a reference volume's)."""

    available_models = staticmethod(partial(available_models, "generator"))

    @staticmethod
    def model_info(model: str | None, modality: str | None = None) -> dict:
        """The package's folder, metadata, label table and option defaults (bridge/models.py)."""
        return model_info(model, "generator", modality)

    def start(self, segmentation_node, model: str | None = None, reference_volume_node=None, output_node=None,
              on_progress=None, **options):
        """Start generating; returns a GenerationJob (for a manifest model not downloaded yet, a job that
        downloads it first).

        Args:
            segmentation_node: the vtkMRMLSegmentationNode whose segments (matched to the model's labels by name
                or terminology) are the label map.
            model: a model package folder, bundled or manifest name; None: the modality's default.
            reference_volume_node: a volume whose grid the output takes (None: the segmentation's).
            output_node: a volume node to fill (None: a new one).
            on_progress: called with each progress record (a dict) from the engine's thread.
            **options: any GenerationRequest field: modality, steps, seed, guidance, temperature, device, phase,
                priors, calibrate, unknown_labels, window, fp32, max_voxels. None leaves an option to its default.

        Returns:
            The running job: poll() or wait(); cancel() at any time.
        """
        generation_request(model or "default", **options)  # a bad option fails here, before any export
        return start_with_model(model, lambda m: self._start(segmentation_node, m, reference_volume_node, output_node,
                                                             on_progress, options), on_progress)

    def _start(self, segmentation_node, model, reference_volume_node, output_node, on_progress, options) -> GenerationJob:
        info = self.model_info(model, options.get("modality"))
        meta = info["metadata"]
        modality = options.get("modality") or meta["modalities"][0]
        if modality not in meta["modalities"]:
            raise SynthError(f"model {info['path'].name} generates {', '.join(meta['modalities'])}, not {modality}")
        workdir, export = staged_inputs(lambda folder: export_label_map(segmentation_node, info["labels"],
                                                                        folder / STAGED["labels"], reference_volume_node))
        unknown = options.get("unknown_labels") or BRIDGE_DEFAULTS["unknown_labels"]
        if unknown == "error" and export["unmatched"]:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
            raise SynthError(f"segment(s) {', '.join(export['unmatched'][:8])} match no label of {info['path'].name}; "
                             "rename them to a label of the model, or set unknown labels to background")
        args = {"segmentation_node": segmentation_node, "model_path": info["path"], "metadata": meta,
                "options": dict(options), "output_node": output_node}
        return GenerationJob(args, workdir, export, on_progress).start()

    def generate(self, segmentation_node, **kwargs):
        """Blocking: returns the new (or given) output volume node; raises SynthError with a one-line message."""
        return self.start(segmentation_node, **kwargs).wait()
