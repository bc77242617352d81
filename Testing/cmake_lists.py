"""Regenerate the file lists of SemanticSynth/CMakeLists.txt and SemanticSynthLib/CMakeLists.txt.

python scripts/cmake_lists.py        (runs main() here; Testing/test_extension_files.py checks the lists match the
                                      tree with module_files())
"""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESOURCE_SUFFIXES = (".png", ".ui", ".json", ".safetensors", ".nii.gz", ".md")


def module_files(folder: str):
    root = REPO / folder
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts and p.parent.name != "Testing")
    scripts = [f for f in files if f.endswith(".py")]
    resources = [f for f in files if f.endswith(RESOURCE_SUFFIXES) and f != "CMakeLists.txt"]
    return scripts, resources


def render(name: str, scripts, resources, with_subdir: bool) -> str:
    lines = ["#-----------------------------------------------------------------------------",
             f"set(MODULE_NAME {name})", "", "#-----------------------------------------------------------------------------",
             "set(MODULE_PYTHON_SCRIPTS"]
    lines += [f"  {s}" for s in scripts] + ["  )", "", "set(MODULE_PYTHON_RESOURCES"]
    lines += [f"  {r}" for r in resources] + ["  )", "", "#-----------------------------------------------------------------------------",
                                              "slicerMacroBuildScriptedModule(", "  NAME ${MODULE_NAME}",
                                              "  SCRIPTS ${MODULE_PYTHON_SCRIPTS}", "  RESOURCES ${MODULE_PYTHON_RESOURCES}"]
    lines += ["  WITH_SUBDIR"] if with_subdir else ["  WITH_GENERIC_TESTS"]
    lines += ["  )", ""]
    return "\n".join(lines)


def _replace_list(text: str, name: str, entries) -> str:
    """Swap one set(NAME ...) block for the given entries, leaving the rest of the file as it is."""
    block = "\n".join([f"set({name}"] + [f"  {e}" for e in entries] + ["  )"])
    return re.sub(rf"set\({name}\s.*?\)", lambda _m: block, text, count=1, flags=re.S)


def main():
    for folder, with_subdir in (("SemanticSynth", False), ("SemanticSynthLib", True)):
        scripts, resources = module_files(folder)
        path = REPO / folder / "CMakeLists.txt"
        if path.exists():  # keep what else the file says (self-test registration, installed extras)
            text = _replace_list(path.read_text(encoding="utf-8"), "MODULE_PYTHON_SCRIPTS", scripts)
            text = _replace_list(text, "MODULE_PYTHON_RESOURCES", resources)
        else:
            text = render(folder, scripts, resources, with_subdir)
        path.write_text(text, encoding="utf-8")
        print(f"{folder}: {len(scripts)} scripts, {len(resources)} resources")


if __name__ == "__main__":
    main()
