"""SemanticSynth Slicer module: a segmentation in, a synthetic CT or MRI volume out, on the same grid;
or a volume in, a translated volume and its displacement field (a grid transform) out.

Only this file touches Qt and slicer.app. All work is done by SemanticSynthLib (engine in a child process,
MRML bridge and GUI-free logic), which is tested on plain CPython with slicer-core; this file is tested there
too, with only the Qt/application layer replaced (Testing/fake_slicer_app.py).
"""
import enum
import logging
import sys
from pathlib import Path
from typing import Annotated

import qt
import vtk

import slicer
from slicer import vtkMRMLGridTransformNode, vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, Decimals, SingleStep, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

MODULE_DIR = Path(__file__).resolve().parent
# The library of this file: beside it in the built extension, the sibling of SemanticSynth/ in a source checkout
# (where only SemanticSynth/ is on Slicer's module paths). First on sys.path: no other installed copy shadows it.
_ROOT = next((r for r in (MODULE_DIR, MODULE_DIR.parent) if (r / "SemanticSynthLib" / "__init__.py").is_file()), None)
if _ROOT is not None and str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from SemanticSynthLib.bridge.slicer_support import SUPPORTED_TEXT, running_slicer_version, unsupported_reason  # noqa: E402

UNSUPPORTED = unsupported_reason(running_slicer_version(slicer.app))
if UNSUPPORTED:  # before any import that would fail there with an unrelated TypeError: one line, then stop loading
    logging.error(UNSUPPORTED)
    raise ImportError(UNSUPPORTED)

from SemanticSynthLib.bridge import dependencies  # noqa: E402
from SemanticSynthLib.bridge.generate_logic import (BRIDGE_DEFAULTS, DEVICE_TITLES, TRAINING_DATA_PHASE,  # noqa: E402
                                                     UNCERTAINTY_REFERENCE, GenerationLogic, gui_options, model_hints,
                                                     observe_output_removal, option_choices, option_range,
                                                     spin_box_ranges)
from SemanticSynthLib.bridge.models import needs_download  # noqa: E402
from SemanticSynthLib.bridge.translate_logic import DEFAULT_TRANSLATOR, TranslationLogic, carry_segmentation  # noqa: E402
from SemanticSynthLib.errors import SynthError  # noqa: E402

SAMPLE_FILE = MODULE_DIR / "Resources" / "Samples" / "abdomen_ct_totalseg_labels.nii.gz"


