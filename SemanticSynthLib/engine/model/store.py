"""Model packages outside git: a manifest of release archives, downloaded on first use into a user cache.

A package is found, in this order, as
  1. a folder path;
  2. a bundled package, `SemanticSynthLib/models/NAME` (works offline; CI and the tests use these);
  3. a verified copy in the user cache, `cache_dir()/NAME/VERSION-SHA256[:12]`;
  4. the manifest entry `NAME` (`models/manifest.json`: name, kind, version, url, sha256, size): the archive
     is downloaded with progress, its size and SHA-256 checked, unpacked, checked as a package with the same
     reader the engine uses (`read_metadata`), and only then moved into the cache in one rename. Whatever
     fails (network, checksum, an interrupted transfer, a bad archive), no partial package is left behind.

The archive of a package is a stored (uncompressed) zip with one top folder NAME, built reproducibly by
`pack()`, so the manifest's checksum can be recomputed from the bundled package:

    semanticsynth models manifest --base-url URL [--out DIR]   # archives + manifest (write_release_manifest)
    semanticsynth models fetch NAME [--progress json]          # download into the cache (fetch)
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from ..volume.modalities import default_generator
from .package_metadata import bundled_models, default_model_dir, package_kind, read_metadata
from ...errors import SynthError

MANIFEST_FORMAT = "semanticsynth-model-manifest"
MANIFEST_FIELDS = ("name", "kind", "version", "url", "sha256", "size")
CHUNK = 1 << 20
ZIP_TIME = (2020, 1, 1, 0, 0, 0)


def manifest_path() -> Path:
    """`$SEMANTICSYNTH_MODEL_MANIFEST`, else the manifest shipped beside the bundled packages."""
    return Path(os.environ.get("SEMANTICSYNTH_MODEL_MANIFEST") or default_model_dir() / "manifest.json")


def cache_dir() -> Path:
    """`$SEMANTICSYNTH_CACHE`, else the platform's per-user cache folder."""
    if os.environ.get("SEMANTICSYNTH_CACHE"):
        return Path(os.environ["SEMANTICSYNTH_CACHE"])
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "SemanticSynth" / "models"


def load_manifest(path: Path | None = None) -> dict[str, dict]:
    """name -> entry. A missing manifest is an empty one (a source checkout without releases)."""
    path = Path(path) if path else manifest_path()
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SynthError(f"model manifest {path} is corrupt ({exc.__class__.__name__})") from None
    if data.get("format") != MANIFEST_FORMAT:
        raise SynthError(f"{path} is not a SemanticSynth model manifest")
    entries = {}
    for entry in data.get("models", []):
        missing = [k for k in MANIFEST_FIELDS if k not in entry]
        if missing:
            raise SynthError(f"model manifest {path}: entry {entry.get('name', '?')} lacks {', '.join(missing)}")
        entries[entry["name"]] = entry
    return entries


def _is_path(name_or_path: str) -> bool:
    return any(sep in name_or_path for sep in ("/", "\\")) or Path(name_or_path).exists()


def bundled_package(name: str) -> Path | None:
    path = default_model_dir() / name
    return path if (path / "metadata.json").exists() else None


def cached_package(entry: dict, cache: Path | None = None) -> Path | None:
    """The cache copy of a manifest entry, if it was completed (the checksum file is written last)."""
    folder = (cache or cache_dir()) / entry["name"] / f"{entry['version']}-{entry['sha256'][:12]}"
    marker = folder / ".sha256"
    if marker.exists() and marker.read_text(encoding="utf-8").strip() == entry["sha256"]:
        return folder
    return None


def local_package(name: str, manifest: dict | None = None, cache: Path | None = None) -> Path | None:
    """A package that needs no network: bundled, or cached from an earlier download."""
    bundled = bundled_package(name)
    if bundled is not None:
        return bundled
    entry = (load_manifest() if manifest is None else manifest).get(name)
    return cached_package(entry, cache) if entry else None


def resolve_model(name_or_path: str | None, modality: str | None = None, on_progress=None) -> Path:
    """A package folder for a folder path or a name (bundled, cached, or in the manifest: downloaded now, reported to
    on_progress); None: the modality's default, which a released extension (no bundled weights) downloads as well.
    Lives here, not in engine.package_metadata, because it may download."""
    name = name_or_path or default_generator(modality)
    if _is_path(name):
        return Path(name)
    found = bundled_package(name) or resolve(name, on_progress=on_progress)
    if found is None:
        raise SynthError(f"model '{name}' not found; give a model folder, a bundled name ({', '.join(bundled_models())})"
                         f" or a name of the model manifest ({', '.join(sorted(load_manifest())) or 'empty'})")
    return found


