"""Generation in the Slicer scene without the GUI: segmentation node -> synthetic CT or MRI volume node.

    node = GenerationLogic().generate(segmentationNode, modality="ct", phase="portal_venous", temperature=0.5)

The segments are exported as one label map of the model's ids, and a GenerationRequest (every option of
`semanticsynth generate`) is written beside it and run in a child process (`python -m SemanticSynthLib run`). The
result is imported on the segmentation's grid (or a reference volume's), linked to its source, and carries the
provenance the engine recorded as node attributes. Usable from Slicer's Python console, scripts and tests
(slicer-core, no Qt); the module's Logic class (SemanticSynth/SemanticSynth.py) adds nothing to it but Slicer's
ScriptedLoadableModuleLogic base.

Region edits: after the label map of a generated volume was edited, only the changed region is regenerated and
every voxel further than the margin stays as it was (the engine's --edit):

    logic.generate(segmentationNode, edit_volume_node=ct, output_node=ct, margin=6)       # in place
    logic.generate(segmentationNode, edit_volume_node=realCt, region_segment_ids=["Tumor"])  # into a new volume

Each generated volume keeps the label map it was made from as a hidden vtkMRMLLabelMapVolumeNode (node reference
LABELS_REFERENCE), updated only after a successful run, which is the region's "previous labels"; a volume without
one (a scan loaded from disk) needs the region's segments. That label map has a storage node (NRRD), so it is saved
with the scene and found again after reloading it; it is removed with its volume (observe_output_removal).
samples=K with uncertainty=True adds the per-voxel standard deviation of K samples as a colour overlay volume and the
spread per label as a table node.
"""
from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import vtk

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
from .scene import (ATTRIBUTE_PREFIX, apply_window_level, check_source_volume, export_label_map, export_segment_mask,
                    export_volume, ijk_to_ras_of, link_output, match_segments, provenance, read_volume_file,
                    remove_unshared, replace_voxels, same_grid_as, show_as_overlay, uncertainty_table)

# What the bridge passes unless asked otherwise: segments that match no label of the model are left out of the
# exported map and listed (job.unmatched_segments), as the panel always did; "error" refuses them instead.
BRIDGE_DEFAULTS = {"unknown_labels": "background"}
# the request's paths, inside the job's folder: always labels and out; the others where the job stages them
STAGED = {"labels": "labels.nrrd", "out": "generated.nrrd", "uncertainty": "uncertainty.nrrd", "edit": "existing.nrrd",
          "previous_labels": "previous_labels.nrrd", "region": "region.nrrd", "priors": "priors.json"}
SET_BY_BRIDGE = ("labels", "out", "model", "edit", "previous_labels", "region")
# Node references of a generated volume: the label map it was made from (hidden), its uncertainty and table
LABELS_REFERENCE = "SemanticSynthLabels"
UNCERTAINTY_REFERENCE = "SemanticSynthUncertainty"
UNCERTAINTY_TABLE_REFERENCE = "SemanticSynthUncertaintyTable"
EDITED_REFERENCE = "SemanticSynthEdited"  # a volume regenerated into a new node -> the volume it edited
# What the GUIs' Advanced sections show: the phase left to the model, and the devices (CPU forces it on a GPU machine)
TRAINING_DATA_PHASE = "training data's"
DEVICE_TITLES = {"auto": "auto (CUDA where available)", "cpu": "CPU (force)", "cuda": "CUDA"}


