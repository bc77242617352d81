"""The trame-slicer page: Slicer's four-up layout, the module's workflow, driven through the bridge only.

Every scene change goes through SemanticSynthLib.bridge (scene, generate_logic, translate_logic), the same code the
Slicer module runs; the field's overlay through web.field_overlay (the engine's magnitude, the bridge's files).
Engine work is the same child process (`python -m SemanticSynthLib ... --progress json`), polled from the server's
event loop as the module polls it from a QTimer.
"""
from __future__ import annotations

import asyncio
import atexit
import io
import json
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import slicer
from trame.app import TrameApp, asynchronous
from trame.widgets import client, html
from trame_slicer.core import LayoutManager, SlicerApp
from trame_slicer.rca_view import register_rca_factories
from trame_slicer.views import Layout, LayoutDirection, ViewLayoutDefinition
from trame_vuetify.ui.vuetify3 import SinglePageLayout
from trame_vuetify.widgets import vuetify3 as v3

from ..errors import SynthError
from ..bridge.generate_logic import (DEVICE_TITLES, LABELS_REFERENCE, TRAINING_DATA_PHASE, UNCERTAINTY_REFERENCE,
                                     UNCERTAINTY_TABLE_REFERENCE, GenerationLogic, gui_options, model_hints,
                                     option_choices)
from ..bridge.process import LIBRARY_ROOT
from ..bridge.scene import (apply_window_level, export_transform, export_volume, ijk_to_ras_of, load_label_map,
                            load_volume, match_segments, provenance, unused_segments)
from ..bridge.translate_logic import TranslationLogic, carry_segmentation
from ..engine.volume.modalities import DEFAULT_MODALITY, MODALITIES
from .field_overlay import OPACITY as FIELD_OPACITY
from .field_overlay import legend_gradient, magnitude_volume, uncertainty_overlay

SAMPLES_DIR = Path(LIBRARY_ROOT) / "SemanticSynth" / "Resources" / "Samples"
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
POLL_S = 0.25
MAX_PRIORS_BYTES = 1024 * 1024  # a priors file is a small JSON object of label -> mean
DEFAULT_MARGIN_MM = "6"  # the engine's (generate --margin), as the page's text field holds it
DEFAULT_SAMPLES = "3"  # the Uncertainty button's K
# what a generated volume references that is its alone (bridge.generate_logic): removed with it
OUTPUT_REFERENCES = (LABELS_REFERENCE, UNCERTAINTY_REFERENCE, UNCERTAINTY_TABLE_REFERENCE)
UNITS = {"ct": "HU"}  # the std's units in the legend; MRI volumes are in scanner units, named by none


def four_up_layout() -> Layout:
    """Slicer's Four-Up: axial (red) and 3D on top, sagittal (yellow) and coronal (green) below."""
    return Layout(LayoutDirection.Vertical, [
        Layout(LayoutDirection.Horizontal, [ViewLayoutDefinition.axial_view(), ViewLayoutDefinition.threed_view()]),
        Layout(LayoutDirection.Horizontal, [ViewLayoutDefinition.sagittal_view(), ViewLayoutDefinition.coronal_view()]),
    ])


def bundled_samples() -> dict[str, Path]:
    if not SAMPLES_DIR.is_dir():
        return {}
    return {p.name: p for p in sorted(SAMPLES_DIR.iterdir()) if p.name.endswith(IMAGE_SUFFIXES)}


def _safe_upload_name(name: str) -> str:
    """The uploaded file's base name with only safe characters; its image suffix is kept (the reader needs it)."""
    base = Path(str(name)).name
    suffix = next((s for s in IMAGE_SUFFIXES if base.lower().endswith(s)), "")
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", base[: len(base) - len(suffix)])[:80] or "upload"
    return stem + suffix


def uncertainty_rows(report: dict | None) -> list[dict]:
    """The engine's per-label spread (report["uncertainty"]["per_label"]: id -> name, voxels, std, boundary_std,
    interior_std) as the page's table rows, the most uncertain label first; [] without one."""
    per_label = ((report or {}).get("uncertainty") or {}).get("per_label") or {}
    rows = [{"id": str(label), "name": str(entry.get("name", label)), "voxels": int(entry.get("voxels", 0)),
             "std": f"{float(entry['std']):.1f}",
             "boundary": f"{float(entry['boundary_std']):.1f}" if "boundary_std" in entry else "",
             "interior": f"{float(entry['interior_std']):.1f}" if "interior_std" in entry else "",
             "_order": -float(entry["std"])}
            for label, entry in per_label.items() if isinstance(entry, dict) and "std" in entry]
    rows.sort(key=lambda row: (row["_order"], row["id"]))
    return [{k: v for k, v in row.items() if k != "_order"} for row in rows]


def _label(name: str) -> str:
    for s in IMAGE_SUFFIXES:
        if name.lower().endswith(s):
            return name[: -len(s)]
    return name


