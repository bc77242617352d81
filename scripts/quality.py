"""Quality of the bundled models against real scans, beside the label-mean painting baseline.

python scripts/quality.py [--subjects N] [--steps S] [--out docs/quality]

Brain MRI, on the 20 validation subjects of scripts/brain_mri_split.py (never seen in training):
- PSNR and 3D SSIM against the real T1 inside the brain (MUSE labels > 0), both volumes in the model's
  normalization (each divided by its own 99.5th foreground percentile);
- mean intensity per tissue (grey matter, white matter, CSF from the MUSE derived groups 601, 604 and
  600 + 509), real against generated;
- the same for label-mean painting: each label filled with its mean over the training subjects.
Abdominal CT, on the bundled sample: per-organ mean HU, real against generated (the model trained on
this very case: a sanity check of HU calibration, not a generalisation result).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from brain_mri_split import split  # noqa: E402
import ct_training_case  # noqa: E402  (the CT per-organ figures: one definition)
from SemanticSynthLib.engine.synthesis.generate import generate_volume  # noqa: E402
from SemanticSynthLib.engine.volume.intensity import normalize  # noqa: E402
from SemanticSynthLib.engine.volume.io import array_of, read_volume  # noqa: E402
from SemanticSynthLib.engine.evaluation.metrics import psnr_in_mask, ssim_in_mask  # noqa: E402
from SemanticSynthLib.engine.model.package import load_package  # noqa: E402
from SemanticSynthLib.engine.model.store import resolve_model  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
IXI = SHARED / "ixi_muse"


def muse_groups() -> dict[str, list[int]]:
    rows = {r[0]: [int(v) for v in r[2:] if v] for r in csv.reader(open(IXI / "muse_mapping_derived.csv", encoding="utf-8"))}
    return {"grey matter": rows["601"], "white matter": rows["604"], "CSF": rows["600"] + rows["509"]}


def label_means(ids: list[str], norm: dict) -> dict[int, float]:
    sums, counts = {}, {}
    for i in ids:
        t1 = normalize(array_of(read_volume(IXI / "t1" / f"{i}.nii.gz")), norm)
        lab = array_of(read_volume(IXI / "labels" / f"{i}.nii.gz"))
        s = np.bincount(lab.ravel(), weights=t1.ravel())
        c = np.bincount(lab.ravel())
        for k in np.nonzero(c)[0]:
            sums[k] = sums.get(k, 0.0) + s[k]
            counts[k] = counts.get(k, 0) + c[k]
    return {k: sums[k] / counts[k] for k in sums}


def tissue_means(image, labels, groups):
    return {name: float(image[np.isin(labels, ids)].mean()) for name, ids in groups.items()}


def brain(args) -> dict:
    package = load_package(resolve_model("brain-mri"))
    norm = dict(package.normalization("mri"))
    train_ids, val_ids = split(IXI)
    val_ids = val_ids[: args.subjects]
    means = label_means(train_ids, norm)
    groups = muse_groups()
    rows = []
    for i in val_ids:
        label_img = read_volume(IXI / "labels" / f"{i}.nii.gz")
        labels = array_of(label_img)
        real = normalize(array_of(read_volume(IXI / "t1" / f"{i}.nii.gz")), norm)
        t0 = time.perf_counter()
        generated = normalize(array_of(generate_volume(package, label_img, modality="mri", steps=args.steps, seed=0, unknown="background")), norm)
        seconds = time.perf_counter() - t0
        lut = np.zeros(int(labels.max()) + 1, np.float32)
        for k, v in means.items():
            if k <= labels.max():
                lut[k] = v
        painted = lut[labels]
        mask = labels > 0
        row = {"subject": i, "seconds": seconds}
        for name, img in (("model", generated), ("painting", painted)):
            row[name] = {"psnr": psnr_in_mask(img, real, mask), "ssim": ssim_in_mask(img, real, mask),
                         "tissue_mean": tissue_means(img, labels, groups)}
        row["real_tissue_mean"] = tissue_means(real, labels, groups)
        rows.append(row)
        print(f"{i}: model PSNR {row['model']['psnr']:.2f} SSIM {row['model']['ssim']:.3f} | painting PSNR "
              f"{row['painting']['psnr']:.2f} SSIM {row['painting']['ssim']:.3f} ({seconds:.1f} s)", flush=True)
    summary = {}
    for name in ("model", "painting"):
        summary[name] = {"psnr_mean": float(np.mean([r[name]["psnr"] for r in rows])),
                         "ssim_mean": float(np.mean([r[name]["ssim"] for r in rows]))}
        for tissue in groups:
            real = np.array([r["real_tissue_mean"][tissue] for r in rows])
            gen = np.array([r[name]["tissue_mean"][tissue] for r in rows])
            summary[name][f"{tissue} mean (real)"] = float(real.mean())
            summary[name][f"{tissue} mean"] = float(gen.mean())
            summary[name][f"{tissue} relative error"] = float(np.mean(np.abs(gen - real) / real))
    return {"subjects": val_ids, "steps": args.steps or package.metadata["diffusion"]["default_steps"],
            "cases": rows, "summary": summary}


def ct(args) -> dict:
    package = load_package(resolve_model(getattr(args, "ct_model", None) or "abdomen-ct"))
    label_img = read_volume(ct_training_case.LABELS)
    labels = array_of(label_img)
    generated = array_of(generate_volume(package, label_img, modality="ct", steps=args.steps, seed=0))
    organs = ct_training_case.organ_means(generated, array_of(read_volume(ct_training_case.REAL)), labels)
    names = json.loads((SHARED / "totalseg" / "total_v2_labels.json").read_text(encoding="utf-8"))
    return {"organs": {names[str(k)]: o for k, o in organs.items()},
            "mean_abs_hu_error": ct_training_case.per_organ_error(organs)}


def write_markdown(result: dict, path: Path):
    b = result["brain"]["summary"]
    lines = ["# Quality of the bundled models", "", f"Brain MRI: {len(result['brain']['subjects'])} validation subjects, "
             f"{result['brain']['steps']} DDIM steps, seed 0. Metrics inside the brain, in the model's normalization.", "",
             "| | PSNR (dB) | SSIM | GM mean | WM mean | CSF mean | GM err | WM err | CSF err |", "|---|---|---|---|---|---|---|---|---|"]
    for name in ("model", "painting"):
        s = b[name]
        lines.append(f"| {name} | {s['psnr_mean']:.2f} | {s['ssim_mean']:.3f} | {s['grey matter mean']:.3f} | {s['white matter mean']:.3f} | "
                     f"{s['CSF mean']:.3f} | {100 * s['grey matter relative error']:.1f}% | {100 * s['white matter relative error']:.1f}% | "
                     f"{100 * s['CSF relative error']:.1f}% |")
    s = b["model"]
    lines.append(f"| real | | | {s['grey matter mean (real)']:.3f} | {s['white matter mean (real)']:.3f} | {s['CSF mean (real)']:.3f} | | | |")
    if "ct" in result:
        lines += ["", "Abdominal CT sample (the model's own training case): mean HU per organ", "", "| organ | real HU | generated HU |", "|---|---|---|"]
        for name, o in sorted(result["ct"]["organs"].items(), key=lambda kv: -kv[1]["voxels"])[:15]:
            lines.append(f"| {name} | {o['real_hu']:.0f} | {o['generated_hu']:.0f} |")
        lines.append(f"\nMean absolute HU error over organs: {result['ct']['mean_abs_hu_error']:.0f} HU")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def record_metrics(result: dict) -> None:
    """The summary figures under "metrics" in each bundled package's metadata.json."""
    brain = {"validation_subjects": len(result["brain"]["subjects"]), "ddim_steps": result["brain"]["steps"],
             **{f"{k}": v for k, v in result["brain"]["summary"]["model"].items()},
             "painting_baseline": result["brain"]["summary"]["painting"], "script": "scripts/quality.py"}
    targets = [("brain-mri", brain)]
    if "ct" in result:
        targets.append(("abdomen-ct", {"sample_mean_abs_hu_error": result["ct"]["mean_abs_hu_error"],
                                       "note": "measured on the training case itself", "script": "scripts/quality.py"}))
    for name, metrics in targets:
        path = resolve_model(name) / "metadata.json"
        meta = json.loads(path.read_text(encoding="utf-8"))
        meta["metrics"] = metrics
        path.write_text(json.dumps(meta, indent=1), encoding="utf-8")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=20)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--out", default=str(REPO / "docs" / "quality"))
    parser.add_argument("--ct-model", default=None, help="CT package to measure (default: the bundled abdomen-ct)")
    parser.add_argument("--ct-only", action="store_true", help="only the CT part")
    parser.add_argument("--record", action="store_true", help="also store the summary in the packages' metadata.json")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.ct_only:
        print(json.dumps(ct(args), indent=1))
        return
    result = {"brain": brain(args)}
    try:
        result["ct"] = ct(args)
    except Exception as exc:  # the CT demo model may not be trained yet; the brain figures still stand
        print(f"CT part skipped: {exc}")
    (out / "quality.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    write_markdown(result, out / "quality.md")
    if args.record:
        record_metrics(result)
    print((out / "quality.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
