"""First use inside Slicer: install the engine's Python packages after asking, without letting pip change torch.

One list: the `[project] dependencies` of pyproject.toml, read from the source checkout, from the copy that
SemanticSynthLib/CMakeLists.txt installs beside this library in the extension, or from the installed
distribution's metadata (pip install), in that order.

- torch comes only through the PyTorch extension (`PyTorchUtilsLogic().installTorch`) with pyproject's minimum
  version; an older torch is reported, not replaced (as MONAIAuto3DSeg does).
- The other packages are installed by pip with torch and Slicer's own SimpleITK kept out of pip's hands:
  `slicer.packaging.pip_install(..., skip_packages=...)` where the Slicer version has it, otherwise
  TotalSegmentator's approach: each package with `--no-deps`, then its own requirements walked the same way.
- Every failure becomes one InstallError line for one message box.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import re
from pathlib import Path

from ..errors import SynthError

DISTRIBUTION = "semanticsynth"
# Never installed or changed by pip here: torch (and torchvision) belong to the PyTorch extension, SimpleITK is
# Slicer's own build (with its IO classes).
KEEP_OUT_OF_PIP = ("torch", "torchvision", "SimpleITK")


class InstallError(SynthError):
    """Installing the engine's packages failed or was not possible; the message is one line."""


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pyproject_candidates() -> list[Path]:
    library = Path(__file__).resolve().parents[1]  # the SemanticSynthLib folder
    return [library / "pyproject.toml", library.parent / "pyproject.toml"]


def _dependencies_from_pyproject(path: Path) -> list[str] | None:
    text = path.read_text(encoding="utf-8")
    try:
        import tomllib
    except ImportError:  # Python 3.10 (a pip install; every supported Slicer has 3.12): the one array, by hand
        project = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
        match = project and re.search(r"^dependencies\s*=\s*\[(.*?)\]", project.group(1), re.M | re.S)
        return re.findall(r'"([^"]+)"', match.group(1)) if match else None
    project = tomllib.loads(text).get("project", {})
    return project.get("dependencies") if project.get("name") == DISTRIBUTION else None


def requirements() -> list:
    """The engine's requirements (packaging.requirements.Requirement), from the single list in pyproject.toml."""
    from packaging.requirements import Requirement

    for path in _pyproject_candidates():
        if path.exists():
            found = _dependencies_from_pyproject(path)
            if found is not None:
                return [Requirement(r) for r in found]
    try:
        return [Requirement(r) for r in importlib.metadata.requires(DISTRIBUTION) or [] if "extra ==" not in r]
    except importlib.metadata.PackageNotFoundError:
        raise InstallError("SemanticSynth's dependency list (pyproject.toml) is missing; reinstall the extension") from None


def installed_version(name: str):
    from packaging.version import Version

    try:
        return Version(importlib.metadata.version(name))
    except importlib.metadata.PackageNotFoundError:
        return None


def applies(requirement, environment: dict | None = None) -> bool:
    """Whether a requirement's environment marker holds here (or in `environment`, e.g. {"platform_system":
    "Windows"}): `colorama; platform_system == "Windows"` does not apply on Linux."""
    return requirement.marker is None or requirement.marker.evaluate({**(environment or {}), "extra": ""})


def pip_arguments(requirement) -> list[str]:
    """`pip install` arguments for one requirement, without its marker (evaluated here, by applies()) and as
    separate list items: a string would be split on spaces by slicer.util.pip_install (shlex), and
    `colorama; platform_system == "Windows"` would reach pip as four arguments."""
    extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
    return [f"{requirement.name}{extras}{requirement.specifier}", "--no-deps"]


def satisfied(requirement, environment: dict | None = None) -> bool:
    if not applies(requirement, environment):
        return True
    version = installed_version(requirement.name)
    return version is not None and requirement.specifier.contains(version, prereleases=True)


def missing(reqs=None) -> list:
    return [r for r in (requirements() if reqs is None else reqs) if not satisfied(r)]


