"""`semanticsynth evaluate`: label fidelity, similarity and realism of a generator on real labelled cases.

For every case: generate from its label map (K samples), then against the paired real image
- PSNR, SSIM, MS-SSIM inside the labelled region, on the model's normalization (MONAI metrics);
- Dice of the auxiliary segmenter per structure on the real image (Dice_orig) and on the generated
  one (Dice_gen);
- mean and standard deviation of intensity per structure, real against generated;
and, over all cases, FID between real and generated 2D slices in three planes. The label-mean painting
baseline (each label filled with its training-set mean) gets the same metrics.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np

from ...errors import SynthError
from ..volume.atomic import staged_dir
from ..volume.cases import list_cases
from ..synthesis.generate import generate_volume
from ..synthesis.reconstruction import reconstruct_volume
from ..synthesis.label_vocabulary import read_in_vocabulary
from ..volume.geometry import resample_intensity, resample_labels, working_grid
from ..volume.intensity import denormalize, model_units
from ..volume.io import array_of, image_like, lps_array, read_volume
from .memorisation import memorisation
from .radiomics_distance import MIN_CASES, frd_by_halves, unavailable
from .metrics import dice_per_class, frechet_distance, ms_ssim_in_mask, psnr_in_mask, ssim_in_mask
from ..model.package import load_package
from ..model.store import resolve_model
from ..reporting.progress import Progress
from ..reporting.results import Result
from ..requests import EvaluationRequest
from ..model.segmenter import MULTIPLE, load_segmenter
from ..volume.working_image import units_on_grid, values_on_grid
from .features import PLANES, Med3DFeatures, plane_slices
from .report import write_report

SOURCES = ("generated", "reconstruction", "painting")


def painting(label_ids: np.ndarray, label_means: dict[str, float]) -> np.ndarray:
    """Each label filled with its training-set mean intensity (model units); unknown ids get the background's."""
    lookup = np.full(max(int(label_ids.max()), max(int(k) for k in label_means)) + 1, label_means.get("0", 0.0), np.float32)
    for key, value in label_means.items():
        lookup[int(key)] = value
    return lookup[label_ids]


def structure_intensity(unit: np.ndarray, groups_map: np.ndarray, count: int) -> list[dict]:
    out = []
    for g in range(1, count):
        values = unit[groups_map == g]
        out.append({"mean": float(values.mean()), "std": float(values.std())} if values.size else {"mean": None, "std": None})
    return out




def generated_on_grid(package, case, label_map, grid, modality: str, steps: int | None, seed: int, progress,
                      guidance: float | None, temperature: float | None, calibrate: bool) -> np.ndarray:
    """A volume generated from the case's map, on the evaluation grid, in its own units (HU, scanner values)."""
    # The map to generate from: the case's own, or its `condition` map in another vocabulary (an aseg-style merge of
    # the MUSE map), read through that vocabulary; Dice is always against the case's own labels.
    source = read_volume(case.condition) if case.condition else label_map
    seen_as, mapping, _table = read_in_vocabulary(package, source)
    image = generate_volume(seen_as, source, modality=modality, steps=steps, seed=seed, progress=progress,
                            unknown="background", guidance=guidance, temperature=temperature, mapping=mapping,
                            calibrate=calibrate)
    return array_of(resample_intensity(image, grid))


