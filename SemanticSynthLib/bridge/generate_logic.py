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
from ..engine.reporting.results import calibration_flags
from ..engine.requests import GenerationRequest
from ..engine.requests.base import spec
from ..engine.volume.labels import LabelTable
from ..engine.volume.modalities import MODALITIES
from ..engine.volume.vocabularies import candidates
from ..errors import SynthError
from .jobs import EngineJob, staged_inputs, start_with_model
from .models import available_models, model_info
from .scene import (ATTRIBUTE_PREFIX, apply_window_level, check_same_grid, export_label_map, import_volume, link_output,
                    match_segments)

# What the bridge passes unless asked otherwise: segments that match no label of the model are left out of the
# exported map and listed (job.unmatched_segments), as the panel always did; "error" refuses them instead.
BRIDGE_DEFAULTS = {"unknown_labels": "background"}
STAGED = {"labels": "labels.nrrd", "out": "generated.nrrd"}  # the request's paths, inside the job's folder
# What the GUIs' Advanced sections show: the phase left to the model, and the devices (CPU forces it on a GPU machine)
TRAINING_DATA_PHASE = "training data's"
DEVICE_TITLES = {"auto": "auto (CUDA where available)", "cpu": "CPU (force)", "cuda": "CUDA"}


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


def option_choices(field: str) -> list:
    """The values a GenerationRequest field accepts (its one_of check, read now: a newly registered modality's
    phases count), for the GUIs' combo boxes; the bridge's default first where it has one."""
    values = list(spec(GenerationRequest.model_fields[field])["check"].choices())
    first = BRIDGE_DEFAULTS.get(field)
    return sorted(values, key=lambda v: v != first) if first in values else values


def option_range(field: str) -> tuple:
    """(low, high) of a GenerationRequest number field's range check (None: unbounded), for the GUIs' widgets."""
    check = spec(GenerationRequest.model_fields[field])["check"]
    return check.low, check.high


def modality_phases(modality: str | None) -> tuple:
    """The contrast phases a modality's priors know (CT: non_contrast, portal_venous); () for none or an unknown
    name: the GUIs offer the phase only where it applies."""
    entry = MODALITIES.get(modality) if modality else None
    return tuple(entry.phases) if entry is not None else ()


def spin_box_ranges() -> dict:
    """(minimum, maximum) of the Slicer panel's temperature and guidance spin boxes, from the request's checks: the
    minimum stands for "the model's" (shown as the special value text): the temperature's open lower end (0, as it
    must be above 0), and one step (0.5, the box's) below the least guidance (1)."""
    (low_t, high_t), (low_g, high_g) = option_range("temperature"), option_range("guidance")
    return {"temperature": (float(low_t), float(high_t)), "guidance": (low_g - 0.5, float(high_g))}


def model_hints(model: str | None, modality: str | None) -> dict:
    """What a GUI shows for the options left to the model: "model's: 10" for steps, temperature and guidance ("model's"
    while the package is not here, e.g. not downloaded yet), whether the model takes a guidance scale (trained with
    condition dropout), the modality's phases (the phase applies where there are some: CT) and the training data's."""
    try:
        info = model_info(model, "generator", modality)
        defaults, diffusion = info["defaults"], info["metadata"].get("diffusion", {})
    except SynthError:
        defaults, diffusion = {}, None
    hints = {key: "model's" if defaults.get(key) is None else f"model's: {defaults[key]:g}"
             for key in ("steps", "temperature", "guidance")}
    return {**hints, "guidance_enabled": diffusion is None or bool(diffusion.get("condition_dropout")),
            "phases": modality_phases(modality), "training_phase": defaults.get("phase")}


def gui_options(values: dict, left_to_model: dict | None = None, auto_device: str | None = None) -> dict:
    """A GUI's Advanced values as GenerationLogic.start options: one mapping for the Slicer panel and the web page.

    Args:
        values: modality, phase, temperature, guidance, priors (a path), calibrate, unknown_labels and device, as the
            GUI holds them (numbers or text).
        left_to_model: per option, the value that means "the model's" in that GUI (a spin box's minimum); empty text
            means it everywhere. It becomes None, as does a phase the modality does not have (the training data's,
            or any for MRI).
        auto_device: what the GUI's "auto" device stands for (the web server's `serve --device`); None: the engine's.

    Returns:
        The options. A priors path that is not a file is a one-line SynthError here; the request checks every other
        value when the job starts (one line naming the option).
    """
    unset = left_to_model or {}

    def given(key):
        value = values.get(key)
        value = value.strip() if isinstance(value, str) else value
        return None if value in ("", None) or (key in unset and value == unset[key]) else value

    priors = given("priors")
    priors = None if priors == "." else priors  # "." is Slicer's empty path (pathlib.Path())
    if priors is not None and not Path(priors).is_file():
        raise SynthError(f"priors file {priors} does not exist; choose a JSON file or clear the field")
    device = given("device") or "auto"
    return {"phase": values.get("phase") if values.get("phase") in modality_phases(values.get("modality")) else None,
            "temperature": given("temperature"), "guidance": given("guidance"), "priors": priors,
            "calibrate": bool(values.get("calibrate", True)), "unknown_labels": given("unknown_labels"),
            "device": auto_device if device == "auto" else device}


