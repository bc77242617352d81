"""Checks a scripted module's parameter-node bindings against its .ui without Slicer: read, not run.

The module file is parsed (ast), never imported, so any version of it can be checked, including one that would
not import here. For every widget of the .ui with a `SlicerParameterName`:
- the name is a parameter of the module's @parameterNodeWrapper class, and no other widget has it;
- a connector of Slicer's guiConnectors.py accepts the widget's class with the parameter's type, and the
  annotations that connector needs are there (CONNECTORS below mirrors its canRepresent/create/__init__), in every
  Slicer the extension supports (OLDEST_SLICER on: 5.8's guiConnectors.py lacks two that 5.10 has);
- defaults fit their Choice and WithinRange;
- a qMRMLNodeComboBox's nodeTypes are the annotation's node classes (the connector overwrites them);
- the module does not add or remove items of a combo box bound with Choice (the connector owns its items).
And every `self.ui.NAME` the module uses is a widget of the .ui.
"""
from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

PATH_TYPES = {"Path", "PosixPath", "WindowsPath", "PurePath", "PurePosixPath", "PureWindowsPath"}


def _bounded(annotations):
    return "WithinRange" in annotations or {"Minimum", "Maximum"} <= set(annotations)


OLDEST_SLICER = (5, 8)  # the oldest Slicer the extension supports: its guiConnectors.py is the one to satisfy
_DOUBLE_WIDGETS = {"QDoubleSpinBox", "ctkSliderWidget", "qMRMLSliderWidget", "ctkDoubleSlider", "ctkDoubleSpinBox",
                   "qMRMLSpinBox"}
_SLIDER_BOUNDS = {"bounded if slider widget": "a ctkSliderWidget/qMRMLSliderWidget needs WithinRange or Minimum+Maximum"}

# (widget classes, parameter types, {annotation requirement: why}, first Slicer with it) in guiConnectors.py's
# registration order. Checked against Slicer's git tags v5.8.0 and v5.10.0: 5.10 added ctkCheckablePushButton
# and int parameters on the double spin boxes and sliders (5.8's connector takes float only).
CONNECTORS = [
    ({"QCheckBox", "ctkCheckBox"}, {"bool"}, {}, (5, 8)),
    ({"QPushButton"}, {"bool"}, {}, (5, 8)),
    ({"ctkCheckablePushButton"}, {"bool"}, {}, (5, 10)),
    ({"QSlider", "QSpinBox"}, {"int"}, {"bounded if QSlider": "a QSlider needs WithinRange or Minimum+Maximum"}, (5, 8)),
    (_DOUBLE_WIDGETS, {"float"}, _SLIDER_BOUNDS, (5, 8)),
    (_DOUBLE_WIDGETS, {"int"}, _SLIDER_BOUNDS, (5, 10)),
    ({"QComboBox", "ctkComboBox"}, {"int", "float", "str", "bool"},
     {"Choice": "QComboBoxToStringableConnector requires the Choice annotation"}, (5, 8)),
    ({"QComboBox", "ctkComboBox"}, {"enum"}, {}, (5, 8)),
    ({"QLineEdit"}, {"str"}, {}, (5, 8)),
    ({"QLabel"}, {"str"}, {}, (5, 8)),
    ({"QTextEdit"}, {"str"}, {}, (5, 8)),
    ({"ctkRangeWidget", "ctkDoubleRangeSlider", "qMRMLRangeWidget"}, {"FloatRange"},
     {"RangeBounds": "a range widget needs the RangeBounds annotation"}, (5, 8)),
    ({"ctkPathLineEdit", "ctkDirectoryButton"}, {"Path"}, {}, (5, 8)),
    ({"qMRMLNodeComboBox"}, {"node"}, {}, (5, 8)),
    ({"ctkColorPickerButton"}, {"QColor"}, {}, (5, 8)),
]


@dataclass
class Parameter:
    name: str
    kind: str  # bool int float str Path node enum FloatRange QColor other
    annotations: dict = field(default_factory=dict)  # name -> literal args (None when not literal)
    node_classes: list = field(default_factory=list)
    default: object = None
    has_default: bool = False


def connector_problem(widget_class: str, parameter: Parameter, slicer: tuple = OLDEST_SLICER) -> str | None:
    """Why the connectors of this Slicer version and later cannot bind this widget class to this parameter; None
    when one can."""
    for widgets, kinds, needs, since in CONNECTORS:
        if widget_class in widgets and parameter.kind in kinds:
            if since > slicer:
                return (f"a {widget_class} binds to {parameter.kind} parameters only from Slicer "
                        f"{'.'.join(map(str, since))} on; the extension supports {'.'.join(map(str, slicer))}")
            for need, why in needs.items():
                if need == "Choice" and "Choice" not in parameter.annotations:
                    return why
                if need == "RangeBounds" and "RangeBounds" not in parameter.annotations:
                    return why
                if need == "bounded if QSlider" and widget_class == "QSlider" and not _bounded(parameter.annotations):
                    return why
                if (need == "bounded if slider widget" and widget_class in ("ctkSliderWidget", "qMRMLSliderWidget")
                        and not _bounded(parameter.annotations)):
                    return why
            return None
    return f"no connector in guiConnectors.py binds a {widget_class} to a {parameter.kind} parameter"


def _name(node) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return ""


def _literal(node):
    try:
        return ast.literal_eval(node)
    except ValueError:
        return None


