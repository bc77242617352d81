"""The module's Widget as Slicer runs it, in the style of SlicerNNUnet's WidgetTestCase.

Only the Qt/application layer is replaced (fake_slicer_app.py); the module file, Slicer's parameterNodeWrapper
and ScriptedLoadableModule, slicer-core's MRML scene and slicer.util, and the engine's child processes are real.
Buttons are clicked, timers fire through app.processEvents(), and the scene is checked afterwards.
"""
from __future__ import annotations

import os
import sys
import time

import psutil
import pytest

import fake_slicer_app
from slicer_testdata import REPO

MODULE_FILE = REPO / "SemanticSynth" / "SemanticSynth.py"


@pytest.fixture()
def app():
    app = fake_slicer_app.install()
    app.messages.clear()
    app.directoryAnswers.clear()
    app.confirmAnswer = fake_slicer_app.QMessageBox.Ok
    yield app
    fake_slicer_app.QTimer.running.clear()


def load_module(app, path=MODULE_FILE, name="SemanticSynth"):
    return fake_slicer_app.load_module(path, name)


@pytest.fixture()
def module(app, scene):
    return load_module(app)


@pytest.fixture()
def widget(module, scene):
    widget = fake_slicer_app.module_widget(module, scene)
    yield widget
    widget.cleanup()


def run_until_done(app, task, timeout_s=600):
    deadline = time.monotonic() + timeout_s
    while task.job is not None:
        assert time.monotonic() < deadline, "the job did not finish"
        app.processEvents()
        time.sleep(0.05)


def run_until(app, condition, timeout_s=300):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        app.processEvents()
        time.sleep(0.05)


# every test stages its jobs in a temp folder of its own (conftest.py); staging_folders() lists the jobs' folders there
pytestmark = pytest.mark.usefixtures("staging_folders")


def test_panel_connects_every_parameter(widget, scene, sample_segmentation):
    ui, p = widget.ui, widget._parameterNode
    assert widget._parameterNodeGuiTag is not None
    # scene -> GUI and GUI -> parameter node, through Slicer's own connectors
    assert [ui.modalityComboBox.itemText(i) for i in range(ui.modalityComboBox.count)] == ["ct", "mri"]
    ui.modalityComboBox.currentIndex = 1
    assert p.modality == "mri"
    # steps 0 is the model's default, shown with its value (Qt draws specialValueText at the minimum)
    steps = widget.logic.model_info("abdomen-ct", "mri")["defaults"]["steps"]
    assert p.steps == 0 and ui.stepsSpinBox.minimum == 0 and ui.stepsSpinBox.specialValueText == f"model's: {steps}"
    assert p.translateSteps == 0 and ui.translateStepsSpinBox.specialValueText == "model's default"
    p.steps = 7
    assert ui.stepsSpinBox.value == 7
    ui.seedSpinBox.value = 42
    assert p.seed == 42
    ui.deformCheckBox.checked = False
    assert p.deform is False
    ui.segmentationSelector.setCurrentNode(sample_segmentation)
    assert p.segmentation is sample_segmentation
    # the model list: the packages found, the parameter's value selected
    models = [ui.modelComboBox.itemText(i) for i in range(ui.modelComboBox.count)]
    assert "abdomen-ct" in models and "brain-mri" in models and "brain-t1-to-t2like" not in models
    assert ui.modelComboBox.currentText == "abdomen-ct"
    ui.modelComboBox.activate(models.index("brain-mri"))
    assert p.model == "brain-mri"
    p.translator = "brain-t1-to-t2like"
    assert ui.translatorComboBox.currentText == "brain-t1-to-t2like"


