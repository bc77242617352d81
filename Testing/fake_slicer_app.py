"""The Qt/CTK/application layer of Slicer, reduced to what the module needs, for plain CPython.

Everything above this layer is real: the module file, Slicer's own parameterNodeWrapper, ScriptedLoadableModule
and i18n (copied unchanged from Slicer into slicer_runtime/, see its README), slicer-core's slicer.util and
MRML scene, the engine in a child process. What is replaced is what does not exist here: PythonQt's `qt` and
`ctk` modules, slicer.app, the qMRML widgets and the .ui loader. Widgets keep their state, emit their signals
the way Qt does (a value change emits once; setting the same value again emits nothing), and know only the
properties they declare, so a misspelled property in the .ui or in the module fails here as it would in Slicer.

    app = install()          # qt, ctk, slicer.app, slicer.parameterNodeWrapper, ... importable
    app.processEvents()      # fires the timers that run (what Qt's event loop would do)
    app.messages             # [(title, text)] of the message boxes shown
    app.confirmAnswer        # what the next confirmation box answers (default: Ok)
    app.directoryAnswers     # folders the next QFileDialog.getExistingDirectory calls return
"""
from __future__ import annotations

import inspect
import sys
import types
import xml.etree.ElementTree as ET
from pathlib import Path

RUNTIME = Path(__file__).resolve().parent / "slicer_runtime" / "slicer"
# Slicer 5.10's parameterNodeWrapper differs from the vendored 5.13 one in wrapper.py only (its disconnectGui leaves
# connectGui's node observer behind); SEMANTICSYNTH_FAKE_SLICER=5.10 puts that file first.
RUNTIME_5_10 = RUNTIME.parent / "slicer-5.10"


class Signal:
    def __init__(self):
        self._slots = []

    def connect(self, slot):
        self._slots.append(slot)
        return True

    def disconnect(self, slot=None):
        if slot is None:
            self._slots.clear()
        elif slot in self._slots:
            self._slots.remove(slot)
        else:
            raise RuntimeError("disconnect: the slot is not connected")

    def emit(self, *args):
        for slot in list(self._slots):
            _call(slot, args)

    __call__ = emit


def _call(slot, args):
    """Like PythonQt: a slot that takes fewer arguments than the signal gets the first ones."""
    try:
        params = inspect.signature(slot).parameters.values()
    except (TypeError, ValueError):
        return slot(*args)
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return slot(*args)
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return slot(*args[:len(positional)])


def _property(name, default=None, signal=None, coerce=None):
    """A Qt property: stored per object; a change emits `signal` with the new value."""
    attr = "_p_" + name

    def get(self):
        return getattr(self, attr, default)

    def set(self, value):
        value = coerce(self, value) if coerce else value
        old = getattr(self, attr, default)
        setattr(self, attr, value)
        if signal and old != value:
            getattr(self, signal).emit(value)

    return property(get, set)


class QObject:
    SIGNALS = ("destroyed",)

    def __init__(self, parent=None):
        for cls in type(self).__mro__:
            for name in getattr(cls, "SIGNALS", ()):
                if not hasattr(self, "_sig_" + name):
                    setattr(self, "_sig_" + name, Signal())
        self._parent, self._children, self._dynamic = None, [], {}
        self.objectName = ""
        if parent is not None:
            self.setParent(parent)

    def __getattr__(self, name):  # signals are attributes, as in PythonQt
        if not name.startswith("_") and "_sig_" + name in self.__dict__:
            return self.__dict__["_sig_" + name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r} (not in the fake Qt layer)")

    def connect(self, signature, slot):
        return getattr(self, signature.split("(")[0]).connect(slot)

    def disconnect(self, signature, slot=None):
        getattr(self, signature.split("(")[0]).disconnect(slot)

    name = property(lambda self: self.objectName, lambda self, v: setattr(self, "objectName", v))

    def setObjectName(self, name):
        self.objectName = name

    def property(self, name):
        return self._dynamic.get(name)

    def setProperty(self, name, value):
        self._dynamic[name] = value

    def parent(self):
        return self._parent

    def setParent(self, parent):
        if self._parent is not None:
            self._parent._children.remove(self)
        self._parent = parent
        if parent is not None:
            parent._children.append(self)

    def children(self):
        return list(self._children)

    def findChildren(self, cls):
        found = []
        for child in self._children:
            if isinstance(child, cls):
                found.append(child)
            found += child.findChildren(cls)
        return found

    def deleteLater(self):
        pass