class SemanticSynthWebApp(TrameApp):
    def __init__(self, server=None, max_upload_mb: float = 512, device: str | None = None):
        super().__init__(server=server, client_type="vue3")
        self.max_upload_bytes = int(max_upload_mb * 1024 * 1024)
        self.device = device
        self.slicer_app = SlicerApp()
        self.scene = self.slicer_app.scene
        slicer.mrmlScene = self.scene  # the bridge's helpers (slicer.util) look here
        register_rca_factories(self.slicer_app.view_manager, self.server)
        self.layout_manager = LayoutManager(self.scene, self.slicer_app.view_manager, self.server)
        self.layout_manager.register_layout("Four-Up", four_up_layout())
        self.layout_manager.set_layout("Four-Up")

        self.generation = GenerationLogic()
        self.translation = TranslationLogic()
        self.segmentation = self.labelmap = self.generated = None
        self.source_volume = self.translated = self.field = self.field_magnitude = self.carried = None
        # an edited label map waiting to be regenerated (same grid as the map the output was made from), the output
        # before the last regeneration, and the std of the last K-sample run (of the output shown as Generated)
        self.edited_segmentation = self.edited_labelmap = self.before_edit = self.uncertainty = None
        self.job = None
        self.job_kind = ""
        self.job_source = None  # the segmentation the running generation was started from
        self._sample_note = ""  # "sample 2 of 3 (seed 1)": the engine's last such message, from its reader thread
        # The priors file is uploaded, not named by a path: the page never names files on the server (label maps and
        # volumes are uploaded too), the server may be reached from another machine through a tunnel, and a path
        # field would let the page make the server read any file it can. The upload stays here until replaced.
        self.priors_path: Path | None = None
        self._priors_dir = Path(tempfile.mkdtemp(prefix="semanticsynth-priors-"))
        atexit.register(shutil.rmtree, self._priors_dir, ignore_errors=True)
        self._init_state()
        self._build_ui()

    # ---------------------------------------------------------------- state
    def _init_state(self):
        s = self.state
        models = self.generation.available_models()
        s.models = models
        s.model = "abdomen-ct" if "abdomen-ct" in models else (models[0] if models else None)
        # the default model's modality (abdomen-ct: ct); _on_model follows the model chosen later
        s.modality = next((m.name for m in MODALITIES.values() if m.default_generator == s.model), DEFAULT_MODALITY)
        s.modality_items = [{"title": m.display_name, "value": m.name} for m in MODALITIES.values()]
        s.steps = ""
        s.seed = 0
        s.samples = list(bundled_samples())
        s.sample = s.samples[0] if s.samples else None
        s.translators = self.translation.available_models()
        s.translator_model = s.translators[0] if s.translators else None  # not "translator": trame's State has one
        s.deform = True
        s.max_upload_bytes = self.max_upload_bytes
        s.max_upload_mb = round(self.max_upload_bytes / 2 ** 20, 1)
        s.message = ""
        s.notice = ""
        s.status = "Load a label map or a sample"
        s.progress = 0
        s.running = False
        s.source_name = ""
        s.view_mode = "labels"
        s.view_modes = []
        s.scene_nodes = []
        s.has_generated = False
        s.has_translation = False
        s.show_field = True
        s.field_max_mm = ""
        s.field_legend = ""
        # Edit and uncertainty
        s.edited_name = ""
        s.has_edit = False  # an edited map and an output to regenerate it into
        s.margin = DEFAULT_MARGIN_MM
        s.uncertainty_samples = DEFAULT_SAMPLES
        s.uncertainty_of_edit = False
        s.show_uncertainty = True
        s.uncertainty_max = ""
        s.uncertainty_units = ""
        s.uncertainty_legend = ""
        s.uncertainty_table = []
        # Advanced: every other option of `semanticsynth generate`; the model's own values as hints
        s.phase = TRAINING_DATA_PHASE
        s.temperature = ""
        s.guidance = ""
        s.calibrate = True
        s.texture = True
        s.unknown_labels = option_choices("unknown_labels")[0]  # the bridge's default (background) first
        s.unknown_label_items = option_choices("unknown_labels")
        s.device = "auto"
        s.device_items = [{"title": f"server's ({self.device})" if d == "auto" and self.device else DEVICE_TITLES.get(d, d),
                           "value": d} for d in option_choices("device")]
        s.priors_name = ""
        s.report = ""
        self._show_model_defaults()
        self.state.change("model")(self._on_model)
        self.state.change("modality")(lambda **_: self._show_model_defaults())
        self.state.change("view_mode")(self._on_view_mode)
        self.state.change("show_field", "show_uncertainty")(lambda **_: self._on_view_mode(self.state.view_mode))

    def _on_model(self, model, **_):
        try:
            modalities = self.generation.model_info(model)["metadata"]["modalities"]
        except SynthError as exc:
            self.state.message = str(exc)
            return
        if self.state.modality not in modalities:
            self.state.modality = modalities[0]
        self._report_unmatched()
        self._show_model_defaults()

    def _show_model_defaults(self):
        """The model's own value of each option left to it, as the fields' hints ("model's: 0.5") and the phase's
        first item; the phase only for a modality with phases (CT), the guidance only for a model trained for it."""
        s, hints = self.state, model_hints(self.state.model, self.state.modality)
        s.steps_hint, s.temperature_hint, s.guidance_hint = hints["steps"], hints["temperature"], hints["guidance"]
        s.guidance_enabled, s.phase_enabled = hints["guidance_enabled"], bool(hints["phases"])
        s.phase_items = [{"title": f"training data's ({hints['training_phase'] or 'per label'})",
                          "value": TRAINING_DATA_PHASE}] + [{"title": name, "value": name} for name in hints["phases"]]
        if s.phase not in hints["phases"]:
            s.phase = TRAINING_DATA_PHASE

    def _refresh_scene_list(self):
        names = []
        for cls in ("vtkMRMLScalarVolumeNode", "vtkMRMLSegmentationNode", "vtkMRMLGridTransformNode"):
            nodes = self.scene.GetNodesByClass(cls)
            for i in range(nodes.GetNumberOfItems()):
                node = nodes.GetItemAsObject(i)
                if node.IsA("vtkMRMLScalarVolumeNode") and node.IsA("vtkMRMLLabelMapVolumeNode"):
                    continue
                names.append(node.GetName())
        self.state.scene_nodes = names
        modes = []
        if self.labelmap is not None:
            modes.append({"title": "Labels", "value": "labels"})
        if self.edited_labelmap is not None:
            modes.append({"title": "Edited labels", "value": "edited"})
        if self.generated is not None:
            modes.append({"title": "Generated", "value": "generated"})
        if self.before_edit is not None:
            modes.append({"title": "Before edit", "value": "before"})
        if self.source_volume is not None:
            modes.append({"title": "Source volume", "value": "source"})
        if self.translated is not None:
            modes.append({"title": "Translated", "value": "translated"})
        self.state.view_modes = modes
        self.state.has_generated = self.generated is not None
        self.state.has_translation = self.translated is not None
        self.state.has_edit = self.generated is not None and self.edited_segmentation is not None
        if not self.state.has_edit:
            self.state.uncertainty_of_edit = False

    # ---------------------------------------------------------------- display
    def _slice_views(self):
        return self.slicer_app.view_manager.get_slice_views()

    def _on_view_mode(self, view_mode, **_):
        background = {"labels": self.labelmap, "edited": self.edited_labelmap, "generated": self.generated,
                      "before": self.before_edit, "source": self.source_volume, "translated": self.translated}.get(view_mode)
        if background is None:
            return
        # the field's magnitude (mm) as a colour layer over the translated volume, the samples' std over the
        # generated one, when asked for
        overlay = None
        if view_mode == "translated" and self.state.show_field:
            overlay = self.field_magnitude
        elif view_mode == "generated" and self.state.show_uncertainty:
            overlay = self.uncertainty
        for view in self._slice_views():
            view.set_background_volume_id(background.GetID())
            view.set_foreground_volume_id(overlay.GetID() if overlay is not None else None)
            view.set_foreground_opacity(FIELD_OPACITY)
            view.set_visible_in_3d(True)
        segmentation = (self.carried if view_mode == "translated" and self.carried else
                        self.edited_segmentation if view_mode == "edited" else self.segmentation)
        for node in (self.segmentation, self.carried, self.edited_segmentation):
            display = node.GetDisplayNode() if node is not None else None
            if display is not None:
                display.SetVisibility(node is segmentation and view_mode != "source")
                display.SetVisibility2DFill(False)
                display.SetVisibility2DOutline(True)
        self._render()

    def _render(self, reset: bool = False):
        for view in self.slicer_app.view_manager.get_views():
            if reset:
                view.reset_view()
            view.schedule_render()

    def _show(self, mode: str, reset: bool = False):
        if self.state.view_mode == mode:
            self._on_view_mode(mode)
        else:
            self.state.view_mode = mode  # the change handler shows it
            self._on_view_mode(mode)
        self._render(reset)

    # ---------------------------------------------------------------- loading
    def _remove(self, *nodes):
        """Nodes and their display nodes (the scene keeps a removed node's display nodes: the std's colour legend)."""
        for node in nodes:
            if node is not None and self.scene.IsNodePresent(node):
                displays = [node.GetNthDisplayNode(i) for i in range(node.GetNumberOfDisplayNodes())] \
                    if node.IsA("vtkMRMLDisplayableNode") else []
                self.scene.RemoveNode(node)
                for display in displays:
                    if display is not None and self.scene.IsNodePresent(display):
                        self.scene.RemoveNode(display)

    def _remove_output(self, *volumes):
        """Generated volumes with what belongs to them alone: the hidden label map each was made from, its std
        and per-label table (the bridge's node references)."""
        for volume in volumes:
            if volume is None or not self.scene.IsNodePresent(volume):
                continue
            owned = [volume.GetNodeReference(role) for role in OUTPUT_REFERENCES]
            self._remove(volume, *owned)

    def _load_labels_file(self, path: Path, name: str):
        segmentation, labelmap = load_label_map(self.scene, path, name)
        try:
            matched = self._unmatched_for(segmentation)
        except BaseException:
            self._remove(segmentation, labelmap)
            raise
        if matched is not None and not matched[0]:
            self._remove(segmentation, labelmap)
            raise SynthError(f"no label of {name} is known to model {self.state.model} "
                             f"(unknown: {', '.join(matched[1][:8])}); choose another model or label map")
        # the new source replaces the old one and everything made from it
        self._remove(self.segmentation, self.labelmap, self.carried)
        self._remove_output(self.generated)
        self._clear_edit_and_uncertainty()
        self.segmentation, self.labelmap, self.generated, self.carried = segmentation, labelmap, None, None
        self.state.source_name = name
        self.state.message = self.state.report = ""
        self.state.status = f"Loaded {name}: {segmentation.GetSegmentation().GetNumberOfSegments()} segments"
        self._report_unmatched()
        self._refresh_scene_list()
        self._show("labels", reset=True)

    def _clear_edit_and_uncertainty(self, edited: bool = True):
        """Drop what belongs to the current output: the std and the output before the last edit; and (edited) the
        edited map waiting to be regenerated."""
        self._remove(self.uncertainty)
        self._remove_output(self.before_edit)
        self.uncertainty = self.before_edit = None
        self.state.uncertainty_max = self.state.uncertainty_legend = ""
        self.state.uncertainty_table = []
        if edited:
            self._remove(self.edited_segmentation, self.edited_labelmap)
            self.edited_segmentation = self.edited_labelmap = None
            self.state.edited_name = ""

    def _load_edited_file(self, path: Path, name: str):
        """An edited label map: on the grid of the current map (the one the output is made from), with some voxel
        changed; it waits beside the source until Regenerate edited region (or Uncertainty of the edit) uses it."""
        if self.labelmap is None:
            raise SynthError("load the label map the output is generated from first, then its edited copy")
        segmentation, labelmap = load_label_map(self.scene, path, name)
        try:
            self._check_edit(labelmap, name)
            matched = self._unmatched_for(segmentation)
            if matched is not None and not matched[0]:
                raise SynthError(f"no label of {name} is known to model {self.state.model}; upload an edited copy of "
                                 f"{self.state.source_name}")
        except BaseException:
            self._remove(segmentation, labelmap)
            raise
        self._remove(self.edited_segmentation, self.edited_labelmap)
        self.edited_segmentation, self.edited_labelmap = segmentation, labelmap
        self.state.edited_name = name
        self.state.message = ""
        self.state.status = (f"Loaded edited map {name}: {self._changed_voxels(labelmap)} voxels differ from "
                             f"{self.state.source_name}")
        self._refresh_scene_list()
        self._show("edited", reset=True)  # fitted to the map (another volume may have been shown since)
        self._jump_to_change(labelmap)
        self._render()

    def _jump_to_change(self, labelmap):
        """Move the slice views (each along its own axis) to the changed voxel nearest the change's centre, so that
        the edit, and later its regenerated region and spread, are in view."""
        changed = np.argwhere(slicer.util.arrayFromVolume(labelmap) != slicer.util.arrayFromVolume(self.labelmap))
        if not len(changed):
            return
        k, j, i = changed[np.argmin(((changed - changed.mean(axis=0)) ** 2).sum(axis=1))]
        r, a, s_ = (ijk_to_ras_of(labelmap) @ np.array([i, j, k, 1.0]))[:3]
        nodes = self.scene.GetNodesByClass("vtkMRMLSliceNode")
        for index in range(nodes.GetNumberOfItems()):
            nodes.GetItemAsObject(index).JumpSliceByOffsetting(float(r), float(a), float(s_))

    def _check_edit(self, labelmap, name: str):
        """The edited map on the current map's grid (size and IJK-to-RAS), and not equal to it."""
        size, current = labelmap.GetImageData().GetDimensions(), self.labelmap.GetImageData().GetDimensions()
        same = size == current and np.allclose(ijk_to_ras_of(labelmap), ijk_to_ras_of(self.labelmap), atol=1e-4)
        if not same:
            raise SynthError(f"{name} is not on the grid of {self.state.source_name} (size {size} against {current}, "
                             "or another spacing, origin or direction); an edited map keeps the original's grid")
        if not self._changed_voxels(labelmap):
            raise SynthError(f"{name} equals {self.state.source_name}: no voxel changed, nothing to regenerate")

    def _changed_voxels(self, labelmap) -> int:
        return int(np.count_nonzero(slicer.util.arrayFromVolume(labelmap) != slicer.util.arrayFromVolume(self.labelmap)))

    def _unmatched_for(self, segmentation):
        if not self.state.model:
            return None
        return match_segments(segmentation, self._model_labels())

    def _model_labels(self):
        return self.generation.model_info(self.state.model, self.state.modality)["labels"]

    def _report_unmatched(self):
        if self.segmentation is None:
            self.state.notice = ""
            return
        try:
            # lesion segments (Tumor, Mass, Cyst, Lesion) match no label but are generated as new tissue
            unmatched = (unused_segments(self.segmentation, self._model_labels()) if self.state.model else [])
        except SynthError as exc:
            self.state.message = str(exc)
            return
        self.state.notice = (f"Not used (unknown to the model): {', '.join(unmatched[:12])}"
                             + (f" and {len(unmatched) - 12} more" if len(unmatched) > 12 else "")) if unmatched else ""

    def upload_priors(self, files):
        """The Advanced panel's priors file: a JSON object, kept on the server for the next generations (the engine
        checks its labels and values against the model when a generation starts)."""
        if self._busy() or not files:
            return
        file = files[0] if isinstance(files, list) else files
        name, content = str(file.get("name") or "priors.json"), file.get("content")
        if isinstance(content, list):
            content = b"".join(bytes(c) for c in content)
        content = bytes(content or b"")
        if len(content) > MAX_PRIORS_BYTES:
            self.state.message = f"{name} is {len(content) / 2 ** 20:.1f} MB: a priors file is a small JSON of label -> mean"
            return
        try:
            data = json.loads(content.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self.state.message = f"cannot read {name}: {exc.__class__.__name__}; give a JSON object of label -> mean"
            return
        if not isinstance(data, dict) or not data:
            self.state.message = f"{name} must be a JSON object of label id or name -> mean, with at least one label"
            return
        path = self._priors_dir / "priors.json"
        path.write_bytes(content)
        self.priors_path, self.state.priors_name, self.state.message = path, Path(name).name, ""

    def clear_priors(self):
        if self.priors_path is not None:
            self.priors_path.unlink(missing_ok=True)
        self.priors_path, self.state.priors_name = None, ""

    def load_sample(self):
        if self._busy():
            return
        samples = bundled_samples()
        path = samples.get(self.state.sample)
        if path is None:
            self.state.message = "choose one of the bundled samples"
            return
        try:
            self._load_labels_file(path, _label(path.name))
        except SynthError as exc:
            self.state.message = str(exc)

    def _write_upload(self, files) -> tuple[Path, str] | None:
        """The uploaded file in a new temporary folder; None (and a message) when it is refused."""
        if not files:
            return None
        file = files[0] if isinstance(files, list) else files
        name = str(file.get("name") or "upload")
        content = file.get("content")
        size = int(file.get("size") or (len(content) if content is not None else 0))
        if size > self.max_upload_bytes or (content is not None and len(content) > self.max_upload_bytes):
            self.state.message = (f"{name} is {size / 2 ** 20:.1f} MB, over the upload limit of "
                                  f"{self.max_upload_bytes / 2 ** 20:.1f} MB (serve --max-upload-mb)")
            return None
        if isinstance(content, list):  # chunked upload from the client
            content = b"".join(bytes(c) for c in content)
        if not content:
            self.state.message = f"cannot read {name}: the upload is empty"
            return None
        if not name.lower().endswith(IMAGE_SUFFIXES):
            self.state.message = f"cannot read {name}: upload a NIfTI (.nii, .nii.gz), NRRD (.nrrd) or MHA (.mha) file"
            return None
        folder = Path(tempfile.mkdtemp(prefix="SemanticSynth-upload-"))
        path = folder / _safe_upload_name(name)
        path.write_bytes(bytes(content))
        return path, _label(Path(name).name)

    def upload(self, files, kind: str):
        """Both file inputs: the upload is size-checked and written, loaded by the loader of its kind, then deleted."""
        if self._busy():
            return
        load = {"labels": self._load_labels_file, "volume": self._load_volume_file,
                "edited": self._load_edited_file}.get(kind)
        if load is None:
            self.state.message = f"unknown upload kind {kind}"
            return
        written = self._write_upload(files)
        if written is None:
            return
        path, name = written
        try:
            load(path, name)
        except SynthError as exc:
            self.state.message = str(exc)
        finally:
            shutil.rmtree(path.parent, ignore_errors=True)

    def _load_volume_file(self, path: Path, name: str):
        volume = load_volume(self.scene, path, name)
        self._remove(self.source_volume, self.translated, self.field, self.field_magnitude, self.carried)
        self.source_volume, self.translated, self.field, self.field_magnitude, self.carried = volume, None, None, None, None
        apply_window_level(volume, None)  # modality unknown: the volume's own percentiles
        self.state.field_max_mm = self.state.field_legend = ""
        self.state.message = ""
        self.state.status = f"Loaded volume {name}"
        self._refresh_scene_list()
        self._show("source", reset=True)

    # ---------------------------------------------------------------- jobs
    def _busy(self) -> bool:
        if self.job is not None:
            self.state.message = "a job is running; wait for it or cancel it first"
            return True
        return False

    def _steps(self) -> int | None:
        text = str(self.state.steps or "").strip()
        if not text:
            return None
        if not text.isdigit() or not 1 <= int(text) <= 1000:
            raise SynthError(f"steps must be a whole number from 1 to 1000 (got {text})")
        return int(text)

    def _seed(self) -> int:
        text = str(self.state.seed if self.state.seed is not None else "0").strip()
        if not text.isdigit() or int(text) >= 2 ** 63:
            raise SynthError(f"seed must be a whole number from 0 to 2^63-1 (got {text})")
        return int(text)

    def _margin(self) -> float:
        text = str(self.state.margin if self.state.margin is not None else "").strip() or DEFAULT_MARGIN_MM
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not 0 <= value <= 200:
            raise SynthError(f"margin must be a distance in mm from 0 to 200 (got {text})")
        return value

    def _samples(self) -> int:
        text = str(self.state.uncertainty_samples if self.state.uncertainty_samples is not None else "").strip()
        if not text.isdigit() or not 2 <= int(text) <= 64:
            raise SynthError(f"samples must be a whole number from 2 to 64 (a spread needs several samples; got {text})")
        return int(text)

    def _generation(self, segmentation, **extra):
        """GenerationLogic.start with the page's model, modality, steps, seed and Advanced options (and `extra`);
        the engine's progress messages ("sample 2 of 3") are kept for the status."""
        self._sample_note = ""
        return self.generation.start(segmentation, model=self.state.model, modality=self.state.modality,
                                     steps=self._steps(), seed=self._seed(), on_progress=self._engine_record,
                                     **extra, **self._advanced())

    def _engine_record(self, record: dict):
        """From the job's reader thread: only a string is stored (read by _watch on the event loop)."""
        message = str(record.get("message") or "")
        if message.startswith("sample "):
            self._sample_note = message

    def _edit_options(self) -> dict:
        """The bridge's options of a region regeneration: the output shown as Generated is the existing volume, the
        region is where the edited map differs from the map that output was made from, blended over the margin."""
        return {"edit_volume_node": self.generated, "margin": self._margin()}

    def generate(self):
        self._start("generate", self.segmentation, "load a label map or a sample first",
                    lambda: self._generation(self.segmentation))

    def regenerate_edit(self):
        """Regenerate only where the edited map differs from the one the current output was made from."""
        if self.generated is None:
            self.state.message = "generate a volume first; its edited region is then regenerated into it"
            return
        self._start("edit", self.edited_segmentation, "upload an edited copy of the label map first",
                    lambda: self._generation(self.edited_segmentation, **self._edit_options()),
                    source=self.edited_segmentation)

    def run_uncertainty(self):
        """K samples (seeds seed..seed+K-1): their mean becomes the output, their per-voxel std its overlay. Of the
        whole map, or (uncertainty_of_edit) of the edited region only: then the std is 0 outside region and margin."""
        if self.state.uncertainty_of_edit:
            if self.generated is None or self.edited_segmentation is None:
                self.state.message = "upload an edited label map (and generate the volume it edits) first"
                return
            self._start("edit", self.edited_segmentation, "",
                        lambda: self._generation(self.edited_segmentation, samples=self._samples(), uncertainty=True,
                                                 **self._edit_options()), source=self.edited_segmentation)
        else:
            self._start("generate", self.segmentation, "load a label map or a sample first",
                        lambda: self._generation(self.segmentation, samples=self._samples(), uncertainty=True))

    def _advanced(self) -> dict:
        """The Advanced panel as request options: empty fields are the model's; "auto" is serve's --device."""
        keys = ("modality", "phase", "temperature", "guidance", "calibrate", "texture", "unknown_labels", "device")
        values = {**{k: self.state[k] for k in keys}, "priors": str(self.priors_path) if self.priors_path else None}
        return gui_options(values, auto_device=self.device)

    def translate(self):
        self._start("translate", self.source_volume, "load a volume to translate first",
                    lambda: self.translation.start(self.source_volume, model=self.state.translator_model,
                                                   steps=self._steps(), seed=self._seed(),
                                                   deform=bool(self.state.deform), device=self.device))

    def _start(self, kind: str, needed, missing: str, start, source=None):
        """One job per click: refused while another runs, without its input, or when the bridge refuses it."""
        if self._busy():
            return
        if needed is None:
            self.state.message = missing
            return
        try:
            job = start()
        except SynthError as exc:
            self.state.message = str(exc)
            return
        self.job_source = source if source is not None else self.segmentation
        self._run(job, kind)

    def _run(self, job, kind: str):
        self.job, self.job_kind = job, kind
        self.state.message = self.state.report = ""
        self.state.running = True
        self.state.progress = 0
        self.state.status = "Starting the engine..."
        asynchronous.create_task(self._watch(job))

    async def _watch(self, job):
        while True:
            try:
                done = job.poll()  # imports the result once the engine has finished
            except Exception as exc:  # a bug past the engine: the page says so and is free for the next job
                with self.state:
                    self._crashed(job, exc)
                return
            if done:
                break
            record = job.last_progress or {}
            with self.state:
                if record.get("stage"):  # a message record ("sample 2 of 3") leaves the last stage shown
                    fraction = float(record.get("fraction") or 0)
                    sample = re.match(r"sample (\d+) of (\d+)", self._sample_note) if self.job_kind != "translate" else None
                    prefix = ""
                    if sample:  # K samples: the bar covers all of them
                        k, count = int(sample.group(1)), int(sample.group(2))
                        fraction, prefix = (k - 1 + fraction) / count, f"Sample {k} of {count}: "
                    self.state.progress = round(100 * fraction, 1)
                    eta = record.get("eta_s")
                    step = f" {record.get('step')}/{record.get('total')}" if record.get("total") else ""
                    self.state.status = (f"{prefix}{str(record.get('stage', 'working')).capitalize()}{step}"
                                         + (f", about {eta:.0f} s left" if isinstance(eta, (int, float)) else ""))
            await asyncio.sleep(POLL_S)
        with self.state:
            try:
                self._finished(job)
            except Exception as exc:
                self._crashed(job, exc)

    def _crashed(self, job, exc: Exception):
        """An unexpected error while taking a finished job's result: one line in the page, nothing running."""
        import logging

        logging.getLogger(__name__).exception("taking the result of a %s job failed", self.job_kind or "finished")
        self.job, self.job_kind, self.job_source = None, "", None
        self.state.running = False
        self.state.progress = 0
        self.state.status = "Failed"
        self.state.message = f"the result could not be shown ({exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); see the server's log"
        self._refresh_scene_list()

    def _finished(self, job):
        kind = self.job_kind
        self.job, self.job_kind = None, ""
        self.state.running = False
        if job.error:
            self.job_source = None
            self.state.progress = 0
            if job.error == "cancelled":
                self.state.status = "Cancelled; nothing was added"
            else:
                self.state.status = "Failed"
                self.state.message = job.error
            self._refresh_scene_list()
            return
        self.state.progress = 100
        if kind in ("generate", "edit"):
            self._generated(job, edit=kind == "edit")
        else:
            self._remove(self.translated, self.field, self.field_magnitude, self.carried)
            self.translated, self.field = job.result_node
            self.field_magnitude = self.carried = None
            self._add_field_magnitude()
            self.state.status = f"Translated {self.translated.GetName()}"
            self._refresh_scene_list()
            self._show("translated")

    def _generated(self, job, edit: bool):
        """A finished generation: its volume becomes the output (Generated). A regeneration keeps the output it
        changed as "Before edit", and its edited map becomes the source; a K-sample run adds its std overlay."""
        previous = self.generated
        self._clear_edit_and_uncertainty(edited=False)
        if edit:
            self.before_edit = previous
            if self.job_source is self.edited_segmentation:  # the edited map is now the one the output is made from
                self._remove(self.segmentation, self.labelmap)
                self.segmentation, self.labelmap = self.edited_segmentation, self.edited_labelmap
                self.edited_segmentation = self.edited_labelmap = None
                self.state.source_name, self.state.edited_name = self.state.edited_name, ""
        else:
            self._remove_output(previous)
        self.generated = job.result_node
        self.job_source = None
        self._add_uncertainty(job)
        verb = "Regenerated the edited region of" if edit else "Generated"
        count = self._result_samples(job)
        self.state.status = f"{verb} {self.generated.GetName()}" + (f" (mean of {count} samples)" if count > 1 else "")
        # what the run reported: the calibration check's flags and the labels unseen in training
        self.state.report = "\n".join(getattr(job, "notes", list)())
        self._refresh_scene_list()
        self._show("generated")

    @staticmethod
    def _result_samples(job) -> int:
        return int(((getattr(job, "result", None) or {}).get("report", {}).get("uncertainty") or {}).get("samples") or 0)

    def _uncertainty_node(self, job):
        """The std volume the bridge imported for a K-sample run (None for one sample)."""
        return getattr(job, "uncertainty_node", None)

    def _add_uncertainty(self, job):
        """The std of a K-sample run as the overlay of the output, its range as the legend, and the engine's per-label
        spread as the table."""
        node = self._uncertainty_node(job)
        report = (getattr(job, "result", None) or {}).get("report")
        self.state.uncertainty_table = uncertainty_rows(report)
        if node is None:
            return
        self.uncertainty = node
        largest = uncertainty_overlay(node)
        modality = (provenance(self.generated).get("modality") or self.state.modality or "").lower()
        self.state.uncertainty_units = UNITS.get(modality, "")
        self.state.uncertainty_max = f"{largest:.1f}"
        self.state.uncertainty_legend = legend_gradient(node)
        self.state.show_uncertainty = True

    def _add_field_magnitude(self):
        """The overlay of the new field; without it the translation is still shown, with the reason in the page."""
        self.state.field_max_mm = self.state.field_legend = ""
        try:
            self.field_magnitude, largest = magnitude_volume(self.field)
        except SynthError as exc:
            self.state.message = f"the displacement field cannot be shown: {exc}"
            return
        self.state.field_max_mm = f"{largest:.1f}"
        self.state.field_legend = legend_gradient(self.field_magnitude)

    def cancel(self):
        job = self.job
        if job is None:
            return
        self.state.status = "Cancelling..."
        job.cancel()  # ends the child and its whole tree; _watch reports it

    def carry(self):
        if self._busy():
            return
        try:
            clone = carry_segmentation(self.segmentation, self.field)
        except SynthError as exc:
            self.state.message = str(exc)
            return
        self._remove(self.carried)
        self.carried = clone
        self.state.message = ""
        self.state.status = f"Carried {self.segmentation.GetName()} through the field"
        self._refresh_scene_list()
        self._show("translated")

    # ---------------------------------------------------------------- downloads
    def _zip(self, files: dict[str, Path], meta: dict) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for arcname, path in files.items():
                archive.write(path, arcname)
            archive.writestr("provenance.json", json.dumps(meta, indent=2))
        return buffer.getvalue()

    def download_generated(self):
        if self.generated is None:
            self.state.message = "nothing generated yet"
            return None
        with tempfile.TemporaryDirectory(prefix="SemanticSynth-download-") as tmp:
            files = {"generated.nrrd": Path(tmp) / "generated.nrrd"}
            export_volume(self.generated, files["generated.nrrd"])
            meta = {"volume": self.generated.GetName(), "source": self.segmentation.GetName() if self.segmentation else None,
                    **provenance(self.generated)}
            if self.uncertainty is not None:  # the std of the K samples whose mean is the volume
                files["uncertainty.nrrd"] = Path(tmp) / "uncertainty.nrrd"
                export_volume(self.uncertainty, files["uncertainty.nrrd"])
                meta["uncertainty_volume"] = self.uncertainty.GetName()
            return self.server.protocol.addAttachment(self._zip(files, meta))

    def download_translation(self):
        if self.translated is None:
            self.state.message = "nothing translated yet"
            return None
        with tempfile.TemporaryDirectory(prefix="SemanticSynth-download-") as tmp:
            files = {"translated.nrrd": Path(tmp) / "translated.nrrd", "field.nrrd": Path(tmp) / "field.nrrd"}
            export_volume(self.translated, files["translated.nrrd"])
            export_transform(self.field, files["field.nrrd"])
            if self.carried is not None:
                labels = Path(tmp) / "carried.seg.nrrd"
                storage = self.carried.CreateDefaultStorageNode()
                storage.SetFileName(str(labels))
                if storage.WriteData(self.carried):
                    files["carried.seg.nrrd"] = labels
            meta = {"volume": self.translated.GetName(), "field": self.field.GetName(),
                    "source": self.source_volume.GetName() if self.source_volume else None, **provenance(self.translated)}
            return self.server.protocol.addAttachment(self._zip(files, meta))

    # ---------------------------------------------------------------- page
    @staticmethod
    def _overlay_legend(element_id: str, shown: str, gradient: str, low: str, high: str) -> None:
        """A colour overlay's legend under its controls: the gradient (a state variable holding a CSS gradient), its
        lowest and highest values; shown while the JS expression `shown` holds."""
        with html.Div(id=element_id, v_if=shown, classes="text-caption mb-1"):
            html.Div(style=(f"{{ height: '10px', borderRadius: '2px', background: {gradient} }}",))
            with html.Div(classes="d-flex"):
                html.Span(low)
                v3.VSpacer()
                html.Span(high)

    def _upload_input(self, kind: str, input_id: str, label: str):
        """A file input that refuses files over the limit in the page, before anything is sent."""
        trigger = self.server.controller.trigger_name(self.upload)
        v3.VFileInput(
            id=input_id, label=label, density="compact", hide_details=True, prepend_icon="mdi-file-upload",
            accept=",".join(IMAGE_SUFFIXES) + ",.gz",
            disabled=("running",),
            change=(f"$event.target.files[0] && ($event.target.files[0].size > max_upload_bytes ? "
                    f"(message = $event.target.files[0].name + ' is ' + ($event.target.files[0].size / 1048576).toFixed(1) + "
                    f"' MB, over the upload limit of ' + max_upload_mb + ' MB (serve --max-upload-mb)') : "
                    f"trigger('{trigger}', [$event.target.files, '{kind}']))"),
        )

    def _advanced_panel(self):
        """Phase, temperature, guidance, priors file, calibration, unknown labels and device; empty: the model's."""
        trigger = self.server.controller.trigger_name(self.upload_priors)
        field = {"density": "compact", "hide_details": True}
        with v3.VExpansionPanels(id="advanced", classes="my-1"):
            with v3.VExpansionPanel(value="advanced"):
                v3.VExpansionPanelTitle("Advanced", id="advanced-title", classes="py-1")
                with v3.VExpansionPanelText():
                    v3.VSelect(v_model=("phase",), items=("phase_items",), id="phase", label="Contrast phase (CT)",
                               disabled=("running || !phase_enabled",), classes="mb-1", **field)
                    with html.Div(classes="d-flex mb-1"):
                        v3.VTextField(v_model=("temperature",), id="temperature", label="Temperature",
                                      placeholder=("temperature_hint",), persistent_placeholder=True,
                                      disabled=("running",), classes="mr-1", **field)
                        v3.VTextField(v_model=("guidance",), id="guidance", label="Guidance",
                                      placeholder=("guidance_hint",), persistent_placeholder=True,
                                      disabled=("running || !guidance_enabled",), **field)
                    v3.VFileInput(id="upload-priors", label="Priors file (.json)", accept=".json",
                                  prepend_icon="mdi-file-upload", disabled=("running",), **field,
                                  change=f"$event.target.files[0] && trigger('{trigger}', [$event.target.files])")
                    with html.Div(v_if="priors_name", classes="d-flex align-center text-caption"):
                        html.Span("Priors: {{ priors_name }}", id="priors-name")
                        v3.VBtn("Clear", id="clear-priors", click=self.clear_priors, size="x-small", variant="text",
                                disabled=("running",))
                    v3.VCheckbox(v_model=("calibrate",), id="calibrate", disabled=("running",), **field,
                                 label="Calibrate: move each label's mean onto its prior")
                    v3.VCheckbox(v_model=("texture",), id="texture", disabled=("running",), **field,
                                 label="Scanner texture: the training scans' fine texture, noise and unlabelled head")
                    v3.VSelect(v_model=("unknown_labels",), items=("unknown_label_items",), id="unknown-labels",
                               label="Unknown labels", disabled=("running",), classes="mb-1", **field)
                    v3.VSelect(v_model=("device",), items=("device_items",), id="device", label="Device",
                               disabled=("running",), **field)

    def _edit_controls(self):
        """Regenerate an edited region of the output, and the uncertainty of K samples (both through the bridge's
        GenerationLogic.start, with the progress bar and Cancel above)."""
        field = {"density": "compact", "hide_details": True}
        v3.VDivider(classes="my-2")
        html.Div("Edit the labels", classes="text-subtitle-2")
        self._upload_input("edited", "upload-edited", "Upload edited label map")
        html.Div("Edited: {{ edited_name }}", id="edited-name", v_if="edited_name", classes="text-caption")
        with html.Div(classes="d-flex align-center my-1"):
            v3.VTextField(v_model=("margin",), id="margin", label="Margin mm", disabled=("running",),
                          style="max-width: 120px;", classes="mr-1", **field)
            v3.VBtn("Regenerate edited region", id="regenerate-edit", click=self.regenerate_edit,
                    disabled=("running || !has_edit",), density="compact", size="small")
        html.Div("Uncertainty", classes="text-subtitle-2 mt-1")
        with html.Div(classes="d-flex align-center my-1"):
            v3.VTextField(v_model=("uncertainty_samples",), id="uncertainty-samples", label="Samples (K)",
                          disabled=("running",), style="max-width: 120px;", classes="mr-1", **field)
            v3.VBtn("Uncertainty", id="uncertainty", click=self.run_uncertainty, disabled=("running",),
                    density="compact", size="small")
        v3.VCheckbox(v_model=("uncertainty_of_edit",), id="uncertainty-of-edit", disabled=("running || !has_edit",),
                     label="Of the edited region only", **field)
        v3.VCheckbox(v_model=("show_uncertainty",), id="show-uncertainty", disabled=("!uncertainty_max",),
                     label="Standard deviation over the generated volume", **field)
        self._overlay_legend("uncertainty-legend", "uncertainty_max && show_uncertainty && view_mode === 'generated'",
                             "uncertainty_legend", "0", "std, max {{ uncertainty_max }} {{ uncertainty_units }}")
        with html.Div(v_if="uncertainty_table.length", style="max-height: 180px; overflow-y: auto;"):
            with v3.VTable(id="uncertainty-table", density="compact", classes="text-caption"):
                with html.Thead():
                    with html.Tr():
                        for title in ("Label", "std", "boundary", "interior"):
                            html.Th(title, classes="px-1")
                with html.Tbody():
                    with html.Tr(v_for="row in uncertainty_table", key="row.id"):
                        html.Td("{{ row.name }}", classes="px-1")
                        html.Td("{{ row.std }}", classes="px-1")
                        html.Td("{{ row.boundary }}", classes="px-1")
                        html.Td("{{ row.interior }}", classes="px-1")

    def _build_ui(self):
        ctrl = self.server.controller
        with SinglePageLayout(self.server, full_height=True) as layout:
            self.ui = layout
            client.Style("html { overflow-y: hidden; }")
            layout.title.set_text("SemanticSynth")
            layout.root.theme = "dark"
            with layout.toolbar:
                v3.VSpacer()
                html.Div("{{ status }}", id="status", classes="text-body-2 mx-4")
            with layout.content:
                with html.Div(classes="d-flex", style="height: calc(100vh - 64px);"):
                    # padded at the bottom: its last controls scroll clear of the page's footer
                    with html.Div(style="width: 330px; min-width: 330px; overflow-y: auto; scroll-padding-bottom: 40px; "
                                        "padding-bottom: 40px !important;", classes="pa-2"):
                        self._controls(ctrl)
                    with html.Div(style="flex: 1; position: relative;", id="views"):
                        self.layout_manager.initialize_layout_grid(layout)

    def _controls(self, ctrl):
        v3.VAlert(v_if="message", id="message", type="error", density="compact", text=("message",),
                  closable=True, click_close="message = ''", classes="mb-2")
        html.Div("Label map", classes="text-subtitle-2")
        with html.Div(classes="d-flex align-center"):
            v3.VSelect(v_model=("sample",), items=("samples",), density="compact", hide_details=True, label="Sample")
            v3.VBtn("Load", id="load-sample", click=self.load_sample, disabled=("running",), density="compact",
                    classes="ml-1")
        self._upload_input("labels", "upload-labels", "Upload label map")
        html.Div("{{ source_name }}", id="source-name", classes="text-caption")
        html.Div("{{ notice }}", id="notice", v_if="notice", classes="text-caption text-warning")
        v3.VDivider(classes="my-2")
        v3.VSelect(v_model=("model",), items=("models",), label="Model", density="compact", hide_details=True,
                   disabled=("running",))
        with html.Div(classes="d-flex"):
            v3.VSelect(v_model=("modality",), items=("modality_items",), label="Modality", density="compact",
                       hide_details=True, disabled=("running",))
            v3.VTextField(v_model=("steps",), id="steps", label="Steps", placeholder=("steps_hint",), density="compact",
                          hide_details=True, disabled=("running",), classes="mx-1", persistent_placeholder=True)
            v3.VTextField(v_model=("seed",), id="seed", label="Seed", density="compact", hide_details=True,
                          disabled=("running",))
        self._advanced_panel()
        with html.Div(classes="d-flex my-2"):
            v3.VBtn("Generate", id="generate", color="primary", click=self.generate, disabled=("running",))
            v3.VBtn("Cancel", id="cancel", click=self.cancel, disabled=("!running",), classes="ml-2")
        v3.VProgressLinear(model_value=("progress",), id="progress", height=8, color="primary")
        html.Div("{{ report }}", id="report", v_if="report", classes="text-caption text-warning",
                 style="white-space: pre-line;")
        html.Div("View", classes="text-subtitle-2 mt-2")
        with v3.VBtnToggle(v_model=("view_mode",), id="view-mode", mandatory=True, density="compact", divided=True):
            v3.VBtn("{{ mode.title }}", v_for="mode in view_modes", key="mode.value", value=("mode.value",),
                    id=("`view-${mode.value}`",), size="small")
        v3.VBtn("Download generated (.zip)", id="download-generated", density="compact", classes="mt-2",
                disabled=("!has_generated",), prepend_icon="mdi-download",
                click=f"utils.download('semanticsynth-generated.zip', trigger('{ctrl.trigger_name(self.download_generated)}'), 'application/zip')")
        self._edit_controls()
        v3.VDivider(classes="my-2")
        html.Div("Translate a volume", classes="text-subtitle-2")
        self._upload_input("volume", "upload-volume", "Upload volume")
        v3.VSelect(v_model=("translator_model",), items=("translators",), label="Translator", density="compact",
                   hide_details=True, disabled=("running",))
        v3.VCheckbox(v_model=("deform",), label="Spatial transform (displacement field)", density="compact",
                     hide_details=True)
        with html.Div(classes="d-flex my-1"):
            v3.VBtn("Translate", id="translate", click=self.translate, disabled=("running",))
            v3.VBtn("Carry segmentation", id="carry", click=self.carry, disabled=("running || !has_translation",),
                    classes="ml-2")
        v3.VCheckbox(v_model=("show_field",), id="show-field", label="Field magnitude over the translated volume",
                     density="compact", hide_details=True, disabled=("!field_max_mm",))
        self._overlay_legend("field-legend", "field_max_mm && show_field && view_mode === 'translated'",
                             "field_legend", "0 mm", "displacement, max {{ field_max_mm }} mm")
        v3.VBtn("Download translation (.zip)", id="download-translation", density="compact",
                disabled=("!has_translation",), prepend_icon="mdi-download",
                click=f"utils.download('semanticsynth-translation.zip', trigger('{ctrl.trigger_name(self.download_translation)}'), 'application/zip')")
        v3.VDivider(classes="my-2")
        html.Div("Scene", classes="text-subtitle-2")
        with html.Ul(id="scene-nodes", classes="text-caption ml-4"):
            html.Li("{{ name }}", v_for="name in scene_nodes", key="name")