def test_advanced_section_binds_every_generation_option(module, widget, scene, tmp_path):
    """Phase, temperature, guidance, priors, calibration, unknown labels and device: each bound through Slicer's
    connectors, its range and choices from the request's checks, the model's default shown, and handed to the
    engine as request options (None where left to the model)."""
    from SemanticSynthLib.bridge.generate_logic import option_choices
    from SemanticSynthLib.errors import SynthError

    ui, p = widget.ui, widget._parameterNode
    assert ui.advancedCollapsibleButton.collapsed
    defaults = widget.logic.model_info("abdomen-ct", "ct")["defaults"]
    # phase: the training data's, then the request's phases; for a modality with phases only
    assert [ui.phaseComboBox.itemText(i) for i in range(ui.phaseComboBox.count)] == [
        "training data's", "non_contrast", "arterial", "portal_venous", "delayed"]
    assert p.phase == "training data's" and ui.phaseComboBox.enabled
    ui.phaseComboBox.currentIndex = 3
    assert p.phase == "portal_venous"
    p.modality = "mri"
    assert not ui.phaseComboBox.enabled and widget.advancedOptions()["phase"] is None  # not sent for MRI
    p.modality = "ct"
    assert ui.phaseComboBox.enabled and widget.advancedOptions()["phase"] == "portal_venous"
    # temperature and guidance: the request's ranges, the minimum meaning the model's value, which it shows
    assert (ui.temperatureSpinBox.minimum, ui.temperatureSpinBox.maximum, ui.temperatureSpinBox.value) == (0, 1, 0)
    assert ui.temperatureSpinBox.specialValueText == f"model's: {defaults['temperature']:g}"
    assert (ui.guidanceSpinBox.minimum, ui.guidanceSpinBox.maximum, ui.guidanceSpinBox.value) == (0.5, 20, 0.5)
    assert ui.guidanceSpinBox.specialValueText == f"model's: {defaults['guidance']:g}"
    ui.temperatureSpinBox.value = 0.7
    assert p.temperature == 0.7
    ui.temperatureSpinBox.value = 5  # Qt keeps it in range
    assert p.temperature == 1.0
    # calibration, unknown labels (the bridge's default first) and the device with its forced CPU
    assert p.calibrate and ui.calibrateCheckBox.checked
    ui.calibrateCheckBox.checked = False
    assert p.calibrate is False
    assert p.texture and ui.textureCheckBox.checked
    ui.textureCheckBox.checked = False
    assert p.texture is False
    assert [ui.unknownLabelsComboBox.itemText(i) for i in range(2)] == ["background", "error"]
    assert p.unknownLabels == "background"
    assert [d.value for d in module.Device] == option_choices("device")
    assert [ui.deviceComboBox.itemText(i) for i in range(3)] == ["auto (CUDA where available)", "CPU (force)", "CUDA"]
    assert p.device is module.Device.AUTO
    ui.deviceComboBox.currentIndex = 1
    assert p.device is module.Device.CPU
    # the priors file: none by default (Slicer's Path() is "."), a file once chosen
    assert widget.advancedOptions()["priors"] is None
    priors = tmp_path / "priors.json"
    priors.write_text('{"liver": 100}', encoding="utf-8")
    ui.priorsPathLineEdit.currentPath = str(priors)
    assert p.priorsFile == priors
    assert widget.advancedOptions() == {"phase": "portal_venous", "temperature": 1.0, "guidance": None,
                                        "priors": str(priors), "calibrate": False, "texture": False,
                                        "unknown_labels": "background", "device": "cpu"}
    ui.priorsPathLineEdit.currentPath = str(tmp_path / "missing.json")
    with pytest.raises(SynthError, match="missing.json does not exist"):
        widget.advancedOptions()
    # the defaults follow the model: a model without guidance training has its guidance box disabled
    assert ui.guidanceSpinBox.enabled == bool(widget.logic.model_info("abdomen-ct")["metadata"]["diffusion"].get(
        "condition_dropout"))


def test_bad_advanced_values_are_refused_in_one_line(app, widget, scene, sample_segmentation, tiny_ct_model):
    ui, p = widget.ui, widget._parameterNode
    p.segmentation, p.model = sample_segmentation, str(tiny_ct_model)
    nodes = scene.GetNumberOfNodes()
    ui.guidanceSpinBox.enabled = True
    ui.guidanceSpinBox.value = 0.7  # above the box's "model's" minimum, below the request's least guidance
    ui.generateButton.click()
    assert widget.tasks["generate"].job is None and len(app.messages) == 1
    assert "guidance" in app.messages[0][1] and "at least 1" in app.messages[0][1] and "\n" not in app.messages[0][1]
    assert ui.generateStatusLabel.text.startswith("Failed: ") and scene.GetNumberOfNodes() == nodes


def test_advanced_options_reach_the_engine(app, widget, scene, sample_segmentation, tiny_ct_model, tmp_path):
    """Phase, temperature, the priors file and the device set in the panel are in the generated volume's recorded
    request; the calibration check's flags (here of priors no network output meets) are in the status line."""
    import json

    ui, p = widget.ui, widget._parameterNode
    p.segmentation, p.model, p.steps = sample_segmentation, str(tiny_ct_model), 1
    priors = tmp_path / "priors.json"
    priors.write_text(json.dumps({"liver": {"mean": 900, "range": [899, 901]},
                                  "spleen": {"mean": -900, "range": [-901, -899]}}), encoding="utf-8")
    ui.advancedCollapsibleButton.collapsed = False
    ui.phaseComboBox.currentIndex = ui.phaseComboBox.findText("portal_venous")
    ui.temperatureSpinBox.value = 0.65
    ui.priorsPathLineEdit.currentPath = str(priors)
    ui.deviceComboBox.currentIndex = 1  # CPU (force)
    ui.generateButton.click()
    run_until_done(app, widget.tasks["generate"])
    assert not app.messages, app.messages
    output = p.outputVolume
    request = json.loads(output.GetAttribute("SemanticSynth.request"))
    assert request["phase"] == "portal_venous" and request["temperature"] == 0.65 and request["device"] == "cpu"
    assert request["calibrate"] is True and request["unknown_labels"] == "background" and request["steps"] == 1
    assert request["priors"] == str(priors)
    status = ui.generateStatusLabel.text
    assert status.startswith("Done: " + output.GetName())
    flagged = json.loads(output.GetAttribute("SemanticSynth.calibration"))["outside_prior_range"]
    assert {"liver", "spleen"} <= {f["name"] for f in flagged}
    line = next(s for s in status.splitlines() if s.startswith("Calibration check: "))
    assert f"{len(flagged)} label(s) came out outside their prior range, moved onto their priors" in line
    assert all(f["name"] in line for f in flagged[:8])


