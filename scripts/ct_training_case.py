"""How closely a CT package follows its one training case (docs/ct_unet.md's table), per seed.

python scripts/ct_training_case.py --model abdomen-ct|DIR [--seeds 0 1] [--steps N] [--json F]

On the bundled sample's labels against example_ct_sm (the training case), for the reconstruction of the real scan and
(a generator package) for a generated volume per seed, before calibration (raw) and, for the generated volume, after it:
- per-organ error: the mean over the labels of >= 50 voxels of |mean - real mean|, in HU;
- voxel MAE in labels: the mean |volume - real| over the labelled voxels;
- unlabelled body: the same over label 0 where the real scan is above -500 HU (fat, muscle, bowel), which
  calibration leaves alone;
- body outline: the Dice of the body masks (above -500 HU) of the volume and the real scan, and each mask's share of
  the unlabelled voxels per 6 mm band of distance from the nearest label: where no label says where the skin is,
  how far out the volume puts it;
- flagged: how many labels the calibration check puts outside their prior range;
- bones: each bone label the thickness rule covers, real against raw and calibrated, with the rule's prior.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from SemanticSynthLib.engine.synthesis.generate import generate_volume  # noqa: E402
from SemanticSynthLib.engine.volume.io import array_of, read_volume  # noqa: E402
from SemanticSynthLib.engine.model.package import load_package  # noqa: E402
from SemanticSynthLib.engine.synthesis.reconstruction import reconstruct_volume  # noqa: E402
from SemanticSynthLib.engine.model.store import resolve_model  # noqa: E402
from SemanticSynthLib.engine.volume.labels import LabelTable  # noqa: E402

LABELS = REPO / "SemanticSynth" / "Resources" / "Samples" / "abdomen_ct_totalseg_labels.nii.gz"
REAL = REPO.parent / "shared" / "data" / "totalseg" / "example_ct_sm.nii.gz"
MIN_VOXELS = 50
BODY_HU = -500  # above: body (fat, muscle, bowel wall); below: air and lung
BAND_MM = 6


def organ_means(volume: np.ndarray, real: np.ndarray, labels: np.ndarray) -> dict[int, dict]:
    """Each label of >= MIN_VOXELS voxels: its mean in the real scan and in `volume`, and its size (also
    scripts/quality.py's CT table)."""
    out = {}
    for k in np.unique(labels):
        mask = labels == k
        if k > 0 and mask.sum() >= MIN_VOXELS:
            out[int(k)] = {"real_hu": float(real[mask].mean()), "generated_hu": float(volume[mask].mean()),
                           "voxels": int(mask.sum())}
    return out


def per_organ_error(organs: dict) -> float:
    """The mean over organ_means() of |generated - real|, in HU."""
    return float(np.mean([abs(o["generated_hu"] - o["real_hu"]) for o in organs.values()]))


def body_outline(volume: np.ndarray, real: np.ndarray, labels: np.ndarray, spacing_xyz) -> dict:
    """Dice of the body masks, and the body's share of the unlabelled voxels per BAND_MM band from the labels."""
    body, real_body = volume > BODY_HU, real > BODY_HU
    distance = ndimage.distance_transform_edt(labels == 0, sampling=spacing_xyz)
    bands = {}
    for low in range(0, 8 * BAND_MM, BAND_MM):
        band = (labels == 0) & (distance > low) & (distance <= low + BAND_MM)
        bands[f"{low}-{low + BAND_MM} mm"] = {"real": float(real_body[band].mean()), "volume": float(body[band].mean())}
    return {"dice": float(2 * (body & real_body).sum() / (body.sum() + real_body.sum())), "body_share_by_distance": bands}


def figures(volume: np.ndarray, real: np.ndarray, labels: np.ndarray, spacing_xyz) -> dict:
    body = (labels == 0) & (real > BODY_HU)
    return {"body_outline": body_outline(volume, real, labels, spacing_xyz),
            "per_organ_error_hu": per_organ_error(organ_means(volume, real, labels)),
            "voxel_mae_in_labels_hu": float(np.abs(volume - real)[labels > 0].mean()),
            "unlabelled_body_mae_hu": float(np.abs(volume - real)[body].mean())}


def bone_means(raw: sitk.Image, calibrated: sitk.Image, real: np.ndarray, labels: np.ndarray) -> dict:
    """Each bone label of >= MIN_VOXELS voxels that the thickness rule covers: its real, raw and calibrated mean and
    the rule's prior (HU), by name (the rule of engine/synthesis/bone_thickness.py, issue 33 item 3)."""
    rule = json.loads(raw.GetMetaData("SemanticSynth_bone_priors")) if raw.HasMetaDataKey("SemanticSynth_bone_priors") else {}
    names = {lab.id: lab.name for lab in LabelTable.builtin("totalseg_v2").labels}
    out = {}
    for k, organ in organ_means(array_of(raw), real, labels).items():
        if names.get(k) in rule:
            mask = labels == k
            out[names[k]] = {"real_hu": round(organ["real_hu"], 1), "raw_hu": round(organ["generated_hu"], 1),
                             "calibrated_hu": round(float(array_of(calibrated)[mask].mean()), 1),
                             "prior_hu": rule[names[k]], "voxels": organ["voxels"]}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="abdomen-ct")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(2)
    package = load_package(resolve_model(args.model), need_diffusion=False)  # an autoencoder: reconstruction only
    label_map, image = read_volume(LABELS), sitk.ReadImage(str(REAL), sitk.sitkFloat32)
    labels, real = array_of(label_map), array_of(image).astype(np.float32)
    spacing = label_map.GetSpacing()  # array_of gives (x, y, z) order, as the spacing
    generator = "diffusion" in package.metadata
    result = {"model": args.model, "version": package.metadata.get("version"),
              "steps": (args.steps or package.default_steps) if generator else None,
              "reconstruction": figures(array_of(reconstruct_volume(package, image, label_map, "ct")), real, labels,
                                                spacing)}
    for seed in args.seeds if generator else []:
        start = time.perf_counter()
        raw = generate_volume(package, label_map, modality="ct", steps=args.steps, seed=seed, calibrate=False)
        seconds = time.perf_counter() - start
        calibrated = generate_volume(package, label_map, modality="ct", steps=args.steps, seed=seed)
        flagged = json.loads(raw.GetMetaData("SemanticSynth_calibration"))["outside_prior_range"]
        result[f"seed {seed}"] = {"raw": figures(array_of(raw), real, labels, spacing),
                                  "calibrated": figures(array_of(calibrated), real, labels, spacing),
                                  "flagged": len(flagged), "flagged_names": [f["name"] for f in flagged],
                                  "bones": bone_means(raw, calibrated, real, labels),
                                  "seconds": round(seconds, 2)}
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
