"""Boundary sharpness of generated CT against real CT, at 3 mm and at 1.5 mm (issue 33, item 5).

python scripts/ct_sharpness.py --model MODEL --out runs/sharpness [--data ../shared/data/totalseg] [--refiner-data runs/refiner]

The measure is engine/evaluation/sharpness.py's: mean gradient magnitude (HU/mm) across boundaries and inside bone.
1. 3 mm, label boundaries: the training case (example_ct_sm) against the volume generated from its map (example_seg).
2. 1.5 mm, degraded and restored: aorta_ct_crop's held-out 40 slices (scripts/refiner_data.py) smoothed to 3 mm and
   restored, linearly and by the autoencoder, each with and without the refiner, against the real slices; tissue
   boundaries of the real image, so every version is measured on the same voxels; plus the L1 error.
3. 1.5 mm, generated: example_seg upsampled to 1.5 mm (each label's mask linearly resampled, the largest wins: smooth
   boundaries, as a 1.5 mm segmentation has), generated with --no-refine and with the refiner; tissue boundaries of
   each image, against the real 1.5 mm CT (the whole of aorta_ct_crop), per kind of boundary.
Writes sharpness.json and sharpness.png (one axial slice of each) into --out; prints the tables.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from SemanticSynthLib.engine.evaluation.sharpness import (gradient_magnitude, label_sharpness,  # noqa: E402
                                                          tissue_classes, boundary_pairs, tissue_sharpness)
from SemanticSynthLib.engine.model.package import load_package  # noqa: E402
from SemanticSynthLib.engine.model.refiner import fine_priors, refine_volume  # noqa: E402
from SemanticSynthLib.engine.synthesis.generate import generate_volume  # noqa: E402
from SemanticSynthLib.engine.training.refiner import restored_copies  # noqa: E402
from SemanticSynthLib.engine.volume.intensity import denormalize, normalize  # noqa: E402
from SemanticSynthLib.engine.volume.io import array_of, image_like  # noqa: E402

BONE_WORDS = ("vertebrae", "rib", "humerus", "scapula", "clavicula", "femur", "hip", "sacrum", "sternum", "costal")


def smooth_upsample(label_map: sitk.Image, spacing: float) -> sitk.Image:
    """The map on a grid `spacing` mm fine covering the same extent; each label's mask resampled linearly, the
    largest wins (background included)."""
    factor = np.array(label_map.GetSpacing()) / spacing
    size = [int(round(n * f)) for n, f in zip(label_map.GetSize(), factor)]
    ref = sitk.Image(size, sitk.sitkUInt8)
    ref.SetSpacing([spacing] * 3)
    ref.SetDirection(label_map.GetDirection())
    ref.SetOrigin(label_map.TransformContinuousIndexToPhysicalPoint([(1 / f - 1) / 2 for f in factor]))
    ids = sitk.GetArrayFromImage(label_map)
    best = np.full(size[::-1], -1.0, np.float32)
    out = np.zeros(size[::-1], np.int16)
    for i in np.unique(ids):
        mask = sitk.GetImageFromArray((ids == i).astype(np.float32))
        mask.CopyInformation(label_map)
        p = sitk.GetArrayFromImage(sitk.Resample(mask, ref, sitk.Transform(), sitk.sitkLinear, 0.0))
        take = p > best
        out[take], best[take] = i, p[take]
    up = sitk.GetImageFromArray(out)
    up.CopyInformation(ref)
    return up


def refined(package, image: sitk.Image) -> sitk.Image:
    """The refiner on an unlabelled image (the background's painting as guide), as on a restored held-out copy."""
    norm = package.normalization("ct")
    classes = np.zeros(image.GetSize(), np.int64)
    guide = fine_priors(package.priors("ct"), image.GetSpacing(), package.working_spacing).guide(classes)
    out = refine_volume(package.refiner, normalize(array_of(image), norm).astype(np.float32), guide.astype(np.float32))
    return image_like(denormalize(out, norm).astype(np.float32), image)


def ratios(measured: dict, real: dict) -> dict:
    out = {}
    for k, v in measured["boundaries"].items():
        if k in real["boundaries"]:
            out[k] = round(v["gradient"] / real["boundaries"][k]["gradient"], 3)
            if "steepness" in v and "steepness" in real["boundaries"][k]:
                out[f"{k} steepness"] = round(v["steepness"] / real["boundaries"][k]["steepness"], 3)
    out["all"] = round(measured["all_boundaries"] / real["all_boundaries"], 3)
    out["inside_bright"] = round(measured["inside_bright"] / real["inside_bright"], 3)
    return out


def on_real_boundaries(image: sitk.Image, real: sitk.Image) -> dict:
    """Mean |grad| of `image` on the real image's tissue boundaries and inside its bright class; L1 against it."""
    classes = tissue_classes(real)
    pairs = boundary_pairs(classes)
    bright = classes == 3
    inside = bright & (boundary_pairs(bright.astype(np.int16)) < 0)
    values = sitk.GetArrayFromImage(image).astype(np.float32)
    g = gradient_magnitude(values, image.GetSpacing()[::-1])
    return {"boundaries": float(g[pairs >= 0].mean()), "inside_bright": float(g[inside].mean()),
            "l1_hu": float(np.abs(values - sitk.GetArrayFromImage(real)).mean())}


def picture(slices: list[tuple[str, np.ndarray, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(slices), figsize=(4 * len(slices), 4.4))
    for ax, (title, a, aspect) in zip(axes, slices):
        ax.imshow(a, cmap="gray", vmin=-250, vmax=450, aspect=aspect)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--data", default="../shared/data/totalseg")
    p.add_argument("--refiner-data", default="runs/refiner")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data, held = Path(args.data), Path(args.refiner_data)
    package = load_package(args.model)
    names = json.loads((data / "total_v2_labels.json").read_text(encoding="utf-8"))
    bone_ids = [int(i) for i, n in names.items() if any(w in n for w in BONE_WORDS)]
    report = {"model": args.model, "seed": args.seed}

    # 1. 3 mm, the training case's own map.
    seg = sitk.ReadImage(str(data / "example_seg.nii.gz"))
    real3 = sitk.ReadImage(str(data / "example_ct_sm.nii.gz"), sitk.sitkFloat32)
    gen3 = generate_volume(package, seg, seed=args.seed)
    report["3mm_labels"] = {"real": label_sharpness(real3, seg, bone_ids), "generated": label_sharpness(gen3, seg, bone_ids)}
    report["3mm_tissue"] = {"real": tissue_sharpness(real3), "generated": tissue_sharpness(gen3)}

    # 2. 1.5 mm held-out slices, degraded to 3 mm and restored.
    held_real = sitk.ReadImage(str(held / "aorta_holdout.nii.gz"), sitk.sitkFloat32)
    versions = {"real": held_real}
    for how, values in restored_copies(package, held_real, None, "ct", 2.0):
        versions[how] = image_like(values.astype(np.float32), held_real)
        if package.refiner is not None:
            versions[f"{how} + refiner"] = refined(package, versions[how])
    report["1.5mm_heldout"] = {k: on_real_boundaries(v, held_real) for k, v in versions.items()}

    # 3. 1.5 mm generation from the upsampled map, against the real 1.5 mm CT.
    seg15 = smooth_upsample(seg, 1.5)
    sitk.WriteImage(seg15, str(out / "example_seg_1.5mm.nii.gz"))
    real15 = sitk.ReadImage(str(data / "aorta_ct_crop.nii.gz"), sitk.sitkFloat32)
    plain = generate_volume(package, seg15, seed=args.seed, refine=False)
    gens = {"upsampled (--no-refine)": plain}
    if package.refiner is not None:
        gens["refined"] = generate_volume(package, seg15, seed=args.seed)
    real_t = tissue_sharpness(real15)
    report["1.5mm_generated"] = {"real aorta_ct_crop": real_t}
    for k, v in gens.items():
        t = tissue_sharpness(v)
        report["1.5mm_generated"][k] = {**t, "ratio_to_real": ratios(t, real_t)}
        sitk.WriteImage(v, str(out / f"generated_1.5mm_{'refined' if k == 'refined' else 'upsampled'}.nii.gz"))
    (out / "sharpness.json").write_text(json.dumps(report, indent=1), encoding="utf-8")

    # The picture: the real held-out slice and its restorations; one generated slice each way.
    k = held_real.GetSize()[2] // 2
    z = seg15.GetSize()[2] // 2
    shown = [("real 1.5 mm (held out)", sitk.GetArrayFromImage(held_real)[k], 1.0)]
    for how in ("linear", "linear + refiner"):
        if how in versions:
            shown.append((f"restored from 3 mm, {how}", sitk.GetArrayFromImage(versions[how])[k], 1.0))
    for name, v in gens.items():
        shown.append((f"generated 1.5 mm, {name}", sitk.GetArrayFromImage(v)[z], 1.0))
    picture(shown, out / "sharpness.png")

    print("3 mm, label boundaries (HU/mm): real %.1f, generated %.1f; inside bone: real %.1f, generated %.1f" % (
        report["3mm_labels"]["real"]["label_boundaries"], report["3mm_labels"]["generated"]["label_boundaries"],
        report["3mm_labels"]["real"]["inside_bone"], report["3mm_labels"]["generated"]["inside_bone"]))
    print("1.5 mm held-out slices, on the real tissue boundaries (HU/mm) / inside bright / L1 HU:")
    for name, v in report["1.5mm_heldout"].items():
        print(f"  {name:24s} {v['boundaries']:7.1f} {v['inside_bright']:7.1f} {v['l1_hu']:7.1f}")
    print("1.5 mm generated, own tissue boundaries, ratio to real 1.5 mm CT:")
    for name, v in report["1.5mm_generated"].items():
        if "ratio_to_real" in v:
            print(f"  {name:24s} {json.dumps(v['ratio_to_real'])}")
    print(f"wrote {out / 'sharpness.json'} and {out / 'sharpness.png'}")


if __name__ == "__main__":
    main()