def generation_request(model_path, workdir: Path | str = ".", staged=(), **options) -> GenerationRequest:
    """The request the bridge runs: the user's options (GenerationRequest fields; None: the request's default)
    with the staged label map and output in `workdir`, and the staged inputs named in `staged` (edit,
    previous_labels, region, priors: files the job wrote there). `uncertainty` is True or False here: True writes
    the standard deviation of the samples into the folder too. SynthError (one line) on a bad option."""
    given = {**BRIDGE_DEFAULTS, **{k: v for k, v in options.items() if v is not None}}
    unknown = sorted(set(given) - set(GenerationRequest.model_fields) | set(given) & set(SET_BY_BRIDGE))
    if unknown:
        raise SynthError(f"unknown generation option(s) {', '.join(unknown)}; the options are the fields of "
                         "GenerationRequest (labels, out and model are set by the bridge, edit, previous_labels and "
                         "region by edit_volume_node, previous_labelmap_node and region_segment_ids)")
    if "uncertainty" in given and not isinstance(given["uncertainty"], bool):
        raise SynthError("uncertainty is True or False here (the bridge writes the volume and imports it as a node)")
    wanted = ["labels", "out", *staged, *(["uncertainty"] if given.pop("uncertainty", False) else [])]
    paths = {key: str(Path(workdir) / STAGED[key]) for key in wanted}
    return GenerationRequest.build({**given, **paths, "model": str(model_path)}, source="request field")


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
        values: modality, phase, temperature, guidance, priors (a path), calibrate, texture, unknown_labels and
            device, as the GUI holds them (numbers or text).
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
            "calibrate": bool(values.get("calibrate", True)), "texture": bool(values.get("texture", True)),
            "unknown_labels": given("unknown_labels"),
            "device": auto_device if device == "auto" else device}


def report_notes(report: dict | None, labels=None, names: dict | None = None) -> list:
    """The lines a GUI shows under its status after a generation (job.result["report"]; GenerationJob.notes()):
    the calibration check's flags (labels whose generated mean came out outside their prior's range) and the labels
    unseen in training, named from `labels` (the model's LabelTable) where given, and from `names` (id -> name: the
    lesion segments exported with ids of their own), which win."""
    report = report or {}
    notes = [calibration_flags(report)]
    unseen = report.get("unseen_labels") or []
    if unseen:
        names = {**({lab.id: lab.name for lab in labels.labels} if labels is not None else {}),
                 **{int(i): name for i, name in (names or {}).items()}}
        shown = ", ".join(names.get(i, str(i)) for i in unseen[:12]) + (f" and {len(unseen) - 12} more"
                                                                       if len(unseen) > 12 else "")
        notes.append(f"Not in the model's training data (they follow their priors): {shown}")
    return [n for n in notes if n]


def lesion_notes(report: dict | None) -> list:
    """A line naming the new tissue the engine placed (report["lesions"]: name -> kind, host, mean, units)."""
    lesions = (report or {}).get("lesions") or {}
    if not lesions:
        return []
    shown = [f"{name} ({entry.get('kind')}, {entry.get('mean'):g} {entry.get('units', '')}".rstrip()
             + (f", in {entry['host']})" if entry.get("host") else ")") for name, entry in lesions.items()]
    return ["New tissue: " + ", ".join(shown)]


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


def regenerated_name(edited: str) -> str:
    """The new volume's name after an edit into a new volume: "<edited> regenerated", once (a volume regenerated
    again keeps the name, which Slicer makes unique)."""
    return edited if edited.endswith(" regenerated") else f"{edited} regenerated"


