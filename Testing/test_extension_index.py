"""SemanticSynth.json, the extension's entry for the Slicer Extensions Index (github.com/Slicer/ExtensionsIndex),
checked offline the way the index checks a submitted entry.

The index runs scripts/check_description_files.py on every changed top-level *.json (workflow
.github/workflows/extension-validation.yml) and its pre-commit hooks on every file. What is reproduced here (own
small functions below, nothing imported from the index; the index was read at commit
07f1d1b2781c7dd9f6e2a9f5521b3ed43631724c):

check_description_files.py
- check_json_schema: the entry validates against the schema its "$schema" URL names. The script downloads that URL;
  here the same file, vendored unchanged in Testing/extensions_index/, is used, and the vendored file's "$id" must be
  that URL.
- check_json_file_format: valid JSON, LF-only line endings.
- check_extension_name: the extension (file) name does not start with "Slicer".
- check_category: "category" is set and is one of ACCEPTED_EXTENSION_CATEGORIES (list copied below).
- check_git_repository_name: the repository name in scm_url (trailing "/" and ".git" stripped) starts with "Slicer",
  "Slicer-", "Slicer_", "SlicerExtension-" or "SlicerExtension_".
- check_scm_url_syntax: scm_url has "://" and its scheme is git or https.
- check_cmakelists_content, offline part: the top-level CMakeLists.txt's project() name (or else set(EXTENSION_NAME))
  equals the file name, EXTENSION_ICONURL and EXTENSION_SCREENSHOTURLS are set (same regular expressions).
  Downloading each URL and checking its Content-Type needs network; the stand-in here: each URL is http(s), ends in an
  image suffix, and when it points into this repository at scm_revision (raw.githubusercontent.com/OWNER/REPO/REV/PATH)
  PATH is in this tree and opens as a PNG/JPEG/GIF.
- check_license_file: a licence file with one of the index's accepted names is at the repository root (this tree
  stands in for the clone).
- check_dependencies: every build dependency is an extension of the index (against a snapshot of the names used,
  INDEX_EXTENSIONS_SNAPSHOT below).

Not reproduced (need network or a clone of the published repository):
- check_clone_repository (git clone scm_url, git checkout scm_revision);
- check_repository_size (checked-out tree <= 100 MB): covered by the release-tree test, not here;
- check_git_repository_topics (GitHub API: the repository has the "3d-slicer-extension" topic);
- the download and Content-Type part of the icon/screenshot URL checks.

The index's pre-commit hooks, reproduced: check-jsonschema against schemas/...-v1.0.2.json (vendored here too,
byte-identical), end-of-file-fixer, trailing-whitespace, forbid-tabs, mixed-line-ending, and prettier (for this flat
file: json.dumps(indent=2) plus a final newline, every array item on its own line).
scripts/check_repository_structure.py concerns the index's own layout (a top-level *.json is allowed): nothing to do.

Beyond the index: the entry agrees with the top-level CMakeLists.txt (EXTENSION_CATEGORY == category,
EXTENSION_DEPENDS == build_dependencies, EXTENSION_HOMEPAGE == scm_url, the icon served from scm_revision).
"""
from __future__ import annotations

import copy
import json
import os
import re
import urllib.parse as urlparse
from pathlib import Path

import jsonschema
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
ENTRY = REPO / "SemanticSynth.json"
VENDORED = Path(__file__).resolve().parent / "extensions_index"
SCHEMA_URL_PREFIX = "https://raw.githubusercontent.com/Slicer/Slicer/main/Schemas/"
PRECOMMIT_SCHEMA = "slicer-extension-catalog-entry-schema-v1.0.2.json"  # the index's .pre-commit-config.yaml