class SemanticSynth(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("SemanticSynth")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Image Synthesis")]
        self.parent.dependencies = []
        self.parent.contributors = ["SemanticSynth developers"]
        self.parent.helpText = _(
            "Generate a realistic CT or MRI volume from a segmentation with 3D latent semantic diffusion. "
            "The output is on the segmentation's grid, references its source and records model, seed and steps. "
            "After editing the segments (or painting a Tumor, Mass, Cyst or Lesion segment: new tissue), Regenerate "
            "edited region changes only that region of the volume (or of a real scan, with region segments) and keeps "
            "every voxel beyond the margin. Several samples with Uncertainty show where the model is unsure. "
            "Supported: {versions}.").format(versions=SUPPORTED_TEXT)
        self.parent.acknowledgementText = _(
            "Methods from Med-LSDM, the NIH abdominal-CT semantic synthesis paper, segmentation-guided diffusion "
            "and Plasticine. Networks from MONAI.")
        slicer.app.connect("startupCompleted()", onStartupCompleted)


def onStartupCompleted():
    """The sample in Sample Data, and the scene observed from the start (a generated volume deleted takes the hidden
    label map it was made from with it, also in a scene loaded before the module was opened)."""
    registerSampleData()
    observe_output_removal(slicer.mrmlScene)


def sampleDataSource() -> dict:
    """Arguments of SampleDataLogic.registerCustomSampleDataSource for the bundled sample segmentation."""
    return {"category": "SemanticSynth", "sampleName": "SemanticSynthAbdomenLabels",
            "thumbnailFileName": str(MODULE_DIR / "Resources" / "Icons" / "SemanticSynth.png"),
            "uris": SAMPLE_FILE.as_uri(),  # file:///C:/... on Windows, file:///... elsewhere
            "fileNames": "abdomen_ct_totalseg_labels.seg.nii.gz", "nodeNames": "Abdomen labels",
            "loadFileType": "SegmentationFile"}


def registerSampleData():
    """The bundled sample segmentation (TotalSegmentator labels of an abdominal CT) in the Sample Data module."""
    import SampleData

    SampleData.SampleDataLogic.registerCustomSampleDataSource(**sampleDataSource())


SPIN_RANGES = spin_box_ranges()  # Advanced: at its minimum a spin box shows "model's: 0.5" (None in the request)
MARGIN_RANGE, SAMPLES_RANGE = option_range("margin"), option_range("samples")  # the request's checks


class Device(enum.Enum):
    """The request's device names; the combo box shows label(): "CPU (force)" as SlicerMONAIAuto3DSeg's force CPU."""
    AUTO, CPU, CUDA = "auto", "cpu", "cuda"
    label = lambda self: _(DEVICE_TITLES[self.value])  # noqa: E731 (a function: not a member)


@parameterNodeWrapper
class SemanticSynthParameterNode:
    segmentation: vtkMRMLSegmentationNode
    referenceVolume: vtkMRMLScalarVolumeNode
    # model and translator are not bound in the .ui: their combo boxes also hold loaded folders, which no
    # Choice can list, so the Widget syncs them itself (_syncModelChoices).
    model: str = "abdomen-ct"
    modality: Annotated[str, Choice(["ct", "mri"])] = "ct"
    steps: Annotated[int, WithinRange(0, 1000)] = 0  # 0: the package's default_steps ("model's default" in the .ui)
    seed: Annotated[int, WithinRange(0, 2 ** 31 - 1)] = 0
    outputVolume: vtkMRMLScalarVolumeNode
    samples: Annotated[int, WithinRange(*SAMPLES_RANGE)] = 1  # K seeds: the output is their mean
    uncertainty: bool = False  # with samples >= 2: the per-voxel standard deviation as an overlay, a table per label
    # Edit region: regenerate only a region of editVolume (in place, or into a new volume)
    editVolume: vtkMRMLScalarVolumeNode
    # regionSegments is not bound in the .ui: no connector binds a qMRMLSegmentSelectorWidget, so the Widget syncs
    # it (_syncRegionSegments). Empty: the voxels whose labels changed since editVolume was generated.
    regionSegments: list[str]
    margin: Annotated[float, WithinRange(*MARGIN_RANGE), Decimals(1), SingleStep(1.0)] = 6.0
    editIntoNewVolume: bool = False
    # Advanced (GenerationRequest's phase, temperature, guidance, priors, calibrate, texture, unknown_labels, device)
    phase: Annotated[str, Choice([TRAINING_DATA_PHASE, *option_choices("phase")])] = TRAINING_DATA_PHASE
    temperature: Annotated[float, WithinRange(*SPIN_RANGES["temperature"]), Decimals(2), SingleStep(0.05)] = 0.0
    guidance: Annotated[float, WithinRange(*SPIN_RANGES["guidance"]), Decimals(1), SingleStep(0.5)] = 0.5
    priorsFile: Path  # Path() ("."), Slicer's default for a path: none, the model's priors
    calibrate: bool = True
    texture: bool = True
    unknownLabels: Annotated[str, Choice(option_choices("unknown_labels"))] = BRIDGE_DEFAULTS["unknown_labels"]
    device: Device = Device.AUTO
    translateSource: vtkMRMLScalarVolumeNode
    translator: str = DEFAULT_TRANSLATOR
    deform: bool = True
    translateSteps: Annotated[int, WithinRange(0, 1000)] = 0
    carrySegmentation: vtkMRMLSegmentationNode
    translationField: vtkMRMLGridTransformNode


def _oneLine(exc: Exception) -> str:
    """A user-facing line: SynthError messages as they are, anything else with its type (a bug to report)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text if isinstance(exc, SynthError) else f"{exc.__class__.__name__}: {text}".rstrip(": ")


class EngineTask:
    """One button with its own engine job, progress bar, status line and timer: Generate and Translate each have
    one, so neither cancels the other. The button turns into Cancel while the job runs."""

    def __init__(self, button, progressBar, statusLabel, start, done, report=None, changed=None):
        self.button, self.progressBar, self.statusLabel = button, progressBar, statusLabel
        # start() -> job or None; done(job) -> output name; report(job) -> lines shown under "Done:";
        # changed() after a job starts or ends (tasks that share a progress bar enable their buttons there)
        self.start, self.done, self.report, self.changed = start, done, report, changed
        self.idleText, self.job = button.text, None
        self.note = ""  # kept under every status line, e.g. the segments the model does not know
        self.timer = qt.QTimer()
        self.timer.setInterval(200)
        self.timer.connect("timeout()", self.poll)
        button.connect("clicked(bool)", self.onClicked)

    def onClicked(self):
        if self.job is not None:
            self.cancel()
            return
        try:
            job = self.start()
        except Exception as exc:
            self._fail(exc)
            return
        if job is None:
            return
        self.job, self.note = job, ""
        self.button.text = _("Cancel")
        self.progressBar.value = 0
        self.setStatus(_("Starting…"))
        self.timer.start()
        if self.changed:
            self.changed()

    def cancel(self):
        """End the job, if one runs, and its timer."""
        job = self._end()
        if job is not None:
            job.cancel()
            self.setStatus(_("Cancelled."))

    def poll(self):
        try:
            self._poll()
        except Exception as exc:  # a bug: end the job once with one message, not on every tick
            self._fail(exc)

    def _poll(self):
        unmatched = getattr(self.job, "unmatched_segments", None)
        if unmatched:
            self.note = _("Not used (unknown to the model): ") + ", ".join(unmatched)
        record = self.job.last_progress
        if record.get("total"):
            self.progressBar.value = int(100 * record.get("fraction", 0))
            eta = record.get("eta_s")
            self.setStatus(f"{record.get('stage', '')} {record.get('step')}/{record.get('total')}{record.get('unit', '')}"
                           + (_(", {seconds} s left").format(seconds=f"{eta:.0f}") if eta is not None else ""))
        if not self.job.poll():
            return
        job = self._end()
        if job.error == "cancelled":
            self.setStatus(_("Cancelled."))
        elif job.error:
            self.setStatus(_("Failed: ") + job.error)
            slicer.util.errorDisplay(job.error)
        else:
            self.progressBar.value = 100
            name, notes = self.done(job), list(self.report(job)) if self.report else []
            self.note = "\n".join(notes + ([self.note] if self.note else []))
            self.setStatus(_("Done: ") + name)

    def _fail(self, exc):
        logging.error("SemanticSynth: %s", exc, exc_info=not isinstance(exc, SynthError))
        job = self._end()
        try:
            if job is not None:
                job.cancel()
        except Exception:
            logging.exception("SemanticSynth: cancelling after an error failed")
        self.setStatus(_("Failed: ") + _oneLine(exc))
        slicer.util.errorDisplay(_oneLine(exc))

    def _end(self):
        job, self.job, self.button.text = self.job, None, self.idleText
        self.timer.stop()
        if self.changed:
            self.changed()
        return job

    def setStatus(self, text):
        self.statusLabel.text = text + ("\n" + self.note if self.note else "")


class SemanticSynthWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Wires the UI to the Logic: no computation here."""

    # parameter -> (combo box, logic class): unbound in the .ui, synced by _syncModelChoices
    MODEL_FIELDS = {"model": ("modelComboBox", GenerationLogic), "translator": ("translatorComboBox", TranslationLogic)}

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._updatingModelChoices = False
        self._loadedFolders = {"model": [], "translator": []}
        self._defaultsShownFor = None  # (model, modality) whose defaults the Advanced widgets show
        self._updatingRegionSegments = False
        self.tasks = {}

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SemanticSynth.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = SemanticSynthLogic()
        # Generate and Regenerate edited region share the progress bar and status: one runs at a time
        self.tasks = {
            "generate": EngineTask(self.ui.generateButton, self.ui.generateProgressBar, self.ui.generateStatusLabel,
                                   self.startGeneration, self.generationDone, lambda job: job.notes(),
                                   self._updateButtons),
            "regenerate": EngineTask(self.ui.regenerateButton, self.ui.generateProgressBar, self.ui.generateStatusLabel,
                                     self.startRegeneration, self.generationDone, lambda job: job.notes(),
                                     self._updateButtons),
            "translate": EngineTask(self.ui.translateButton, self.ui.translateProgressBar, self.ui.translateStatusLabel,
                                    self.startTranslation, self.translationDone)}
        self.ui.regionSegmentSelector.connect("segmentSelectionChanged(QStringList)", self.onRegionSegmentsChanged)
        for field, (comboName, _logic) in self.MODEL_FIELDS.items():
            getattr(self.ui, comboName).connect("currentIndexChanged(int)", lambda _i, f=field: self.onModelComboChanged(f))
        self.ui.loadModelButton.connect("clicked(bool)", lambda: self.onLoadModelFolder("model"))
        self.ui.loadTranslatorButton.connect("clicked(bool)", lambda: self.onLoadModelFolder("translator"))
        self.ui.carryButton.connect("clicked(bool)", self.onCarry)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.initializeParameterNode()

    def cleanup(self):
        self.removeObservers()
        self._disconnectGui()
        for task in self.tasks.values():
            task.cancel()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        self.removeObservers(self._onParameterNodeModified)  # always, whatever connectGui returned (None on 5.8)

    def onSceneStartClose(self, caller, event):
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.segmentation:
            self._parameterNode.segmentation = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLSegmentationNode")

    def setParameterNode(self, inputParameterNode):
        """Observe a parameter node (the Logic keeps one wrapper per node). The GUI stays connected to a wrapper
        until the node changes: Slicer 5.10's disconnectGui leaves connectGui's own node observer behind, so
        connecting on every enter would pile those up."""
        self.exit()
        if inputParameterNode is not self._parameterNode:
            self._disconnectGui()
            self._parameterNode = inputParameterNode
            if self._parameterNode:
                self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
        if self._parameterNode:
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
            self._onParameterNodeModified()

    def _disconnectGui(self):
        if self._parameterNode is not None:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
        self._parameterNodeGuiTag = None

    def _onParameterNodeModified(self, caller=None, event=None):
        self._syncModelChoices()
        p = self._parameterNode
        if p is None:
            return
        self._showModelDefaults()
        self._syncRegionSegments()
        self._updateButtons()
        self.ui.translateButton.enabled = bool(p.translateSource) or self.tasks["translate"].job is not None
        self.ui.carryButton.enabled = bool(p.carrySegmentation and p.translationField)

    def _updateButtons(self):
        """Generate needs a segmentation, Regenerate also the volume to edit; while one runs the other waits (they
        share the progress bar), and the running one is its Cancel button. Uncertainty needs 2 samples or more."""
        p = self._parameterNode
        if p is None or not self.tasks:
            return
        generating, regenerating = self.tasks["generate"].job is not None, self.tasks["regenerate"].job is not None
        self.ui.generateButton.enabled = generating or (bool(p.segmentation) and not regenerating)
        self.ui.regenerateButton.enabled = regenerating or (bool(p.segmentation and p.editVolume) and not generating)
        self.ui.uncertaintyCheckBox.enabled = p.samples >= 2

    def _syncRegionSegments(self):
        """Parameter -> segment selector: the segmentation's segments, the chosen ones checked."""
        p, selector = self._parameterNode, self.ui.regionSegmentSelector
        if p is None or self._updatingRegionSegments:
            return
        self._updatingRegionSegments = True
        try:
            if selector.currentNode() is not p.segmentation:
                if selector.currentNode() is not None and p.regionSegments:
                    p.regionSegments = []  # segments of another segmentation (a scene loaded keeps its own)
                selector.setCurrentNode(p.segmentation)
            if p.segmentation and list(selector.selectedSegmentIDs()) != list(p.regionSegments):
                selector.setSelectedSegmentIDs(list(p.regionSegments))
        finally:
            self._updatingRegionSegments = False

    def onRegionSegmentsChanged(self, segmentIds):
        """Segment selector -> parameter."""
        if self._updatingRegionSegments or self._parameterNode is None:
            return
        self._parameterNode.regionSegments = [str(i) for i in segmentIds]

    def _syncModelChoices(self):
        """Parameter -> combo box: the models found, loaded folders, and the parameter's value, selected."""
        if self._parameterNode is None or self._updatingModelChoices:
            return
        self._updatingModelChoices = True
        try:
            for field, (comboName, logicClass) in self.MODEL_FIELDS.items():
                combo, value = getattr(self.ui, comboName), getattr(self._parameterNode, field)
                names = logicClass.available_models() + self._loadedFolders[field]
                names += [value] if value and value not in names else []
                if [combo.itemText(i) for i in range(combo.count)] != names:
                    combo.clear()
                    combo.addItems(names)
                combo.currentIndex = names.index(value) if value in names else -1
        finally:
            self._updatingModelChoices = False

    def _showModelDefaults(self):
        """The model's values where an option is left to it; the phase for CT, the guidance for models trained for it."""
        p = self._parameterNode
        if (p.model, p.modality) != self._defaultsShownFor:
            self._defaultsShownFor, hints = (p.model, p.modality), model_hints(p.model, p.modality)
            for name in ("steps", "temperature", "guidance"):
                getattr(self.ui, name + "SpinBox").specialValueText = _(hints[name])
            self.ui.guidanceSpinBox.enabled, self.ui.phaseComboBox.enabled = hints["guidance_enabled"], bool(hints["phases"])
            self.ui.phaseComboBox.toolTip = _("Contrast phase whose reference HU every label follows; the training "
                                              "data's: {phase}").format(phase=hints["training_phase"] or _("per label"))

    def onModelComboChanged(self, field):
        """Combo box -> parameter."""
        if self._updatingModelChoices or self._parameterNode is None:
            return
        text = getattr(self.ui, self.MODEL_FIELDS[field][0]).currentText
        if text:
            setattr(self._parameterNode, field, text)

    def onLoadModelFolder(self, field):
        folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), _("Choose a model package folder"))
        if not folder:
            return
        try:  # a package of the kind the field needs (generator or translator)
            (self.logic.model_info if field == "model" else self.logic.translation.model_info)(folder)
        except SynthError as exc:
            slicer.util.errorDisplay(_oneLine(exc))
            return
        if folder not in self._loadedFolders[field]:
            self._loadedFolders[field].append(folder)
        setattr(self._parameterNode, field, folder)

    def startGeneration(self):
        p = self._parameterNode
        if not p.segmentation:
            raise SynthError(_("choose a segmentation to generate from"))
        if not self.logic.ensureDependencies():
            return None
        return self.logic.start(p.segmentation, model=p.model, modality=p.modality, steps=p.steps or None, seed=p.seed,
                                reference_volume_node=p.referenceVolume, output_node=p.outputVolume,
                                **self.sampleOptions(), **self.advancedOptions())

    def startRegeneration(self):
        """Regenerate edited region: only the region of the volume to edit (the chosen segments, else what changed
        since it was generated here), in place or into a new volume."""
        p = self._parameterNode
        if not p.segmentation:
            raise SynthError(_("choose the segmentation whose segments were edited"))
        if not p.editVolume:
            raise SynthError(_("choose the volume to edit (Edit region)"))
        if not self.logic.ensureDependencies():
            return None
        segmentation = p.segmentation.GetSegmentation()
        regionIds = [i for i in p.regionSegments if segmentation.GetSegment(i) is not None]
        return self.logic.start(p.segmentation, model=p.model, modality=p.modality, steps=p.steps or None, seed=p.seed,
                                edit_volume_node=p.editVolume, region_segment_ids=regionIds or None,
                                output_node=None if p.editIntoNewVolume else p.editVolume, margin=p.margin,
                                **self.sampleOptions(), **self.advancedOptions())

    def sampleOptions(self) -> dict:
        """Samples, and the uncertainty where there are 2 or more (its check box is disabled below)."""
        p = self._parameterNode
        return {"samples": p.samples, "uncertainty": bool(p.uncertainty and p.samples >= 2)}

    def advancedOptions(self) -> dict:
        """The Advanced section as request options (None where left to the model: a spin box at its minimum)."""
        p = self._parameterNode
        return gui_options({"modality": p.modality, "phase": p.phase, "temperature": p.temperature, "guidance": p.guidance,
                            "priors": str(p.priorsFile), "calibrate": p.calibrate, "texture": p.texture,
                            "unknown_labels": p.unknownLabels,
                            "device": p.device.value}, {name: r[0] for name, r in SPIN_RANGES.items()})

    def generationDone(self, job):
        """The volume in the slice views (with its uncertainty over it, where made); it is the next one to edit. A
        Generate's output becomes the output volume, a regeneration's the volume to edit."""
        node, p = job.result_node, self._parameterNode
        if job.args.get("edit") is None:
            p.outputVolume = node
        p.editVolume = node
        std = getattr(job, "uncertainty_node", None)
        if std is not None:
            slicer.util.setSliceViewerLayers(background=node, foreground=std, foregroundOpacity=0.5, fit=True)
        else:
            slicer.util.setSliceViewerLayers(background=node, fit=True)
        return node.GetName()

    def startTranslation(self):
        p = self._parameterNode
        if not p.translateSource:
            raise SynthError(_("choose a source volume to translate"))
        if not self.logic.ensureDependencies():
            return None
        return self.logic.startTranslation(p.translateSource, model=p.translator, steps=p.translateSteps or None, seed=p.seed,
                                           deform=p.deform)

    def translationDone(self, job):
        volume, self._parameterNode.translationField = job.result_node
        slicer.util.setSliceViewerLayers(background=volume, fit=True)
        return volume.GetName()

    def onCarry(self):
        p = self._parameterNode
        try:
            node = self.logic.carrySegmentation(p.carrySegmentation, p.translationField)
        except Exception as exc:
            slicer.util.errorDisplay(_oneLine(exc))
            return
        self.ui.translateStatusLabel.text = _("Carried: ") + node.GetName()


