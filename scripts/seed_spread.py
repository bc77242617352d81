"""How much do samples vary between seeds? (the diversity a lower temperature costs; docs/sampling_temperature.md)

Generates one label map with several seeds and prints the voxel-wise standard deviation across them, as a fraction
of the median intensity inside the brain (labelled voxels), inside and outside the labels (the head and neck around
a brain map; voxels the first sample leaves at zero, air, are left out).

python scripts/seed_spread.py --model PKG --labels LAB [--temperature T] [--seeds 1 2 3] [--steps N] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from SemanticSynthLib.engine.synthesis.generate import generate_volume  # noqa: E402
from SemanticSynthLib.engine.volume.labels import to_class_indices  # noqa: E402
from SemanticSynthLib.engine.model.package import load_package  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--labels", required=True)
    p.add_argument("--temperature", type=float, default=None, help="default: the package's")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    package = load_package(args.model)
    labels = sitk.ReadImage(args.labels)
    inside = to_class_indices(sitk.GetArrayFromImage(labels), package.labels, unknown="background") > 0
    samples = np.stack([sitk.GetArrayFromImage(generate_volume(package, labels, steps=args.steps, seed=s,
                                                               unknown="background", temperature=args.temperature))
                        for s in args.seeds])
    scale = float(np.median(samples[0][inside]))
    std = samples.std(axis=0) / scale
    outside = ~inside & (samples[0] > 0)
    result = {"model": str(args.model), "labels": str(args.labels), "seeds": args.seeds,
              "temperature": package.temperature(args.temperature),
              "inside": float(std[inside].mean()), "outside": float(std[outside].mean())}
    print(f"temperature {result['temperature']}: seed spread inside the labels {result['inside']:.3f}, "
          f"outside {result['outside']:.3f} (of the median labelled intensity)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