# scripts/check_description_files.py at ExtensionsIndex 07f1d1b (ACCEPTED_EXTENSION_CATEGORIES)
ACCEPTED_EXTENSION_CATEGORIES = [
    "Active Learning", "Analysis", "Auto3dgm", "BigImage", "Cardiac", "Chest Imaging Platform", "Conda", "Converters",
    "DICOM", "DSCI", "Developer Tools", "Diffusion", "Examples", "Exporter", "FTV Segmentation", "Filtering",
    "Filtering.Morphology", "Filtering.Vesselness", "Holographic Display", "Image Synthesis", "IGT", "Informatics",
    "Netstim", "Neuroimaging", "Nuclear Medicine", "Orthodontics", "Osteotomy Planning", "Otolaryngology",
    "Photogrammetry", "Pipelines", "Planning", "Printing", "Quantification", "Radiotherapy", "Registration", "Remote",
    "Rendering", "SPHARM", "Segmentation", "Sequences", "Shape Analysis", "Shape Regression", "Shape Visualization",
    "Simulation", "SlicerCMF", "SlicerMorph", "Spectral Imaging", "Supervisely", "Surface Models", "SurfaceLearner",
    "Tomographic Reconstruction", "Tracking", "Tractography", "Training", "Ultrasound", "Utilities",
    "Vascular Modeling Toolkit", "Virtual Reality", "VisSimTools", "Web System Tools", "Wizards",
]
ALLOWED_REPOSITORY_PREFIXES = ["Slicer", "Slicer-", "Slicer_", "SlicerExtension-", "SlicerExtension_"]
LICENSE_FILE_NAMES = ["LICENSE", "LICENCE", "License.txt", "license.txt", "LICENSE.txt", "COPYING", "COPYING.txt"]
# Index extensions this entry may depend on, seen as top-level <name>.json in ExtensionsIndex 07f1d1b.
INDEX_EXTENSIONS_SNAPSHOT = {"PyTorch"}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif")


# -- the checks ---------------------------------------------------------------------------------------------------
# Each returns a list of problems (empty: passes), so the tests can show them failing as well as passing.

def schema_errors(entry: dict, schema: dict) -> list[str]:
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return [f"{e.message} at {'/'.join(str(p) for p in e.absolute_path) or '<root>'}"
            for e in validator_class(schema).iter_errors(entry)]


def file_format_errors(raw: bytes) -> list[str]:
    errors = []
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [f"invalid JSON: {exc}"]
    if b"\r" in raw:
        errors.append("non-LF line endings")
    text = raw.decode("utf-8")
    if not text.endswith("\n") or text.endswith("\n\n"):
        errors.append("must end with exactly one newline")
    if "\t" in text:
        errors.append("tab characters")
    if any(line != line.rstrip() for line in text.split("\n")):
        errors.append("trailing whitespace")
    if text.replace("\r\n", "\n") != json.dumps(data, indent=2, ensure_ascii=False) + "\n":
        errors.append("not formatted as the index's prettier formats it (2-space indent, one array item a line)")
    return errors


def extension_name_errors(name: str) -> list[str]:
    return [f"extension name {name!r} should not start with 'Slicer'"] if name.lower().startswith("slicer") else []


def category_errors(entry: dict) -> list[str]:
    if entry.get("category") is None:
        return ["category key is missing or not set"]
    if entry["category"] not in ACCEPTED_EXTENSION_CATEGORIES:
        return [f"category {entry['category']!r} is unknown to the index"]
    return []


def scm_url_errors(entry: dict) -> list[str]:
    url = entry.get("scm_url")
    if url is None:
        return ["scm_url key is missing or not set"]
    if "://" not in url:
        return ["scm_url does not match scheme://host/path"]
    scheme = urlparse.urlsplit(url).scheme
    return [] if scheme in ("git", "https") else [f"scm_url scheme is {scheme!r}, not git or https"]


def repository_name(url: str) -> str:
    url = url.strip().strip("/")
    return os.path.splitext(urlparse.urlsplit(url).path.split("/")[-1])[0]


def repository_name_errors(entry: dict) -> list[str]:
    name = repository_name(entry["scm_url"])
    if not name:
        return [f"no repository name in scm_url {entry['scm_url']!r}"]
    if not any(name.startswith(prefix) for prefix in ALLOWED_REPOSITORY_PREFIXES):
        return [f"repository name {name!r} should start with 'Slicer'"]
    return []


