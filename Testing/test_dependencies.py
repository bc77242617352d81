"""First-use install: one list from pyproject.toml, asked first, torch never handed to pip, one-line errors.

pip itself and the PyTorch extension are the application's (they do not run here): they are replaced by
recorders, and "installing" a package writes its real metadata (.dist-info) where importlib finds it.
"""
from __future__ import annotations

import importlib
import sys
import tomllib
from subprocess import CalledProcessError

import pytest
from packaging.requirements import Requirement

from SemanticSynthLib.bridge import dependencies
from SemanticSynthLib.bridge.dependencies import InstallError
from slicer_testdata import REPO


def _pyproject(tmp_path, deps, monkeypatch):
    path = tmp_path / "pyproject.toml"
    path.write_text('[project]\nname = "semanticsynth"\ndependencies = [\n' + "".join(f'  "{d}",\n' for d in deps) + "]\n", encoding="utf-8")
    monkeypatch.setattr(dependencies, "_pyproject_candidates", lambda: [path])


def test_the_one_list_is_pyprojects():
    expected = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    assert [str(r) for r in dependencies.requirements()] == [str(Requirement(d)) for d in expected]
    assert {"torch", "monai", "psutil"} <= {r.name for r in dependencies.requirements()}


def test_the_list_is_read_without_tomllib_too(monkeypatch):
    """Slicer 5.8's Python 3.9 has no tomllib."""
    expected = dependencies._dependencies_from_pyproject(REPO / "pyproject.toml")
    monkeypatch.setitem(sys.modules, "tomllib", None)
    assert dependencies._dependencies_from_pyproject(REPO / "pyproject.toml") == expected


def test_nothing_missing_asks_nothing():
    asked = []
    assert dependencies.ensure(confirm=lambda text: asked.append(text) or True, install_torch=pytest.fail,
                               pip_install=pytest.fail)
    assert asked == []


def test_asks_first_and_no_installs_nothing(tmp_path, monkeypatch):
    _pyproject(tmp_path, ["numpy>=1", "semanticsynth-test-missing>=1"], monkeypatch)
    asked = []
    assert not dependencies.ensure(confirm=lambda text: asked.append(text) or False, install_torch=pytest.fail,
                                   pip_install=pytest.fail)
    assert len(asked) == 1 and "semanticsynth-test-missing>=1" in asked[0] and "numpy" not in asked[0]


def test_torch_and_slicers_simpleitk_are_never_handed_to_pip(tmp_path, monkeypatch):
    _pyproject(tmp_path, ["torch>=2", "SimpleITK>=99", "semanticsynth-test-missing>=1", "numpy>=1"], monkeypatch)
    calls = []
    with pytest.raises(InstallError) as info:
        dependencies.ensure(confirm=lambda text: True, install_torch=lambda r: calls.append(("torch", str(r))),
                            pip_install=lambda reqs, keep: calls.append(("pip", [str(r) for r in reqs], tuple(keep))))
    assert calls == [("pip", ["semanticsynth-test-missing>=1"], dependencies.KEEP_OUT_OF_PIP)]
    assert "torch" in dependencies.KEEP_OUT_OF_PIP and "SimpleITK" in dependencies.KEEP_OUT_OF_PIP
    assert str(info.value).startswith("still missing after the install: SimpleITK>=99, semanticsynth-test-missing>=1")
    assert "\n" not in str(info.value)


def test_a_pip_failure_is_one_line(tmp_path, monkeypatch):
    _pyproject(tmp_path, ["semanticsynth-test-missing>=1"], monkeypatch)

    def pip(reqs, keep):
        raise CalledProcessError(1, ["pip", "install"], output="lots\nof\noutput", stderr="ERROR: No matching distribution")

    with pytest.raises(InstallError) as info:
        dependencies.ensure(pip_install=pip)
    assert str(info.value).startswith("installing Python packages failed:") and "\n" not in str(info.value)