class SemanticSynthLogic(ScriptedLoadableModuleLogic, GenerationLogic):
    """Generation and translation without the GUI: see SemanticSynthLib.bridge (generate_logic, translate_logic).

    Examples from the Python console:
        logic = slicer.util.getModuleLogic("SemanticSynth")
        ct = logic.generate(segmentationNode, modality="ct", steps=20)
        # after editing segmentationNode: only the changed region, in place
        logic.generate(segmentationNode, modality="ct", edit_volume_node=ct, output_node=ct, margin=6)
        # a real scan: the region is the chosen segments; 4 samples and their standard deviation
        edited = logic.generate(segmentationNode, edit_volume_node=realCt, region_segment_ids=[tumorSegmentId],
                                samples=4, uncertainty=True)
        t2, field = logic.translate(t1VolumeNode)
        carried = logic.carrySegmentation(segmentationNode, field)
    """

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)  # GenerationLogic keeps no state of its own
        self.translation = TranslationLogic()
        observe_output_removal(slicer.mrmlScene)  # once per scene; startup has done it in Slicer

    def translate(self, volumeNode, **kwargs):
        """Blocking: (translated volume node, grid transform node), linked to the source."""
        return self.translation.translate(volumeNode, **kwargs)

    def startTranslation(self, volumeNode, **kwargs):
        return self.translation.start(volumeNode, **kwargs)

    def carrySegmentation(self, segmentationNode, transformNode):
        return carry_segmentation(segmentationNode, transformNode)

    def getParameterNode(self):
        """One wrapper per parameter node (a new one per call would let observers keyed on it pile up)."""
        node = super().getParameterNode()
        if getattr(self, "_wrapper", None) is None or self._wrapper.parameterNode is not node:
            self._wrapper = SemanticSynthParameterNode(node)
        return self._wrapper

    def ensureDependencies(self, ask=True) -> bool:
        """Install what the engine needs on first use, after asking (see SemanticSynthLib.bridge.dependencies).
        In --testing mode (CTest on a build machine) nothing is installed: False, and the log says what is missing."""
        try:
            return dependencies.ensure(confirm=slicer.util.confirmOkCancelDisplay if ask else None,
                                       install=not slicer.app.testingEnabled())
        except SynthError as exc:
            slicer.util.errorDisplay(str(exc))
            return False


