"""Regenerate the file lists of SemanticSynth/CMakeLists.txt and SemanticSynthLib/CMakeLists.txt.

python scripts/cmake_lists.py        (Testing/test_extension_files.py checks the lists match the tree)
"""
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
    lines = [f"#-----------------------------------------------------------------------------",
             f"set(MODULE_NAME {name})", "", "#-----------------------------------------------------------------------------",
             "set(MODULE_PYTHON_SCRIPTS"]
    lines += [f"  {s}" for s in scripts] + ["  )", "", "set(MODULE_PYTHON_RESOURCES"]
    lines += [f"  {r}" for r in resources] + ["  )", "", "#-----------------------------------------------------------------------------",
                                              "slicerMacroBuildScriptedModule(", "  NAME ${MODULE_NAME}",
                                              "  SCRIPTS ${MODULE_PYTHON_SCRIPTS}", "  RESOURCES ${MODULE_PYTHON_RESOURCES}"]
    lines += ["  WITH_SUBDIR"] if with_subdir else ["  WITH_GENERIC_TESTS"]
    lines += ["  )", ""]
    return "\n".join(lines)


def main():
    for folder, with_subdir in (("SemanticSynth", False), ("SemanticSynthLib", True)):
        scripts, resources = module_files(folder)
        (REPO / folder / "CMakeLists.txt").write_text(render(folder, scripts, resources, with_subdir))
        print(f"{folder}: {len(scripts)} scripts, {len(resources)} resources")


if __name__ == "__main__":
    main()