class QWidget(QObject):
    enabled = _property("enabled", True)
    visible = _property("visible", True)
    toolTip = _property("toolTip", "")

    def __init__(self, parent=None):
        super().__init__(parent)
        self._layout = None

    def isWidgetType(self):
        return True

    def isEnabled(self):
        return self.enabled

    def setEnabled(self, value):
        self.enabled = value

    def layout(self):
        return self._layout

    def setLayout(self, layout):
        self._layout = layout
        layout._owner = self

    def show(self):
        self.visible = True


class QLayout(QObject):
    def __init__(self, parent=None):
        super().__init__()
        self._owner = None
        if isinstance(parent, QWidget):
            parent.setLayout(self)

    def addWidget(self, widget, *args):
        widget.setParent(self._owner)

    def addRow(self, *items):
        for item in items:
            if isinstance(item, QWidget):
                self.addWidget(item)


class QVBoxLayout(QLayout):
    pass


class QHBoxLayout(QLayout):
    pass


class QFormLayout(QLayout):
    pass


class QAbstractButton(QWidget):
    SIGNALS = ("clicked", "toggled", "pressed", "released")
    text = _property("text", "")
    checkable = _property("checkable", False)
    checked = _property("checked", False, signal="toggled")

    def __init__(self, text="", parent=None):
        super().__init__(parent)
        self.text = text

    def click(self):
        """A user's click: nothing when disabled (as in Qt)."""
        if not self.enabled:
            return
        if self.checkable:
            self.checked = not self.checked
        self.clicked.emit(self.checked)


class QPushButton(QAbstractButton):
    pass


class QToolButton(QAbstractButton):
    pass


class QCheckBox(QAbstractButton):
    SIGNALS = ("stateChanged",)

    def __init__(self, text="", parent=None):
        super().__init__(text, parent)
        self.checkable = True
        self.toggled.connect(lambda checked: self.stateChanged.emit(2 if checked else 0))


class QLabel(QWidget):
    text = _property("text", "")
    wordWrap = _property("wordWrap", False)

    def __init__(self, text="", parent=None):
        super().__init__(parent)
        self.text = text


class QProgressBar(QWidget):
    SIGNALS = ("valueChanged",)
    minimum = _property("minimum", 0)
    maximum = _property("maximum", 100)
    value = _property("value", 0, signal="valueChanged", coerce=lambda self, v: int(v))


class QSpinBox(QWidget):
    SIGNALS = ("valueChanged",)
    minimum = _property("minimum", 0)
    maximum = _property("maximum", 99)
    singleStep = _property("singleStep", 1)
    specialValueText = _property("specialValueText", "")  # QAbstractSpinBox: shown instead of the minimum
    suffix = _property("suffix", "")
    value = _property("value", 0, signal="valueChanged",
                      coerce=lambda self, v: max(self.minimum, min(self.maximum, int(v))))

    def setRange(self, minimum, maximum):
        self.minimum, self.maximum = minimum, maximum
        self.value = self.value

    def setMinimum(self, minimum):
        self.setRange(minimum, max(minimum, self.maximum))

    def setMaximum(self, maximum):
        self.setRange(min(self.minimum, maximum), maximum)


class QDoubleSpinBox(QWidget):
    """As Qt's: the value is rounded to `decimals` and kept in [minimum, maximum], which move it when they change."""
    SIGNALS = ("valueChanged",)
    singleStep = _property("singleStep", 1.0)
    specialValueText = _property("specialValueText", "")  # shown instead of the minimum
    suffix = _property("suffix", "")
    value = _property("value", 0.0, signal="valueChanged",
                      coerce=lambda self, v: max(self.minimum, min(self.maximum, round(float(v), self.decimals))))

    def _bound(name):
        def set(self, v):
            setattr(self, "_p_" + name, round(float(v), self.decimals) if abs(float(v)) != float("inf") else float(v))
            if name == "minimum" and self.maximum < self.minimum:
                self._p_maximum = self.minimum
            if name == "maximum" and self.minimum > self.maximum:
                self._p_minimum = self.maximum
            self.value = self.value
        return property(lambda self: getattr(self, "_p_" + name, {"minimum": 0.0, "maximum": 99.99}[name]), set)

    minimum, maximum = _bound("minimum"), _bound("maximum")
    del _bound

    @property
    def decimals(self):
        return getattr(self, "_p_decimals", 2)

    @decimals.setter
    def decimals(self, n):
        self._p_decimals = int(n)
        self.minimum, self.maximum = self.minimum, self.maximum

    def setRange(self, minimum, maximum):
        self.minimum, self.maximum = minimum, maximum


