"""Generation in the Slicer scene without the GUI: export labels, run the engine in a child process, import.

Usable from Slicer's Python console, scripts and tests (slicer-core, no Qt). The module's Logic class
(SemanticSynth/SemanticSynth.py) adds nothing to it but Slicer's ScriptedLoadableModuleLogic base.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from . import __version__, model_store
from .engine.labels import LabelTable
from .engine.package_metadata import bundled_models, read_metadata
from .errors import SynthError
from .jobs import EngineJob, start_with_model
from .scene import apply_window_level, export_label_map, ijk_to_ras_of, import_volume, link_output

GEOMETRY_TOLERANCE_MM = 1e-4


class GenerationJob(EngineJob):
    """One running generation (see EngineJob)."""

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
        source = a["segmentation_node"]
        scene = source.GetScene()
        node = import_volume(scene, self.workdir / "generated.nrrd", f"{source.GetName()} synthetic {a['modality'].upper()}",
                             a.get("output_node"))
        error = np.abs(ijk_to_ras_of(node) - self.export["ijk_to_ras"]).max()
        if error > GEOMETRY_TOLERANCE_MM:
            if a.get("output_node") is None:
                scene.RemoveNode(node)
            raise SynthError(f"the generated volume's grid differs from the label map's by {error:.2g} mm; report this bug")
        link_output(node, source, {"model": a["model_name"], "version": a["model_version"], "modality": a["modality"],
                                   "steps": a.get("steps") or a["default_steps"], "seed": a["seed"],
                                   "conditioning": a["conditioning"], "software": f"SemanticSynth {__version__}"})
        apply_window_level(node, a["modality"])
        return node


class GenerationLogic:
    """Generate a CT or MRI volume from a segmentation node, on its grid (or a reference volume's).

    Can be used without the GUI, e.g. in Slicer's Python console:
        node = GenerationLogic().generate(segmentationNode, modality="ct")
    """

    @staticmethod
    def available_models() -> list[str]:
        """Bundled generators and those of the model manifest (downloaded on first use)."""
        return sorted(set(bundled_models("generator")) | set(model_store.available("generator")))

    @staticmethod
    def model_info(model: str | None, modality: str | None = None) -> dict:
        path = model_store.resolve_local(model, modality)
        meta = read_metadata(path)
        if meta.get("kind") == "translator":
            raise SynthError(f"{path.name} is a translator; choose a generator model, or use Translate")
        if "diffusion" not in meta:
            raise SynthError(f"{path} holds only an autoencoder; choose a complete model package")
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
        workdir = Path(tempfile.mkdtemp(prefix="SemanticSynth-"))
        try:
            export = export_label_map(segmentation_node, info["labels"], workdir / "labels.nrrd", reference_volume_node)
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        args = {"segmentation_node": segmentation_node, "model_path": info["path"], "model_name": meta.get("name", info["path"].name),
                "model_version": meta.get("version"), "modality": modality, "steps": steps, "seed": int(seed),
                "default_steps": meta["diffusion"].get("default_steps"), "conditioning": meta["diffusion"]["conditioning"],
                "output_node": output_node, "device": device}
        return GenerationJob(args, workdir, export, on_progress).start()

    def generate(self, segmentation_node, **kwargs):
        """Blocking: returns the new (or given) output volume node; raises SynthError with a one-line message."""
        return self.start(segmentation_node, **kwargs).wait()