def _parameter(name: str, annotation, default, enums: set) -> Parameter:
    p = Parameter(name, "other")
    if isinstance(annotation, ast.Subscript) and _name(annotation.value) == "Annotated":
        elements = annotation.slice.elts if isinstance(annotation.slice, ast.Tuple) else [annotation.slice]
        annotation = elements[0]
        for extra in elements[1:]:
            if isinstance(extra, ast.Call):
                p.annotations[_name(extra.func)] = [_literal(a) for a in extra.args]
    members = []
    if isinstance(annotation, ast.BinOp):  # A | B
        stack = [annotation]
        while stack:
            n = stack.pop()
            stack += [n.left, n.right] if isinstance(n, ast.BinOp) else []
            members += [] if isinstance(n, ast.BinOp) else [_name(n)]
    elif isinstance(annotation, ast.Subscript) and _name(annotation.value) in ("Union", "Optional"):
        elts = annotation.slice.elts if isinstance(annotation.slice, ast.Tuple) else [annotation.slice]
        members = [_name(e) for e in elts]
    else:
        members = [_name(annotation)]
    members = [m for m in members if m not in ("None", "")]
    if members and all(m.startswith("vtkMRML") for m in members):
        p.kind, p.node_classes = "node", members
    elif len(members) == 1:
        m = members[0]
        p.kind = ("Path" if m in PATH_TYPES else "enum" if m in enums else
                  m if m in ("bool", "int", "float", "str", "FloatRange", "QColor") else "other")
    if default is not None:
        p.default, p.has_default = _literal(default), True
    return p


def parse_module(source: str):
    """(parameters by name, the names used as self.ui.NAME, the combo methods called per ui name)."""
    tree = ast.parse(source)
    enums = {c.name for c in ast.walk(tree) if isinstance(c, ast.ClassDef)
             and any(_name(b) in ("Enum", "IntEnum", "StrEnum") for b in c.bases)}
    wrappers = [c for c in ast.walk(tree) if isinstance(c, ast.ClassDef)
                and any(_name(d.func if isinstance(d, ast.Call) else d) == "parameterNodeWrapper" for d in c.decorator_list)]
    if len(wrappers) != 1:
        raise ValueError(f"expected one @parameterNodeWrapper class, found {len(wrappers)}")
    parameters = {}
    for stmt in wrappers[0].body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            parameters[stmt.target.id] = _parameter(stmt.target.id, stmt.annotation, stmt.value, enums)
    used, calls = set(), {}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) and node.value.attr == "ui"
                and isinstance(node.value.value, ast.Name) and node.value.value.id == "self"):
            used.add(node.attr)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            target = node.func.value
            if (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Attribute) and target.value.attr == "ui"):
                calls.setdefault(target.attr, set()).add(node.func.attr)
    # getattr(self.ui, "name") is followed too, for names given as string constants anywhere in the module
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    return parameters, used, calls, strings


def parse_ui(ui_text: str):
    """(every widget name -> class, [(parameter name, widget name, class, nodeTypes)])."""
    root = ET.fromstring(ui_text)
    widgets, bound = {}, []
    for w in root.iter("widget"):
        widgets[w.get("name")] = w.get("class")
        props = {p.get("name"): p for p in w.findall("property")}
        if "SlicerParameterName" in props:
            node_types = [s.text for s in props["nodeTypes"].iter("string")] if "nodeTypes" in props else None
            bound.append((props["SlicerParameterName"].findtext("string"), w.get("name"), w.get("class"), node_types))
    return widgets, bound


def check(module_source: str, ui_text: str) -> list[str]:
    """Every problem found, one line each; empty when the bindings will connect in Slicer."""
    parameters, used, calls, strings = parse_module(module_source)
    widgets, bound = parse_ui(ui_text)
    problems = []
    seen = {}
    for pname, wname, wclass, node_types in bound:
        where = f"{wclass} {wname} -> {pname!r}"
        if pname in seen:
            problems.append(f"{where}: {seen[pname]} is bound to the same parameter")
        seen[pname] = wname
        top = pname.split(".")[0]
        if top not in parameters:
            problems.append(f"{where}: no such parameter in the @parameterNodeWrapper class")
            continue
        p = parameters[top]
        why = connector_problem(wclass, p)
        if why:
            problems.append(f"{where}: {why}")
        choice = p.annotations.get("Choice")
        if choice and choice[0] is not None and p.has_default and p.default not in choice[0]:
            problems.append(f"{where}: default {p.default!r} is not among the Choice {choice[0]}")
        rng = p.annotations.get("WithinRange")
        if rng and None not in rng and p.has_default and not rng[0] <= p.default <= rng[1]:
            problems.append(f"{where}: default {p.default!r} is outside WithinRange{tuple(rng)}")
        if wclass == "qMRMLNodeComboBox" and p.kind == "node" and node_types is not None and sorted(node_types) != sorted(p.node_classes):
            problems.append(f"{where}: nodeTypes {node_types} in the .ui, {p.node_classes} in the annotation")
        if wclass in ("QComboBox", "ctkComboBox") and "Choice" in p.annotations:
            edits = calls.get(wname, set()) & {"addItem", "addItems", "insertItem", "insertItems", "clear", "removeItem"}
            if edits:
                problems.append(f"{where}: the module calls {', '.join(sorted(edits))} on it, but its Choice connector owns the items")
    for name in sorted(used - set(widgets)):
        problems.append(f"self.ui.{name}: no widget of that name in the .ui")
    for name in sorted(n for n in strings if re.fullmatch(r"[a-z]\w*(ComboBox|Button|Selector|Label|Bar|SpinBox|CheckBox)", n)):
        if name not in widgets:
            problems.append(f"{name!r} (used as a widget name): no widget of that name in the .ui")
    return problems