class QComboBox(QWidget):
    SIGNALS = ("currentIndexChanged", "currentTextChanged", "activated")

    def __init__(self, parent=None):
        super().__init__(parent)
        self._items, self._index = [], -1

    @property
    def count(self):
        return len(self._items)

    def itemText(self, index):
        return self._items[index] if 0 <= index < len(self._items) else ""

    @property
    def currentText(self):
        return self.itemText(self._index)

    @property
    def currentIndex(self):
        return self._index

    @currentIndex.setter
    def currentIndex(self, index):
        index = index if -1 <= index < len(self._items) else -1
        if index != self._index:
            self._index = index
            self.currentIndexChanged.emit(index)
            self.currentTextChanged.emit(self.currentText)

    def setCurrentIndex(self, index):
        self.currentIndex = index

    def findText(self, text):
        return self._items.index(text) if text in self._items else -1

    def addItem(self, text, userData=None):
        self.insertItem(len(self._items), text)

    def addItems(self, texts):
        for text in texts:
            self.addItem(text)

    def insertItem(self, index, text, userData=None):
        self._items.insert(index, str(text))
        if self._index == -1:
            self.currentIndex = 0
        elif index <= self._index:
            self._index += 1

    def clear(self):
        self._items = []
        self.currentIndex = -1

    def activate(self, index):
        """A user's choice in the list (Qt emits activated only for those)."""
        self.currentIndex = index
        self.activated.emit(index)


class QTimer(QObject):
    SIGNALS = ("timeout",)
    running = []  # the timers that run, in start order: what processEvents fires

    def __init__(self, parent=None):
        super().__init__(parent)
        self.interval = 0
        self.singleShot_ = False

    def setInterval(self, ms):
        self.interval = ms

    def start(self, ms=None):
        if ms is not None:
            self.interval = ms
        if self not in QTimer.running:
            QTimer.running.append(self)

    def stop(self):
        if self in QTimer.running:
            QTimer.running.remove(self)

    def isActive(self):
        return self in QTimer.running

    @staticmethod
    def singleShot(ms, callback):
        timer = QTimer()
        timer.singleShot_ = True
        timer.timeout.connect(callback)
        timer.start(ms)


class QFile:
    ReadOnly = 1

    def __init__(self, path):
        self.path = Path(path)

    def exists(self):
        return self.path.is_file()

    def open(self, mode):
        return True


class QMessageBox(QWidget):
    Ok, Cancel, Yes, No, Retry, Close = 0x400, 0x400000, 0x4000, 0x10000, 0x80000, 0x200000
    NoIcon, Information, Warning, Critical, Question = 0, 1, 2, 3, 4


class QFileDialog:
    @staticmethod
    def getExistingDirectory(parent=None, caption="", directory=""):
        answers = _APP.directoryAnswers
        return answers.pop(0) if answers else ""


class QSettings:
    _values: dict = {}

    def value(self, key, default=None):
        return self._values.get(key, default)

    def setValue(self, key, value):
        self._values[key] = value

    def contains(self, key):
        return key in self._values


class QColor:
    def __init__(self, *args):
        self.args = args


class QIcon:
    def __init__(self, path=""):
        self.path = path


class Qt:
    WaitCursor, ArrowCursor, Vertical, Horizontal = 3, 0, 2, 1


class QCursor:
    def __init__(self, shape=0):
        self._shape = shape

    def shape(self):
        return self._shape


class QApplication:
    _cursors: list = []

    @staticmethod
    def setOverrideCursor(cursor):
        QApplication._cursors.append(cursor if isinstance(cursor, QCursor) else QCursor(cursor))

    @staticmethod
    def restoreOverrideCursor():
        if QApplication._cursors:
            QApplication._cursors.pop()

    @staticmethod
    def overrideCursor():
        return QApplication._cursors[-1] if QApplication._cursors else None


def _stub(name, base=QWidget):
    return type(name, (base,), {})


# ----------------------------------------------------------------------------------------- ctk
class ctkCollapsibleButton(QAbstractButton):
    collapsed = _property("collapsed", False)


class ctkPathLineEdit(QWidget):
    """A path field with a browse button: the text is `currentPath`; a change emits currentPathChanged."""
    SIGNALS = ("currentPathChanged", "validInputChanged")
    currentPath = _property("currentPath", "", signal="currentPathChanged", coerce=lambda self, v: str(v))
    filters = _property("filters", "")  # a .ui <set>, kept as its text
    nameFilters = _property("nameFilters", ())
    label = _property("label", "")

    def setCurrentPath(self, path):
        self.currentPath = path


