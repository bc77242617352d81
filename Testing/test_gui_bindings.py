"""The module's parameter bindings checked against its .ui (Testing/gui_bindings.py), and the check itself
checked: on the module as it was before issue 10 it must fail, and its table of connectors must agree with
Slicer's own guiConnectors.py."""
from __future__ import annotations

import pathlib
import subprocess
from typing import Annotated

import pytest

import fake_slicer_app
from gui_bindings import CONNECTORS, Parameter, check, connector_problem, parse_module, parse_ui
from slicer_testdata import REPO

MODULE_FILE = REPO / "SemanticSynth" / "SemanticSynth.py"
UI_FILE = REPO / "SemanticSynth" / "Resources" / "UI" / "SemanticSynth.ui"
BEFORE_ISSUE_10 = "f2836e6"  # the last commit before the panel was fixed


def test_every_binding_of_the_module_connects():
    assert check(MODULE_FILE.read_text(encoding="utf-8"), UI_FILE.read_text(encoding="utf-8")) == []


def test_the_unbound_model_lists_are_synced_by_the_widget():
    parameters, used, _calls, _strings = parse_module(MODULE_FILE.read_text(encoding="utf-8"))
    assert parameters["model"].kind == "str" and parameters["translator"].kind == "str"
    assert "SlicerParameterName\" stdset=\"0\"><string>model<" not in UI_FILE.read_text(encoding="utf-8")
    assert {"loadModelButton", "loadTranslatorButton"} <= used


def _git_show(path: str) -> str:
    try:
        return subprocess.run(["git", "show", f"{BEFORE_ISSUE_10}:{path}"], cwd=REPO, capture_output=True, text=True,
                              check=True, encoding="utf-8").stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f"commit {BEFORE_ISSUE_10} is not in this clone")


def test_the_check_fails_on_the_module_before_issue_10():
    module, ui = _git_show("SemanticSynth/SemanticSynth.py"), _git_show("SemanticSynth/Resources/UI/SemanticSynth.ui")
    problems = check(module, ui)
    assert "QComboBox modelComboBox -> 'model': QComboBoxToStringableConnector requires the Choice annotation" in problems
    assert "QComboBox translatorComboBox -> 'translator': QComboBoxToStringableConnector requires the Choice annotation" in problems
    # Choice alone does not fix it: the connector clears the list that the module fills
    with_choice = module.replace('    model: str = "abdomen-ct"', '    model: Annotated[str, Choice(["abdomen-ct"])] = "abdomen-ct"')
    assert any("modelComboBox -> 'model': the module calls addItems" in p for p in check(with_choice, ui))


def test_the_check_sees_names_classes_defaults_and_node_types():
    module, ui = MODULE_FILE.read_text(encoding="utf-8"), UI_FILE.read_text(encoding="utf-8")
    renamed = ui.replace("<string>seed</string>", "<string>seeds</string>")
    assert any("'seeds': no such parameter" in p for p in check(module, renamed))
    slider = ui.replace('class="QSpinBox" name="seedSpinBox"', 'class="QSlider" name="seedSpinBox"')
    assert check(module, slider) == []  # WithinRange bounds it
    unbounded = module.replace("seed: Annotated[int, WithinRange(0, 2 ** 31 - 1)] = 0", "seed: int = 0")
    assert any("QSlider needs WithinRange" in p for p in check(unbounded, slider))
    assert any("default 'pet'" in p for p in check(module.replace('Choice(["ct", "mri"])] = "ct"', 'Choice(["ct", "mri"])] = "pet"'), ui))
    wrong_nodes = ui.replace("<string>vtkMRMLGridTransformNode</string>", "<string>vtkMRMLLinearTransformNode</string>")
    assert any("translationField" in p and "nodeTypes" in p for p in check(module, wrong_nodes))
    assert any("self.ui.generateButton" in p for p in check(module, ui.replace('name="generateButton"', 'name="goButton"')))
    checkbox_on_int = ui.replace('class="QCheckBox" name="deformCheckBox"', 'class="QSpinBox" name="deformCheckBox"')
    assert any("no connector in guiConnectors.py binds a QSpinBox to a bool" in p for p in check(module, checkbox_on_int))


def test_the_advanced_widgets_are_bound_with_connectors_of_slicer_5_8():
    """The Advanced section: each widget bound to its parameter, with a connector Slicer 5.8 already has (5.10 added
    int parameters on QDoubleSpinBox and the ctkCheckablePushButton connector)."""
    module, ui = MODULE_FILE.read_text(encoding="utf-8"), UI_FILE.read_text(encoding="utf-8")
    parameters, _used, _calls, _strings = parse_module(module)
    widgets, bound = parse_ui(ui)
    advanced = {pname: (wname, wclass) for pname, wname, wclass, _types in bound
                if pname in ("phase", "temperature", "guidance", "priorsFile", "calibrate", "texture", "unknownLabels",
                             "device")}
    assert advanced == {"phase": ("phaseComboBox", "QComboBox"), "temperature": ("temperatureSpinBox", "QDoubleSpinBox"),
                        "guidance": ("guidanceSpinBox", "QDoubleSpinBox"),
                        "priorsFile": ("priorsPathLineEdit", "ctkPathLineEdit"),
                        "calibrate": ("calibrateCheckBox", "QCheckBox"), "texture": ("textureCheckBox", "QCheckBox"),
                        "unknownLabels": ("unknownLabelsComboBox", "QComboBox"), "device": ("deviceComboBox", "QComboBox")}
    assert {n: parameters[n].kind for n in advanced} == {
        "phase": "str", "temperature": "float", "guidance": "float", "priorsFile": "Path", "calibrate": "bool",
        "texture": "bool", "unknownLabels": "str", "device": "enum"}
    assert "Choice" in parameters["phase"].annotations and "Choice" in parameters["unknownLabels"].annotations
    assert widgets["advancedCollapsibleButton"] == "ctkCollapsibleButton"
    # an int on a QDoubleSpinBox binds on 5.10 only: refused for the 5.8 the extension supports
    on_int = module.replace("temperature: Annotated[float,", "temperature: Annotated[int,")
    assert ("QDoubleSpinBox temperatureSpinBox -> 'temperature': a QDoubleSpinBox binds to int parameters only from "
            "Slicer 5.10 on; the extension supports 5.8") in check(on_int, ui)
    assert connector_problem("QDoubleSpinBox", Parameter("p", "int"), slicer=(5, 10)) is None