def evaluate_case(case, package, segmenter, modality: str, samples: int, steps: int | None, seed: int, progress,
                  guidance: float | None = None, temperature: float | None = None,
                  calibrate: bool = True) -> tuple[dict, dict]:
    label_map = read_volume(case.label)
    grid = working_grid(label_map, segmenter.working_spacing, MULTIPLE)
    ids = array_of(resample_labels(label_map, grid))
    groups = segmenter.groups
    truth = groups.group_map(ids)
    mask = ids > 0
    norm = package.normalization(modality)
    real_image = read_volume(case.image)
    real = units_on_grid(real_image, grid, norm)
    volumes = {"real": real, "painting": painting(ids, segmenter.metadata["label_means"])}
    # In their own units too, for FRD: model units clip a real scan's brightest voxels to one value (1.5 times its
    # 99.5th percentile), a maximum shared by every real scan that radiomics features would read as a difference.
    raw = {"real": values_on_grid(real_image, grid),
           "generated": generated_on_grid(package, case, label_map, grid, modality, steps, seed, progress, guidance,
                                          temperature, calibrate)}
    generated = [model_units(raw["generated"], norm)]
    generated += [model_units(generated_on_grid(package, case, label_map, grid, modality, steps, seed + k, progress,
                                                guidance, temperature, calibrate), norm) for k in range(1, samples)]
    volumes["generated"] = generated[0]
    reconstruction = reconstruct_volume(package, real_image, label_map, modality)
    raw["reconstruction"] = array_of(resample_intensity(reconstruction, grid))
    volumes["reconstruction"] = model_units(raw["reconstruction"], norm)
    raw["painting"] = denormalize(volumes["painting"], norm)
    segmentations = {name: segmenter.segment(volumes[name]) for name in ("real", "painting", "reconstruction")}
    segmentations["generated"] = segmenter.segment(generated[0])
    dice_orig = dice_per_class(segmentations["real"], truth, groups.num_classes)
    result = {"case": Path(case.label).name.split(".nii")[0], "dice_orig": dice_orig.tolist(),
              "intensity_real": structure_intensity(real, truth, groups.num_classes)}
    for name in SOURCES:
        samples_here = generated if name == "generated" else [volumes[name]]
        result[name] = {
            "psnr": float(np.mean([psnr_in_mask(v, real, mask) for v in samples_here])),
            "ssim": float(np.mean([ssim_in_mask(v, real, mask) for v in samples_here])),
            "ms_ssim": float(np.mean([ms_ssim_in_mask(v, real, mask) for v in samples_here])),
            "dice": dice_per_class(segmentations[name], truth, groups.num_classes).tolist(),
            "intensity": structure_intensity(volumes[name], truth, groups.num_classes),
        }
    # Slices and pictures in LPS order (axial, coronal, sagittal are then axes 2, 1, 0), whatever the file's axes;
    # the segmenter itself ran on the data's own orientation, as it was trained.
    def oriented(array):
        return lps_array(image_like(array, grid))[0]

    lps_mask = oriented(mask.astype(np.uint8)) > 0
    slices = {name: plane_slices(oriented(volumes[name]), lps_mask) for name in ("real", *SOURCES)}
    pictures = {"labels": oriented(truth), "real": oriented(real), "generated": oriented(generated[0])}
    kept = {"case": result["case"], "grid": grid, "real": real, "generated": generated[0], "labels": mask,
            "raw": raw}  # for FRD and the memorisation check
    return result, {"slices": slices, "pictures": pictures, "volumes": kept}


def report_files(folder: Path) -> set[str]:
    """The names of the files a report wrote in `folder` (report.py write_report): its JSON and Markdown, the Dice
    chart, and a picture per case its report.json lists."""
    names = {"report.json", "report.md", "dice.png"}
    try:
        cases = json.loads((folder / "report.json").read_text(encoding="utf-8")).get("cases", [])
        names |= {f"{c['case']}.png" for c in cases if isinstance(c, dict) and "case" in c}
    except (OSError, ValueError, AttributeError):
        pass
    return names


def keep_the_rest(out: Path, staged: Path) -> None:
    """--overwrite replaces the previous report's own files, not the folder: whatever else it holds (the user's notes,
    another report in a subfolder) is copied into the staged report before that is swapped in."""
    if not out.is_dir():
        return
    previous = report_files(out)
    for entry in out.iterdir():
        target = staged / entry.name
        if entry.name in previous or target.exists() or target.is_symlink():
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, target, symlinks=True)
        else:
            shutil.copy2(entry, target, follow_symlinks=False)


