"""Fréchet Radiomics Distance (FRD v1, the `frd-score` package with PyRadiomics; 3D), realism measured with
features the project did not train: ~1000 first-order and texture features per volume (Original, LoG and Wavelet
images), z-scored, FRD = log of the squared Fréchet distance; lower is better.

Two regions, each volume measured inside its own subject's mask: `labels` (the label map's union) and
`foreground` (the head or body in the subject's real scan: above 5% of its 99th percentile, closed, holes filled,
largest component, with the labels). A generated, reconstructed or painted volume is measured inside the masks
of the subject whose map (or scan) it came from.

Every comparison has the same size: the real scans of one half of the cases against, in turn, the real scans
(the floor: what two real samples of the population give), the generated volumes, the autoencoder's
reconstructions of the real scans (the decoder's ceiling) and the label-mean paintings of the other half; then
the halves swap, and the two directions are averaged.

frd-score and pyradiomics are an optional extra (`pip install semanticsynth[realism]`); without them `evaluate
--frd` says what it skipped.
"""
from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..volume.io import image_like

REGIONS = ("labels", "foreground")
COMPARED = ("generated", "reconstruction", "painting")  # each against real; "floor" is real against real
FOREGROUND_FRACTION = 0.05  # of the scan's 99th percentile: air and noise below, skin and skull above
FOREGROUND_CLOSING = 2      # voxels
MIN_CASES = 4               # two per half


def unavailable() -> str | None:
    """Why FRD cannot run here (with the fix), or None."""
    try:
        import frd_score.frd  # noqa: F401
        import radiomics  # noqa: F401
    except ImportError as exc:
        return f"FRD skipped: {exc.name} is not installed (pip install 'semanticsynth[realism]')"
    return None


def foreground_mask(real: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The head or body in a real scan (any axis order): see the module docstring."""
    mask = real > FOREGROUND_FRACTION * float(np.percentile(real, 99))
    mask = ndimage.binary_closing(mask, ndimage.generate_binary_structure(3, 1), iterations=FOREGROUND_CLOSING,
                                  border_value=0)
    mask = ndimage.binary_fill_holes(mask)
    parts, n = ndimage.label(mask)
    if n > 1:
        mask = parts == (np.argmax(np.bincount(parts.ravel())[1:]) + 1)
    return mask | labels


@contextlib.contextmanager
def _frd_prepared(frd, folder: Path):
    """frd_score as this module uses it, for the duration of a run:
    - features extracted once per file list, in this process: frd_score extracts both sides' features on every
      call (the real half is in four comparisons per region), in a forked pool;
    - its own YAML configurations read from ASCII copies: it opens them with the locale's encoding, and their
      comments are not ASCII, so under a C/POSIX locale (a CI runner) it would fail to read them."""
    original = {"compute_features": frd.compute_features, "V1_CONFIG_3D": frd.V1_CONFIG_3D,
                "V1_CONFIG_2D": frd.V1_CONFIG_2D}
    cache = {}

    def cached(files, feature_extractor, masks=None, resize_size=None, verbose=False, num_workers=None,
               frd_version="v1"):
        key = (tuple(map(str, files)), tuple(map(str, masks)) if masks is not None else None)
        if key not in cache:
            # In this process, one volume after another: frd_score's own multiprocessing.Pool forks a process that
            # has run torch's and ITK's thread pools, and such a fork can deadlock (it hung a test run).
            mask_paths = list(masks) if masks is not None else [None] * len(files)
            results = [frd.process_image_mask_pair(pair, resize_size=resize_size, feature_extractor=feature_extractor,
                                                   verbose=verbose, frd_version=frd_version)
                       for pair in zip(files, mask_paths)]
            kept = [r for r in results if r is not None]
            if len(kept) != len(files):
                raise RuntimeError(f"radiomics features could not be extracted from {len(files) - len(kept)} volumes")
            cache[key] = (np.asarray([r[0] for r in kept]), [r[1] for r in kept], mask_paths)
        return cache[key]

    frd.compute_features = cached
    for name in ("V1_CONFIG_3D", "V1_CONFIG_2D"):
        text = Path(original[name]).read_text(encoding="utf-8")
        copy = folder / Path(original[name]).name
        copy.write_text(text.encode("ascii", "replace").decode("ascii"), encoding="ascii")
        setattr(frd, name, str(copy))
    try:
        yield
    finally:
        for name, value in original.items():
            setattr(frd, name, value)


def frd_by_halves(cases: list[dict], progress=None) -> dict:
    """FRD of generated, reconstructed and painted volumes against real scans, with the real-against-real floor.

    cases: per subject {"grid": sitk.Image (the working grid), "real" and each of COMPARED: arrays (x, y, z) in the
    modality's units (HU or scanner values: PyRadiomics' bins are in those units), "labels": bool array}.
    Returns {region: {"floor", *COMPARED}} (each the mean of both directions) and the counts."""
    from frd_score import frd

    half = len(cases) // 2
    sides = (list(range(half)), list(range(half, 2 * half)))  # an odd last case is left out: equal halves
    results = {region: {} for region in REGIONS}
    os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="semanticsynth-frd-") as tmp, _frd_prepared(frd, Path(tmp)):
        files = {name: [] for name in ("real", *COMPARED, *REGIONS)}
        for i, case in enumerate(cases):
            masks = {"labels": case["labels"], "foreground": foreground_mask(case["real"], case["labels"])}
            for name in ("real", *COMPARED):
                files[name].append(_write(Path(tmp) / name / f"{i}.nii.gz", case[name].astype(np.float32), case["grid"]))
            for name, mask in masks.items():
                files[name].append(_write(Path(tmp) / name / f"{i}.nii.gz", mask.astype(np.uint8), case["grid"]))
        steps = [(region, name, a, b) for region in REGIONS for name in ("floor", *COMPARED)
                 for a, b in (sides, sides[::-1])]
        if progress is not None:
            progress.stage("FRD (radiomics features)", len(steps))
        for done, (region, name, a, b) in enumerate(steps, 1):
            other = files["real" if name == "floor" else name]
            with contextlib.redirect_stdout(io.StringIO()):  # it prints each value; stdout carries JSON progress
                value = frd.compute_frd([[files["real"][i] for i in a], [other[i] for i in b]], frd_version="v1",
                                        paths_masks=[[files[region][i] for i in a], [files[region][i] for i in b]],
                                        num_workers=1)
            results[region].setdefault(name, []).append(float(value))
            if progress is not None:
                progress.update(done)
    return {"regions": {r: {n: float(np.mean(v)) for n, v in values.items()} for r, values in results.items()},
            "cases_per_half": half, "definition": "frd-score FRD v1 (3D defaults), real half against the other "
            "half's real / generated / reconstructed / painted volumes, both directions averaged; regions: labels' union, real scan's "
            "foreground"}


def _write(path: Path, array: np.ndarray, grid: sitk.Image) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image_like(array, grid), str(path))
    return str(path)
