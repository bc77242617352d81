"""Write the extension's release tree: the source without model weights or training checkpoints, for the
repository that the Slicer Extensions Index builds (its check clones it, `.git` included, against 100 MB).

    python scripts/release_tree.py OUT [--base-url URL --archives DIR] [--overwrite]

- Files: those git tracks here (or would: untracked, not ignored), read from the working tree, less the bundled model packages
  (SemanticSynthLib/models/NAME/), checkpoints/ and the benchmark history docs/history/. The CMake file lists
  are regenerated in OUT for what is left, so the built extension installs no weights.
- Models: the released extension downloads each on first use from the model manifest
  (SemanticSynthLib/models/manifest.json) with progress and Cancel, and verifies its SHA-256.
  Without --base-url the manifest is copied as committed (its archives are the release assets of
  `semanticsynth models manifest`); with --base-url the bundled packages are packed into --archives and OUT's
  manifest points there (a mirror, or a test server on 127.0.0.1).
- OUT must not exist (or --overwrite replaces it); the tree is written to a temporary folder beside OUT, checked
  (no weights, the manifest lists every package that was left out), and only then renamed to OUT.

Prints one JSON line: {"out", "files", "bytes", "models": [...]}.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELS = "SemanticSynthLib/models"
LEFT_OUT = ("checkpoints/", "docs/history/")
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".ckpt")


def tracked_files() -> list[str]:
    """The working tree's files that git tracks or would track (not ignored): release from a clean checkout."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout
    return [f for f in listed.decode("utf-8").split("\0") if f and (REPO / f).is_file()]


def bundled_packages() -> list[str]:
    root = REPO / MODELS
    return sorted(p.name for p in root.iterdir() if (p / "metadata.json").is_file())


def released(path: str, packages: list[str]) -> bool:
    if path.startswith(LEFT_OUT):
        return False
    return not any(path.startswith(f"{MODELS}/{name}/") for name in packages)


def write_manifest(tree: Path, base_url: str | None, archives: Path | None) -> list[str]:
    """OUT's manifest: the committed one, or one for archives packed now under base_url. Returns its names."""
    sys.path.insert(0, str(REPO))
    from SemanticSynthLib.engine.model import store

    target = tree / MODELS / "manifest.json"
    if base_url:
        archives.mkdir(parents=True, exist_ok=True)
        store.write_release_manifest(base_url, archives, target)
    return sorted(store.load_manifest(target))


def check_tree(tree: Path, packages: list[str], manifest_names: list[str]) -> None:
    weights = [p for p in tree.rglob("*") if p.suffix in WEIGHT_SUFFIXES]
    if weights:
        raise SystemExit(f"error: the release tree holds weights ({weights[0].relative_to(tree)}); nothing written")
    unlisted = sorted(set(packages) - set(manifest_names))
    if unlisted:
        raise SystemExit(f"error: the manifest lacks {', '.join(unlisted)}; run `semanticsynth models manifest` first")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the release tree's folder (must not exist)")
    parser.add_argument("--base-url", help="pack the bundled models into --archives; the manifest points there")
    parser.add_argument("--archives", type=Path, help="with --base-url: the folder for the model archives")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT once the new tree is complete")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    if bool(args.base_url) != bool(args.archives):
        parser.error("--base-url and --archives go together")
    if out.exists() and not args.overwrite:
        parser.error(f"{out} exists; give another folder or --overwrite")
    if out == REPO or REPO in out.parents:
        parser.error(f"{out} is inside the repository; give a folder outside it")
    packages = bundled_packages()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        files = [f for f in tracked_files() if released(f, packages)]
        for f in files:
            (staging / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, staging / f)
        names = write_manifest(staging, args.base_url, args.archives)
        # The extension's CMake lists name every installed file: regenerated for the tree without the weights.
        subprocess.run([sys.executable, str(staging / "scripts" / "cmake_lists.py")], check=True, capture_output=True)
        check_tree(staging, packages, names)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(json.dumps({"out": str(out), "files": len(files), "bytes": size, "models": names}))


if __name__ == "__main__":
    main()