class GenerationJob(EngineJob):
    """One running generation (see EngineJob); result_node is the volume node, `result` the engine's result
    (provenance, and the calibration check's flags and the unseen labels in result["report"]). With samples >= 2,
    table_node holds the spread per label and, with uncertainty, uncertainty_node the per-voxel standard deviation.
    `lesion_segments`: the segments exported as new tissue (name -> id, kind)."""

    def __init__(self, logic_args: dict, workdir: Path, export: dict, on_progress):
        self.export = export
        self.unmatched_segments: list[str] = export["unmatched"]
        self.lesion_segments: dict = export.get("lesions", {})
        self.uncertainty_node = None
        self.table_node = None
        super().__init__(logic_args, workdir, on_progress)

    def _request(self) -> GenerationRequest:
        return generation_request(self.args["model_path"], self.workdir, staged=self.export.get("staged", ()),
                                  **self.args["options"])

    def notes(self) -> list:
        """What the run reported, as lines for a status (report_notes): empty before it has finished. The first
        names the label table the segments were read in."""
        if not self.result:
            return []
        table = (self.result.get("provenance", {}).get("request") or {}).get("label_table")
        report = self.result.get("report")
        lesions = {entry["id"]: name for name, entry in self.lesion_segments.items()}
        return (([f"Label table: {table}"] if table else []) + report_notes(report, self.args["labels"], lesions)
                + lesion_notes(report))

    def _provenance(self) -> dict:
        """The engine's record, with the priors the user gave: where the job staged a priors file for lesions known
        only by their terminology type, the request names the user's file (or none) and `lesion_priors` holds the
        staged entries, instead of the job's temporary file."""
        record = dict(self.result.get("provenance") or {})
        if "priors" in self.export.get("staged", ()) and isinstance(record.get("request"), dict):
            record["request"] = {**record["request"], "priors": self.args["options"].get("priors")}
            record["lesion_priors"] = self.export.get("lesion_priors") or {}
        edit = self.args.get("edit")
        if edit is not None and isinstance(record.get("request"), dict):
            record["request"] = {**record["request"], **edit_sources(edit, self.args["segmentation_node"])}
        return record

    def _read(self, scene, key: str, node_class: str = "vtkMRMLScalarVolumeNode", hidden: bool = False):
        """A staged file as a new node, checked to lie on the label map's grid."""
        node = read_volume_file(scene, self.workdir / STAGED[key], f"SemanticSynth {key} (temporary)", node_class,
                                hidden)
        if not same_grid_as(node, self.export["ijk_to_ras"], self.export["dimensions"]):
            scene.RemoveNode(node)
            raise SynthError(f"the engine's {key} volume is not on the label map's grid; report this bug")
        return node

    def _import(self):
        a = self.args
        source, output, edit = a["segmentation_node"], a.get("output_node"), a.get("edit")
        scene = source.GetScene()
        record = self._provenance()
        report = self.result.get("report") or {}
        modality = record.get("modality") or a["options"].get("modality") or a["metadata"]["modalities"][0]
        # Everything that can fail first, into new nodes: the scene changes only once all of it has been read.
        created = []
        try:
            created.append(self._read(scene, "out"))
            created.append(self._read(scene, "labels", "vtkMRMLLabelMapVolumeNode", hidden=True))
            if "uncertainty" in (self.result.get("outputs") or {}):
                created.append(self._read(scene, "uncertainty"))
        except BaseException:
            for node in created:
                scene.RemoveNode(node)
            raise
        result, labels, std = (created + [None])[:3]
        if output is None:
            node = result
            base = (regenerated_name(edit["volume"].GetName()) if edit
                    else f"{source.GetName()} synthetic {modality.upper()}")
            node.SetName(scene.GenerateUniqueName(base))
        else:
            node = output
            replace_voxels(node, result)
            scene.RemoveNode(result)
        if node.GetDisplayNode() is None:
            node.CreateDefaultDisplayNodes()
        earlier = set(provenance(node))  # a volume filled again: what an earlier run recorded
        link_output(node, source, record)
        for key, value in report.items():
            node.SetAttribute(ATTRIBUTE_PREFIX + key, as_text(value))
        for key in earlier - set(record) - set(report):  # e.g. an earlier K-sample run's uncertainty
            node.RemoveAttribute(ATTRIBUTE_PREFIX + key)
        if edit is not None and edit["volume"] is not node:
            node.SetNodeReferenceID(EDITED_REFERENCE, edit["volume"].GetID())
        if not (edit is not None and node is output):  # an edit in place keeps the volume's own window
            apply_window_level(node, modality)
        self._keep_labels(node, labels)
        if std is not None:
            self.uncertainty_node = self._keep(node, UNCERTAINTY_REFERENCE, std, f"{node.GetName()} uncertainty")
            self.uncertainty_node.SetAttribute(ATTRIBUTE_PREFIX + "uncertainty_of", node.GetID())
            link_output(self.uncertainty_node, source, record)
            show_as_overlay(self.uncertainty_node)
        per_label = (report.get("uncertainty") or {}).get("per_label")
        if per_label:
            previous = node.GetNodeReference(UNCERTAINTY_TABLE_REFERENCE)
            self.table_node = uncertainty_table(scene, f"{node.GetName()} uncertainty per label", per_label, previous)
            node.SetNodeReferenceID(UNCERTAINTY_TABLE_REFERENCE, self.table_node.GetID())
            link_output(self.table_node, source, record)
        return node

    def _keep(self, node, role: str, fresh, name: str):
        """The node `node` references as `role`, given fresh's voxels; fresh itself (named) where it has none."""
        kept = node.GetNodeReference(role)
        if kept is not None and kept is not fresh:
            replace_voxels(kept, fresh)
            node.GetScene().RemoveNode(fresh)
            return kept
        fresh.SetName(node.GetScene().GenerateUniqueName(name))
        node.SetNodeReferenceID(role, fresh.GetID())
        return fresh

    def _keep_labels(self, node, labels) -> None:
        """The exported label map, hidden, as the output's previous labels for its next region edit: with a storage
        node (NRRD, as Slicer gives label maps), so that it is saved with the scene; removed with the output."""
        kept = self._keep(node, LABELS_REFERENCE, labels, f"{node.GetName()} labels (SemanticSynth)")
        kept.HideFromEditorsOn()
        kept.SetAttribute(ATTRIBUTE_PREFIX + "label_table", self.args["options"].get("label_table") or "")
        kept.SetAttribute(ATTRIBUTE_PREFIX + "labels_of", node.GetID())
        if kept.GetStorageNode() is None:
            kept.AddDefaultStorageNode()
        observe_output_removal(node.GetScene())


