"""SemanticSynth Slicer module: a segmentation in, a synthetic CT or MRI volume out, on the same grid;
or a volume in, a translated volume and its displacement field (a grid transform) out.

Only this file touches Qt and slicer.app. All work is done by SemanticSynthLib (engine in a child process,
MRML bridge and GUI-free logic), which is tested on plain CPython with slicer-core.
"""
import os
from typing import Annotated

import qt
import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin
from MRMLCorePython import vtkMRMLGridTransformNode, vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode

from SemanticSynthLib.logic import GenerationLogic
from SemanticSynthLib.translation import DEFAULT_TRANSLATOR, TranslationLogic, carry_segmentation

LOAD_MODEL_FOLDER = "Load model folder…"
MODULE_DIR = os.path.dirname(__file__)
# Floors of what the engine needs; torch comes through the PyTorch extension.
PIP_REQUIREMENTS = ["monai>=1.5", "safetensors>=0.4", "nibabel>=5.0", "tqdm>=4.60", "einops>=0.6"]


class SemanticSynth(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("SemanticSynth")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Image Synthesis")]
        self.parent.dependencies = []
        self.parent.contributors = ["SemanticSynth developers"]
        self.parent.helpText = _(
            "Generate a realistic CT or MRI volume from a segmentation with 3D latent semantic diffusion. "
            "The output is on the segmentation's grid, references its source and records model, seed and steps.")
        self.parent.acknowledgementText = _(
            "Methods from Med-LSDM, the NIH abdominal-CT semantic synthesis paper, segmentation-guided diffusion "
            "and Plasticine. Networks from MONAI.")
        slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData():
    """The bundled sample segmentation (TotalSegmentator labels of an abdominal CT) in the Sample Data module."""
    import SampleData

    sample = os.path.join(MODULE_DIR, "Resources", "Samples", "abdomen_ct_totalseg_labels.nii.gz")
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category="SemanticSynth", sampleName="SemanticSynthAbdomenLabels",
        thumbnailFileName=os.path.join(MODULE_DIR, "Resources", "Icons", "SemanticSynth.png"),
        uris="file://" + sample, fileNames="abdomen_ct_totalseg_labels.seg.nii.gz", nodeNames="Abdomen labels",
        loadFileType="SegmentationFile")


@parameterNodeWrapper
class SemanticSynthParameterNode:
    segmentation: vtkMRMLSegmentationNode
    referenceVolume: vtkMRMLScalarVolumeNode
    model: str = "abdomen-ct"
    modality: Annotated[str, Choice(["ct", "mri"])] = "ct"
    steps: Annotated[int, WithinRange(1, 1000)] = 20
    seed: Annotated[int, WithinRange(0, 2 ** 31 - 1)] = 0
    outputVolume: vtkMRMLScalarVolumeNode
    translateSource: vtkMRMLScalarVolumeNode
    translator: str = DEFAULT_TRANSLATOR
    deform: bool = True
    translateSteps: Annotated[int, WithinRange(1, 1000)] = 20
    carrySegmentation: vtkMRMLSegmentationNode
    translationField: vtkMRMLGridTransformNode


class SemanticSynthWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Wires the UI to the Logic: no computation here."""

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._job = None
        self._jobButton = None
        self._timer = qt.QTimer()
        self._timer.setInterval(200)
        self._timer.connect("timeout()", self.onPoll)

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SemanticSynth.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = SemanticSynthLogic()
        self.ui.modelComboBox.addItems(GenerationLogic.available_models() + [LOAD_MODEL_FOLDER])
        self.ui.modelComboBox.connect("activated(int)", lambda i: self.onModelChosen(self.ui.modelComboBox, "model", i))
        self.ui.translatorComboBox.addItems(TranslationLogic.available_models() + [LOAD_MODEL_FOLDER])
        self.ui.translatorComboBox.connect("activated(int)", lambda i: self.onModelChosen(self.ui.translatorComboBox, "translator", i))
        self.ui.generateButton.connect("clicked(bool)", self.onGenerateOrCancel)
        self.ui.translateButton.connect("clicked(bool)", self.onTranslateOrCancel)
        self.ui.carryButton.connect("clicked(bool)", self.onCarry)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.initializeParameterNode()

    def cleanup(self):
        self.removeObservers()
        if self._job is not None:
            self._job.cancel()

    def enter(self):
        self.initializeParameterNode()

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
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)

    def onModelChosen(self, comboBox, parameter, index):
        if comboBox.itemText(index) != LOAD_MODEL_FOLDER:
            return
        folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), _("Choose a model package folder"))
        if folder:
            comboBox.insertItem(index, folder)
            comboBox.setCurrentIndex(index)
            setattr(self._parameterNode, parameter, folder)

    def _cancelRunning(self) -> bool:
        if self._job is None:
            return False
        self._job.cancel()
        self._setStatus(_("Cancelled."))
        self._finish()
        return True

    def _run(self, button, start):
        """Start a job (generation or translation) with its button turned into Cancel."""
        if self._job is not None or not self.logic.ensureDependencies():
            return
        try:
            self._job = start()
        except Exception as exc:
            slicer.util.errorDisplay(str(exc))
            return
        self._jobButton, self._jobButtonText = button, button.text
        button.text = _("Cancel")
        self.ui.progressBar.value = 0
        self._timer.start()

    def onGenerateOrCancel(self):
        if self._cancelRunning():
            return
        p = self._parameterNode
        self._run(self.ui.generateButton, lambda: self.logic.start(
            p.segmentation, model=p.model, modality=p.modality, steps=p.steps, seed=p.seed,
            reference_volume_node=p.referenceVolume, output_node=p.outputVolume))
        if self._job is not None and self._job.unmatched_segments:
            self._setStatus(_("Not used (unknown to the model): ") + ", ".join(self._job.unmatched_segments))

    def onTranslateOrCancel(self):
        if self._cancelRunning():
            return
        p = self._parameterNode
        self._run(self.ui.translateButton, lambda: self.logic.startTranslation(
            p.translateSource, model=p.translator, steps=p.translateSteps, seed=p.seed, deform=p.deform))

    def onCarry(self):
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Carrying the segmentation failed."), waitCursor=True):
            node = self.logic.carrySegmentation(p.carrySegmentation, p.translationField)
            self._setStatus(_("Carried: ") + node.GetName())

    def onPoll(self):
        record = self._job.last_progress
        if record.get("total"):
            self.ui.progressBar.value = int(100 * record.get("fraction", 0))
            eta = record.get("eta_s")
            self._setStatus(f"{record.get('stage', '')} {record.get('step')}/{record.get('total')}"
                            + (f", {eta:.0f} s left" if eta is not None else ""))
        if not self._job.poll():
            return
        if self._job.error and self._job.error != "cancelled":
            self._setStatus(_("Failed: ") + self._job.error)
            slicer.util.errorDisplay(self._job.error)
        elif self._job.result_node is not None:
            node = self._job.result_node
            if isinstance(node, tuple):  # translation: (volume, field)
                node, self._parameterNode.translationField = node
            else:
                self._parameterNode.outputVolume = node
            slicer.util.setSliceViewerLayers(background=node, fit=True)
            self._setStatus(_("Done: ") + node.GetName())
            self.ui.progressBar.value = 100
        self._finish()

    def _finish(self):
        self._timer.stop()
        self._job = None
        if self._jobButton is not None:
            self._jobButton.text = self._jobButtonText
            self._jobButton = None

    def _setStatus(self, text):
        self.ui.statusLabel.text = text


class SemanticSynthLogic(ScriptedLoadableModuleLogic, GenerationLogic):
    """Generation and translation without the GUI: see SemanticSynthLib.logic and SemanticSynthLib.translation.

    Examples from the Python console:
        logic = slicer.util.getModuleLogic("SemanticSynth")
        ct = logic.generate(segmentationNode, modality="ct", steps=20)
        t2, field = logic.translate(t1VolumeNode)
        carried = logic.carrySegmentation(segmentationNode, field)
    """

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        GenerationLogic.__init__(self)
        self.translation = TranslationLogic()

    def translate(self, volumeNode, **kwargs):
        """Blocking: (translated volume node, grid transform node), linked to the source."""
        return self.translation.translate(volumeNode, **kwargs)

    def startTranslation(self, volumeNode, **kwargs):
        return self.translation.start(volumeNode, **kwargs)

    def carrySegmentation(self, segmentationNode, transformNode):
        return carry_segmentation(segmentationNode, transformNode)

    def getParameterNode(self):
        return SemanticSynthParameterNode(super().getParameterNode())

    def ensureDependencies(self, ask=True) -> bool:
        """Install torch (PyTorch extension) and the engine's packages on first use, after asking."""
        missing = [name for name in ("torch", "monai", "safetensors", "nibabel", "tqdm", "einops") if not _importable(name)]
        if not missing:
            return True
        if ask and not slicer.util.confirmOkCancelDisplay(
                _("SemanticSynth needs these Python packages: ") + ", ".join(missing) + _(". Install them now?")):
            return False
        if "torch" in missing:
            try:
                import PyTorchUtils
            except ImportError:
                slicer.util.errorDisplay(_("Install the PyTorch extension from the Extensions Manager first."))
                return False
            if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False) is None:
                slicer.util.errorDisplay(_("PyTorch could not be installed."))
                return False
        with slicer.util.tryWithErrorDisplay(_("Installing Python packages failed."), waitCursor=True):
            slicer.util.pip_install(" ".join(f'"{r}"' for r in PIP_REQUIREMENTS))
        return True


def _importable(name):
    import importlib.util

    return importlib.util.find_spec(name) is not None


class SemanticSynthTest(ScriptedLoadableModuleTest):
    """In-Slicer self-test: the Logic on the bundled sample segmentation with the bundled CT model."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_GenerateFromSample()

    def test_GenerateFromSample(self):
        import numpy as np
        import SampleData

        registerSampleData()
        segmentation = SampleData.downloadSample("SemanticSynthAbdomenLabels")
        self.delayDisplay("Sample segmentation loaded")
        logic = SemanticSynthLogic()
        self.assertTrue(logic.ensureDependencies(ask=False))
        output = logic.generate(segmentation, modality="ct", steps=5, seed=0)
        self.assertIsNotNone(output)
        self.assertEqual(output.GetNodeReferenceID("SemanticSynthSource"), segmentation.GetID())
        values = slicer.util.arrayFromVolume(output)
        self.assertTrue(np.isfinite(values).all())
        self.assertLess(values.min(), -500)  # air outside the body
        self.delayDisplay("Generated " + output.GetName())