def _summary(cases: list[dict], names: list[str], fid: dict) -> dict:
    dice_orig = np.array([c["dice_orig"] for c in cases])
    summary = {"cases": len(cases), "structures": names, "dice_orig": np.nanmean(dice_orig, 0).tolist(),
               "dice_orig_mean": float(np.nanmean(dice_orig)), "fid": fid}
    real_means = np.array([[s["mean"] if s["mean"] is not None else np.nan for s in c["intensity_real"]] for c in cases])
    for name in SOURCES:
        dice = np.array([c[name]["dice"] for c in cases])
        means = np.array([[s["mean"] if s["mean"] is not None else np.nan for s in c[name]["intensity"]] for c in cases])
        relative = np.abs(means - real_means) / real_means
        summary[name] = {
            "psnr": float(np.mean([c[name]["psnr"] for c in cases])), "ssim": float(np.mean([c[name]["ssim"] for c in cases])),
            "ms_ssim": float(np.mean([c[name]["ms_ssim"] for c in cases])),
            "dice": np.nanmean(dice, 0).tolist(), "dice_mean": float(np.nanmean(dice)),
            "dice_ratio": float(np.nanmean(dice) / np.nanmean(dice_orig)),
            "intensity_relative_error": np.nanmean(relative, 0).tolist(),
            "intensity_relative_error_mean": float(np.nanmean(relative)),
        }
    return summary


def _radiomics(kept: list[dict], progress, skipped: list) -> dict | None:
    reason = unavailable()
    if reason is None and len(kept) < MIN_CASES:
        reason = f"FRD skipped: it needs at least {MIN_CASES} cases (two halves of two), not {len(kept)}"
    if reason:
        skipped.append(reason)
        return None
    # PyRadiomics bins intensities in the modality's own units (HU, scanner values): the volumes as written.
    cases = [{"grid": c["grid"], "labels": c["labels"], **c["raw"]} for c in kept]
    return frd_by_halves(cases, progress=progress)


def _training_volumes(request, cases, package, segmenter, modality, guidance, temperature, progress) -> list[dict]:
    """The memorisation check's training subjects (not among the evaluated ones), generated as evaluate does."""
    evaluated = {str(Path(c.label).resolve()) for c in cases}
    training = [c for c in list_cases(request.training_data, modality) if c.image is not None and c.label is not None
                and str(Path(c.label).resolve()) not in evaluated][: request.memorisation_cases]
    if not training:
        raise SynthError(f"--training-data {request.training_data} has no image/label pairs outside the evaluated "
                         "cases; give the generator's training pairs")
    progress.stage("memorisation check: training subjects", len(training))
    volumes = []
    for i, case in enumerate(training, 1):
        label_map = read_volume(case.label)
        grid = working_grid(label_map, segmenter.working_spacing, MULTIPLE)
        volumes.append({"case": Path(case.label).name.split(".nii")[0], "grid": grid,
                        "real": units_on_grid(read_volume(case.image), grid, package.normalization(modality)),
                        "generated": model_units(generated_on_grid(package, case, label_map, grid, modality,
                                                                   request.steps, request.seed, Progress("none"),
                                                                   guidance, temperature, request.calibrate),
                                                 package.normalization(modality)),
                        "labels": array_of(resample_labels(label_map, grid)) > 0})
        progress.update(i)
    return volumes


