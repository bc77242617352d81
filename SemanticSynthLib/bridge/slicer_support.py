"""Which Slicer releases SemanticSynth supports, checked when the module loads.

Supported: Slicer 5.10 and later: 5.10, 5.12 and 5.13 (the preview), all with
Python 3.12. Slicer 5.8 (Python 3.9) is not: the engine's typed requests and schemas need Python 3.10, and no 3.9
interpreter is available to test on. pyproject.toml's `requires-python` says the same for pip installs.

This file is imported by SemanticSynth/SemanticSynth.py before anything else of the library, so it must run on
the oldest Python a Slicer 5 has (3.6): no annotations, no newer syntax.
"""
import sys

MINIMUM_SLICER = (5, 10)
MINIMUM_PYTHON = (3, 10)
SUPPORTED_TEXT = "Slicer 5.10 or later (tested with 5.10, 5.12 and the 5.13 preview)"


def unsupported_reason(slicer_version, python_version=None):
    """None on a supported Slicer; otherwise the one line the module shows at load.

    Args:
        slicer_version: (major, minor) of the running Slicer, e.g. (slicer.app.majorVersion, slicer.app.minorVersion).
        python_version: (major, minor) of its Python; default: this interpreter's.
    """
    slicer_version = tuple(int(v) for v in slicer_version[:2])
    python_version = tuple(python_version or sys.version_info[:2])[:2]
    if slicer_version >= MINIMUM_SLICER and python_version >= MINIMUM_PYTHON:
        return None
    return ("SemanticSynth needs {} with Python {}.{} or later; this is Slicer {}.{} with Python {}.{}: install a "
            "newer Slicer from download.slicer.org").format(SUPPORTED_TEXT, MINIMUM_PYTHON[0], MINIMUM_PYTHON[1],
                                                             slicer_version[0], slicer_version[1], python_version[0],
                                                             python_version[1])


def running_slicer_version(app):
    """(major, minor) of the running application (qSlicerCoreApplication's majorVersion/minorVersion properties)."""
    return (int(app.majorVersion), int(app.minorVersion))
