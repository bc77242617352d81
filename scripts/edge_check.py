"""Are the outermost slices as good as the inside? (issue 9, edges)

For one labelled volume, per slice along the label map's last axis (the one a working grid overhangs most):
- the autoencoder's reconstruction against the real image (mean absolute error over labelled voxels);
- the generated volume against the label map painted with the model's priors (the same), and the real image
  against that painting, since a real scan's slices also depart from a flat painting (lungs, the head);
- the generated departure over the real one, slice by slice (generated_over_real): an edge fault shows there, anatomy
  that departs from the painting in the real scan as well does not;
- each label's mean in the generated (and the real) image against its painted prior, slice by slice
  (generated_label_means): texture averages out, a shifted intensity (air smeared into the last slices) does not;
Prints the first, last and median interior slice and the ratios; writes JSON with --json. A brain map's outermost
slices hold no labels (the head around the brain is background), so the same figures are also given over the
labelled extent: the first and last slices with at least 100 labelled voxels, against the median of those between.

python scripts/edge_check.py --model runs/abdomen-ct/model --image CT --labels SEG [--steps 20] [--slices A:B] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from SemanticSynthLib.engine.generate import generate_volume  # noqa: E402
from SemanticSynthLib.engine.intensity import denormalize  # noqa: E402
from SemanticSynthLib.engine.labels import to_class_indices  # noqa: E402
from SemanticSynthLib.engine.package import load_package  # noqa: E402
from SemanticSynthLib.engine.reconstruction import reconstruct_volume  # noqa: E402


def per_slice_mae(a: np.ndarray, b: np.ndarray, labelled: np.ndarray) -> list[float]:
    """Arrays in SimpleITK's (z, y, x) order; labelled voxels of each z-slice (all voxels where a slice has few)."""
    out = []
    for k in range(a.shape[0]):
        mask = labelled[k] if labelled[k].sum() >= 100 else np.ones_like(labelled[k])
        out.append(float(np.abs(a[k] - b[k])[mask].mean()))
    return out


def per_slice_matched_mae(a: np.ndarray, b: np.ndarray, labelled: np.ndarray, classes: np.ndarray) -> list[float]:
    """per_slice_mae over what the same voxels would score if each class departed as it does inside: each slice's
    error divided by sum_c n_c * e_c / n, where e_c is class c's mean absolute error pooled over the interior slices
    (all but the first and last). A slice's raw error mixes how good it is with what it holds: a CT's first slice
    that is 28% colon (gas in contents, hundreds of HU from one flat prior) scores worse than a slice of liver even
    where both are as good as anywhere else. 1 means "as good as the inside, class for class". Voxels of a class the
    interior does not hold are left out."""
    masks = [labelled[k] if labelled[k].sum() >= 100 else np.ones_like(labelled[k]) for k in range(a.shape[0])]
    error = np.abs(a - b)
    total, count = {}, {}
    for k in range(1, a.shape[0] - 1):
        for c in np.unique(classes[k][masks[k]]):
            voxels = masks[k] & (classes[k] == c)
            total[c] = total.get(c, 0.0) + float(error[k][voxels].sum())
            count[c] = count.get(c, 0) + int(voxels.sum())
    out = []
    for k in range(a.shape[0]):
        observed = expected = 0.0
        for c in np.unique(classes[k][masks[k]]):
            if c not in count:
                continue
            voxels = masks[k] & (classes[k] == c)
            observed += float(error[k][voxels].sum())
            expected += int(voxels.sum()) * total[c] / count[c]
        out.append(observed / expected if expected > 0 else float("nan"))
    return out


def per_slice_label_mean_error(a: np.ndarray, painted: np.ndarray, classes: np.ndarray) -> list[float]:
    """Per z-slice: how far each label's mean in `a` is from its painted prior (voxel-weighted over the labels with at
    least 20 voxels in that slice); NaN where a slice holds none. Texture averages out, a shifted intensity does not:
    air smeared into a last slice moves its labels' means (the fault this check is about)."""
    out = []
    for k in range(a.shape[0]):
        errors, weights = [], []
        for c in np.unique(classes[k]):
            mask = classes[k] == c
            if c == 0 or mask.sum() < 20:
                continue
            errors.append(abs(float(a[k][mask].mean()) - float(painted[k][mask].mean())))
            weights.append(int(mask.sum()))
        out.append(float(np.average(errors, weights=weights)) if errors else float("nan"))
    return out


def labelled_ends(values: list[float]) -> dict:
    """ends() over the slices that hold labels (NaN elsewhere), with their indices."""
    held = [k for k, v in enumerate(values) if not np.isnan(v)]
    if len(held) < 3:
        raise SystemExit("error: fewer than 3 slices hold 20 voxels of a label; crop less (--slices) or check the labels")
    return {"slices": [held[0], held[-1]], **ends([values[k] for k in held]), "per_slice": values}


def ends(values: list[float]) -> dict:
    """The first and last values against the median of those between."""
    interior = float(np.median(values[1:-1]))
    return {"first": values[0], "last": values[-1], "interior_median": interior,
            "first_ratio": values[0] / interior, "last_ratio": values[-1] / interior}


def describe(title: str, s: dict, units: str) -> str:
    """One printed line for an ends() result."""
    return (f"{title}: first {s['first']:.4g} ({s['first_ratio']:.2f}x), last {s['last']:.4g} ({s['last_ratio']:.2f}x), "
            f"interior median {s['interior_median']:.4g} {units}")