# The scene attribute (kept by VTK with the scene's Python object) holding the removal observer's tag
_REMOVAL_OBSERVER = "_semanticsynth_removal_observer"


def observe_output_removal(scene) -> None:
    """Once per scene: when a generated volume is removed (deleted in the Data module, RemoveNode in a script), the
    hidden label map it was made from goes with it, with that map's storage node; its uncertainty volume and table
    are the user's and stay, without the attribute naming the removed volume (its references to them go with it).
    GenerationLogic.start and the Slicer module (at startup) call it; calling it again does nothing."""
    if scene is None or getattr(scene, _REMOVAL_OBSERVER, None) is not None:
        return
    setattr(scene, _REMOVAL_OBSERVER, scene.AddObserver(scene.NodeRemovedEvent, _on_node_removed))


@vtk.calldata_type(vtk.VTK_OBJECT)
def _on_node_removed(scene, _event, node) -> None:
    if node is None or scene.IsClosing():  # a scene being closed removes every node itself
        return
    if node.GetAttribute(ATTRIBUTE_PREFIX + "labels_of") is not None:  # a stored label map (here or by a GUI)
        for i in range(node.GetNumberOfNodeReferences("storage")):
            remove_unshared(scene, scene.GetNodeByID(node.GetNthNodeReferenceID("storage", i) or ""))
        return
    labels_id = node.GetNodeReferenceID(LABELS_REFERENCE)  # the removed node's references are still readable
    if labels_id:
        remove_unshared(scene, scene.GetNodeByID(labels_id))
    std = scene.GetNodeByID(node.GetNodeReferenceID(UNCERTAINTY_REFERENCE) or "")  # the table names no volume
    if std is not None and std.GetAttribute(ATTRIBUTE_PREFIX + "uncertainty_of") == node.GetID():
        std.RemoveAttribute(ATTRIBUTE_PREFIX + "uncertainty_of")