def evaluate(request: EvaluationRequest, *, progress: Progress | str | None = None) -> Result:
    """Run an EvaluationRequest: generate from each real case's labels, segment both, compare; write the report.

    Args:
        request: the evaluation request (engine/requests/evaluation.py).
        progress: a Progress or its mode ("bar", "json", "none").

    Returns:
        Result with outputs {"out": the report folder} and the report's summary (report.json's "summary").
    """
    out = Path(request.out)
    if out.exists() and any(out.iterdir()) and not request.overwrite:
        raise SynthError(f"report folder {out} is not empty; pass --overwrite or choose another --out")
    progress = progress if isinstance(progress, Progress) else Progress(progress or "none")
    package = load_package(resolve_model(request.model, request.modality))
    modality = request.modality or package.modalities[0]
    package.modality_index(modality)
    guidance = package.guidance(request.guidance)  # one the model was not trained for fails before any work
    temperature = package.temperature(request.temperature)
    segmenter = load_segmenter(request.segmenter)
    features = Med3DFeatures(request.feature_weights, request.feature_depth) if request.feature_weights else segmenter
    feature_name = features.name if request.feature_weights else f"auxiliary segmenter {segmenter.name} (SegResNet encoder, average-pooled)"
    cases = [c for c in list_cases(request.data, modality) if c.image is not None and c.label is not None]
    if request.max_cases:
        cases = cases[: request.max_cases]
    if not cases:
        raise SynthError(f"{request.data} has no image/label pairs to evaluate on")
    t0 = time.monotonic()
    results, slices, pictures, kept = [], {n: {p: [] for p in PLANES} for n in ("real", *SOURCES)}, [], []
    quiet = Progress("none")
    progress.stage("evaluating cases", len(cases))
    for i, case in enumerate(cases):
        result, extra = evaluate_case(case, package, segmenter, modality, request.samples, request.steps, request.seed, quiet,
                                      guidance, temperature, request.calibrate)
        results.append(result)
        for name, planes in extra["slices"].items():
            for plane, stack in planes.items():
                slices[name][plane].append(stack)
        if i < request.pictures:
            pictures.append((result["case"], extra["pictures"]))
        if request.frd or request.training_data:
            kept.append(extra["volumes"])
        progress.update(i + 1)
    progress.stage("FID features", 1)
    feats = {name: {p: features.slice_features(np.concatenate(slices[name][p])) for p in PLANES} for name in slices}
    fid = {}
    for name in SOURCES:
        fid[name] = {p: frechet_distance(feats["real"][p], feats[name][p]) for p in PLANES}
        fid[name]["all planes"] = frechet_distance(np.concatenate([feats["real"][p] for p in PLANES]),
                                                   np.concatenate([feats[name][p] for p in PLANES]))
    # The floor of this feature space: real slices of the first half of the cases against the second half.
    halves = [[], []]
    for p in PLANES:
        cut = sum(len(stack) for stack in slices["real"][p][: len(cases) // 2])
        halves[0].append(feats["real"][p][:cut])
        halves[1].append(feats["real"][p][cut:])
    if len(cases) >= 2:
        fid["real vs real (halves)"] = frechet_distance(np.concatenate(halves[0]), np.concatenate(halves[1]))
    progress.update(1)
    summary = _summary(results, segmenter.groups.names, fid)
    summary["skipped"] = []
    if request.frd:
        summary["frd"] = _radiomics(kept, progress, summary["skipped"])
    if request.training_data:
        training = _training_volumes(request, cases, package, segmenter, modality, guidance, temperature, progress)
        summary["memorisation"] = memorisation(kept, training)
    for note in summary["skipped"]:
        progress.message(note)
    summary.update({"generator": package.path.name, "segmenter": segmenter.name,
                    "fid_features": feature_name, "fid_slices_per_set": int(sum(len(feats["real"][p]) for p in PLANES)),
                    "samples_per_case": request.samples, "steps": int(request.steps or package.default_steps),
                    "guidance": guidance, "temperature": temperature, "calibrated": request.calibrate,
                    "modality": modality, "data": str(request.data), "seconds": round(time.monotonic() - t0, 1)})
    out.parent.mkdir(parents=True, exist_ok=True)
    with staged_dir(out) as staged:  # the report appears whole, or the previous folder stays as it was
        write_report(staged, summary, results, pictures, segmenter.groups.names)
        keep_the_rest(out, staged)
    progress.message(f"report written to {out}", output=str(out))
    return Result("evaluate", {"out": str(out)}, {"request": request.parameters()}, {"summary": summary})
