"""Issue 35's measurements of generate --edit and --samples, written to docs/region_edit/ (report.json, report.md,
pictures).

python scripts/region_edit_check.py [--out docs/region_edit] [--samples 4]

1. A lesion in a real CT: the TotalSegmentator test CT (example_ct_sm) and its segmentation; a 15 mm ball of the
   liver relabelled as a hypodense lesion, regenerated with --previous-labels. Outside region + margin bit-identical,
   the lesion's mean against its given intensity, axial/coronal/sagittal pictures through it.
2. Seam, on a generated CT: the volume generated from the map (seed 0), the map with the spleen grown by 2 voxels,
   its full regeneration (seed 0) and edits of it: RePaint + blend (the default), no RePaint (the box regenerated
   freely, then blended) and RePaint without a margin. Mean |edited - full| in the margin's voxels against inside the
   region; the grown spleen's mean against its prior range.
3. Brain: IXI012-HH-1211 (validation), the lateral ventricles grown by one voxel (2 mm) into their neighbours; the
   volume generated from the original map (seed 0), edited with --previous-labels, against a full regeneration
   (seed 0): brain-mri-segmenter's ventricle Dice against the new labels.
4. Uncertainty: --samples K of the CT sample map: per label, the std over its boundary voxels against its interior.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("SEMANTICSYNTH_DATA", REPO.parent / "shared" / "data"))
CT, SEG = SHARED / "totalseg" / "example_ct_sm.nii.gz", SHARED / "totalseg" / "example_seg.nii.gz"
BRAIN = SHARED / "ixi_muse" / "labels" / "IXI012-HH-1211.nii.gz"
LIVER, SPLEEN, LESION = 5, 1, 200

from SemanticSynthLib.engine.model.package import load_package  # noqa: E402
from SemanticSynthLib.engine.model.store import resolve_model  # noqa: E402
from SemanticSynthLib.engine.synthesis import generate as generation  # noqa: E402
from SemanticSynthLib.engine.synthesis.region_edit import region_edit  # noqa: E402
from SemanticSynthLib.engine.synthesis.uncertainty import SampleStatistics, spread_per_label  # noqa: E402


def like(array_zyx, reference):
    image = sitk.GetImageFromArray(array_zyx)
    image.CopyInformation(reference)
    return image


def arr(image):
    return sitk.GetArrayFromImage(image)


def generate(package, labels, seed=0, edit=None, lesions=None, modality=None):
    """The library's own path (synthesize: vocabulary, lesions, the existing scan's priors, calibration)."""
    import tempfile

    from SemanticSynthLib.engine.reporting.progress import Progress
    from SemanticSynthLib.engine.requests import GenerationRequest

    with tempfile.TemporaryDirectory() as tmp:
        priors = None
        if lesions:
            priors = Path(tmp) / "priors.json"
            priors.write_text(json.dumps(lesions), encoding="utf-8")
        request = GenerationRequest(labels="labels", out="out", modality=modality, seed=seed, unknown_labels="background",
                                    priors=str(priors) if priors else None, device="cpu")
        image, _record = generation.synthesize(package, labels, request, Progress("none"), edit)
    return image


def ball(reference, centre_zyx, radius_mm):
    z, y, x = np.ogrid[tuple(slice(0, n) for n in reference.GetSize()[::-1])]
    sx, sy, sz = reference.GetSpacing()
    return ((x - centre_zyx[2]) * sx) ** 2 + ((y - centre_zyx[1]) * sy) ** 2 + ((z - centre_zyx[0]) * sz) ** 2 \
        < radius_mm ** 2


def lesion_in_real_ct(ct_package, out: Path) -> dict:
    seg, real = sitk.ReadImage(str(SEG)), sitk.ReadImage(str(CT))
    ids = arr(seg)
    centre = [int(np.median(v)) for v in np.nonzero(ids == LIVER)]
    region = ball(seg, centre, 15) & (ids == LIVER)
    edited = ids.copy()
    edited[region] = LESION
    labels = like(edited, seg)
    t = time.perf_counter()
    result = generate(ct_package, labels, seed=1, edit=region_edit(labels, real, previous=seg),
                      lesions={str(LESION): {"lesion": "hypodense"}}, modality="ct")
    seconds = time.perf_counter() - t
    lesion = json.loads(result.GetMetaData("SemanticSynth_lesions"))
    weight = region_edit(labels, real, previous=seg).weight
    a, r = arr(result), arr(real)
    pictures(r, a, centre, real.GetSpacing(), out / "lesion_real_ct.png", "lesion in the liver of a real CT")
    name = next(iter(lesion))
    return {"region_voxels": int(region.sum()), "outside_identical": bool(np.array_equal(a[weight == 0], r[weight == 0])),
            "changed_voxels": int((a != r).sum()), "region_plus_margin_voxels": int((weight > 0).sum()),
            "lesion": lesion[name], "lesion_mean_generated": round(float(a[region].mean()), 2),
            "liver_mean_real": round(float(r[ids == LIVER].mean()), 2), "seconds": round(seconds, 2)}


def pictures(before, after, centre, spacing, path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    z, y, x = centre
    sx, sy, sz = spacing
    views = [("axial", lambda v: v[z], sy / sx), ("coronal", lambda v: v[:, y][::-1], sz / sx),
             ("sagittal", lambda v: v[:, :, x][::-1], sz / sy)]
    fig, axes = plt.subplots(3, 3, figsize=(11, 10))
    for row, (name, cut, aspect) in enumerate(views):
        for col, (label, volume, kw) in enumerate((("real", before, {"cmap": "gray", "vmin": -160, "vmax": 240}),
                                                   ("edited", after, {"cmap": "gray", "vmin": -160, "vmax": 240}),
                                                   ("edited - real", after.astype(float) - before,
                                                    {"cmap": "RdBu_r", "vmin": -120, "vmax": 120}))):
            ax = axes[row, col]
            shown = ax.imshow(cut(volume), aspect=aspect, interpolation="nearest", **kw)
            ax.set_title(f"{name}: {label}", fontsize=9)
            ax.axis("off")
            if col == 2:
                fig.colorbar(shown, ax=ax, fraction=0.04, label="HU")
    fig.suptitle(title + " (window -160..240 HU)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def seam_on_generated_ct(ct_package) -> dict:
    seg = sitk.ReadImage(str(SEG))
    ids = arr(seg)
    grown = ndimage.binary_dilation(ids == SPLEEN, iterations=2) & (ids != 0)
    edited = ids.copy()
    edited[grown] = SPLEEN
    labels = like(edited, seg)
    existing = generate(ct_package, seg, seed=0, modality="ct")
    full = arr(generate(ct_package, labels, seed=0, modality="ct"))
    changed = edited != ids
    ring = region_edit(labels, existing, previous=seg, margin_mm=6.0).weight
    margin_voxels = (ring > 0) & ~changed
    before = arr(existing)
    results = {"changed_voxels": int(changed.sum()), "margin_voxels": int(margin_voxels.sum()),
               "existing_vs_full": {"mad_margin": round(float(np.abs(before - full)[margin_voxels].mean()), 2),
                                    "mad_region": round(float(np.abs(before - full)[changed].mean()), 2)}}
    original_known_latents = generation.KnownLatents
    for variant, margin, repaint in (("repaint + blend 6 mm", 6.0, True), ("no repaint + blend 6 mm", 6.0, False),
                                     ("repaint, no margin", 0.0, True)):
        edit = region_edit(labels, existing, previous=seg, margin_mm=margin)
        if not repaint:  # the box regenerated freely: the latents outside the region are not replaced
            generation.KnownLatents = lambda known, regenerate, seed: (lambda latent, scheduler, step: latent)
        try:
            out = arr(generate(ct_package, labels, seed=0, edit=edit, modality="ct"))
        finally:
            generation.KnownLatents = original_known_latents
        results[variant] = {"mad_margin": round(float(np.abs(out - full)[margin_voxels].mean()), 2),
                            "mad_region": round(float(np.abs(out - full)[changed].mean()), 2),
                            "spleen_mean": round(float(out[edited == SPLEEN].mean()), 2),
                            "outside_identical": bool(np.array_equal(out[edit.weight == 0],
                                                                     arr(existing)[edit.weight == 0]))}
        # A ring: the step across the region's outer edge, against the same step in the full regeneration.
        outer = ndimage.binary_dilation(ring > 0) & ~(ring > 0)
        inner = (ring > 0) & ~ndimage.binary_erosion(ring > 0)
        results[variant]["edge_step"] = round(float(abs(out[inner].mean() - out[outer].mean())), 2)
        results[variant]["edge_step_full"] = round(float(abs(full[inner].mean() - full[outer].mean())), 2)
    priors = ct_package.priors("ct")
    index = [lab.id for lab in ct_package.labels.labels].index(SPLEEN) + 1
    results["spleen_prior_range"] = [float(priors.low[index]), float(priors.high[index])]
    return results


def brain_ventricles(mri_package, segmenter) -> dict:
    from SemanticSynthLib.engine.evaluation.metrics import dice_per_class
    from SemanticSynthLib.engine.volume.geometry import resample_intensity, resample_labels, working_grid
    from SemanticSynthLib.engine.volume.io import array_of
    from SemanticSynthLib.engine.volume.working_image import units_on_grid

    labels = sitk.ReadImage(str(BRAIN))
    ids = arr(labels)
    groups = segmenter.groups
    vent_group = groups.names.index("ventricles") + 1
    grouped = groups.group_map(ids)
    ventricles = grouped == vent_group
    neighbour_ids = ids[ndimage.binary_dilation(ventricles) & ~ventricles]
    donor = int(np.bincount(ids[ventricles]).argmax())  # the commonest ventricle id takes the grown voxels
    grown = ndimage.binary_dilation(ventricles) & ~ventricles & (ids != 0)
    edited = ids.copy()
    edited[grown] = donor
    new_labels = like(edited, labels)
    existing = generate(mri_package, labels, seed=0, modality="mri")
    t = time.perf_counter()
    edit_out = generate(mri_package, new_labels, seed=0, edit=region_edit(new_labels, existing, previous=labels),
                        modality="mri")
    edit_s = time.perf_counter() - t
    t = time.perf_counter()
    full = generate(mri_package, new_labels, seed=0, modality="mri")
    full_s = time.perf_counter() - t
    grid = working_grid(labels, segmenter.working_spacing, 16)
    truth = groups.group_map(array_of(resample_labels(new_labels, grid)))
    norm = mri_package.normalization("mri")
    out = {"grown_voxels": int(grown.sum()), "neighbour_ids": int(len(set(neighbour_ids.tolist()))),
           "edit_s": round(edit_s, 2), "full_s": round(full_s, 2)}
    for name, image in (("edited", edit_out), ("full regeneration", full), ("original generated", existing)):
        dice = dice_per_class(segmenter.segment(units_on_grid(image, grid, norm)), truth, groups.num_classes)
        out[name] = {"ventricles_dice": round(float(dice[vent_group - 1]), 4),
                     "mean_dice": round(float(np.nanmean(dice)), 4)}
    out["dice_gap"] = round(out["full regeneration"]["ventricles_dice"] - out["edited"]["ventricles_dice"], 4)
    return out


def uncertainty_ct(ct_package, samples: int) -> dict:
    seg = sitk.ReadImage(str(SEG))
    stats = SampleStatistics()
    for k in range(samples):
        stats.add(generate(ct_package, seg, seed=k, modality="ct"))
    _mean, std = stats.images(seg)
    names = {lab.id: lab.name for lab in ct_package.labels.labels}
    per_label = spread_per_label(std, seg, names)
    both = [v for k, v in per_label.items() if k != "0" and "boundary_std" in v and "interior_std" in v]
    higher = [v["name"] for v in both if v["boundary_std"] > v["interior_std"]]
    return {"samples": samples, "labels_with_both": len(both), "boundary_higher": len(higher),
            "boundary_lower": sorted(v["name"] for v in both if v["boundary_std"] <= v["interior_std"]),
            "median_boundary_over_interior": round(float(np.median([v["boundary_std"] / max(v["interior_std"], 1e-6)
                                                                     for v in both])), 3),
            "per_label": per_label}


def markdown(report: dict) -> str:
    les, seam, brain, unc = report["lesion_real_ct"], report["seam_generated_ct"], report["brain"], report["uncertainty"]
    lines = ["# Regenerating an edited region (generate --edit) and uncertainty (--samples)", "",
             "Measured by `python scripts/region_edit_check.py` (bundled abdomen-ct, brain-mri, brain-mri-segmenter; "
             "CPU, default steps).", "",
             "**Method** (`SemanticSynthLib/engine/synthesis/region_edit.py`). The region is the voxels whose labels "
             "differ from `--previous-labels`, or `--region`'s mask. Only a box of latents around it (region, margin "
             "and 4 latent voxels of context) is denoised; at the start and after every DDIM step the latents outside "
             "the region are replaced by the existing volume's own encoding noised to that step (RePaint, Lugmayr et "
             "al. 2022). The region's box is decoded and blended into the existing volume with a weight of 1 in the "
             "region falling as (1 - d / margin)^2 to 0 at the margin; every voxel beyond is copied. Labels the "
             "existing volume shows take their intensity from it (its own mean outside the region), and on a real "
             "scan the new content gets noise matching the scan's fine texture around it (zero-mean in the region).",
             "",
             "Variants measured (seam section): *repaint + blend* is the method; *no repaint* denoises the box freely "
             "(no latent replacement) and blends the same way; *no margin* pastes the region alone. The blend's fall "
             "(linear, smoothstep, squared) and the context and decoded widths were chosen on the same check "
             "(figures in the module's comments).", "",
             "## A lesion in a real CT", "",
             f"15 mm ball of the liver ({les['region_voxels']} voxels) relabelled as a hypodense lesion in the "
             f"TotalSegmentator test CT; margin 6 mm. Voxels beyond region + margin identical to the real CT: "
             f"**{les['outside_identical']}** ({les['changed_voxels']} of {les['region_plus_margin_voxels']} voxels in "
             f"region + margin changed). Lesion: host {les['lesion']['host']}, given {les['lesion']['mean']} HU, "
             f"generated mean **{les['lesion_mean_generated']} HU**; the real liver's mean {les['liver_mean_real']} HU. "
             f"{les['seconds']} s.", "", "![lesion](lesion_real_ct.png)", "",
             "## Seam (generated CT, spleen grown by 2 voxels)", "",
             f"{seam['changed_voxels']} voxels changed. Mean |edited - full regeneration| in HU; edge step: |mean just "
             "inside - mean just outside| the blended zone's outer edge (full regeneration's in brackets).", "",
             "| variant | margin | region | spleen mean HU | outside identical | edge step |", "|---|---|---|---|---|---|"]
    for variant in ("repaint + blend 6 mm", "no repaint + blend 6 mm", "repaint, no margin"):
        v = seam[variant]
        lines.append(f"| {variant} | {v['mad_margin']} | {v['mad_region']} | {v['spleen_mean']} | "
                     f"{v['outside_identical']} | {v['edge_step']} ({v['edge_step_full']}) |")
    lines += ["", f"Spleen prior range: {seam['spleen_prior_range']} HU.", "",
              "## Brain: the lateral ventricles grown by 2 mm", "",
              f"{brain['grown_voxels']} voxels changed. brain-mri-segmenter's ventricle Dice against the new labels: "
              f"edited **{brain['edited']['ventricles_dice']}**, full regeneration "
              f"**{brain['full regeneration']['ventricles_dice']}** (gap {brain['dice_gap']}); the volume generated "
              f"from the original map {brain['original generated']['ventricles_dice']}. Wall time in this run: edit "
              f"{brain['edit_s']} s, full {brain['full_s']} s (speed: [benchmark.md](benchmark.md)).", "",
              f"## Uncertainty ({unc['samples']} samples of the CT sample map)", "",
              f"{unc['boundary_higher']} of {unc['labels_with_both']} labels have a higher std on their boundary "
              f"voxels than in their interior (median ratio {unc['median_boundary_over_interior']}); lower or equal: "
              f"{', '.join(unc['boundary_lower']) or 'none'}.", "",
              "| label | voxels | std | boundary | interior |", "|---|---|---|---|---|"]
    for key, v in sorted(unc["per_label"].items(), key=lambda kv: int(kv[0])):
        lines.append(f"| {v['name']} | {v['voxels']} | {v['std']} | {v.get('boundary_std', '')} | "
                     f"{v.get('interior_std', '')} |")
    return "\n".join(lines) + "\n"


def main():
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "region_edit")
    parser.add_argument("--samples", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(2)
    args.out.mkdir(parents=True, exist_ok=True)
    from SemanticSynthLib.engine.model.segmenter import load_segmenter

    ct = load_package(resolve_model("abdomen-ct"))
    mri = load_package(resolve_model("brain-mri"))
    report = {"lesion_real_ct": lesion_in_real_ct(ct, args.out)}
    print(json.dumps(report["lesion_real_ct"]), flush=True)
    report["seam_generated_ct"] = seam_on_generated_ct(ct)
    print(json.dumps(report["seam_generated_ct"]), flush=True)
    report["brain"] = brain_ventricles(mri, load_segmenter(resolve_model("brain-mri-segmenter")))
    print(json.dumps(report["brain"]), flush=True)
    report["uncertainty"] = uncertainty_ct(ct, args.samples)
    print(json.dumps({k: v for k, v in report["uncertainty"].items() if k != "per_label"}), flush=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    (args.out / "report.md").write_text(markdown(report), encoding="utf-8")


if __name__ == "__main__":
    main()