def test_enter_exit_and_scene_close(widget, scene, sample_segmentation):
    observing = lambda: widget.hasObserver(widget._parameterNode, vtk_modified(), widget._onParameterNodeModified)
    tag = widget._parameterNodeGuiTag
    widget.exit()
    assert not observing() and widget._parameterNodeGuiTag == tag  # the GUI stays bound to the one wrapper
    widget.enter()
    assert observing() and widget._parameterNodeGuiTag == tag
    assert widget._parameterNode.segmentation is sample_segmentation  # the first segmentation, as in the template
    scene.Clear()  # StartCloseEvent, EndCloseEvent: a new parameter node, a new wrapper, bound and observed
    assert widget._parameterNode is not None and widget._parameterNodeGuiTag is not None and observing()
    assert widget._parameterNode.segmentation is None


def vtk_modified():
    import vtk

    return vtk.vtkCommand.ModifiedEvent


# Enter and leave the module 5 times, then change the parameter node once: one observer of ours, one GUI update.
_ENTER_LEAVE = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import fake_slicer_app
app = fake_slicer_app.install()
import slicer
import slicer.parameterNodeWrapper.wrapper as wrapper
slicer.mrmlScene = scene = slicer.vtkMRMLScene()
module = fake_slicer_app.load_module(sys.argv[2])
counts = {"gui": 0, "models": 0}
update = wrapper._updateGUIFromParameterNode
def counted_update(node):
    counts["gui"] += 1
    update(node)
wrapper._updateGUIFromParameterNode = counted_update  # looked up by name by every connectGui observer
models = module.GenerationLogic.available_models
def counted_models(*args):
    counts["models"] += 1
    return models(*args)
module.GenerationLogic.available_models = staticmethod(counted_models)
widget = fake_slicer_app.module_widget(module, scene)
widget.enter()
first = widget._parameterNode
for _ in range(5):
    widget.exit()
    widget.enter()
ours = [o for o in widget.Observations if o[2] == widget._onParameterNodeModified]
counts = {"gui": 0, "models": 0}
first.parameterNode.Modified()
after_change = dict(counts)
widget.exit()
counts = {"gui": 0, "models": 0}
first.parameterNode.Modified()
print(json.dumps({"same_wrapper": widget._parameterNode is first and widget.logic.getParameterNode() is first,
                  "observers": len(ours), "change": after_change, "hidden_change": counts,
                  "left_after_exit": len([o for o in widget.Observations if o[2] == widget._onParameterNodeModified])}))
