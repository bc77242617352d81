"""Does the output outline the labels? A rim is an organ's outermost voxel layer that differs from the layer inside it.

python scripts/boundary_rims.py --model M --image IMG --labels SEG [--slices A:B] [--json F]

For every label of at least 200 voxels that has an interior, and for the real image, the autoencoder's
reconstruction of it and (a generator package) a generated volume (seed 0, before calibration), it gives:
- the mean of the label's outermost layer minus that of the next layer in;
- the mean of the first layer outside the label.
It also gives the profile away from the labels: the mean of the unlabelled voxels at each growth step 1..12 from a
label (engine/priors.growth_steps), over those the real image puts in the body (CT: above -500 HU; MRI: all), and
the largest jump between neighbouring steps against the real image's. A painting that changes in one step (a
surround that stops) shows there as a jump the real image lacks.
It then prints the median of the first figure over the labels. A real scan's boundaries are smooth, so its median
is near 0. A decoder that overshoots at label edges shows a positive rim inside and a dark layer outside
(docs/ct_unet.md, "Rims"). The volumes are loaded and put in one set of units as in scripts/edge_check.py;
MRI figures are then divided by the real image's median labelled intensity.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from scipy.ndimage import binary_dilation, binary_erosion

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import edge_check  # noqa: E402  (the case loading and units of the edge figures)
from ct_training_case import BODY_HU  # noqa: E402  (what counts as body in a CT)
from SemanticSynthLib.engine.synthesis.generate import generate_volume  # noqa: E402
from SemanticSynthLib.engine.model.priors import growth_steps  # noqa: E402
from SemanticSynthLib.engine.synthesis.reconstruction import reconstruct_volume  # noqa: E402
from SemanticSynthLib.engine.model.store import resolve_model  # noqa: E402

MIN_VOXELS = 200


def rims(volume: np.ndarray, labels: np.ndarray, scale: float) -> dict[int, dict]:
    out = {}
    for k in np.unique(labels):
        mask = labels == k
        core = binary_erosion(mask)
        if k == 0 or core.sum() < MIN_VOXELS:
            continue
        rim, next_layer = mask & ~core, core & ~binary_erosion(core)
        outside = binary_dilation(mask) & ~mask
        out[int(k)] = {"rim_minus_next_layer": float(volume[rim].mean() - volume[next_layer].mean()) / scale,
                       "outside_layer": float(volume[outside].mean()) / scale}
    return out


PROFILE_STEPS = 12


def profile(volume: np.ndarray, steps: np.ndarray, body: np.ndarray, scale: float) -> list[float]:
    """The mean of `volume` over the body voxels at each growth step 1..PROFILE_STEPS from a label."""
    return [float(volume[(steps == k) & body].mean()) / scale for k in range(1, PROFILE_STEPS + 1)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    edge_check.add_case_arguments(parser)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = args.model
    args.model = resolve_model(args.model)  # a bundled name or a folder
    case = edge_check.load_case(args, need_diffusion=False)
    labels = sitk.GetArrayFromImage(case.labels)
    volumes = {"real": case.real,
               "reconstruction": case.to_units(sitk.GetArrayFromImage(
                   reconstruct_volume(case.package, case.image, case.labels, case.modality)))}
    if "diffusion" in case.package.metadata:  # an autoencoder package has reconstructions only
        volumes["generated"] = case.to_units(sitk.GetArrayFromImage(
            generate_volume(case.package, case.labels, modality=case.modality, seed=0, calibrate=False)))
    scale = 1.0 if case.units == "HU" else float(np.median(case.real[labels > 0]))
    units = "HU" if case.units == "HU" else "median labelled intensity"
    result = {"model": model, "image": args.image, "slices": args.slices, "units": units,
              "per_label": {name: rims(v, labels, scale) for name, v in volumes.items()}}
    result["median_rim_minus_next_layer"] = {
        name: float(np.median([r["rim_minus_next_layer"] for r in per.values()]))
        for name, per in result["per_label"].items()}
    steps = growth_steps(torch.from_numpy(labels.astype(np.int64)), PROFILE_STEPS).numpy()
    body = case.real > BODY_HU if case.units == "HU" else np.ones(labels.shape, bool)
    result["profile_from_labels"] = {name: profile(v, steps, body, scale) for name, v in volumes.items()}
    result["largest_step_to_step_jump"] = {name: float(np.max(np.abs(np.diff(p))))
                                           for name, p in result["profile_from_labels"].items()}
    for name, p in result["profile_from_labels"].items():
        print(f"{name:15s} away from the labels, steps 1..{PROFILE_STEPS}: {' '.join(f'{v:.3g}' for v in p)}; "
              f"largest jump {result['largest_step_to_step_jump'][name]:.3g}")
    for name, value in result["median_rim_minus_next_layer"].items():
        print(f"{name:15s} rim minus next layer, median over {len(result['per_label'][name])} labels: {value:8.3f} "
              f"{result['units']}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
