"""The translator's acceptance figures on held-out stand-in pairs (the 20 brain validation subjects).

python scripts/evaluate_translator.py runs/translator/val_pairs.csv --out docs/translation [--model DIR]

For every pair (source T1, target = T2-like contrast warped by a known field; see
SemanticSynthLib/engine/translation/synthetic_pairs.py) it translates the source and reports:
- the Jacobian determinant of the output field (fraction of voxels > 0, minimum);
- the endpoint error |u_pred - u_true| inside the brain, in mm and in voxels;
- Dice of the source labels carried by the field against the target's labels, for white matter and
  the ventricles, next to the Dice with no warp;
- inverse consistency: |exp(v) then exp(-v)| inside the brain, in voxels of the working grid;
- PSNR/SSIM of the output against the target inside the head, with and without the deformation.
Writes evaluation.json, evaluation.md and example.png.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from SemanticSynthLib.engine.volume.geometry import resample_labels  # noqa: E402
from SemanticSynthLib.engine.volume.intensity import percentile_of_foreground  # noqa: E402
from SemanticSynthLib.engine.volume.io import array_of  # noqa: E402
from SemanticSynthLib.engine.evaluation.metrics import psnr_in_mask, ssim_in_mask  # noqa: E402
from SemanticSynthLib.engine.translation.fields import compose, jacobian_determinant, physical_to_voxels  # noqa: E402
from SemanticSynthLib.engine.translation.networks import VelocityNet  # noqa: E402
from SemanticSynthLib.engine.translation.translate import load_translator, source_unit, translate_volume  # noqa: E402

# MUSE primary regions: white matter (derived group 604) and the ventricles (3rd, 4th, inferior lateral, lateral).
STRUCTURES = {"white matter": [40, 41, 61, 62, *range(81, 96)], "ventricles": [4, 11, 49, 50, 51, 52]}


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return float(2 * (a & b).sum() / total) if total else 1.0


def inverse_consistency(translator, source: sitk.Image, labels: sitk.Image) -> dict:
    """exp(v) followed by exp(-v), on the working grid, inside the brain: how far points end from where they began."""
    grid, unit = source_unit(translator, source)
    x = torch.from_numpy(unit)[None, None]
    with torch.no_grad():
        velocity = translator.velocity(x)
        forward = VelocityNet.displacement(velocity, x.shape[2:])
        inverse = VelocityNet.displacement(velocity, x.shape[2:], inverse=True)
        residual = np.linalg.norm(compose(forward, inverse)[0].numpy(), axis=0)
    brain = array_of(resample_labels(labels, grid)) > 0
    return {"mean_voxels": float(residual[brain].mean()), "max_voxels": float(residual[brain].max())}


def vectors_of(field: sitk.Image) -> np.ndarray:
    """(X, Y, Z, 3) displacement vectors in LPS mm."""
    return sitk.GetArrayFromImage(field).transpose(2, 1, 0, 3)


def unit_of(image: sitk.Image, scale: float) -> np.ndarray:
    return np.clip(array_of(image) / scale, 0, 1.5) / 1.5


def evaluate_pair(translator, row: dict, steps: int | None) -> tuple[dict, dict]:
    source, labels = sitk.ReadImage(row["source"]), sitk.ReadImage(row["source_labels"])
    target, target_labels = sitk.ReadImage(row["target"]), array_of(sitk.ReadImage(row["target_labels"]))
    true_field = sitk.ReadImage(row["true_field"])
    t0 = time.perf_counter()
    result = translate_volume(translator, source, steps, seed=0, labels=labels)
    seconds = time.perf_counter() - t0
    unwarped = translate_volume(translator, source, steps, seed=0, deform=False).image
    source_labels, carried = array_of(labels), array_of(result.labels)
    brain = source_labels > 0
    error_mm = np.linalg.norm(vectors_of(result.field) - vectors_of(true_field), axis=-1)
    spacing = float(np.mean(source.GetSpacing()))
    jac = jacobian_determinant(physical_to_voxels(result.field))
    true_mm = np.linalg.norm(vectors_of(true_field), axis=-1)
    scale = percentile_of_foreground(array_of(target), 99.5)
    real = unit_of(target, scale)
    head = real > 0.02
    out = {
        "case": Path(row["source"]).name.split(".nii")[0], "seconds": round(seconds, 2),
        "jacobian_positive_fraction": float((jac > 0).mean()), "jacobian_min": float(jac.min()),
        "epe_mm": float(error_mm[brain].mean()), "epe_voxels": float(error_mm[brain].mean() / spacing),
        "true_displacement_mm": float(true_mm[brain].mean()),
        "inverse_consistency": inverse_consistency(translator, source, labels),
        "psnr": psnr_in_mask(unit_of(result.image, scale), real, head),
        "ssim": ssim_in_mask(unit_of(result.image, scale), real, head),
        "psnr_no_deform": psnr_in_mask(unit_of(unwarped, scale), real, head),
        "ssim_no_deform": ssim_in_mask(unit_of(unwarped, scale), real, head),
    }
    for name, ids in STRUCTURES.items():
        truth = np.isin(target_labels, ids)
        out[f"dice {name}"] = dice(np.isin(carried, ids), truth)
        out[f"dice {name} no warp"] = dice(np.isin(source_labels, ids), truth)
    images = {"source": source, "target": target, "output": result.image, "unwarped": unwarped,
              "error_mm": error_mm, "carried": carried, "target_labels": target_labels}
    return out, images


def figure(images: dict, path: Path, case: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = array_of(images["source"]).shape[2] // 2
    panels = [("source T1", array_of(images["source"])), ("target (T2-like, warped)", array_of(images["target"])),
              ("translated, no deformation", array_of(images["unwarped"])), ("translated + field", array_of(images["output"])),
              ("endpoint error (mm)", images["error_mm"])]
    fig, axes = plt.subplots(1, 5, figsize=(20, 4.6), facecolor="black")
    for ax, (title, volume) in zip(axes, panels):
        cut = volume[:, :, k].T[::-1]
        if title.startswith("endpoint"):
            shown = ax.imshow(cut, cmap="magma", vmin=0, vmax=4)
            fig.colorbar(shown, ax=ax, fraction=0.04)
        else:
            ax.imshow(cut, cmap="gray", vmin=0, vmax=np.percentile(volume, 99.5))
        if title in ("target (T2-like, warped)", "translated + field"):
            wm = np.isin(images["target_labels" if title.startswith("target") else "carried"][:, :, k].T[::-1],
                         STRUCTURES["ventricles"])
            ax.contour(wm, levels=[0.5], colors="cyan", linewidths=0.8)
        ax.set_title(title, color="white", fontsize=10)
        ax.axis("off")
    fig.suptitle(f"{case}: ventricles contour = target labels (2nd) and labels carried by the field (4th)", color="white")
    fig.tight_layout()
    fig.savefig(path, dpi=80, facecolor="black")
    plt.close(fig)


def summarize(rows: list[dict]) -> dict:
    keys = [k for k in rows[0] if k not in ("case", "inverse_consistency")]
    summary = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    summary["jacobian_positive_fraction_min"] = float(min(r["jacobian_positive_fraction"] for r in rows))
    summary["jacobian_min"] = float(min(r["jacobian_min"] for r in rows))
    summary["epe_voxels_max_case"] = float(max(r["epe_voxels"] for r in rows))
    summary["inverse_consistency_mean_voxels"] = float(np.mean([r["inverse_consistency"]["mean_voxels"] for r in rows]))
    summary["inverse_consistency_max_voxels"] = float(max(r["inverse_consistency"]["max_voxels"] for r in rows))
    summary["seconds_median"] = float(np.median([r["seconds"] for r in rows]))
    return summary


def markdown(summary: dict, rows: list[dict], model: str) -> str:
    lines = [f"# Translator evaluation: {model}", "",
             "Held-out stand-in pairs: the 20 validation subjects of `scripts/brain_mri_split.py` (never used to train the",
             "brain model, the target autoencoder or the translator). Target = T2-like contrast of the real T1, warped by a",
             "known anatomy-dependent diffeomorphism (`synthetic_pairs.py`). Made by `scripts/evaluate_translator.py`.", "",
             "| Figure | Mean over 20 | Goal |", "|---|---|---|",
             f"| Jacobian > 0 (worst case) | {100 * summary['jacobian_positive_fraction_min']:.3f}% of voxels, min det {summary['jacobian_min']:.3f} | 100% |",
             f"| Endpoint error in the brain | {summary['epe_mm']:.2f} mm = {summary['epe_voxels']:.2f} voxels (worst case {summary['epe_voxels_max_case']:.2f}); true displacement {summary['true_displacement_mm']:.2f} mm | <= 1 voxel |",
             f"| Dice white matter, carried / no warp | {summary['dice white matter']:.3f} / {summary['dice white matter no warp']:.3f} | >= 0.90 |",
             f"| Dice ventricles, carried / no warp | {summary['dice ventricles']:.3f} / {summary['dice ventricles no warp']:.3f} | >= 0.90 |",
             f"| Inverse consistency in the brain | mean {summary['inverse_consistency_mean_voxels']:.3f}, max {summary['inverse_consistency_max_voxels']:.3f} voxels | <= 0.5 voxel |",
             f"| PSNR / SSIM vs target (head) | {summary['psnr']:.2f} dB / {summary['ssim']:.3f} (no deformation: {summary['psnr_no_deform']:.2f} / {summary['ssim_no_deform']:.3f}) | |",
             f"| Time per translation (2 threads) | median {summary['seconds_median']:.1f} s | |", "",
             "| Case | EPE (vox) | Dice WM (no warp) | Dice vent. (no warp) | Jac>0 | Inv. cons. max (vox) | PSNR |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['epe_voxels']:.2f} | {r['dice white matter']:.3f} ({r['dice white matter no warp']:.3f}) | "
                     f"{r['dice ventricles']:.3f} ({r['dice ventricles no warp']:.3f}) | {100 * r['jacobian_positive_fraction']:.2f}% | "
                     f"{r['inverse_consistency']['max_voxels']:.3f} | {r['psnr']:.2f} |")
    lines += ["", "![example](example.png)", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pairs", help="val_pairs.csv from scripts/make_translation_pairs.py")
    parser.add_argument("--out", required=True)
    parser.add_argument("--model", default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    translator = load_translator(args.model)
    rows = []
    pairs = list(csv.DictReader(open(args.pairs, encoding="utf-8")))
    for i, row in enumerate(pairs):
        result, images = evaluate_pair(translator, row, args.steps)
        rows.append(result)
        if i == 0:
            figure(images, out / "example.png", result["case"])
        print(f"{i + 1}/{len(pairs)} {result['case']}: EPE {result['epe_voxels']:.2f} vox, Dice WM {result['dice white matter']:.3f} "
              f"(no warp {result['dice white matter no warp']:.3f}), ventricles {result['dice ventricles']:.3f}", flush=True)
    summary = summarize(rows)
    (out / "evaluation.json").write_text(json.dumps({"model": translator.name, "summary": summary, "cases": rows}, indent=1), encoding="utf-8")
    (out / "evaluation.md").write_text(markdown(summary, rows, translator.name), encoding="utf-8")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