class GenerationLogic:
    """Generate a CT or MRI volume from a segmentation node, on its grid (or a reference volume's), or regenerate
    the edited region of an existing volume."""

    available_models = staticmethod(partial(available_models, "generator"))

    @staticmethod
    def model_info(model: str | None, modality: str | None = None) -> dict:
        """The package's folder, metadata, label table and option defaults (bridge/models.py)."""
        return model_info(model, "generator", modality)

    def start(self, segmentation_node, model: str | None = None, reference_volume_node=None, output_node=None,
              on_progress=None, edit_volume_node=None, previous_labelmap_node=None, region_segment_ids=None,
              **options):
        """Start generating; returns a GenerationJob (for a manifest model not downloaded yet, a job that
        downloads it first).

        Args:
            segmentation_node: the vtkMRMLSegmentationNode whose segments (matched to the model's labels by name
                or terminology) are the label map. Segments named with a lesion term (Mass, Tumor, Cyst, Lesion,
                ...) or of such a terminology type that match no label are new tissue (engine/synthesis/lesions.py).
            model: a model package folder, bundled or manifest name; None: the modality's default.
            reference_volume_node: a volume whose grid the output takes (None: the segmentation's; with an edit,
                the edited volume's, which a reference volume must then share).
            output_node: a volume node to fill (None: a new one); with an edit, edit_volume_node itself edits in
                place.
            on_progress: called with each progress record (a dict) from the engine's thread.
            edit_volume_node: an existing volume (generated here, or a real scan) to regenerate only a region of:
                every voxel further than `margin` mm from the region keeps its value.
            previous_labelmap_node: the label map (a vtkMRMLLabelMapVolumeNode on the volume's grid, in the same
                label ids) edit_volume_node was made from: the region is where the segments now differ from it.
            region_segment_ids: ids of segments of segmentation_node whose voxels are the region. Without either,
                the label map stored with a volume generated here (LABELS_REFERENCE) is the previous one.
            **options: any GenerationRequest field: modality, steps, seed, guidance, temperature, device, phase,
                priors, calibrate, unknown_labels, window, fp32, max_voxels, margin (mm), samples (K: the output
                is their mean); uncertainty: True to also import the samples' per-voxel standard deviation. None
                leaves an option to its default.

        Returns:
            The running job: poll() or wait(); cancel() at any time. A cancelled or failed job changes nothing in
            the scene.
        """
        generation_request(model or "default", **options)  # a bad option fails here, before any export
        observe_output_removal(segmentation_node.GetScene() if segmentation_node is not None else None)
        edit = edit_inputs(segmentation_node, edit_volume_node, previous_labelmap_node, region_segment_ids,
                           reference_volume_node)
        return start_with_model(model, lambda m: self._start(segmentation_node, m, reference_volume_node, output_node,
                                                             on_progress, options, edit), on_progress,
                                options.get("modality"))

    def _start(self, segmentation_node, model, reference_volume_node, output_node, on_progress, options,
               edit=None) -> GenerationJob:
        info = self.model_info(model, options.get("modality"))
        meta = info["metadata"]
        modality = options.get("modality") or meta["modalities"][0]
        if modality not in meta["modalities"]:
            raise SynthError(f"model {info['path'].name} generates {', '.join(meta['modalities'])}, not {modality}")
        unknown = options.get("unknown_labels") or BRIDGE_DEFAULTS["unknown_labels"]

        asked = options.get("label_table") or (edit or {}).get("label_table") or None
        table = segment_vocabulary(segmentation_node, info["labels"], asked)
        options = {**options, "label_table": table.name}
        grid = edit["volume"] if edit else reference_volume_node

        def export(folder: Path) -> dict:
            # inside staged_inputs, so that a refusal here removes the staged folder with the rest
            exported = export_label_map(segmentation_node, table, folder / STAGED["labels"], grid)
            if unknown == "error" and exported["unmatched"]:
                raise SynthError(f"segment(s) {', '.join(exported['unmatched'][:8])} match no label of "
                                 f"{info['path'].name}; rename them to a label of the model, or set unknown labels "
                                 "to background")
            exported["dimensions"] = _dimensions_of(folder / STAGED["labels"])
            exported["staged"] = []
            exported["lesion_priors"] = _stage_lesion_priors(exported["lesions"], options.get("priors"),
                                                             folder / STAGED["priors"])
            if exported["lesion_priors"]:
                exported["staged"].append("priors")
            if edit:
                exported["staged"] += stage_edit(edit, segmentation_node, exported, folder)
            return exported

        workdir, export = staged_inputs(export)
        args = {"segmentation_node": segmentation_node, "model_path": info["path"], "metadata": meta,
                "labels": info["labels"], "options": dict(options), "output_node": output_node, "edit": edit}
        return GenerationJob(args, workdir, export, on_progress).start()

    def generate(self, segmentation_node, **kwargs):
        """Blocking: returns the new (or given) output volume node; raises SynthError with a one-line message."""
        return self.start(segmentation_node, **kwargs).wait()


def _dimensions_of(path: Path) -> tuple:
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    return tuple(reader.GetSize())