@pytest.fixture()
def pytorch_utils(tmp_path, monkeypatch):
    """The PyTorch extension's module, as far as the installer uses it; records installTorch calls."""
    (tmp_path / "PyTorchUtils.py").write_text(
        "calls = []\n"
        "class PyTorchUtilsLogic:\n"
        "    def installTorch(self, askConfirmation=False, forceComputationBackend=None, torchVersionRequirement=None,"
        " torchvisionVersionRequirement=None):\n"
        "        calls.append((askConfirmation, torchVersionRequirement))\n"
        "        return None\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "PyTorchUtils", raising=False)
    yield importlib.import_module("PyTorchUtils")
    sys.modules.pop("PyTorchUtils", None)


def test_an_older_torch_is_reported_not_replaced(pytorch_utils):
    with pytest.raises(InstallError, match=r"torch .* is older than SemanticSynth needs \(>=99\).*PyTorch Utils"):
        dependencies.install_torch_with_pytorch_extension(Requirement("torch>=99"))
    assert pytorch_utils.calls == []


def test_without_the_pytorch_extension_the_message_says_what_to_do(monkeypatch):
    monkeypatch.setitem(sys.modules, "PyTorchUtils", None)
    with pytest.raises(InstallError, match="install it from the Extensions Manager"):
        dependencies.install_torch_with_pytorch_extension(Requirement("torch>=2"))


def test_totalsegmentators_walk_installs_each_package_without_its_dependencies(tmp_path, monkeypatch):
    """Each package with --no-deps, then its own requirements the same way; torch is skipped, not installed."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    requires = {"semanticsynth-test-a": ["torch>=1", "semanticsynth-test-b>=2", "numpy>=1"], "semanticsynth-test-b": []}
    run = []

    def pip(args):  # what `pip install NAME --no-deps` leaves behind: the distribution's metadata
        run.append(args)
        name = Requirement(args[0]).name
        info = site / f"{name.replace('-', '_')}-3.0.dist-info"
        info.mkdir()
        info.joinpath("METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 3.0\n"
                                             + "".join(f"Requires-Dist: {r}\n" for r in requires[name]), encoding="utf-8")
        importlib.invalidate_caches()

    skipped = dependencies.install_selective([Requirement("semanticsynth-test-a>=1")], dependencies.KEEP_OUT_OF_PIP, pip)
    assert run == [["semanticsynth-test-a>=1", "--no-deps"], ["semanticsynth-test-b>=2", "--no-deps"]]
    assert skipped == ["torch>=1"]


def test_marker_requirements_reach_pip_unsplit_and_only_where_they_apply(tmp_path, monkeypatch):
    """Issue 32: on Slicer < 5.12 the fallback passed "colorama; platform_system == \"Windows\" --no-deps" as one
    string, which pip_install splits on spaces (pip: Invalid requirement: '=='). Markers are evaluated here; pip gets
    a list of whole arguments, and a Windows-only requirement is skipped on Linux and installed as Windows."""
    import shlex

    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    run = []

    def pip(args):
        assert isinstance(args, list) and all(shlex.split(a) == [a] for a in args), args  # nothing to split
        run.append(args)
        name = Requirement(args[0]).name
        info = site / f"{name.replace('-', '_')}-3.0.dist-info"
        info.mkdir()
        info.joinpath("METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 3.0\n", encoding="utf-8")
        importlib.invalidate_caches()

    windows_only = Requirement('semanticsynth-test-colorama>=0.4; platform_system == "Windows"')
    old_python = Requirement('semanticsynth-test-resources>=5; python_version < "3.0"')
    assert dependencies.install_selective([windows_only, old_python], (), pip, {"platform_system": "Linux"}) == []
    assert run == []
    dependencies.install_selective([windows_only, old_python], (), pip, {"platform_system": "Windows"})
    assert run == [["semanticsynth-test-colorama>=0.4", "--no-deps"]]
    assert dependencies.pip_arguments(Requirement('a[x,y]>=1; os_name == "nt"')) == ["a[x,y]>=1", "--no-deps"]
