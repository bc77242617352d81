"""Where an FRD gap is: which radiomics features carry the Fréchet Radiomics Distance between the validation
subjects' real scans and another set (issue 34: "if it misses, say where the gap is").

For each compared set (the floor, i.e. other real scans, and every --set NAME=FOLDER of volumes named ID.nii.gz) it
runs frd_score's FRDv1 exactly as scripts/frd_head.py does (same features, same masks, same feature cache in --out),
keeps the features frd_score normalised against the real scans, and reports per feature group (filtered image x
feature class, e.g. `wavelet-HHH glcm`, `original firstorder`):
- mean shift: the group's share of the squared distance between the two sets' mean feature vectors;
- FRD without the group: frd_score's Fréchet distance (log of the squared distance) with the group left out, so a
  group whose removal brings a set to the floor is where that set's gap is;
and the single features whose mean moved most (in units of the real scans' spread).

python scripts/frd_features.py --out runs/frd/report --region brain --set generated=runs/frd/generated
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import frd_head  # noqa: E402  (sets single-threaded extraction before numpy's pools start)


CLASSES = ("firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm", "shape")


def feature_group(name: str) -> str:
    """`wavelet-HLL_glcm_Contrast` -> `wavelet-HLL glcm`, `glszm_ZoneVariance` -> `original glszm`; LoG sigmas keep
    their sigma."""
    parts = name.split("_")
    if parts[0] in CLASSES:  # frd_score names the original image's features without the image type
        parts = ["original"] + parts
    return " ".join(parts[:2]) if len(parts) > 2 else name


def log_frechet(frd, a: np.ndarray, b: np.ndarray) -> float:
    d = frd.calculate_frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    return float(np.log(d)) if d > 0 else float("-inf")


def analyse(frd, real: np.ndarray, other: np.ndarray, names: list[str], top: int) -> dict:
    groups = sorted({feature_group(n) for n in names})
    index = {g: np.array([feature_group(n) == g for n in names]) for g in groups}
    spread = real.std(0)
    spread[spread == 0] = 1.0
    shift = (other.mean(0) - real.mean(0)) / spread  # per feature, in the real scans' spread
    mean_term = ((other.mean(0) - real.mean(0)) ** 2)
    total_mean = float(mean_term.sum())
    rows = []
    for g in groups:
        keep = ~index[g]
        rows.append({"group": g, "features": int(index[g].sum()),
                     "mean_shift_share": round(float(mean_term[index[g]].sum()) / max(total_mean, 1e-12), 4),
                     "frd_without": round(log_frechet(frd, real[:, keep], other[:, keep]), 3)})
    rows.sort(key=lambda r: r["frd_without"])
    order = np.argsort(-np.abs(shift))[:top]
    return {"frd": round(log_frechet(frd, real, other), 3), "groups": rows,
            "features": [{"feature": names[i], "shift_in_sd": round(float(shift[i]), 2)} for i in order]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--val", type=Path, default=frd_head.REPO / "runs/brain-mri/val.csv")
    p.add_argument("--reference", type=Path, default=frd_head.REPO / "runs/brain-mri/train.csv")
    p.add_argument("--reference-count", type=int, default=20)
    p.add_argument("--set", action="append", default=[], metavar="NAME=FOLDER", help="volumes ID.nii.gz to compare")
    p.add_argument("--region", choices=("brain", "head"), default="brain")
    p.add_argument("--out", type=Path, required=True, help="frd_head.py's --out (masks/, feature_cache/)")
    p.add_argument("--top", type=int, default=15, help="single features listed per set")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()

    import SimpleITK as sitk
    from frd_score import frd

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    val = frd_head.read_cases(args.val)
    reference = frd_head.read_cases(args.reference, args.reference_count)
    sets = {"floor": ([c["image"] for c in reference], reference)}
    for item in args.set:
        name, _, folder = item.partition("=")
        files = [Path(folder) / f"{c['id']}.nii.gz" for c in val]
        missing = [f for f in files if not f.exists()]
        if not folder or missing:
            raise SystemExit(f"--set {item}: give NAME=FOLDER with one ID.nii.gz per validation subject "
                             f"({len(missing)} missing)")
        sets[name] = ([str(f) for f in files], val)
    masks = frd_head.write_masks(val + reference, args.out / "masks")
    frd_head.install_feature_cache(frd, args.out / "feature_cache", {"extracted": 0, "reused": 0,
                                                                      "extract_seconds": 0.0})
    captured = {}
    original = frd.compute_statistics_of_paths

    def capture(*a, **k):  # frd_score's normalised features and their names, as its FRD uses them
        mu, sigma, normalised, names = original(*a, **k)
        captured.update(normalised=normalised, names=list(names))
        return mu, sigma, normalised, names

    frd.compute_statistics_of_paths = capture
    report = {"region": args.region, "sets": {}}
    real = [c["image"] for c in val]
    for name, (files, cases) in sets.items():
        region_masks = [[masks[args.region][c["id"]] for c in val], [masks[args.region][c["id"]] for c in cases]]
        value = float(frd.compute_frd([real, files], frd_version="v1", paths_masks=region_masks,
                                      num_workers=args.threads))
        a, b = (np.asarray(x, np.float64) for x in captured["normalised"])
        report["sets"][name] = {"frd_score": round(value, 3), **analyse(frd, a, b, captured["names"], args.top)}
    out = args.out / f"features-{args.region}.json"
    out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    for name, r in report["sets"].items():
        print(f"\n{name}: FRD {r['frd_score']} (recomputed {r['frd']})")
        for g in r["groups"][:8]:
            print(f"  without {g['group']:<28} {g['frd_without']:6.2f}  mean-shift share {g['mean_shift_share']:.3f}")
        print("  largest shifts: " + ", ".join(f"{f['feature']} {f['shift_in_sd']:+.1f}" for f in r["features"][:8]))
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