def resolve_local(model: str | None, modality: str | None = None) -> Path:
    """Like `resolve_model`, without network: a folder, a bundled package or one downloaded earlier. A manifest name
    that is not downloaded yet is an error (a GUI then shows "model's" defaults and downloads it as a job)."""
    name = model or default_generator(modality)
    if _is_path(name):
        return Path(name)
    found = local_package(name)
    if found is not None:
        return found
    if name in load_manifest():
        raise SynthError(f"model '{name}' is not downloaded yet; it is downloaded on first use, or now with "
                         f"`semanticsynth models fetch {name}`")
    return resolve_model(name, modality)  # the unknown-name error


def download_reporter(progress):
    """on_progress for fetch() that reports a download as one stage of an engine Progress (bar or JSON lines)."""
    started = []

    def report(record: dict) -> None:
        if not started:
            progress.stage("downloading model", record["total"])
            started.append(True)
        progress.update(record["step"], unit=record.get("unit", "MB"))
    return report


def needs_download(model: str | None, manifest: dict | None = None, cache: Path | None = None,
                   modality: str | None = None) -> bool:
    """True for a manifest name (None: the modality's default) that is neither bundled nor cached yet."""
    model = model or default_generator(modality)
    if _is_path(model):
        return False
    manifest = load_manifest() if manifest is None else manifest
    return model in manifest and local_package(model, manifest, cache) is None


def available(kind: str, manifest: dict | None = None) -> list[str]:
    """Names of the manifest's packages of one kind ("generator", "translator", "segmenter")."""
    manifest = load_manifest() if manifest is None else manifest
    return sorted(name for name, entry in manifest.items() if entry["kind"] == kind)


def offered(kind: str) -> list[str]:
    """What a model list offers for one kind: the bundled packages and the manifest's (downloaded on first use)."""
    return sorted(set(bundled_models(kind)) | set(available(kind)))


def resolve(name: str, manifest: dict | None = None, cache: Path | None = None, on_progress=None) -> Path | None:
    """For `resolve_model`: a name that is not bundled, as a local or downloaded package.

    None when the name is not in the manifest either (the caller then reports the unknown name)."""
    manifest = load_manifest() if manifest is None else manifest
    if _is_path(name) or name not in manifest:
        return None
    return fetch(name, manifest=manifest, cache=cache, on_progress=on_progress)


def fetch(name: str, manifest: dict | None = None, cache: Path | None = None, on_progress=None,
          workdir: Path | None = None, timeout_s: float = 60.0) -> Path:
    """The package folder for a name: bundled or cached, else downloaded and verified first."""
    manifest = load_manifest() if manifest is None else manifest
    found = local_package(name, manifest, cache)
    if found is not None:
        return found
    if name not in manifest:
        raise SynthError(f"model '{name}' is neither bundled nor in the model manifest ({', '.join(sorted(manifest)) or 'empty'})")
    return download(manifest[name], cache or cache_dir(), on_progress, workdir, timeout_s)


def download(entry: dict, cache: Path, on_progress=None, workdir: Path | None = None, timeout_s: float = 60.0) -> Path:
    """Download, verify and unpack one manifest entry into the cache; nothing partial survives a failure.

    workdir: where the archive and the unpacked copy are staged (a folder the caller removes, e.g. when it
    kills this process); by default a fresh folder inside the cache, removed here in every case."""
    cache.mkdir(parents=True, exist_ok=True)
    own_workdir = workdir is None
    work = Path(tempfile.mkdtemp(prefix=".partial-", dir=cache)) if own_workdir else Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    try:
        archive = work / "package.zip"
        _transfer(entry, archive, on_progress, timeout_s)
        staged = _unpack(entry, archive, work / "unpacked")
        target = cache / entry["name"] / f"{entry['version']}-{entry['sha256'][:12]}"
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():  # an incomplete earlier copy (no checksum file): replace it
            shutil.rmtree(target)
        os.replace(staged, target)
        (target / ".sha256").write_text(entry["sha256"] + "\n", encoding="utf-8")
        return target
    finally:
        if own_workdir:
            shutil.rmtree(work, ignore_errors=True)


