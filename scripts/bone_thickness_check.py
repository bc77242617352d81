"""Bone label mean HU from thickness: the shell_partial_volume rule of label_tables/groups/bone_thickness.json, on the
training case (issue 33 item 3; docs/priors.md).

python scripts/bone_thickness_check.py [--seg F] [--ct F] [--labels F]

For each bone label of the label map (TotalSegmentator v2 ids) it prints:
- x = A/V, the label's surface-to-volume ratio at the map's spacing (A = 2/3 of the label's voxel-face area, faces on
  the image border not counted), the label's rod diameter 4/x and the bone's diameter after taking off kappa * h all
  round;
- t_dt, a distance-transform thickness (2 x the median distance-transform value on the label's ridge, minus one mean
  spacing), for comparison only (at 3 mm most thin bones come out as one voxel);
- the cortical fraction of the label (q^2 f), the predicted mean [range] and the measured mean of the CT, and the error.

Then the error per kind and the check against a second patient (0.98 x 0.98 x 2 mm, contrast-enhanced) whose label means
are known but whose label map is not here: its ribs and vertebrae are predicted from this case's shapes (the bone radius
of each label here, plus kappa * h at that spacing). The default case is the model's training case, at 3 mm, and kappa
and the rib and vertebra shells were fitted on it: the first table is a check of the fit, not a validation.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from SemanticSynthLib.engine.synthesis.bone_thickness import predict, predict_range
from SemanticSynthLib.engine.synthesis.bone_thickness import surface_to_volume as class_surface_to_volume

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "totalseg"
RULE = REPO / "SemanticSynthLib" / "engine" / "volume" / "label_tables" / "groups" / "bone_thickness.json"
MIN_VOXELS = 50

# The second patient (0.98 x 0.98 x 2 mm, portal-venous CT): measured label means, HU (issue 33 item 3).
OTHER_SPACING = (0.98, 0.98, 2.0)
OTHER_MEASURED = {"ribs 7-11": (199, 345), "vertebrae_T11": 292, "vertebrae_T12": 267, "humerus": (580, 682)}


def surface_to_volume(mask: np.ndarray, spacing_zyx) -> float:
    """A/V in 1/mm of one mask: the engine's measure (faces on the image border not counted)."""
    return float(class_surface_to_volume(mask.astype(np.int64), spacing_zyx, 2)[1])