widget.cleanup()
"""


@pytest.mark.parametrize("version", ["5.10", "5.12", "5.13"])
def test_entering_and_leaving_five_times_leaves_one_observer(version):
    """Slicer's template: our parameter-node observer is removed on every exit, and the Logic keeps one wrapper per
    node. On 5.10 disconnectGui leaves connectGui's own observer behind, so the GUI is bound once per wrapper: one
    GUI update per change on every version (Testing/slicer_runtime/slicer-5.10 holds 5.10's wrapper.py)."""
    import json
    import subprocess

    env = {**os.environ, "SEMANTICSYNTH_FAKE_SLICER": version}
    result = subprocess.run([sys.executable, "-c", _ENTER_LEAVE, str(REPO / "Testing"), str(MODULE_FILE)], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found == {"same_wrapper": True, "observers": 1, "change": {"gui": 1, "models": 1},
                     "hidden_change": {"gui": 1, "models": 0}, "left_after_exit": 0}, found


def test_generate_with_a_loaded_model_folder_keeps_the_unmatched_segments_in_the_status(
        app, widget, scene, sample_segmentation, tiny_ct_model, staging_folders):
    ui, p = widget.ui, widget._parameterNode
    sample_segmentation.GetSegmentation().GetNthSegment(2).SetName("my marker")
    app.directoryAnswers.append(str(tiny_ct_model))
    ui.loadModelButton.click()
    assert p.model == str(tiny_ct_model) and ui.modelComboBox.currentText == str(tiny_ct_model)
    p.segmentation, p.steps = sample_segmentation, 0  # the model's default: tiny_ct_model's default_steps is 2
    before = staging_folders()
    ui.generateButton.click()
    task = widget.tasks["generate"]
    assert task.job is not None and ui.generateButton.text == "Cancel" and ui.translateButton.text == "Translate"
    run_until(app, lambda: "denoising" in ui.generateStatusLabel.text or task.job is None)
    assert "Not used (unknown to the model): my marker" in ui.generateStatusLabel.text
    run_until_done(app, task)
    assert not app.messages, app.messages
    output = p.outputVolume
    assert output is not None and output.GetAttribute("SemanticSynth.steps") == "2"
    assert output.GetNodeReferenceID("SemanticSynthSource") == sample_segmentation.GetID()
    assert ui.generateStatusLabel.text.startswith("Done: " + output.GetName())
    assert ui.generateStatusLabel.text.endswith("Not used (unknown to the model): my marker")
    assert ui.generateProgressBar.value == 100 and ui.generateButton.text == "Generate"
    assert not fake_slicer_app.QTimer.running and staging_folders() == before
    # the loaded folder stays in the list after choosing another model
    ui.modelComboBox.activate(ui.modelComboBox.findText("brain-mri"))
    assert ui.modelComboBox.findText(str(tiny_ct_model)) >= 0


def test_cancel_ends_the_process_tree_and_leaves_the_scene_as_it_was(app, widget, scene, sample_segmentation, tiny_ct_model,
                                                                      staging_folders):
    ui, p = widget.ui, widget._parameterNode
    p.segmentation, p.model, p.steps = sample_segmentation, str(tiny_ct_model), 500
    nodes = scene.GetNumberOfNodes()
    before = staging_folders()
    ui.generateButton.click()
    task = widget.tasks["generate"]
    pid = task.job.process.process.pid
    run_until(app, lambda: "denoising" in ui.generateStatusLabel.text)
    ui.generateButton.click()  # Cancel
    assert task.job is None and ui.generateStatusLabel.text.startswith("Cancelled.")
    assert ui.generateButton.text == "Generate" and not fake_slicer_app.QTimer.running
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert scene.GetNumberOfNodes() == nodes and staging_folders() == before and not app.messages


def test_generation_and_translation_each_own_their_job(app, widget, scene, sample_segmentation, tiny_ct_model,
                                                       tiny_translator, tmp_path):
    import SimpleITK as sitk
    import slicer
    from testdata import IXI_IDS, crop_case

    ui, p = widget.ui, widget._parameterNode
    sitk.WriteImage(crop_case(IXI_IDS[0])[0], str(tmp_path / "t1.nrrd"))
    source = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "t1")
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(tmp_path / "t1.nrrd"))
    assert storage.ReadData(source)
    p.segmentation, p.model, p.steps = sample_segmentation, str(tiny_ct_model), 500
    app.directoryAnswers.append(str(tiny_translator))
    ui.loadTranslatorButton.click()
    p.translateSource, p.translateSteps = source, 1
    ui.generateButton.click()
    ui.translateButton.click()
    generation, translation = widget.tasks["generate"], widget.tasks["translate"]
    assert generation.job is not None and translation.job is not None
    assert ui.generateButton.text == "Cancel" and ui.translateButton.text == "Cancel"
    run_until_done(app, translation)
    assert generation.job is not None, "translating must not end the generation"
    assert ui.translateStatusLabel.text.startswith("Done: "), ui.translateStatusLabel.text
    field = p.translationField
    assert field is not None and field.IsA("vtkMRMLGridTransformNode")
    assert field.GetNodeReferenceID("SemanticSynthSource") == source.GetID()
    ui.generateButton.click()  # cancels the generation only
    assert generation.job is None and ui.generateStatusLabel.text.startswith("Cancelled.")
    assert ui.translateStatusLabel.text.startswith("Done: ") and not app.messages


def test_a_folder_of_the_wrong_kind_is_refused_with_one_message(app, widget, tiny_translator):
    app.directoryAnswers.append(str(tiny_translator))
    widget.ui.loadModelButton.click()
    assert widget._parameterNode.model == "abdomen-ct"
    assert len(app.messages) == 1 and "translator" in app.messages[0][1] and "\n" not in app.messages[0][1]
    app.directoryAnswers.append("")  # the dialog cancelled: nothing happens
    widget.ui.loadModelButton.click()
    assert len(app.messages) == 1


