"""Measure a generator's scanner-texture profile on training subjects and write a package that adds it
(engine/synthesis/scanner_texture.py).

For each of the first --cases subjects of the training CSV (image,label): the package generates from the label map
(seed --seed, the package's defaults, no texture), and the real scan and the generated volume are compared on the
working grid, in model units, over the whole scan (but --margin voxels either side of a change of label), the
labelled voxels apart from the rest. The profile is written into a copy of the package (--out, staged
and renamed whole; an existing --out needs --overwrite), with --version as the copy's version.

python scripts/fit_texture.py --model SemanticSynthLib/models/brain-mri --data runs/brain-mri/train.csv \\
    --cases 16 --margin 1 --unlabelled --unlabelled-within 20 --out runs/brain-mri-texture --version 0.12.0
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from SemanticSynthLib.engine.model.package import load_package  # noqa: E402
from SemanticSynthLib.engine.model.package_metadata import read_metadata  # noqa: E402
from SemanticSynthLib.engine.synthesis.generate import generate_volume  # noqa: E402
from SemanticSynthLib.engine.synthesis.label_vocabulary import read_in_vocabulary  # noqa: E402
from SemanticSynthLib.engine.synthesis.scanner_texture import fit_profile  # noqa: E402
from SemanticSynthLib.engine.synthesis.unlabelled_intensity import fit_unlabelled, kept_within, map_unlabelled  # noqa: E402
from SemanticSynthLib.engine.volume.atomic import staged_dir  # noqa: E402
from SemanticSynthLib.engine.volume.geometry import resample_labels, working_grid  # noqa: E402
from SemanticSynthLib.engine.volume.intensity import model_units  # noqa: E402
from SemanticSynthLib.engine.volume.io import array_of, read_volume  # noqa: E402
from SemanticSynthLib.engine.volume.working_image import units_on_grid, values_on_grid  # noqa: E402


def pairs(package, rows, modality: str, seed: int):
    norm = package.normalization(modality)
    for i, row in enumerate(rows, 1):
        label_map = read_volume(row["label"])
        seen_as, mapping, _ = read_in_vocabulary(package, label_map)
        generated = generate_volume(seen_as, label_map, modality=modality, seed=seed, mapping=mapping,
                                    unknown="background", texture=False)
        grid = working_grid(label_map, package.working_spacing)
        real = units_on_grid(read_volume(row["image"]), grid, norm)
        print(f"{i}/{len(rows)} {Path(row['image']).name}", flush=True)
        yield real, model_units(values_on_grid(generated, grid), norm), array_of(resample_labels(label_map, grid))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, required=True, help="generator package folder")
    p.add_argument("--data", type=Path, required=True, help="training CSV (image,label)")
    p.add_argument("--cases", type=int, default=16, help="the CSV's first N subjects")
    p.add_argument("--modality", default=None, help="default: the package's first")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--margin", type=int, default=0,
                   help="voxels on either side of a change of label left out of the measurement (default 0)")
    p.add_argument("--unlabelled", action="store_true",
                   help="also fit the unlabelled voxels' intensity by distance from the labels "
                        "(engine/synthesis/unlabelled_intensity.py); the texture is then fitted on the mapped volumes")
    p.add_argument("--unlabelled-within", type=float, default=None, metavar="MM",
                   help="keep the map only in the shells that start nearer than MM to the labels (the texture is "
                        "fitted on volumes mapped everywhere)")
    p.add_argument("--out", type=Path, required=True, help="the new package folder")
    p.add_argument("--version", default=None, help="the new package's version (default: the model's)")
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args()
    if args.out.exists() and not args.overwrite:
        sys.exit(f"error: {args.out} exists; give --overwrite to replace it, or another --out")
    if args.out.resolve() == args.model.resolve():
        sys.exit("error: --out is the model itself; write the profile into a new folder")
    args.out.parent.mkdir(parents=True, exist_ok=True)  # before the work, not after it
    package = load_package(args.model)
    modality = args.modality or package.modalities[0]
    with args.data.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))[:args.cases]
    start = time.time()
    triples = pairs(package, rows, modality, args.seed)
    unlabelled = None
    if args.unlabelled:
        triples = list(triples)  # used twice: 16 subjects on brain-mri's working grid are about 200 MB
        unlabelled = fit_unlabelled(triples, package.working_spacing)
        same = lambda u: u  # noqa: E731  (the volumes are in model units already)
        triples = [(real, map_unlabelled(generated, labels > 0, package.working_spacing, unlabelled, same, same),
                    labels) for real, generated, labels in triples]
    profile = fit_profile(triples, margin=args.margin)
    if unlabelled is not None:
        profile["unlabelled"] = unlabelled if args.unlabelled_within is None else kept_within(unlabelled,
                                                                                              args.unlabelled_within)
    profile["fitted_on"] = f"{args.data.name}: first {len(rows)} subjects, seed {args.seed}"
    meta = json.loads((args.model / "metadata.json").read_text(encoding="utf-8"))  # as written, not as validated
    meta.setdefault("texture", {})[modality] = profile
    if args.version:
        meta["version"] = args.version
    with staged_dir(args.out) as tmp:
        for item in args.model.iterdir():
            if item.is_file() and item.name != "metadata.json":
                shutil.copy2(item, tmp / item.name)
        (tmp / "metadata.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        read_metadata(tmp)  # the new package validates before it replaces anything
    print(json.dumps({"profile": profile, "seconds": round(time.time() - start, 1), "out": str(args.out)}, indent=1))


if __name__ == "__main__":
    main()