def ridge_thickness(mask: np.ndarray, spacing_zyx) -> float:
    """2 x the median distance-transform value on the label's ridge (local maxima), minus one mean spacing, in mm."""
    edt = ndimage.distance_transform_edt(mask, sampling=spacing_zyx)
    ridge = mask & (edt == ndimage.maximum_filter(edt, size=3))
    return float(2.0 * np.median(edt[ridge]) - np.mean(spacing_zyx))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seg", default=str(DATA / "example_seg.nii.gz"))
    parser.add_argument("--ct", default=str(DATA / "example_ct_sm.nii.gz"))
    parser.add_argument("--labels", default=str(DATA / "total_v2_labels.json"), help="ids -> TotalSegmentator v2 names")
    args = parser.parse_args()

    rule = json.loads(RULE.read_text(encoding="utf-8"))
    params = rule["parameters"]
    kind_of = {name: kind for kind, spec in rule["kinds"].items() for name in spec["labels"]}
    names = {int(k): v for k, v in json.loads(Path(args.labels).read_text(encoding="utf-8")).items()}

    seg_image = sitk.ReadImage(args.seg)
    labels = sitk.GetArrayFromImage(seg_image)
    ct = sitk.GetArrayFromImage(sitk.ReadImage(args.ct)).astype(np.float64)
    spacing = seg_image.GetSpacing()[::-1]  # z, y, x
    h = float(np.mean(spacing))
    print(f"{args.seg}: spacing {tuple(round(s, 2) for s in seg_image.GetSpacing())} mm, h = {h:.2f} mm; "
          f"kappa {params['kappa']}, cortical {params['cortical_hu']} HU, surround {params['surround_hu']} HU\n")
    print("A/V in 1/mm; d_label = 4/(A/V), d_bone = d_label - 2 kappa h and t_dt in mm; HU otherwise")
    print(f"{'label':15s} {'kind':9s} {'voxels':>6s} {'A/V':>6s} {'d_label':>7s} {'d_bone':>6s} {'t_dt':>5s} "
          f"{'cort.fr':>7s} {'predicted [range]':>20s} {'measured':>8s} {'error':>6s}")
    rows = []
    for label_id in sorted(int(i) for i in np.unique(labels) if i > 0):
        name = names.get(label_id, str(label_id))
        if name not in kind_of:
            continue
        mask = labels == label_id
        n = int(mask.sum())
        kind = kind_of[name]
        x = surface_to_volume(mask, spacing)
        spec = rule["kinds"][kind]
        mean, low, high, fraction = predict_range(x, h, spec, params)
        r_bone = predict(x, h, spec["cancellous"]["mean"], spec["shell_mm"]["mean"], params)[2]
        measured = float(ct[mask].mean())
        small = n < MIN_VOXELS
        thickness = ridge_thickness(mask, spacing)
        print(f"{name:15s} {kind:9s} {n:6d} {x:6.3f} {4 / x:7.1f} {2 * r_bone:6.1f} {thickness:5.1f} {fraction:7.3f} "
              f"{mean:6.0f} [{low:4.0f}, {high:4.0f}]   {measured:8.0f} {mean - measured:+6.0f}"
              + ("  (fewer than 50 voxels: not counted)" if small else ""))
        if not small:
            rows.append((name, kind, x, r_bone, mean, measured, n))

    print("\nerror per kind (labels of >= 50 voxels):")
    for kind in sorted({r[1] for r in rows}):
        err = np.array([r[4] - r[5] for r in rows if r[1] == kind])
        print(f"  {kind:9s} n={len(err):2d}  bias {err.mean():+6.1f} HU  RMSE {np.sqrt((err ** 2).mean()):5.1f} HU  "
              f"max |error| {np.abs(err).max():5.1f} HU")
    for floor in (MIN_VOXELS, 100):
        err = np.array([r[4] - r[5] for r in rows if r[6] >= floor])
        print(f"  all labels of >= {floor:3d} voxels: n={len(err):2d}  bias {err.mean():+6.1f} HU  "
              f"RMSE {np.sqrt((err ** 2).mean()):5.1f} HU  max |error| {np.abs(err).max():5.1f} HU")

    # The second patient: the same bones at 0.98 x 0.98 x 2 mm, shapes taken from this case.
    h_other = float(np.mean(OTHER_SPACING))
    print(f"\nsecond patient ({OTHER_SPACING} mm, h = {h_other:.2f} mm, contrast-enhanced; label map not available):")

    def at_other(r_bone: float, kind: str, cancellous: float | None = None) -> float:
        spec = rule["kinds"][kind]
        x_other = 2.0 / (r_bone + params["kappa"] * h_other)
        return predict(x_other, h_other, spec["cancellous"]["mean"] if cancellous is None else cancellous,
                       spec["shell_mm"]["mean"], params)[0]

    lower_ribs = [r for r in rows if r[1] == "rib" and int(r[0].rsplit("_", 1)[1]) in range(7, 12)]
    if lower_ribs:
        ribs = [at_other(r[3], "rib") for r in lower_ribs]
        print(f"  ribs 7-11: predicted {min(ribs):.0f}-{max(ribs):.0f} (mean {np.mean(ribs):.0f}) HU, measured "
              f"{OTHER_MEASURED['ribs 7-11'][0]}-{OTHER_MEASURED['ribs 7-11'][1]} HU")
    lumbar = [r for r in rows if r[1] == "vertebra" and r[0] in ("vertebrae_T12", "vertebrae_L1", "vertebrae_L2")]
    if lumbar:
        r_bone = float(np.mean([r[3] for r in lumbar]))
        print(f"  vertebrae T11/T12 (bone radius of this case's T12-L2, {r_bone:.1f} mm): predicted "
              f"{at_other(r_bone, 'vertebra'):.0f} HU with cancellous 140, {at_other(r_bone, 'vertebra', 200):.0f} HU "
              f"with cancellous 200; measured {OTHER_MEASURED['vertebrae_T11']}/{OTHER_MEASURED['vertebrae_T12']} HU")
    for x_bone in (0.16, 0.18, 0.20):  # no humerus here: proximal humerus of a chest CT, estimated from anatomy
        measured = OTHER_MEASURED["humerus"]
        print(f"  humerus (bone A/V {x_bone:.2f}/mm, an anatomical estimate): predicted "
              f"{at_other(2.0 / x_bone, 'long_bone'):.0f} HU; measured {measured[1]}/{measured[0]} HU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