def cmake_project_name(cmake: str) -> str | None:
    matches = re.findall(r"project\s*\(\s*([^\s\)\n\r]+)", cmake, re.IGNORECASE | re.MULTILINE)
    if matches:
        return matches[0].strip().strip('"').strip("'")
    matches = re.findall(r"set\(EXTENSION_NAME\s+([^\s\)]+)\)", cmake, re.IGNORECASE | re.MULTILINE)
    return matches[0].strip().strip('"').strip("'") if matches else None


def cmake_value(cmake: str, key: str) -> str | None:
    match = re.search(rf'set\s*\(\s*{key}\s+"?([^")]*)"?\s*\)', cmake, re.IGNORECASE)
    return match.group(1).strip() if match else None


def cmake_depends(cmake: str) -> set[str]:
    value = cmake_value(cmake, "EXTENSION_DEPENDS") or ""
    return {d for d in re.split(r"[\s;]+", value) if d and d != "NA"}


def cmake_content_errors(name: str, cmake: str) -> list[str]:
    errors = []
    project = cmake_project_name(cmake)
    if project is None:
        errors.append("no project() declaration in CMakeLists.txt")
    elif project != name:
        errors.append(f"CMakeLists.txt project name {project!r} does not match the description file name {name!r}")
    if not re.findall(r'set\s*\(EXTENSION_ICONURL\s*"([^"]+)"[ ]*\)', cmake, re.IGNORECASE | re.MULTILINE):
        errors.append("no EXTENSION_ICONURL in CMakeLists.txt")
    if not re.findall(r'set\s*\(EXTENSION_SCREENSHOTURLS\s*"([^"]+)"\)', cmake, re.IGNORECASE | re.MULTILINE):
        errors.append("no EXTENSION_SCREENSHOTURLS in CMakeLists.txt")
    return errors


def image_url_errors(url: str, entry: dict, tree: Path) -> list[str]:
    """The offline stand-in for validate_image_url: form, suffix, and the file itself when it is in this tree."""
    if not url.startswith("http"):
        return [f"{url!r} should start with 'http'"]
    if not url.lower().endswith(IMAGE_SUFFIXES):
        return [f"{url!r} has no image suffix"]
    owner_repo = urlparse.urlsplit(entry["scm_url"].strip().strip("/")).path.strip("/")
    owner_repo = owner_repo[:-4] if owner_repo.endswith(".git") else owner_repo
    ours = f"https://raw.githubusercontent.com/{owner_repo}/{entry.get('scm_revision', 'main')}/"
    if url.startswith(ours):
        path = tree / url[len(ours):]
        if not path.is_file():
            return [f"{url!r}: {path.relative_to(tree)} is not in the tree at scm_revision"]
        with Image.open(path) as image:
            if image.format not in ("PNG", "JPEG", "GIF"):
                return [f"{url!r} is {image.format}, not PNG/JPEG/GIF"]
    return []


def license_file_errors(tree: Path) -> list[str]:
    return [] if any((tree / n).is_file() for n in LICENSE_FILE_NAMES) else ["no licence file at the repository root"]


def dependency_errors(entry: dict, index_extensions: set[str]) -> list[str]:
    return [f"{d!r} is not an extension of the index" for d in entry.get("build_dependencies", [])
            if d and d not in index_extensions]