def test_start_errors_and_unexpected_errors_end_the_job_with_one_message(app, widget, scene, sample_segmentation,
                                                                         tiny_ct_model):
    ui, p = widget.ui, widget._parameterNode
    p.segmentation, p.model, p.modality = sample_segmentation, str(tiny_ct_model), "mri"
    ui.generateButton.click()  # a CT model asked for MRI: refused before any process starts
    assert widget.tasks["generate"].job is None and ui.generateButton.text == "Generate"
    assert len(app.messages) == 1 and "not mri" in app.messages[0][1]
    assert ui.generateStatusLabel.text.startswith("Failed: ")
    # a bug while importing the result: one message, the timer stops, it does not repeat on every tick
    p.modality, p.steps = "ct", 1
    task = widget.tasks["generate"]
    task.done = lambda node: node.NoSuchMethod()
    ui.generateButton.click()
    run_until_done(app, task)
    assert len(app.messages) == 2 and "AttributeError" in app.messages[1][1]
    for _ in range(5):
        app.processEvents()
    assert len(app.messages) == 2 and not fake_slicer_app.QTimer.running and ui.generateButton.text == "Generate"


def test_cleanup_stops_the_timers_and_the_jobs(app, widget, sample_segmentation, tiny_ct_model):
    p = widget._parameterNode
    p.segmentation, p.model, p.steps = sample_segmentation, str(tiny_ct_model), 500
    widget.ui.generateButton.click()
    process = widget.tasks["generate"].job.process.process
    widget.cleanup()
    assert not fake_slicer_app.QTimer.running and process.poll() is not None


def test_generate_needs_a_segmentation(app, widget, scene):
    assert widget._parameterNode.segmentation is None
    assert not widget.ui.generateButton.enabled  # as the template's _checkCanApply
    widget.tasks["generate"].onClicked()
    assert widget.tasks["generate"].job is None and "segmentation" in app.messages[-1][1]


def test_first_use_asks_before_installing_and_a_no_changes_nothing(app, module, monkeypatch, tmp_path):
    from SemanticSynthLib.bridge import dependencies

    needs_more = tmp_path / "pyproject.toml"
    needs_more.write_text('[project]\nname = "semanticsynth"\ndependencies = ["numpy>=1", "semanticsynth-test-not-installed>=1"]\n', encoding="utf-8")
    monkeypatch.setattr(dependencies, "_pyproject_candidates", lambda: [needs_more])
    app.confirmAnswer = fake_slicer_app.QMessageBox.Cancel
    assert module.SemanticSynthLogic().ensureDependencies() is False
    assert len(app.messages) == 1 and "semanticsynth-test-not-installed" in app.messages[0][1]


def test_sample_data_uri_is_a_file_uri_of_the_sample(module):
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    source = module.sampleDataSource()
    uri = urlparse(source["uris"])
    assert uri.scheme == "file" and uri.netloc == ""
    assert os.path.samefile(url2pathname(uri.path), module.SAMPLE_FILE)



def test_deleting_a_generated_volume_takes_its_stored_labels_from_startup_on(app, module, scene):
    """Once Slicer has started (before the panel is ever shown: a scene opened from a file), deleting a generated
    volume removes the hidden label map it was made from and that map's storage node; its std volume stays, without
    the deleted volume's id. The nodes are made here as a reopened scene has them."""
    from SemanticSynthLib.bridge.generate_logic import LABELS_REFERENCE, UNCERTAINTY_REFERENCE

    volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "CT")
    labels = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "CT labels (SemanticSynth)")
    labels.HideFromEditorsOn()
    labels.AddDefaultStorageNode()
    labels.SetAttribute("SemanticSynth.labels_of", volume.GetID())
    std = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "CT uncertainty")
    std.SetAttribute("SemanticSynth.uncertainty_of", volume.GetID())
    volume.SetNodeReferenceID(LABELS_REFERENCE, labels.GetID())
    volume.SetNodeReferenceID(UNCERTAINTY_REFERENCE, std.GetID())
    app.startupCompleted.emit()
    nodes = scene.GetNumberOfNodes()
    scene.RemoveNode(volume)
    assert not scene.IsNodePresent(labels) and scene.GetNumberOfNodes() == nodes - 3  # volume, labels, its storage
    assert scene.IsNodePresent(std) and std.GetAttribute("SemanticSynth.uncertainty_of") is None


# Slicer's Python has no SemanticSynthLib installed: the editable install of this venv is taken away first, so the
# module file must find the library by itself, as in Slicer.
_LOAD_AS_IN_SLICER = r"""
import importlib.util, sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "")]
assert importlib.util.find_spec("SemanticSynthLib") is None, "the library is importable without the module's help"
sys.path.insert(0, sys.argv[1])
import fake_slicer_app
fake_slicer_app.install()
spec = importlib.util.spec_from_file_location("SemanticSynth", sys.argv[2])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
import SemanticSynthLib
import SemanticSynthLib.bridge.generate_logic as logic
print(SemanticSynthLib.__file__)
print(logic.__file__)
"""


