"""Generated edge figures over seeds and edge margins (docs/edges.md): does a wider margin of replicated labels
make a map's outermost slices come out like its interior?

For each EDGE_MARGIN (latent voxels of replicated labels at a labelled end, engine/synthesis/sampling.py) and seed, prints the
first and last slice against the median interior slice (scripts/edge_check.py's figures, without the reconstruction):
generated against painted, that over the real scan's own departure, and the labels' means against their priors.

python scripts/edge_margin_sweep.py --model M --image IMG --labels SEG [--slices A:B] [--margins 1,2] [--seeds 0,1,2]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import SemanticSynthLib.engine.synthesis.generate as generation  # noqa: E402
from SemanticSynthLib.engine.evaluation import edges as ec  # noqa: E402  (the measures: one definition for the scripts)
from SemanticSynthLib.errors import SynthError  # noqa: E402

sys.path.insert(0, str(REPO / "scripts"))
from edge_check import add_case_arguments, load_case  # noqa: E402  (the same case arguments as edge_check.py)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_case_arguments(p)
    p.add_argument("--margins", default="1,2")
    p.add_argument("--seeds", default="0,1,2")
    args = p.parse_args()
    case = load_case(args)
    painted, classes, labelled = case.painted, case.classes, case.labelled
    real_departure = ec.per_slice_mae(case.real, painted, labelled)
    for margin in (int(m) for m in args.margins.split(",")):
        generation.EDGE_MARGIN = margin  # generate_volume reads the module's name at call time
        for seed in (int(s) for s in args.seeds.split(",")):
            generated = case.to_units(sitk.GetArrayFromImage(generation.generate_volume(
                case.package, case.labels, modality=case.modality, seed=seed, unknown="background")))
            departure = ec.per_slice_mae(generated, painted, labelled)
            versus = ec.ends(departure)
            over = ec.ends([g / r for g, r in zip(departure, real_departure)])
            try:
                means = ec.labelled_ends(ec.per_slice_label_mean_error(generated, painted, classes))
            except SynthError as error:
                raise SystemExit(f"error: {error}")
            print(f"margin {margin} seed {seed}: generated vs painted {versus['first_ratio']:.2f}x {versus['last_ratio']:.2f}x"
                  f" | over real {over['first_ratio']:.2f}x {over['last_ratio']:.2f}x | label means "
                  f"{means['first_ratio']:.2f}x {means['last_ratio']:.2f}x ({means['first']:.3g}, {means['last']:.3g}; "
                  f"interior {means['interior_median']:.3g} {case.units})",
                  flush=True)


if __name__ == "__main__":
    main()