class ctkMessageBox(QMessageBox):
    text = _property("text", "")
    windowTitle = _property("windowTitle", "")
    icon = _property("icon", 0)
    standardButtons = _property("standardButtons", 0)
    detailedText = _property("detailedText", "")

    def exec_(self):
        _APP.messages.append((self.windowTitle, self.text))
        return _APP.confirmAnswer if self.icon == QMessageBox.Question else QMessageBox.Ok


# ----------------------------------------------------------------------------------------- qMRML widgets
class qMRMLWidget(QWidget):
    SIGNALS = ("mrmlSceneChanged",)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._scene = None

    def setMRMLScene(self, scene):
        self._scene = scene
        self.mrmlSceneChanged.emit(scene)

    def mrmlScene(self):
        return self._scene


class qMRMLNodeComboBox(qMRMLWidget):
    """Lists the scene's nodes of nodeTypes; setCurrentNode ignores a node of another type, as Slicer's does."""
    SIGNALS = ("currentNodeChanged", "currentNodeIDChanged", "nodeAdded", "nodeActivated")
    nodeTypes = _property("nodeTypes", ())
    noneEnabled = _property("noneEnabled", False)
    addEnabled = _property("addEnabled", True)
    removeEnabled = _property("removeEnabled", True)
    renameEnabled = _property("renameEnabled", False)
    noneDisplay = _property("noneDisplay", "None")

    def __init__(self, parent=None):
        super().__init__(parent)
        self._node = None

    def nodes(self):
        scene = self.mrmlScene()
        if scene is None:
            return []
        return [n for t in self.nodeTypes for n in [scene.GetNthNodeByClass(i, t) for i in range(scene.GetNumberOfNodesByClass(t))]]

    def currentNode(self):
        if self._node is not None and (self.mrmlScene() is None or not self.mrmlScene().IsNodePresent(self._node)):
            self._node = None  # removed from the scene
        return self._node

    def currentNodeID(self):
        return self._node.GetID() if self.currentNode() else ""

    def setCurrentNode(self, node):
        if node is not None and not any(node.IsA(t) for t in self.nodeTypes):
            return
        if node is not self._node:
            self._node = node
            self.currentNodeChanged.emit(node)
            self.currentNodeIDChanged.emit(node.GetID() if node else "")


class qMRMLSegmentSelectorWidget(qMRMLWidget):
    """A segmentation node and, with multiSelection, a checkable list of its segments (Slicer's
    qMRMLSegmentSelectorWidget): setSelectedSegmentIDs keeps the ids of segments that exist and emits
    segmentSelectionChanged when the selection changed, as Slicer's does; checking items in its list is the same."""
    SIGNALS = ("currentNodeChanged", "currentSegmentChanged", "segmentSelectionChanged")
    noneEnabled = _property("noneEnabled", False)
    editEnabled = _property("editEnabled", False)
    segmentationNodeSelectorVisible = _property("segmentationNodeSelectorVisible", True)
    multiSelection = _property("multiSelection", False)
    horizontalLayout = _property("horizontalLayout", False)
    selectNodeUponCreation = _property("selectNodeUponCreation", True)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._node, self._selected = None, []

    def currentNode(self):
        if self._node is not None and (self.mrmlScene() is None or not self.mrmlScene().IsNodePresent(self._node)):
            self._node = None
        return self._node

    def currentNodeID(self):
        return self._node.GetID() if self.currentNode() else ""

    def setCurrentNode(self, node):
        if node is not None and not node.IsA("vtkMRMLSegmentationNode"):
            return
        if node is not self._node:
            self._node = node
            self.currentNodeChanged.emit(node)
            self.setSelectedSegmentIDs(self._selected)  # the stored selection, of the segments the node has

    def segmentIDs(self):
        node = self.currentNode()
        if node is None:
            return []
        segmentation = node.GetSegmentation()
        return [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]

    def selectedSegmentIDs(self):
        return list(self._selected)

    def setSelectedSegmentIDs(self, ids):
        if not self.multiSelection:
            raise RuntimeError("qMRMLSegmentSelectorWidget: multi-selection is off, use setCurrentSegmentID instead")
        if self.currentNode() is None:
            return
        existing = self.segmentIDs()
        ids = [i for i in ids if i in existing]
        if ids != self._selected:
            self._selected = ids
            self.segmentSelectionChanged.emit(list(ids))