@pytest.mark.parametrize("layout", ["source checkout", "built extension"])
def test_module_file_finds_its_library_without_an_installed_copy(layout, tmp_path):
    """README, Use in 3D Slicer: only <checkout>/SemanticSynth is on the module paths; the built extension puts
    SemanticSynth.py and SemanticSynthLib/ side by side."""
    import shutil
    import subprocess

    if layout == "source checkout":
        module_file, library = MODULE_FILE, REPO / "SemanticSynthLib"
    else:
        scripted = tmp_path / "lib" / "Slicer-5.12" / "qt-scripted-modules"
        scripted.mkdir(parents=True)
        module_file, library = scripted / "SemanticSynth.py", scripted / "SemanticSynthLib"
        shutil.copy(MODULE_FILE, module_file)
        library.symlink_to(REPO / "SemanticSynthLib", target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", _LOAD_AS_IN_SLICER, str(REPO / "Testing"), str(module_file)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    package_file, logic_file = result.stdout.split()
    assert package_file == str(library / "__init__.py")
    assert logic_file == str(library / "bridge" / "generate_logic.py")


_LOAD_ON = r"""
import logging, sys
sys.path.insert(0, sys.argv[1])
import fake_slicer_app
fake_slicer_app.install()
records = []
logging.getLogger().addHandler(type("H", (logging.Handler,), {"emit": lambda self, r: records.append(r.getMessage())})())
try:
    fake_slicer_app.load_module(sys.argv[2])
except ImportError as exc:
    print(str(exc))
print(records)
print(sorted(m for m in sys.modules if m.startswith("SemanticSynthLib.")))
"""


@pytest.mark.parametrize("version, supported", [("5.8", False), ("5.10", True), ("5.13", True)])
def test_an_unsupported_slicer_gets_one_line_at_load(version, supported):
    """Slicer 5.8 (Python 3.9) stops loading the module with one line, logged, before any library import that
    could fail there; supported versions load."""
    import ast
    import subprocess

    env = {**os.environ, "SEMANTICSYNTH_FAKE_SLICER": version}
    result = subprocess.run([sys.executable, "-c", _LOAD_ON, str(REPO / "Testing"), str(MODULE_FILE)], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    if supported:
        assert "SemanticSynthLib.bridge.generate_logic" in lines[-1] and not lines[0].startswith("SemanticSynth needs")
        return
    message, logged, imported = lines
    assert message == ("SemanticSynth needs Slicer 5.10 or later (tested with 5.10, 5.12 and the 5.13 preview) with "
                       "Python 3.10 or later; this is Slicer 5.8 with Python 3.11: install a newer Slicer from "
                       "download.slicer.org")
    assert ast.literal_eval(logged) == [message]
    assert ast.literal_eval(imported) == ["SemanticSynthLib.bridge", "SemanticSynthLib.bridge.slicer_support"]
    # The gate must be reachable on Slicer 5.8's Python: the module file and the gate parse as Python 3.9.
    for path in (MODULE_FILE, REPO / "SemanticSynthLib" / "bridge" / "slicer_support.py"):
        ast.parse(path.read_text(encoding="utf-8"), feature_version=(3, 9))


def test_unsupported_reason_covers_slicer_and_python():
    from SemanticSynthLib.bridge.slicer_support import unsupported_reason

    assert unsupported_reason((5, 10), (3, 12)) is None and unsupported_reason((6, 0), (3, 13)) is None
    assert "this is Slicer 5.8 with Python 3.9" in unsupported_reason((5, 8), (3, 9))
    assert "this is Slicer 5.10 with Python 3.9" in unsupported_reason((5, 10), (3, 9))  # a custom build


def _no_network(monkeypatch):
    """Any connection other than to this machine fails the test."""
    import socket

    connect = socket.socket.connect

    def local_only(self, address):
        host = address[0] if isinstance(address, tuple) else address
        assert isinstance(host, str) and (host.startswith("127.") or host in ("localhost", "::1") or "/" in host), \
            f"network use: {address}"
        return connect(self, address)
    monkeypatch.setattr(socket.socket, "connect", local_only)


def test_the_ctest_self_test_generates_offline(app, module, scene, monkeypatch):
    """slicer_add_python_unittest runs SemanticSynthTest with --testing: with everything installed and the model
    bundled it generates from the sample, and nothing reaches the network or pip."""
    import slicer

    _no_network(monkeypatch)
    monkeypatch.setattr(app, "testing", True)
    monkeypatch.setattr(slicer.util, "pip_install", lambda *a, **k: pytest.fail("the self-test ran pip"))
    shown = []
    monkeypatch.setattr(module.SemanticSynthTest, "delayDisplay", lambda self, text, *a, **k: shown.append(text))
    module.SemanticSynthTest().runTest()
    assert shown[0] == "Sample segmentation loaded" and shown[-1].startswith("Generated "), shown


def test_the_ctest_self_test_installs_nothing_and_says_what_it_skipped(app, module, scene, monkeypatch, tmp_path,
                                                                      caplog):
    import slicer

    from SemanticSynthLib.bridge import dependencies

    _no_network(monkeypatch)
    needs_more = tmp_path / "pyproject.toml"
    needs_more.write_text('[project]\nname = "semanticsynth"\ndependencies = ["numpy>=1", "semanticsynth-test-not-installed>=1"]\n', encoding="utf-8")
    monkeypatch.setattr(dependencies, "_pyproject_candidates", lambda: [needs_more])
    monkeypatch.setattr(app, "testing", True)
    monkeypatch.setattr(slicer.util, "pip_install", lambda *a, **k: pytest.fail("the self-test ran pip"))
    shown = []
    monkeypatch.setattr(module.SemanticSynthTest, "delayDisplay", lambda self, text, *a, **k: shown.append(text))
    module.SemanticSynthTest().runTest()
    assert shown[-1] == ("Generation skipped (the self-test installs and downloads nothing): Python packages not "
                         "installed"), shown
    assert "missing: semanticsynth-test-not-installed>=1" in caplog.text
    assert not app.messages and scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == 0


def test_region_edit_and_sample_controls_are_bound(app, widget, scene, sample_segmentation):
    """Samples, Uncertainty, and the Edit region section (volume, region segments, margin, into a new volume): bound
    to the parameter node, ranges from the request's checks, buttons enabled only when they can run."""
    from SemanticSynthLib.bridge.generate_logic import option_range
    from SemanticSynthLib.errors import SynthError

    ui, p = widget.ui, widget._parameterNode
    # defaults: one sample, no uncertainty (disabled until 2 samples), margin 6 mm, in place
    assert (p.samples, p.uncertainty, p.margin, p.editIntoNewVolume, list(p.regionSegments)) == (1, False, 6.0, False, [])
    assert (ui.samplesSpinBox.minimum, ui.samplesSpinBox.maximum) == option_range("samples")
    assert (ui.marginSpinBox.minimum, ui.marginSpinBox.maximum, ui.marginSpinBox.value) == (0, 200, 6.0)
    assert ui.marginSpinBox.suffix == " mm" and not ui.uncertaintyCheckBox.enabled
    ui.samplesSpinBox.value = 3
    assert p.samples == 3 and ui.uncertaintyCheckBox.enabled
    ui.uncertaintyCheckBox.checked = True
    assert p.uncertainty is True and widget.sampleOptions() == {"samples": 3, "uncertainty": True}
    ui.samplesSpinBox.value = 1
    assert not ui.uncertaintyCheckBox.enabled and widget.sampleOptions() == {"samples": 1, "uncertainty": False}
    ui.marginSpinBox.value = 4.5
    ui.editIntoNewVolumeCheckBox.checked = True
    assert p.margin == 4.5 and p.editIntoNewVolume is True
    # Regenerate needs the segmentation and the volume to edit
    assert ui.regionCollapsibleButton.collapsed and not ui.regenerateButton.enabled
    p.segmentation = sample_segmentation
    volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "CT")
    ui.editVolumeSelector.setCurrentNode(volume)
    assert p.editVolume is volume and ui.regenerateButton.enabled and ui.generateButton.enabled
    # the region segments: the segmentation's, checked in the selector <-> the parameter
    selector = ui.regionSegmentSelector
    assert selector.multiSelection and selector.currentNode() is sample_segmentation
    ids = selector.segmentIDs()[:2]
    selector.setSelectedSegmentIDs(ids)
    assert list(p.regionSegments) == ids
    p.regionSegments = ids[:1]
    assert selector.selectedSegmentIDs() == ids[:1]
    other = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "other")
    p.segmentation = other  # another segmentation: its own segments, none chosen
    assert selector.currentNode() is other and list(p.regionSegments) == [] and selector.selectedSegmentIDs() == []
    p.segmentation = sample_segmentation
    with pytest.raises(SynthError, match="has no voxels"):  # refused before any job
        widget.startRegeneration()
    assert widget.tasks["regenerate"].job is None


