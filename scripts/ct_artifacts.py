"""Bright specks and rims in a generated CT: the README's sample, a rotated and a cropped copy (issue 33 item 4).

python scripts/ct_artifacts.py [--model abdomen-ct] [--labels SEG --real CT] [--angle 15] [--crop X0:X1,Y0:Y1,Z0:Z1]
                               [--seeds 0 ...] [--volume FILE] [--save DIR] [--json F]

Inputs (each with the real CT on its grid, so every figure has the real scan's beside it):
- sample: the README main job's label map (scripts/demo.py) and example_ct_sm, its real CT on the same grid;
- rotated: both turned in-plane by --angle degrees about the volume's centre, onto the same grid widened in-plane so
  nothing is cut off (labels nearest neighbour, the CT linear); the anatomy then lies oblique to the voxels, as in a
  scan of a patient lying at a slant, and every thin bone gets a new staircase;
- cropped: both cut to --crop (voxel ranges, x,y,z), so that the first and last slices cut through labelled anatomy.
Each input is generated (engine/synthesis/generate.py's generate_volume, the library call under `semanticsynth
generate`) per seed, before calibration (raw, as --no-calibrate) and with it (the default). --volume measures a
volume already generated from --labels instead (the sample input only).

Definitions, per volume (HU; "bone" is every label of tissue kind bone: vertebrae, ribs, sternum, ...):
- bright voxel: above BRIGHT_HU (150 HU, brighter than any soft tissue of a non-contrast CT) and neither in a bone
  label nor within one voxel (26 neighbours) of one, so that partial volume at a bone's edge does not count;
- speck: a bright voxel that also lies SPECK_MARGIN_HU (50 HU) above the median of its 3x3x3 neighbourhood: an
  isolated point, not part of a bright region;
both counted per 1000 body voxels (the volume's voxels above -500 HU) and located: by label (or "unlabelled"), near
the ribs (within RIB_MM of a rib label), in the body wall (within WALL_MM of the body's outer surface, the body
mask filled slice by slice) and outside the body. The real scan's own count (calcifications, bone partial volume
more than a voxel out, the table) is the reference: the figure to judge is generated against real.
- ribs: the share of rib-label voxels whiter than RIB_WHITE_HU (240 HU, white in the README's window -160..240), and
  the bright voxels of the unlabelled ring one voxel around the ribs (a real rib's partial volume reaches there);
- rims (scripts/boundary_rims.py's measures): the median over labels of an organ's outermost layer minus the next
  layer in, and the largest step-to-step jump of the unlabelled profile away from the labels (over the real scan's
  body);
- per-organ error (scripts/ct_training_case.py's): the mean over labels of >= 50 voxels of |mean - real mean|.

Found (abdomen-ct 0.7.0, seeds 0 and 1, library at 693976c): the network's own output has fewer bright voxels than
the real scan on all three inputs (sample 5-9 against 55; the ribs are whiter in the real scan, 42% of rib voxels
above 240 HU against 18-23%). The calibration made them: it moved the colon's mean onto a prior measured in model
units but matched in HU (-293 HU, where the sample's colon averages -488), lifting every colon voxel by 160-190 HU;
the cropped copy then had 854 bright voxels, 829 of them colon content beside the flank. engine/synthesis/
calibration.py now matches a measured prior in model units: 25, the raw output's count.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from boundary_rims import PROFILE_STEPS, profile, rims  # noqa: E402
from ct_training_case import BODY_HU, LABELS, REAL, organ_means, per_organ_error  # noqa: E402
from SemanticSynthLib.engine.model.package import load_package  # noqa: E402
from SemanticSynthLib.engine.model.priors import growth_steps  # noqa: E402
from SemanticSynthLib.engine.model.store import resolve_model  # noqa: E402
from SemanticSynthLib.engine.synthesis.generate import generate_volume  # noqa: E402

BRIGHT_HU = 150.0
SPECK_MARGIN_HU = 50.0
RIB_WHITE_HU = 240.0
RIB_MM = 9.0
WALL_MM = 30.0  # skin, fat and muscle of the flank and back; the ribs lie within it


def rotated(labels: sitk.Image, real: sitk.Image, degrees: float) -> tuple[sitk.Image, sitk.Image]:
    """Both turned about the volume's centre in the plane of the first two axes, onto the same spacing and direction
    widened in-plane to hold the turned corners: labels nearest neighbour (background outside), the CT linear (air)."""
    size = np.array(labels.GetSize())
    a = np.deg2rad(degrees)
    turned = np.ceil(np.abs(np.cos(a)) * size[:2] + np.abs(np.sin(a)) * size[::-1][1:]).astype(int)
    pad = np.maximum((turned - size[:2] + 1) // 2, 0)
    grid = sitk.Image([int(size[0] + 2 * pad[0]), int(size[1] + 2 * pad[1]), int(size[2])], sitk.sitkUInt8)
    grid.SetSpacing(labels.GetSpacing())
    grid.SetDirection(labels.GetDirection())
    grid.SetOrigin(labels.TransformContinuousIndexToPhysicalPoint([-float(pad[0]), -float(pad[1]), 0.0]))
    axis = np.array(labels.GetDirection()).reshape(3, 3)[:, 2]  # the slice normal: an in-plane turn
    transform = sitk.VersorRigid3DTransform()
    transform.SetCenter(labels.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in size]))
    transform.SetRotation(tuple(float(v) for v in axis), float(a))
    return (sitk.Resample(labels, grid, transform, sitk.sitkNearestNeighbor, 0, labels.GetPixelID()),
            sitk.Resample(real, grid, transform, sitk.sitkLinear, -1024.0, sitk.sitkFloat32))


def cropped(labels: sitk.Image, real: sitk.Image, crop: str) -> tuple[sitk.Image, sitk.Image]:
    ranges = [tuple(int(v) for v in part.split(":")) for part in crop.split(",")]
    if len(ranges) != 3 or any(len(r) != 2 for r in ranges):
        raise SystemExit("--crop takes X0:X1,Y0:Y1,Z0:Z1 (voxel ranges)")
    (x0, x1), (y0, y1), (z0, z1) = ranges
    return labels[x0:x1, y0:y1, z0:z1], real[x0:x1, y0:y1, z0:z1]


class Case:
    """A label map and its real CT on one grid, and what the figures need of them (arrays in z, y, x order)."""

    def __init__(self, name: str, labels: sitk.Image, real: sitk.Image | None, table):
        self.name, self.image = name, labels
        self.labels = sitk.GetArrayFromImage(labels).astype(np.int64)
        self.real = None if real is None else sitk.GetArrayFromImage(real).astype(np.float32)
        self.spacing = np.array(labels.GetSpacing())[::-1]  # z, y, x
        by_id = {lab.id: lab for lab in table.labels}
        self.names = {k: by_id[k].name if k in by_id else f"id {k}" for k in np.unique(self.labels).tolist()}
        self.names[0] = "unlabelled"
        bone = np.isin(self.labels, [k for k in self.names if k in by_id and by_id[k].kind == "bone"])
        self.bone_clear = ~ndimage.binary_dilation(bone, np.ones((3, 3, 3), bool))
        ribs = np.isin(self.labels, [k for k in self.names if k in by_id and by_id[k].name.startswith("rib_")])
        self.ribs = ribs
        self.near_ribs = ndimage.distance_transform_edt(~ribs, sampling=self.spacing) <= RIB_MM if ribs.any() else ribs
        self.rib_ring = ndimage.binary_dilation(ribs, np.ones((3, 3, 3), bool)) & (self.labels == 0)
        self.steps = growth_steps(torch.from_numpy(self.labels), PROFILE_STEPS).numpy()


def body_regions(volume: np.ndarray, spacing) -> tuple[np.ndarray, np.ndarray]:
    """The body (above BODY_HU, filled slice by slice) and its wall (within WALL_MM of the body's outer surface)."""
    body = np.stack([ndimage.binary_fill_holes(s) for s in volume > BODY_HU])
    depth = ndimage.distance_transform_edt(body, sampling=spacing)
    return body, body & (depth <= WALL_MM)


def located(mask: np.ndarray, case: Case, body: np.ndarray, wall: np.ndarray, per: float) -> dict:
    where = Counter(case.names[k] for k in case.labels[mask].tolist())
    return {"voxels": int(mask.sum()), "per_1000_body_voxels": round(1000 * float(mask.sum()) / per, 3),
            "near_ribs": int((mask & case.near_ribs).sum()), "body_wall": int((mask & wall).sum()),
            "outside_body": int((mask & ~body).sum()), "by_label": dict(where.most_common())}


def figures(volume: np.ndarray, case: Case) -> dict:
    body, wall = body_regions(volume, case.spacing)
    per = max(float((volume > BODY_HU).sum()), 1.0)
    bright = (volume > BRIGHT_HU) & case.bone_clear
    speck = bright & (volume - ndimage.median_filter(volume, size=3) > SPECK_MARGIN_HU)
    per_label = rims(volume, case.labels, 1.0)
    out = {"bright": located(bright, case, body, wall, per), "specks": located(speck, case, body, wall, per),
           "ribs": {"white_share": (round(float((volume[case.ribs] > RIB_WHITE_HU).mean()), 3)
                                    if case.ribs.any() else None),
                    "bright_in_ring": int((volume[case.rib_ring] > BRIGHT_HU).sum())},
           "rims": {"median_rim_minus_next_layer_hu": round(float(np.median(
               [r["rim_minus_next_layer"] for r in per_label.values()])), 2), "labels": len(per_label)},
           "max_hu_outside_bone": round(float(volume[case.bone_clear].max()), 1)}
    if case.real is not None:
        p = profile(volume, case.steps, case.real > BODY_HU, 1.0)
        out["rims"]["largest_profile_jump_hu"] = round(float(np.max(np.abs(np.diff(p)))), 1)
        out["per_organ_error_hu"] = round(per_organ_error(organ_means(volume, case.real, case.labels)), 2)
    return out


def row(case: str, what: str, f: dict) -> str:
    top = ", ".join(f"{k} {v}" for k, v in list(f["bright"]["by_label"].items())[:3]) or "-"
    error = f.get("per_organ_error_hu")
    return (f"{case:8s} {what:16s} {f['bright']['voxels']:6d} {f['bright']['per_1000_body_voxels']:7.2f} "
            f"{f['specks']['voxels']:6d} {f['specks']['per_1000_body_voxels']:7.2f} "
            f"{f['bright']['near_ribs']:5d} {f['bright']['body_wall']:5d} "
            f"{f['ribs']['white_share'] if f['ribs']['white_share'] is not None else float('nan'):6.3f} "
            f"{f['ribs']['bright_in_ring']:5d} {f['rims']['median_rim_minus_next_layer_hu']:7.1f} "
            f"{f['rims'].get('largest_profile_jump_hu', float('nan')):6.1f} "
            f"{error if error is not None else float('nan'):7.1f}  {top}")


HEADER = (f"{'input':8s} {'volume':16s} {'bright':>6s} {'/1000':>7s} {'specks':>6s} {'/1000':>7s} {'ribs':>5s} "
          f"{'wall':>5s} {'rib>240':>6s} {'ring':>5s} {'rim':>7s} {'jump':>6s} {'organ':>7s}  bright voxels by label")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="abdomen-ct")
    p.add_argument("--labels", default=str(LABELS), help="the label map (default: the README main job's sample)")
    p.add_argument("--real", default=str(REAL), help="its real CT on the same grid (default: example_ct_sm)")
    p.add_argument("--angle", type=float, default=15.0, help="in-plane turn of the rotated copy, degrees")
    p.add_argument("--crop", default="10:110,5:95,8:30", help="voxel ranges x,y,z of the cropped copy")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--volume", default=None, help="measure this volume (generated from --labels) instead of generating")
    p.add_argument("--save", default=None, help="write the inputs and generated volumes here")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(2)
    package = load_package(resolve_model(args.model))
    labels = sitk.ReadImage(args.labels)
    real = sitk.ReadImage(args.real, sitk.sitkFloat32) if args.real and Path(args.real).exists() else None
    if real is None:
        print(f"{args.real} not found: no real figures (the shared data folder sits beside the repo)")
    if real is not None and (real.GetSize() != labels.GetSize()
                             or not np.allclose(real.GetOrigin(), labels.GetOrigin(), atol=1e-3)
                             or not np.allclose(real.GetSpacing(), labels.GetSpacing(), atol=1e-5)):
        print(f"{args.real} is not on the label map's grid: no real figures")
        real = None
    inputs = {"sample": (labels, real)}
    if args.volume is None:
        stand_in = real if real is not None else sitk.Cast(labels, sitk.sitkFloat32) * 0 - 1024
        turned, turned_real = rotated(labels, stand_in, args.angle)
        cut, cut_real = cropped(labels, stand_in, args.crop)
        inputs["rotated"] = (turned, turned_real if real is not None else None)
        inputs["cropped"] = (cut, cut_real if real is not None else None)
    save = Path(args.save) if args.save else None
    if save:
        save.mkdir(parents=True, exist_ok=True)
    result = {"model": args.model, "version": package.metadata.get("version"), "angle": args.angle, "crop": args.crop,
              "definitions": {"bright_hu": BRIGHT_HU, "speck_margin_hu": SPECK_MARGIN_HU, "bone_clearance_voxels": 1,
                              "rib_white_hu": RIB_WHITE_HU, "near_ribs_mm": RIB_MM, "body_wall_mm": WALL_MM,
                              "body_hu": BODY_HU},
              "inputs": {}}
    print(HEADER)
    for name, (label_map, real_image) in inputs.items():
        case = Case(name, label_map, real_image, package.labels)
        entry = result["inputs"][name] = {"size": list(label_map.GetSize())}
        if save:
            sitk.WriteImage(label_map, str(save / f"{name}_labels.nii.gz"))
            if real_image is not None:
                sitk.WriteImage(real_image, str(save / f"{name}_real.nii.gz"))
        if case.real is not None:
            entry["real"] = figures(case.real, case)
            print(row(name, "real", entry["real"]))
        if args.volume is not None:
            entry["given"] = figures(sitk.GetArrayFromImage(sitk.ReadImage(args.volume, sitk.sitkFloat32)), case)
            print(row(name, "given", entry["given"]))
            continue
        for seed in args.seeds:
            for stage, calibrate in (("raw", False), ("calibrated", True)):
                image = generate_volume(package, label_map, modality="ct", steps=args.steps, seed=seed,
                                        calibrate=calibrate)
                if save:
                    sitk.WriteImage(image, str(save / f"{name}_seed{seed}_{stage}.nii.gz"))
                key = f"seed {seed} {stage}"
                entry[key] = figures(sitk.GetArrayFromImage(image).astype(np.float32), case)
                print(row(name, key, entry[key]), flush=True)
    print(f"bright: > {BRIGHT_HU:g} HU, not in or next to a bone label; specks: bright and > {SPECK_MARGIN_HU:g} HU "
          f"above the 3x3x3 median; /1000: per 1000 body voxels; ribs, wall: bright voxels within {RIB_MM:g} mm of a "
          f"rib, {WALL_MM:g} mm of the body surface; rib>240: share of rib voxels white in the README window; "
          f"ring: bright voxels one voxel around the ribs; rim, jump: boundary_rims.py's median rim and largest "
          f"profile jump; organ: per-organ error against the real CT (HU)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