class QMainWindow(QWidget):
    pass


# ----------------------------------------------------------------------------------------- .ui loader
class QUiLoader:
    """Builds the widget tree of a Qt Designer file: classes, names, properties, layouts' children, connections."""

    def load(self, qfile, parent=None):
        root = ET.parse(qfile.path).getroot()
        widgets = {}
        top = self._widget(root.find("widget"), None, widgets)
        for c in root.iter("connection"):
            sender, receiver = widgets[c.findtext("sender")], widgets[c.findtext("receiver")]
            sender.connect(c.findtext("signal"), getattr(receiver, c.findtext("slot").split("(")[0]))
        return top

    def _widget(self, element, parent, widgets):
        widget = _widget_class(element.get("class"))()
        widget.setParent(parent)
        widget.objectName = element.get("name")
        widgets[widget.objectName] = widget
        for prop in element.findall("property"):
            name, value = prop.get("name"), _property_value(prop)
            if prop.get("stdset") == "0":
                widget.setProperty(name, value)
            elif isinstance(getattr(type(widget), name, None), property):
                setattr(widget, name, value)
            else:
                raise AttributeError(f".ui: {element.get('class')} {widget.objectName} has no property {name!r}")
        self._children(element, widget, widgets)
        return widget

    def _children(self, element, owner, widgets):
        for child in element:
            if child.tag == "widget":
                self._widget(child, owner, widgets)
            elif child.tag in ("layout", "item"):
                self._children(child, owner, widgets)


def _property_value(prop):
    value = list(prop)[0]
    if value.tag == "string":
        return value.text or ""
    if value.tag == "bool":
        return value.text == "true"
    if value.tag == "number":
        return int(value.text)
    if value.tag == "double":
        return float(value.text)
    if value.tag == "set":  # flags such as ctkPathLineEdit::Files|ctkPathLineEdit::Readable
        return value.text
    if value.tag == "stringlist":
        return [s.text for s in value.findall("string")]
    if value.tag == "enum":
        return value.text
    raise ValueError(f"unsupported .ui property type {value.tag}")


def _widget_class(name):
    for module in (sys.modules["qt"], sys.modules["ctk"], sys.modules["slicer"]):
        if isinstance(getattr(module, name, None), type):
            return getattr(module, name)
    raise ValueError(f".ui: unknown widget class {name} (neither Qt, CTK nor Slicer has it)")


# ----------------------------------------------------------------------------------------- slicer.app
class FakeApplication(QObject):
    SIGNALS = ("startupCompleted",)
    applicationName = "Slicer"

    def __init__(self, version=(5, 13)):
        super().__init__()
        self.majorVersion, self.minorVersion = version  # qSlicerCoreApplication's properties
        self.testing = False  # what testingEnabled() answers (Slicer's --testing)
        self.messages = []
        self.confirmAnswer = QMessageBox.Ok
        self.directoryAnswers = []
        self.mainWindow = QMainWindow()
        self.mainWindow.objectName = "qSlicerMainWindow"
        self._moduleManager = QObject()
        self._moduleManager.__dict__["_sig_moduleAboutToBeUnloaded"] = Signal()

    def testingEnabled(self):
        return self.testing

    def topLevelWidgets(self):
        return [self.mainWindow]

    def moduleManager(self):
        return self._moduleManager

    def layoutManager(self):
        return None

    def translate(self, context, text):
        return text

    def setOverrideCursor(self, cursor):
        QApplication.setOverrideCursor(cursor)

    def restoreOverrideCursor(self):
        QApplication.restoreOverrideCursor()

    def processEvents(self):
        """One pass of the event loop: every running timer fires once (single-shot ones stop first)."""
        for timer in list(QTimer.running):
            if timer.singleShot_:
                timer.stop()
            if timer in QTimer.running or timer.singleShot_:
                timer.timeout.emit()


_APP = None


class SampleDataLogic:
    """Slicer's SampleData module (a Qt module) for a registered source with a local file URI: the segmentation
    file is read by slicer-core's segmentations logic, as SegmentationFile loading does in Slicer."""
    sources = {}

    @classmethod
    def registerCustomSampleDataSource(cls, category, sampleName, uris, fileNames, nodeNames, loadFileType, **_):
        cls.sources[sampleName] = (uris, nodeNames, loadFileType)