def _transfer(entry: dict, archive: Path, on_progress, timeout_s: float) -> None:
    name, size = entry["name"], int(entry["size"])
    digest = hashlib.sha256()
    done, start = 0, time.monotonic()
    total_mb = max(1, round(size / 1e6))

    def report():
        if on_progress:
            elapsed = time.monotonic() - start
            eta = elapsed / done * (size - done) if done else None
            on_progress({"stage": "downloading", "step": round(done / 1e6), "total": total_mb, "unit": "MB",
                         "fraction": round(done / size, 4) if size else 1.0, "eta_s": None if eta is None else round(eta, 1)})

    try:
        with urllib.request.urlopen(entry["url"], timeout=timeout_s) as response, open(archive, "wb") as out:
            report()
            while chunk := response.read(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if done > size:
                    break
                report()
    except (OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc.__class__.__name__
        raise SynthError(f"downloading model '{name}' from {entry['url']} failed ({reason}); check the network, "
                         "or use a bundled model or a model folder") from None
    if done != size:
        raise SynthError(f"the download of model '{name}' was interrupted or is the wrong file ({done} of {size} bytes); try again")
    if digest.hexdigest() != entry["sha256"]:
        raise SynthError(f"the download of model '{name}' has the wrong SHA-256 ({digest.hexdigest()[:12]}…, expected "
                         f"{entry['sha256'][:12]}…); it was discarded")


def _unpack(entry: dict, archive: Path, dest: Path) -> Path:
    """Extract the archive's one top folder (plain files only, no paths outside it) and check the package."""
    name = entry["name"]
    try:
        with zipfile.ZipFile(archive) as z:
            members = z.infolist()
            for m in members:
                parts = m.filename.split("/")
                if len(parts) != 2 or parts[0] != name or parts[1] in ("", ".", "..") or m.is_dir():
                    raise SynthError(f"the archive of model '{name}' holds an unexpected entry {m.filename!r}; it was discarded")
            if sum(m.file_size for m in members) > 2 * int(entry["size"]) + CHUNK:
                raise SynthError(f"the archive of model '{name}' unpacks to more than it should; it was discarded")
            z.extractall(dest)
    except zipfile.BadZipFile:
        raise SynthError(f"the download of model '{name}' is not a zip archive; it was discarded") from None
    package = dest / name
    meta = read_metadata(package)  # the engine's own package check: format, version, required keys
    if package_kind(meta) != entry["kind"]:
        raise SynthError(f"the download of model '{name}' is a {package_kind(meta)}, the manifest says {entry['kind']}")
    return package


def pack(package: Path, archive: Path) -> dict:
    """A reproducible archive of a package folder: stored entries in name order with a fixed date."""
    package = Path(package)
    files = sorted(p for p in package.iterdir() if p.is_file() and not p.name.startswith("."))
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as z:
        for path in files:
            info = zipfile.ZipInfo(f"{package.name}/{path.name}", date_time=ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.create_system = 3
            with open(path, "rb") as src, z.open(info, "w") as dst:
                shutil.copyfileobj(src, dst, CHUNK)
    digest = hashlib.sha256()
    with open(archive, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return {"sha256": digest.hexdigest(), "size": archive.stat().st_size}


def manifest_entry(package: Path, base_url: str, out_dir: Path) -> dict:
    """Pack a package into out_dir and describe it for the manifest (URL = base_url/NAME-VERSION.zip)."""
    meta = read_metadata(Path(package))
    name, version = Path(package).name, str(meta.get("version", "0"))
    archive = Path(out_dir) / f"{name}-{version}.zip"
    packed = pack(Path(package), archive)
    return {"name": name, "kind": package_kind(meta), "version": version,
            "url": f"{base_url.rstrip('/')}/{archive.name}", **packed}


def write_manifest(entries: list[dict], path: Path) -> None:
    data = {"format": MANIFEST_FORMAT, "format_version": 1, "models": entries}
    Path(path).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def write_release_manifest(base_url: str, out: Path | None = None, manifest: Path | None = None) -> tuple[Path, list[str]]:
    """Pack every bundled package into `out` (default: a new temporary folder) and write their manifest entries
    (download URLs under `base_url`) to `manifest` (default: the bundled models/manifest.json).

    Returns:
        (the archives' folder, the packed package names)."""
    out = Path(out or tempfile.mkdtemp(prefix="semanticsynth-release-"))
    out.mkdir(parents=True, exist_ok=True)
    names = sorted(p.name for p in default_model_dir().iterdir() if (p / "metadata.json").exists())
    write_manifest([manifest_entry(default_model_dir() / n, base_url, out) for n in names],
                   Path(manifest or default_model_dir() / "manifest.json"))
    return out, names