def report_notes(report: dict | None, labels=None) -> list:
    """The lines a GUI shows under its status after a generation (job.result["report"]; GenerationJob.notes()):
    the calibration check's flags (labels whose generated mean came out outside their prior's range) and the labels
    unseen in training, named from `labels` (the model's LabelTable) where given."""
    report = report or {}
    notes = [calibration_flags(report)]
    unseen = report.get("unseen_labels") or []
    if unseen:
        names = {lab.id: lab.name for lab in labels.labels} if labels is not None else {}
        shown = ", ".join(names.get(i, str(i)) for i in unseen[:12]) + (f" and {len(unseen) - 12} more"
                                                                       if len(unseen) > 12 else "")
        notes.append(f"Not in the model's training data (they follow their priors): {shown}")
    return [n for n in notes if n]


def segment_vocabulary(segmentation_node, table: LabelTable, asked: str | None = None) -> LabelTable:
    """The label table a segmentation's names are in: `asked`, else whichever of the model's table and the
    vocabularies translated to it (FreeSurfer, VISTA3D, TotalSegmentator v1, ...) names the most segments; the model's
    own table wins a tie. Returned as a LabelTable of that vocabulary's ids and names, to export the label map with."""
    options = [v.as_table() for v in candidates(table)]
    if asked:
        chosen = [o for o in options if o.name == asked]
        if not chosen:
            raise SynthError(f"label table {asked} is not one of this model's ({', '.join(o.name for o in options)})")
        return chosen[0]
    matched = [len(match_segments(segmentation_node, o)[0]) for o in options]
    return options[matched.index(max(matched))]


class GenerationJob(EngineJob):
    """One running generation (see EngineJob); result_node is the volume node, `result` the engine's result
    (provenance, and the calibration check's flags and the unseen labels in result["report"])."""

    def __init__(self, logic_args: dict, workdir: Path, export: dict, on_progress):
        self.export = export
        self.unmatched_segments: list[str] = export["unmatched"]
        super().__init__(logic_args, workdir, on_progress)

    def _request(self) -> GenerationRequest:
        return generation_request(self.args["model_path"], self.workdir, **self.args["options"])

    def notes(self) -> list:
        """What the run reported, as lines for a status (report_notes): empty before it has finished. The first
        names the label table the segments were read in."""
        if not self.result:
            return []
        table = (self.result.get("provenance", {}).get("request") or {}).get("label_table")
        return ([f"Label table: {table}"] if table else []) + report_notes(self.result.get("report"), self.args["labels"])

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
                                                             on_progress, options), on_progress,
                                options.get("modality"))

    def _start(self, segmentation_node, model, reference_volume_node, output_node, on_progress, options) -> GenerationJob:
        info = self.model_info(model, options.get("modality"))
        meta = info["metadata"]
        modality = options.get("modality") or meta["modalities"][0]
        if modality not in meta["modalities"]:
            raise SynthError(f"model {info['path'].name} generates {', '.join(meta['modalities'])}, not {modality}")
        unknown = options.get("unknown_labels") or BRIDGE_DEFAULTS["unknown_labels"]

        table = segment_vocabulary(segmentation_node, info["labels"], options.get("label_table"))
        options = {**options, "label_table": table.name}

        def export(folder: Path) -> dict:
            # inside staged_inputs, so that a refusal here removes the staged folder with the rest
            exported = export_label_map(segmentation_node, table, folder / STAGED["labels"], reference_volume_node)
            if unknown == "error" and exported["unmatched"]:
                raise SynthError(f"segment(s) {', '.join(exported['unmatched'][:8])} match no label of "
                                 f"{info['path'].name}; rename them to a label of the model, or set unknown labels "
                                 "to background")
            return exported

        workdir, export = staged_inputs(export)
        args = {"segmentation_node": segmentation_node, "model_path": info["path"], "metadata": meta,
                "labels": info["labels"], "options": dict(options), "output_node": output_node}
        return GenerationJob(args, workdir, export, on_progress).start()

    def generate(self, segmentation_node, **kwargs):
        """Blocking: returns the new (or given) output volume node; raises SynthError with a one-line message."""
        return self.start(segmentation_node, **kwargs).wait()