# -- fixtures ---------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def entry() -> dict:
    return json.loads(ENTRY.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def cmake() -> str:
    return (REPO / "CMakeLists.txt").read_text(encoding="utf-8")


def _schema(file_name: str) -> dict:
    return json.loads((VENDORED / file_name).read_text(encoding="utf-8"))


def _named_schema_file(entry: dict) -> str:
    url = entry["$schema"].split("#")[0]
    assert url.startswith(SCHEMA_URL_PREFIX), url
    return url[len(SCHEMA_URL_PREFIX):]


# -- the entry passes ---------------------------------------------------------------------------------------------

def test_schema_named_by_the_entry_is_vendored_and_the_entry_validates(entry):
    name = _named_schema_file(entry)
    schema = _schema(name)
    assert schema["$id"].split("#")[0] == entry["$schema"].split("#")[0]  # the vendored file is the one the URL serves
    assert schema_errors(entry, schema) == []
    assert schema_errors(entry, _schema(PRECOMMIT_SCHEMA)) == []  # the index's pre-commit check-jsonschema


def test_vendored_folder_is_complete():
    for name in ("License.txt", "README.md", PRECOMMIT_SCHEMA, "slicer-extension-catalog-entry-schema-v1.0.1.json"):
        assert (VENDORED / name).is_file(), name
    assert "3D Slicer" in (VENDORED / "License.txt").read_text(encoding="utf-8")


def test_file_format():
    assert file_format_errors(ENTRY.read_bytes()) == []


def test_index_naming_and_url_checks(entry, cmake):
    name = ENTRY.stem
    assert name == "SemanticSynth"
    assert extension_name_errors(name) == []
    assert category_errors(entry) == []
    assert scm_url_errors(entry) == []
    assert repository_name_errors(entry) == []
    assert cmake_content_errors(name, cmake) == []
    assert license_file_errors(REPO) == []
    assert dependency_errors(entry, INDEX_EXTENSIONS_SNAPSHOT) == []


def test_icon_and_screenshots_are_images_in_this_tree_at_scm_revision(entry, cmake):
    urls = [cmake_value(cmake, "EXTENSION_ICONURL")] + cmake_value(cmake, "EXTENSION_SCREENSHOTURLS").split()
    ours = "https://raw.githubusercontent.com/semanticsynth/SlicerSemanticSynth/" + entry["scm_revision"] + "/"
    for url in urls:
        assert url.startswith(ours), url  # served from the revision the index builds, so the file check below runs
        assert image_url_errors(url, entry, REPO) == []


def test_entry_values(entry):
    assert entry["scm_url"] == "https://github.com/semanticsynth/SlicerSemanticSynth"
    assert not entry["scm_url"].endswith(("/", ".git"))
    assert entry["scm_revision"] == "main" or re.fullmatch(r"[0-9a-f]{40}", entry["scm_revision"])
    assert entry["build_subdirectory"] == "."  # not a superbuild: the top-level CMakeLists.txt is the extension
    assert entry["tier"] == 1  # experimental; tiers are assigned by the Slicer maintainers
    assert entry.get("scm_type", "git") == "git"


def test_entry_agrees_with_the_top_level_cmakelists(entry, cmake):
    assert cmake_project_name(cmake) == ENTRY.stem
    category = cmake_value(cmake, "EXTENSION_CATEGORY")
    assert category is not None, "CMakeLists.txt has no EXTENSION_CATEGORY"
    assert category == entry["category"]
    assert cmake_depends(cmake) == set(entry["build_dependencies"])  # PyTorch in both
    assert "PyTorch" in cmake_depends(cmake)
    assert cmake_value(cmake, "EXTENSION_HOMEPAGE") == entry["scm_url"]


# -- broken entries are refused -------------------------------------------------------------------------------------

@pytest.mark.parametrize("schema_file", ["slicer-extension-catalog-entry-schema-v1.0.1.json", PRECOMMIT_SCHEMA])
@pytest.mark.parametrize("break_it, expected", [
    (lambda e: e.pop("category"), "'category' is a required property"),
    (lambda e: e.pop("scm_url"), "'scm_url' is a required property"),
    (lambda e: e.pop("$schema"), "'$schema' is a required property"),
    (lambda e: e.update(tier="x"), "'x' is not of type 'integer'"),
    (lambda e: e.update(tier=0), "0 is less than the minimum of 1"),
    (lambda e: e.update(tier=6), "6 is greater than the maximum of 5"),
    (lambda e: e.update(scm_branch="main"), "Additional properties are not allowed ('scm_branch' was unexpected)"),
    (lambda e: e.update(build_dependencies="PyTorch"), "'PyTorch' is not of type 'array'"),
    (lambda e: e.update(build_dependencies=["PyTorch", 3]), "3 is not of type 'string'"),
    (lambda e: e.update(scm_type="svn"), "'svn' is not one of ['git', 'local']"),
    (lambda e: e.update(enabled="yes"), "'yes' is not of type 'boolean'"),
])
def test_schema_refuses_broken_copies(entry, schema_file, break_it, expected):
    broken = copy.deepcopy(entry)
    break_it(broken)
    errors = schema_errors(broken, _schema(schema_file))
    assert any(expected in e for e in errors), errors


def test_only_the_newer_schema_knows_dicom_support_rule(entry):
    extended = dict(entry, dicom_support_rule="true")
    assert schema_errors(extended, _schema(PRECOMMIT_SCHEMA)) == []
    assert schema_errors(extended, _schema("slicer-extension-catalog-entry-schema-v1.0.1.json"))  # refused


def test_index_checks_refuse_broken_values(entry, cmake):
    raw = ENTRY.read_bytes()
    assert "non-LF line endings" in file_format_errors(raw.replace(b"\n", b"\r\n"))
    assert file_format_errors(raw[:-2])[0].startswith("invalid JSON")
    assert "must end with exactly one newline" in file_format_errors(raw.rstrip(b"\n"))
    assert "tab characters" in file_format_errors(raw.replace(b"  ", b"\t"))
    assert file_format_errors(json.dumps(entry).encode() + b"\n")  # one line: not prettier's layout
    assert extension_name_errors("SlicerSemanticSynth")
    assert category_errors(dict(entry, category="Synthesis"))
    assert category_errors({k: v for k, v in entry.items() if k != "category"})
    assert scm_url_errors(dict(entry, scm_url="github.com/semanticsynth/SlicerSemanticSynth"))
    assert scm_url_errors(dict(entry, scm_url="ssh://git@github.com/semanticsynth/SlicerSemanticSynth"))
    assert scm_url_errors(dict(entry, scm_url="git://github.com/semanticsynth/SlicerSemanticSynth")) == []
    assert repository_name_errors(dict(entry, scm_url="https://github.com/semanticsynth/SemanticSynth"))
    with_git_suffix = "https://github.com/semanticsynth/SlicerSemanticSynth.git/"
    assert repository_name_errors(dict(entry, scm_url=with_git_suffix)) == []
    assert repository_name("https://github.com/semanticsynth/SlicerSemanticSynth.git/") == "SlicerSemanticSynth"
    assert cmake_content_errors("Other", cmake)
    assert cmake_content_errors(ENTRY.stem, cmake.replace("EXTENSION_ICONURL", "EXTENSION_ICON"))
    assert cmake_content_errors(ENTRY.stem, re.sub(r"set\(EXTENSION_SCREENSHOTURLS[^)]*\)", "", cmake))
    assert cmake_content_errors(ENTRY.stem, "set(EXTENSION_NAME SemanticSynth)\n" + cmake.replace(
        "project(SemanticSynth)", "")) == cmake_content_errors(ENTRY.stem, cmake)  # the EXTENSION_NAME fallback
    assert license_file_errors(REPO / "SemanticSynth")  # a folder without a licence file
    assert dependency_errors(dict(entry, build_dependencies=["PyTorch", "NoSuchExtension"]), INDEX_EXTENSIONS_SNAPSHOT)
    assert cmake_depends('set(EXTENSION_DEPENDS "NA")') == set()
    assert cmake_depends("set(EXTENSION_DEPENDS PyTorch SlicerRT)") == {"PyTorch", "SlicerRT"}
    icon = cmake_value(cmake, "EXTENSION_ICONURL")
    assert image_url_errors(icon.replace(".png", ".svg"), entry, REPO)
    assert image_url_errors(icon.replace("SemanticSynth.png", "missing.png"), entry, REPO)
    assert image_url_errors(icon.replace("https://", "ftp://"), entry, REPO)