def _paint_tumor(scene, segmentation, volume, radius_mm=15.0):
    from test_region_edit_logic import LIVER, ball_in, paint_segment, sample_labels

    tumor = ball_in(sample_labels(), LIVER, radius_mm)
    return paint_segment(segmentation, "Tumor", tumor, volume), tumor


def test_regenerate_edited_region_from_the_panel_in_place_and_cancel(app, widget, scene, sample_segmentation,
                                                                      tiny_ct_model, staging_folders):
    """Generate, paint a Tumor in the liver, Regenerate edited region: Cancel leaves the scene as it was; run, only
    region + margin change in the volume itself, the status names the new tissue."""
    import numpy as np
    import slicer

    from test_region_edit_logic import near

    ui, p = widget.ui, widget._parameterNode
    p.segmentation, p.model = sample_segmentation, str(tiny_ct_model)
    ui.generateButton.click()
    run_until_done(app, widget.tasks["generate"])
    assert not app.messages, app.messages
    volume = p.outputVolume
    assert p.editVolume is volume  # the generated volume is the next one to edit
    labels = volume.GetNodeReference("SemanticSynthLabels")
    before, stored = np.array(slicer.util.arrayFromVolume(volume)), np.array(slicer.util.arrayFromVolume(labels))
    _segment, tumor = _paint_tumor(scene, sample_segmentation, volume)
    nodes, folders = scene.GetNumberOfNodes(), staging_folders()

    p.steps = 500
    ui.regenerateButton.click()
    task = widget.tasks["regenerate"]
    assert task.job is not None and ui.regenerateButton.text == "Cancel" and not ui.generateButton.enabled
    run_until(app, lambda: "denoising" in ui.generateStatusLabel.text or task.job is None)
    assert task.job is not None, ui.generateStatusLabel.text
    ui.regenerateButton.click()  # Cancel
    assert task.job is None and ui.generateStatusLabel.text.startswith("Cancelled.") and ui.generateButton.enabled
    assert np.array_equal(slicer.util.arrayFromVolume(volume), before)
    assert np.array_equal(slicer.util.arrayFromVolume(labels), stored)
    assert scene.GetNumberOfNodes() == nodes and staging_folders() == folders and not app.messages

    p.steps = 0  # the model's default (2)
    ui.regenerateButton.click()
    assert not ui.generateButton.enabled
    run_until_done(app, task)
    assert not app.messages, app.messages
    after = slicer.util.arrayFromVolume(volume)
    outside = ~near(tumor, p.margin)
    assert np.array_equal(after[outside], before[outside]) and (after[tumor] != before[tumor]).mean() > 0.9
    assert ui.generateStatusLabel.text.startswith("Done: " + volume.GetName())
    assert "New tissue: Tumor (hypodense" in ui.generateStatusLabel.text
    assert "Not used" not in ui.generateStatusLabel.text  # the Tumor segment is used, as new tissue
    assert volume.GetNodeReference("SemanticSynthLabels") is labels
    assert np.all(slicer.util.arrayFromVolume(labels)[tumor] == 118)
    assert scene.GetNumberOfNodes() == nodes and ui.generateButton.enabled and ui.regenerateButton.text.startswith("Regenerate")