class SemanticSynthTest(ScriptedLoadableModuleTest):
    """In-Slicer self-test (registered with CTest): the Logic on the bundled sample with the bundled CT model."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_GenerateFromSample()

    def test_GenerateFromSample(self):
        """Offline: generation is skipped, saying why, where a package or the model (a released extension) is missing."""
        import numpy as np
        import SampleData

        registerSampleData()
        segmentation = SampleData.downloadSample("SemanticSynthAbdomenLabels")  # a file:// URI: no network
        self.delayDisplay("Sample segmentation loaded")
        logic = SemanticSynthLogic()
        skipped = [] if logic.ensureDependencies(ask=False) else [_("Python packages not installed")]
        skipped += [_("the abdomen-ct model is not downloaded")] if needs_download("abdomen-ct") else []
        if skipped:
            self.delayDisplay(_("Generation skipped (the self-test installs and downloads nothing): ") + "; ".join(skipped))
            return
        output = logic.generate(segmentation, model="abdomen-ct", modality="ct", steps=5, seed=0)
        self.assertIsNotNone(output)
        self.assertEqual(output.GetNodeReferenceID("SemanticSynthSource"), segmentation.GetID())
        values = slicer.util.arrayFromVolume(output)
        self.assertTrue(np.isfinite(values).all())
        self.assertLess(values.min(), -500)  # air outside the body
        self.delayDisplay("Generated " + output.GetName())
