"""Privacy: does the generator reproduce the training scans it learnt from?

A generated volume is compared with the real scan of the same label map, by SSIM and normalised cross-correlation
inside the labels, for subjects the generator was trained on and for held-out subjects. The map alone fixes much
of the image (where each structure is), so both groups score well above unrelated images; a model that memorised
its training scans scores clearly higher on the training subjects. The gap (training minus held-out) is the
measure. Each held-out generated volume is also compared with every training scan (resampled onto its grid),
and the nearest one is reported beside its own subject's real scan.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..volume.io import array_of, image_like
from .metrics import ncc_in_mask, ssim_in_mask


def similarity(case: dict) -> dict:
    """SSIM and NCC of a case's generated volume against its real scan, inside its labels (model units)."""
    return {"ssim": ssim_in_mask(case["generated"], case["real"], case["labels"]),
            "ncc": ncc_in_mask(case["generated"], case["real"], case["labels"])}


def _on_grid(case: dict, grid: sitk.Image) -> np.ndarray:
    moved = sitk.Resample(image_like(case["real"].astype(np.float32), case["grid"]), grid, sitk.Transform(),
                          sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return array_of(moved)


def memorisation(held_out: list[dict], training: list[dict]) -> dict:
    """held_out, training: per subject {"case", "grid" (sitk.Image), "real", "generated" (arrays x, y, z, model
    units), "labels" (bool array)}. Returns the per-group means, the gaps and each held-out volume's nearest
    training scan."""
    scores = {"training": [similarity(c) for c in training], "held_out": [similarity(c) for c in held_out]}
    means = {group: {k: float(np.mean([s[k] for s in values])) for k in ("ssim", "ncc")}
             for group, values in scores.items()}
    nearest = []
    for case, own in zip(held_out, scores["held_out"]):
        against = [(ncc_in_mask(case["generated"], _on_grid(t, case["grid"]), case["labels"]), t["case"]) for t in training]
        best, name = max(against)
        nearest.append({"case": case["case"], "own_scan_ncc": own["ncc"], "nearest_training_scan": name,
                        "nearest_training_ncc": best})
    return {"training": means["training"], "held_out": means["held_out"],
            "ssim_gap": means["training"]["ssim"] - means["held_out"]["ssim"],
            "ncc_gap": means["training"]["ncc"] - means["held_out"]["ncc"],
            "cases": {"training": len(training), "held_out": len(held_out)},
            "per_case": {group: [{"case": c["case"], **s} for c, s in zip(cases, scores[group])]
                         for group, cases in (("training", training), ("held_out", held_out))},
            "nearest": nearest,
            "closer_to_a_training_scan": sum(n["nearest_training_ncc"] > n["own_scan_ncc"] for n in nearest)}