def test_real_ct_region_with_uncertainty_into_a_new_volume_from_the_panel(app, widget, scene):
    """A real CT and its segmentation, a Tumor checked as the region, into a new volume, 2 samples with uncertainty
    (the bundled abdomen-ct model): the new volume in the background, its standard deviation over it."""
    import numpy as np
    import slicer

    from SemanticSynthLib.bridge.scene import load_volume
    from slicer_testdata import SAMPLE_CT
    from test_region_edit_logic import near, totalseg_segmentation

    ui, p = widget.ui, widget._parameterNode
    composite = scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode")  # what a slice view shows
    ct = load_volume(scene, SAMPLE_CT, "CT")
    real = np.array(slicer.util.arrayFromVolume(ct))
    segmentation = totalseg_segmentation(scene, "CT segmentation")
    p.segmentation, p.editVolume, p.steps = segmentation, ct, 2
    tumor_id, tumor = _paint_tumor(scene, segmentation, ct, 12.0)
    ui.regenerateButton.click()  # no stored labels and no region: one line saying what to do
    assert widget.tasks["regenerate"].job is None and len(app.messages) == 1
    assert "choose the segment(s) of the region" in app.messages[0][1] and "\n" not in app.messages[0][1]
    ui.regionSegmentSelector.setSelectedSegmentIDs([tumor_id])
    ui.editIntoNewVolumeCheckBox.checked = True
    ui.marginSpinBox.value = 3
    ui.samplesSpinBox.value = 2
    ui.uncertaintyCheckBox.checked = True
    ui.regenerateButton.click()
    run_until_done(app, widget.tasks["regenerate"])
    assert len(app.messages) == 1, app.messages
    node = p.editVolume
    assert node is not ct and node.GetName() == "CT regenerated" and p.outputVolume is None
    assert np.array_equal(slicer.util.arrayFromVolume(ct), real)
    out = slicer.util.arrayFromVolume(node)
    assert np.array_equal(out[~near(tumor, 3.0)], real[~near(tumor, 3.0)])
    std = node.GetNodeReference("SemanticSynthUncertainty")
    assert std is not None and node.GetNodeReference("SemanticSynthUncertaintyTable") is not None
    assert composite.GetBackgroundVolumeID() == node.GetID() and composite.GetForegroundVolumeID() == std.GetID()
    assert composite.GetForegroundOpacity() == 0.5
    assert ui.generateStatusLabel.text.startswith("Done: CT regenerated")