def downloadSample(sampleName):
    import os
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    import slicer

    uri, name, fileType = SampleDataLogic.sources[sampleName]
    assert fileType == "SegmentationFile" and uri.startswith("file:"), "only local segmentation samples here"
    path = url2pathname(urlparse(uri).path)
    assert os.path.isfile(path), path
    from slicer_testdata import segmentation_from_file

    return segmentation_from_file(slicer.mrmlScene, path, name)


def load_module(path, name="SemanticSynth"):
    """Load a module file as Slicer's module factory does: import it, instantiate the module class."""
    import importlib.util

    import slicer

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    parent = types.SimpleNamespace(path=str(path))
    getattr(module, name)(parent)
    setattr(slicer.modules, name.lower(), parent)
    return module


def module_widget(module, scene, name="SemanticSynth"):
    """The module's Widget, set up in an entered panel on the scene (as the module panel does on first show)."""
    import qt
    import slicer

    parent = slicer.qMRMLWidget()
    parent.setLayout(qt.QVBoxLayout())
    parent.setMRMLScene(scene)
    parent.isEntered = True
    widget = getattr(module, name + "Widget")(parent)
    widget.setup()
    return widget


def _load_parameter_node_wrapper(first):
    """slicer.parameterNodeWrapper with its submodules looked up in `first`, then in the vendored runtime."""
    import importlib.util

    package = "slicer.parameterNodeWrapper"
    spec = importlib.util.spec_from_file_location(package, RUNTIME / "parameterNodeWrapper" / "__init__.py",
                                                  submodule_search_locations=[str(first), str(RUNTIME / "parameterNodeWrapper")])
    module = importlib.util.module_from_spec(spec)
    sys.modules[package] = module
    spec.loader.exec_module(module)


def install() -> FakeApplication:
    """Make qt, ctk, slicer.app and Slicer's Python packages importable; idempotent. Returns the application.
    $SEMANTICSYNTH_FAKE_SLICER (default 5.13) is the version slicer.app reports; 5.10 also loads its wrapper.py."""
    global _APP
    import os

    import slicer

    if _APP is not None:
        return _APP
    qt = types.ModuleType("qt")
    for obj in (QObject, QWidget, QLayout, QVBoxLayout, QHBoxLayout, QFormLayout, QAbstractButton, QPushButton,
                QToolButton, QCheckBox, QLabel, QProgressBar, QSpinBox, QDoubleSpinBox, QComboBox, QTimer, QFile, QMessageBox,
                QFileDialog, QSettings, QColor, QIcon, Qt, QCursor, QApplication, QUiLoader, QMainWindow):
        setattr(qt, obj.__name__, obj)
    for name in ("QSlider", "QLineEdit", "QTextEdit", "QDialog", "QMenu"):
        setattr(qt, name, _stub(name))
    ctk = types.ModuleType("ctk")
    ctk.ctkCollapsibleButton, ctk.ctkMessageBox, ctk.ctkPathLineEdit = ctkCollapsibleButton, ctkMessageBox, ctkPathLineEdit
    for name in ("ctkCheckBox", "ctkCheckablePushButton", "ctkSliderWidget", "ctkDoubleSlider", "ctkDoubleSpinBox",
                 "ctkComboBox", "ctkRangeWidget", "ctkDoubleRangeSlider", "ctkDirectoryButton",
                 "ctkColorPickerButton"):
        setattr(ctk, name, _stub(name))
    sys.modules["qt"], sys.modules["ctk"] = qt, ctk
    slicer.qMRMLWidget, slicer.qMRMLNodeComboBox = qMRMLWidget, qMRMLNodeComboBox
    slicer.qMRMLSegmentSelectorWidget = qMRMLSegmentSelectorWidget
    for name in ("qMRMLSliderWidget", "qMRMLSpinBox", "qMRMLRangeWidget", "qSlicerWidget"):
        setattr(slicer, name, _stub(name))
    version = tuple(int(v) for v in os.environ.get("SEMANTICSYNTH_FAKE_SLICER", "5.13").split("."))
    _APP = FakeApplication(version)
    slicer.app = _APP
    slicer.modules = types.SimpleNamespace()
    sample_data = types.ModuleType("SampleData")
    sample_data.SampleDataLogic, sample_data.downloadSample = SampleDataLogic, downloadSample
    sys.modules["SampleData"] = sample_data
    if str(RUNTIME) not in slicer.__path__:
        slicer.__path__.append(str(RUNTIME))  # slicer.parameterNodeWrapper, slicer.ScriptedLoadableModule, slicer.i18n
    if version == (5, 10):
        _load_parameter_node_wrapper(RUNTIME_5_10 / "parameterNodeWrapper")
    return _APP