KINDS = {  # a Python type of each kind, with the annotations the static table reads
    "bool": (bool, {}), "int": (int, {}), "bounded int": (None, {"WithinRange": [0, 5]}), "float": (float, {}),
    "str": (str, {}), "str with Choice": (None, {"Choice": [["a", "b"]]}), "node": (None, {}), "Path": (pathlib.Path, {}),
}


def _python_type(kind):
    import slicer
    from slicer.parameterNodeWrapper import Choice, WithinRange

    return {"bounded int": Annotated[int, WithinRange(0, 5)], "str with Choice": Annotated[str, Choice(["a", "b"])],
            "node": slicer.vtkMRMLScalarVolumeNode}.get(kind) or KINDS[kind][0]


RUNTIME_SLICER = (5, 13)  # the version of Testing/slicer_runtime (see its README)


@pytest.mark.parametrize("widget_class", ["QCheckBox", "QPushButton", "QSpinBox", "QDoubleSpinBox", "QComboBox", "QLabel",
                                          "ctkPathLineEdit", "qMRMLNodeComboBox"])
def test_the_table_agrees_with_slicers_guiconnectors(widget_class):
    """For the widgets the Qt stand-in implements, Slicer's createGuiConnector (of slicer_runtime's version) and the
    static table for that version agree."""
    fake_slicer_app.install()
    import qt
    import slicer
    from slicer.parameterNodeWrapper import createGuiConnector

    import ctk

    assert any(widget_class in widgets for widgets, _kinds, _needs, _since in CONNECTORS)
    for kind in KINDS:
        widget = getattr(qt, widget_class, None) or getattr(ctk, widget_class, None) or getattr(slicer, widget_class)
        try:
            createGuiConnector(widget(), _python_type(kind))
            slicer_says = None
        except RuntimeError as exc:
            slicer_says = str(exc)
        static_kind = {"bounded int": "int", "str with Choice": "str"}.get(kind, kind)
        static = connector_problem(widget_class, Parameter("p", static_kind, dict(KINDS[kind][1])), RUNTIME_SLICER)
        assert (slicer_says is None) == (static is None), (widget_class, kind, slicer_says, static)


def test_the_region_edit_and_sample_widgets_are_bound():
    """Samples and Uncertainty (Output), and the Edit region section: each widget bound to its parameter with a
    connector Slicer 5.8 has; the region segments (a qMRMLSegmentSelectorWidget, which no connector binds) synced
    by the Widget; Regenerate edited region is a button of its own beside Generate."""
    module, ui = MODULE_FILE.read_text(encoding="utf-8"), UI_FILE.read_text(encoding="utf-8")
    parameters, used, _calls, _strings = parse_module(module)
    widgets, bound = parse_ui(ui)
    region = {pname: (wname, wclass) for pname, wname, wclass, _types in bound
              if pname in ("samples", "uncertainty", "editVolume", "margin", "editIntoNewVolume", "regionSegments")}
    assert region == {"samples": ("samplesSpinBox", "QSpinBox"), "uncertainty": ("uncertaintyCheckBox", "QCheckBox"),
                      "editVolume": ("editVolumeSelector", "qMRMLNodeComboBox"),
                      "margin": ("marginSpinBox", "QDoubleSpinBox"),
                      "editIntoNewVolume": ("editIntoNewVolumeCheckBox", "QCheckBox")}
    assert {n: parameters[n].kind for n in region} == {"samples": "int", "uncertainty": "bool", "editVolume": "node",
                                                       "margin": "float", "editIntoNewVolume": "bool"}
    assert parameters["samples"].default == 1 and parameters["margin"].default == 6.0
    assert parameters["editIntoNewVolume"].default is False and parameters["uncertainty"].default is False
    assert "WithinRange" in parameters["samples"].annotations and "WithinRange" in parameters["margin"].annotations
    assert parameters["regionSegments"].kind == "other"  # list[str]: not bound in the .ui
    assert widgets["regionSegmentSelector"] == "qMRMLSegmentSelectorWidget" and "regionSegmentSelector" in used
    assert widgets["regenerateButton"] == "QPushButton" and "regenerateButton" in used
    assert widgets["regionCollapsibleButton"] == "ctkCollapsibleButton"
    # a margin bound to an int parameter would not connect on Slicer 5.8
    on_int = module.replace("margin: Annotated[float,", "margin: Annotated[int,")
    assert any("marginSpinBox -> 'margin'" in p and "5.10" in p for p in check(on_int, ui))
    # the segment selector bound like a node combo box would be refused: no connector binds it
    bound_selector = ui.replace('<widget class="qMRMLSegmentSelectorWidget" name="regionSegmentSelector">',
                                '<widget class="qMRMLSegmentSelectorWidget" name="regionSegmentSelector">'
                                '<property name="SlicerParameterName" stdset="0"><string>regionSegments</string></property>')
    assert any("regionSegmentSelector" in p and "no connector" in p for p in check(module, bound_selector))