def _stage_lesion_priors(lesions: dict, user_priors: str | None, path: Path) -> dict:
    """Lesions the engine cannot tell from their names (a lesion terminology type under another name) as priors
    entries {"<id>": {"lesion": kind}}, written with the user's priors file's entries (which win) to `path`; returns
    those lesion entries. {}, and nothing written, where every lesion is named as one."""
    entries = {str(e["id"]): {"lesion": e["kind"]} for e in lesions.values() if not e["by_name"]}
    if not entries:
        return {}
    given = {}
    if user_priors:
        try:
            given = json.loads(Path(user_priors).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SynthError(f"cannot read priors file {user_priors}: {exc.__class__.__name__}; give a JSON object") from None
        if not isinstance(given, dict):
            raise SynthError(f"priors file {user_priors} is not a JSON object; give {{\"label\": mean, ...}}")
    path.write_text(json.dumps({**entries, **given}, indent=2), encoding="utf-8")
    return entries


def edit_inputs(segmentation_node, edit_volume_node, previous_labelmap_node=None, region_segment_ids=None,
                reference_volume_node=None) -> dict | None:
    """The region edit's nodes, checked before any export: {"volume", "previous" (a label map node) or "region"
    (segment ids), "label_table" (the stored label map's vocabulary)}; None without edit_volume_node. Every refusal
    is one line saying what to do."""
    if edit_volume_node is None:
        if previous_labelmap_node is not None or region_segment_ids:
            raise SynthError("previous labels and region segments choose the region of an edited volume; choose the "
                             "volume to regenerate too")
        return None
    check_source_volume(edit_volume_node)
    name = edit_volume_node.GetName()
    if previous_labelmap_node is not None and region_segment_ids:
        raise SynthError("give either the previous label map or the region segments, not both")
    if reference_volume_node is not None and reference_volume_node is not edit_volume_node:
        image = edit_volume_node.GetImageData()
        if not same_grid_as(reference_volume_node, ijk_to_ras_of(edit_volume_node), image.GetDimensions()):
            raise SynthError(f"the reference volume is not on the grid of {name}; an edit is made on the edited "
                             "volume's grid: clear the reference volume")
    edit = {"volume": edit_volume_node, "previous": None, "region": None, "label_table": None}
    if region_segment_ids:
        segmentation = segmentation_node.GetSegmentation() if segmentation_node is not None else None
        missing = [s for s in region_segment_ids if segmentation is None or segmentation.GetSegment(s) is None]
        if missing:
            raise SynthError(f"region segment(s) {', '.join(missing[:8])} are not in the segmentation; choose "
                             "segments of it")
        edit["region"] = list(region_segment_ids)
        return edit
    previous = previous_labelmap_node
    if previous is None:
        previous = edit_volume_node.GetNodeReference(LABELS_REFERENCE)
        if previous is None or previous.GetImageData() is None:
            raise SynthError(f"{name} was not generated here, so the labels it was made from are unknown; choose the "
                             "segment(s) of the region to regenerate")
        edit["label_table"] = previous.GetAttribute(ATTRIBUTE_PREFIX + "label_table") or None
    elif previous.GetImageData() is None:
        raise SynthError(f"the previous label map {previous.GetName()} has no voxels; choose another or region segments")
    image = edit_volume_node.GetImageData()
    if not same_grid_as(previous, ijk_to_ras_of(edit_volume_node), image.GetDimensions()):
        raise SynthError(f"the label map {name} was made from is not on its grid (was it resampled?); choose the "
                         "segment(s) of the region to regenerate")
    edit["previous"] = previous
    return edit


def edit_sources(edit: dict, segmentation_node) -> dict:
    """What an edit's request names, as the scene knows it: the edited volume's node name, and the previous label
    map's node name or the region's segment names, in place of the job's temporary files (gone after the run)."""
    sources = {"edit": edit["volume"].GetName()}
    if edit.get("region"):
        segments = [segmentation_node.GetSegmentation().GetSegment(i) for i in edit["region"]]
        # a segment removed while the job ran is named by its id
        sources["region"] = [s.GetName() if s is not None else i for s, i in zip(segments, edit["region"])]
    elif edit.get("previous") is not None:
        sources["previous_labels"] = edit["previous"].GetName()
    return sources


def stage_edit(edit: dict, segmentation_node, exported: dict, folder: Path) -> list:
    """Write the edited volume and the previous label map (or the region's mask) beside the label map; the request
    fields they fill."""
    volume = edit["volume"]
    if not same_grid_as(volume, exported["ijk_to_ras"], exported["dimensions"]):
        raise SynthError(f"the label map was not exported on the grid of {volume.GetName()}; report this bug")
    export_volume(volume, folder / STAGED["edit"])
    if edit["region"]:
        export_segment_mask(segmentation_node, edit["region"], folder / STAGED["region"], volume)
        return ["edit", "region"]
    export_volume(edit["previous"], folder / STAGED["previous_labels"])
    return ["edit", "previous_labels"]