def ensure(confirm=None, install_torch=None, pip_install=None, install: bool = True) -> bool:
    """Install what is missing; True when everything is there. confirm(text) -> bool asks first (None: don't ask).

    install_torch(requirement) and pip_install(requirements, keep_out) default to Slicer's (PyTorch extension,
    slicer.packaging or slicer.util.pip_install); raises InstallError with one line. install=False (Slicer's
    --testing mode: a build machine may have no network) installs nothing: False, and the log names what is missing."""
    reqs = requirements()
    todo = missing(reqs)
    if not todo:
        return True
    if not install:
        logging.warning("SemanticSynth: testing mode installs nothing; missing: %s", ", ".join(map(str, todo)))
        return False
    if confirm is not None and not confirm(
            "SemanticSynth needs these Python packages: " + ", ".join(str(r) for r in todo) + ". Install them now? "
            "torch comes through the PyTorch extension, the others from PyPI; this can take several minutes."):
        return False
    try:
        torch = [r for r in todo if _canonical(r.name) == "torch"]
        if torch:
            (install_torch or install_torch_with_pytorch_extension)(torch[0])
        rest = [r for r in todo if _canonical(r.name) not in {_canonical(n) for n in KEEP_OUT_OF_PIP}]
        if rest:
            (pip_install or pip_install_keeping)(rest, KEEP_OUT_OF_PIP)
        importlib.invalidate_caches()
        still = missing(reqs)
    except InstallError:
        raise
    except Exception as exc:  # pip's CalledProcessError, network errors, ...: one line for the message box
        detail = (str(exc).strip().splitlines() or [exc.__class__.__name__])[-1]
        raise InstallError(f"installing Python packages failed: {detail}") from None
    if still:
        raise InstallError("still missing after the install: " + ", ".join(str(r) for r in still)
                           + "; restart Slicer and try again")
    return True


def install_torch_with_pytorch_extension(requirement) -> None:
    """torch through the PyTorch extension, with pyproject's version requirement; an older torch is not replaced."""
    try:
        import PyTorchUtils
    except ImportError:
        raise InstallError("SemanticSynth needs the PyTorch extension: install it from the Extensions Manager, "
                           "restart Slicer and try again") from None
    spec = str(requirement.specifier)
    version = installed_version("torch")
    if version is not None:
        raise InstallError(f"torch {version} is older than SemanticSynth needs ({spec}); install a newer one in the "
                           f"PyTorch Utils module with the version requirement {spec}")
    if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False, torchVersionRequirement=spec) is None:
        raise InstallError("PyTorch could not be installed; see the PyTorch Utils module")


def pip_install_keeping(reqs, keep_out) -> None:
    """pip install reqs without letting pip install or change the packages in keep_out."""
    import slicer

    if importlib.util.find_spec("slicer.packaging") is not None:
        import slicer.packaging

        slicer.packaging.pip_install([str(r) for r in reqs], skip_packages=list(keep_out))
        return
    install_selective(reqs, keep_out, lambda args: slicer.util.pip_install(args))  # a list: no shlex split


def install_selective(reqs, keep_out, run_pip, environment: dict | None = None, _seen=None) -> list[str]:
    """TotalSegmentator's approach: each package with --no-deps, then its own unmet requirements the same way,
    skipping keep_out and those whose marker does not hold (here, or in `environment`). run_pip(list of
    arguments) runs `pip install ARGS`. Returns the skipped requirements."""
    from packaging.requirements import Requirement

    keep = {_canonical(n) for n in keep_out}
    seen = set() if _seen is None else _seen
    skipped = []
    for req in reqs:
        name = _canonical(req.name)
        if name in keep:
            skipped.append(str(req))
            continue
        if name in seen or satisfied(req, environment):
            continue
        seen.add(name)
        run_pip(pip_arguments(req))
        importlib.invalidate_caches()
        try:
            own = [Requirement(r) for r in importlib.metadata.requires(req.name) or []]
        except importlib.metadata.PackageNotFoundError:
            raise InstallError(f"pip did not install {req}") from None
        skipped += install_selective(own, keep_out, run_pip, environment, seen)
    return skipped