def summary(values: list[float], labelled: np.ndarray) -> dict:
    out = {**ends(values), "per_slice": values}
    held = [k for k in range(labelled.shape[0]) if labelled[k].sum() >= 100]
    if len(held) > 2 and (held[0] > 0 or held[-1] < labelled.shape[0] - 1):
        out["labelled_extent"] = {"slices": [held[0], held[-1]], **ends([values[k] for k in held])}
    return out


def add_case_arguments(p: argparse.ArgumentParser) -> None:
    """The volume to check: --model, --image, --labels and --slices (also scripts/edge_margin_sweep.py)."""
    p.add_argument("--model", required=True)
    p.add_argument("--image", required=True)
    p.add_argument("--labels", required=True)
    p.add_argument("--slices", default=None, metavar="A:B",
                   help="crop image and labels to slices A..B-1 of the last axis first, so that the outermost input "
                        "slices cut through labelled anatomy (a brain map's own outermost slices are background)")


def load_case(args, need_diffusion: bool = True) -> SimpleNamespace:
    """The package, the (cropped) image and label map, the class map, and the real image and the painting in the
    units the figures are given in; `to_units` puts a volume the package made into those units."""
    package = load_package(args.model, need_diffusion=need_diffusion)
    modality = package.modalities[0]
    norm = package.normalization(modality)
    image, labels = sitk.ReadImage(args.image, sitk.sitkFloat32), sitk.ReadImage(args.labels)
    if args.slices:
        a, b = (int(v) for v in args.slices.split(":"))
        image, labels = image[:, :, a:b], labels[:, :, a:b]  # SimpleITK slicing keeps the physical placement
    classes = to_class_indices(sitk.GetArrayFromImage(labels), package.labels, unknown="background")
    real = sitk.GetArrayFromImage(image)
    painted = denormalize(package.priors(modality).paint(classes)[0], norm)

    divide = 1.0  # CT: HU as they are
    if norm["kind"] == "percentile_scale":  # MRI: compare in model units, the real image by its own scale
        real = real / float(np.percentile(real[real > 0], norm["percentile"])) / 1.5
        divide = 1.5 * norm["scale"]
    return SimpleNamespace(package=package, modality=modality, image=image, labels=labels, classes=classes,
                           labelled=classes > 0, real=real, painted=painted / divide,
                           to_units=lambda volume: volume / divide,
                           units="HU" if norm.get("units") == "HU" else "model units")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_case_arguments(p)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    case = load_case(args)
    package, modality, classes, labelled = case.package, case.modality, case.classes, case.labelled
    real, painted = case.real, case.painted
    recon = case.to_units(sitk.GetArrayFromImage(reconstruct_volume(package, case.image, case.labels, modality)))
    generated = case.to_units(sitk.GetArrayFromImage(generate_volume(package, case.labels, modality, args.steps, seed=0,
                                                                     unknown="background")))
    result = {"model": str(args.model), "image": str(args.image), "slices": args.slices, "units": case.units,
              "reconstruction_vs_real": summary(per_slice_mae(recon, real, labelled), labelled),
              "generated_vs_painted": summary(per_slice_mae(generated, painted, labelled), labelled),
              # The same for the real image: how far a real scan's slices depart from the flat painting (lungs,
              # vessels, the head around a brain), the reference for generated_vs_painted slice by slice.
              "real_vs_painted": summary(per_slice_mae(real, painted, labelled), labelled)}
    # Where anatomy, not the grid's edge, makes an end slice depart from the flat painting (bowel gas, the neck
    # below a brain), the real scan departs there too: the generated departure over the real one, slice by slice,
    # separates an edge fault from anatomy. A supplement to the figures above, not a replacement.
    result["generated_over_real"] = summary([g / r for g, r in zip(result["generated_vs_painted"]["per_slice"],
                                                                   result["real_vs_painted"]["per_slice"])], labelled)
    # The same three, class for class: each slice against what its own mix of classes scores inside.
    for key, (a, b) in (("reconstruction_vs_real", (recon, real)), ("generated_vs_painted", (generated, painted)),
                         ("real_vs_painted", (real, painted))):
        result[key + "_matched"] = summary(per_slice_matched_mae(a, b, labelled, classes), labelled)
    # Per-label means against the priors: the intensity each label should have, with texture averaged out.
    for key, image in (("generated_label_means", generated), ("real_label_means", real)):
        result[key] = labelled_ends(per_slice_label_mean_error(image, painted, classes))
        s = result[key]
        print(describe(f"{key} against the priors, slices {s['slices'][0]}..{s['slices'][1]} (those holding labels)",
                       s, result["units"]))
    for key in ("reconstruction_vs_real", "generated_vs_painted", "real_vs_painted", "generated_over_real",
                "reconstruction_vs_real_matched", "generated_vs_painted_matched", "real_vs_painted_matched"):
        s = result[key]
        print(describe(key, s, "(a ratio)" if key == "generated_over_real" or key.endswith("_matched")
                       else result["units"]))
        if "labelled_extent" in s:
            e = s["labelled_extent"]
            print(f"  labelled extent (slices {e['slices'][0]}..{e['slices'][1]}): first {e['first_ratio']:.2f}x, "
                  f"last {e['last_ratio']:.2f}x of {e['interior_median']:.4g}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
