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
The measures are SemanticSynthLib/engine/evaluation/edges.py's; this is their command-line front end.

python scripts/edge_check.py --model runs/abdomen-ct/model --image CT --labels SEG [--steps 20] [--slices A:B] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from SemanticSynthLib.engine.evaluation.edges import (describe, labelled_ends, load_edge_case,  # noqa: E402
                                                      per_slice_label_mean_error, per_slice_mae, per_slice_matched_mae,
                                                      summary)
from SemanticSynthLib.engine.synthesis.generate import generate_volume  # noqa: E402
from SemanticSynthLib.engine.synthesis.reconstruction import reconstruct_volume  # noqa: E402
from SemanticSynthLib.errors import SynthError  # noqa: E402


def add_case_arguments(p: argparse.ArgumentParser) -> None:
    """The volume to check: --model, --image, --labels and --slices (also scripts/edge_margin_sweep.py)."""
    p.add_argument("--model", required=True)
    p.add_argument("--image", required=True)
    p.add_argument("--labels", required=True)
    p.add_argument("--slices", default=None, metavar="A:B",
                   help="crop image and labels to slices A..B-1 of the last axis first, so that the outermost input "
                        "slices cut through labelled anatomy (a brain map's own outermost slices are background)")


def load_case(args, need_diffusion: bool = True):
    """The volume the arguments of add_case_arguments name, in the units of the edge figures (engine/evaluation/edges.py)."""
    return load_edge_case(args.model, args.image, args.labels, slices=args.slices, need_diffusion=need_diffusion)


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
    generated = case.to_units(sitk.GetArrayFromImage(generate_volume(package, case.labels, modality=modality, steps=args.steps, seed=0,
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
        try:
            result[key] = labelled_ends(per_slice_label_mean_error(image, painted, classes))
        except SynthError as error:
            raise SystemExit(f"error: {error}")
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
        Path(args.json).write_text(json.dumps(result, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
