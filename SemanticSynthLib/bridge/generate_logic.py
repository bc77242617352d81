"""Generation in the Slicer scene without the GUI: segmentation node -> synthetic CT or MRI volume node.

    node = GenerationLogic().generate(segmentationNode, modality="ct")

The segments are exported as one label map of the model's ids, the engine runs in a child process, and the
result is imported on the segmentation's grid (or a reference volume's), linked to its source and carrying the
provenance attributes. Usable from Slicer's Python console, scripts and tests (slicer-core, no Qt); the module's
Logic class (SemanticSynth/SemanticSynth.py) adds nothing to it but Slicer's ScriptedLoadableModuleLogic base.
"""
from __future__ import annotations

from pathlib import Path

from ..engine.model import store as model_store
from ..engine.volume.labels import LabelTable
from ..engine.model.package_metadata import read_package_metadata
from ..engine.reporting.provenance import generation_provenance
from ..errors import SynthError
from .jobs import EngineJob, staged_inputs, start_with_model
from .scene import apply_window_level, check_same_grid, export_label_map, import_volume, link_output


class GenerationJob(EngineJob):
    """One running generation (see EngineJob); result_node is the volume node."""

    def __init__(self, logic_args: dict, workdir: Path, export: dict, on_progress):
        self.export = export
        self.unmatched_segments: list[str] = export["unmatched"]
        super().__init__(logic_args, workdir, on_progress)

    def _command(self) -> list[str]:
        a = self.args
        cmd = ["generate", str(self.workdir / "labels.nrrd"), str(self.workdir / "generated.nrrd"),
               "--model", str(a["model_path"]), "--modality", a["modality"], "--seed", str(a["seed"])]
        return cmd + self._common_options()

    def _import(self):
        a = self.args
        source, output = a["segmentation_node"], a.get("output_node")
        scene = source.GetScene()
        node = import_volume(scene, self.workdir / "generated.nrrd", f"{source.GetName()} synthetic {a['modality'].upper()}",
                             output)
        try:
            check_same_grid(node, self.export["ijk_to_ras"], "generated volume", "label map")
        except BaseException:
            if output is None:
                scene.RemoveNode(node)
            raise
        meta = a["metadata"]
        link_output(node, source, generation_provenance(meta.get("name", a["model_path"].name), meta, a["modality"],
                                                        a.get("steps") or meta["diffusion"].get("default_steps"), a["seed"]))
        apply_window_level(node, a["modality"])
        return node


class GenerationLogic:
    """Generate a CT or MRI volume from a segmentation node, on its grid (or a reference volume's)."""

    @staticmethod
    def available_models() -> list[str]:
        """Bundled generators and those of the model manifest (downloaded on first use)."""
        return model_store.offered("generator")

    @staticmethod
    def model_info(model: str | None, modality: str | None = None) -> dict:
        path = model_store.resolve_local(model, modality)
        meta = read_package_metadata(path, "generator")
        return {"path": path, "metadata": meta, "labels": LabelTable.from_json(meta["label_table"])}

    def start(self, segmentation_node, model: str | None = None, modality: str | None = None, steps: int | None = None,
              seed: int = 0, reference_volume_node=None, output_node=None, on_progress=None,
              device: str | None = None):
        """A GenerationJob; for a manifest model not downloaded yet, a job that downloads it first."""
        return start_with_model(model, lambda m: self._start(segmentation_node, m, modality, steps, seed, reference_volume_node,
                                                             output_node, on_progress, device), on_progress)

    def _start(self, segmentation_node, model, modality, steps, seed, reference_volume_node, output_node, on_progress,
               device) -> GenerationJob:
        info = self.model_info(model, modality)
        meta = info["metadata"]
        modality = modality or meta["modalities"][0]
        if modality not in meta["modalities"]:
            raise SynthError(f"model {info['path'].name} generates {', '.join(meta['modalities'])}, not {modality}")
        workdir, export = staged_inputs(lambda folder: export_label_map(segmentation_node, info["labels"],
                                                                        folder / "labels.nrrd", reference_volume_node))
        args = {"segmentation_node": segmentation_node, "model_path": info["path"], "metadata": meta,
                "modality": modality, "steps": steps, "seed": int(seed), "output_node": output_node, "device": device}
        return GenerationJob(args, workdir, export, on_progress).start()

    def generate(self, segmentation_node, **kwargs):
        """Blocking: returns the new (or given) output volume node; raises SynthError with a one-line message."""
        return self.start(segmentation_node, **kwargs).wait()
