"""Regenerate an edited region (generate --edit): every voxel outside the region and its margin is the existing
volume's, on a real CT and on a generated one; new content follows the new labels; lesions come out at their
intensity; K samples give a spread that is exactly 0 where every sample keeps the existing volume.

The bundled abdomen-ct model on the TotalSegmentator test CT (122x101x30 at 3 mm): the real networks, 2-4 steps."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from SemanticSynthLib.cli import main
from SemanticSynthLib.engine.synthesis.region_edit import blend_weight
from SemanticSynthLib.engine.synthesis.uncertainty import boundary_voxels

from testdata import SHARED

CT = SHARED / "totalseg" / "example_ct_sm.nii.gz"
SEG = SHARED / "totalseg" / "example_seg.nii.gz"
LIVER, LESION = 5, 200
COMMON = ["--modality", "ct", "--steps", "3", "--progress", "none"]


def _write(array_zyx, reference, path):
    image = sitk.GetImageFromArray(array_zyx)
    image.CopyInformation(reference)
    sitk.WriteImage(image, str(path))
    return path


def _ball(reference, centre_zyx, radius_mm):
    z, y, x = np.ogrid[tuple(slice(0, n) for n in reference.GetSize()[::-1])]
    sx, sy, sz = reference.GetSpacing()
    cz, cy, cx = centre_zyx
    return ((x - cx) * sx) ** 2 + ((y - cy) * sy) ** 2 + ((z - cz) * sz) ** 2 < radius_mm ** 2


@pytest.fixture(scope="module")
def lesion_case(tmp_path_factory):
    """(folder, labels with a 15 mm ball of the liver relabelled LESION, the ball)."""
    root = tmp_path_factory.mktemp("lesion")
    seg = sitk.ReadImage(str(SEG))
    ids = sitk.GetArrayFromImage(seg)
    centre = [int(np.median(v)) for v in np.nonzero(ids == LIVER)]
    ball = _ball(seg, centre, 15) & (ids == LIVER)
    edited = ids.copy()
    edited[ball] = LESION
    _write(edited, seg, root / "lesion_labels.nii.gz")
    return root, ball


def _arrays(*paths):
    return [sitk.GetArrayFromImage(sitk.ReadImage(str(p))) for p in paths]


def test_a_lesion_in_a_real_ct_changes_only_its_region_and_comes_out_at_its_intensity(lesion_case, tmp_path):
    root, ball = lesion_case
    priors = tmp_path / "priors.json"
    priors.write_text(json.dumps({str(LESION): {"lesion": "hypodense"}}), encoding="utf-8")
    out = tmp_path / "edited.nrrd"  # NRRD keeps the report in its header
    assert main(["generate", str(root / "lesion_labels.nii.gz"), str(out), "--edit", str(CT), "--previous-labels",
                 str(SEG), "--priors", str(priors), "--margin", "6", *COMMON]) == 0
    edited, real = _arrays(out, CT)
    image, source = sitk.ReadImage(str(out)), sitk.ReadImage(str(CT))
    assert image.GetPixelID() == source.GetPixelID()  # the real scan's int16 stays int16
    for get in ("GetSize", "GetSpacing", "GetOrigin", "GetDirection"):
        assert getattr(image, get)() == getattr(source, get)()
    weight = blend_weight(ball, source.GetSpacing(), 6.0)
    assert np.array_equal(edited[weight == 0], real[weight == 0])  # every voxel beyond the margin, bit for bit
    assert (edited[ball] != real[ball]).mean() > 0.9
    lesions = json.loads(image.GetMetaData("SemanticSynth_lesions"))
    entry = lesions[f"lesion {LESION}"]
    assert entry["kind"] == "hypodense" and entry["host"] == "liver"
    mean = float(edited[ball].mean())
    assert abs(mean - entry["mean"]) <= 0.1 * max(abs(entry["mean"]), 10.0), (mean, entry)  # its intensity +-10%
    assert mean < float(real[sitk.GetArrayFromImage(sitk.ReadImage(str(SEG))) == LIVER].mean())  # hypodense


def test_a_segment_named_cyst_is_new_tissue_without_a_priors_file(lesion_case, tmp_path):
    """A Slicer segmentation exported with its names (SegmentN_Name): 'Cyst' is no label of the model, so it is
    a lesion of kind cyst, at the fluid prior whatever its host."""
    root, ball = lesion_case
    labels = sitk.ReadImage(str(root / "lesion_labels.nii.gz"))
    labels.SetMetaData("Segment0_Name", "Cyst")
    labels.SetMetaData("Segment0_LabelValue", str(LESION))
    named = tmp_path / "named.nrrd"
    sitk.WriteImage(labels, str(named))
    out = tmp_path / "cyst.nrrd"
    assert main(["generate", str(named), str(out), "--edit", str(CT), "--region", str(_write(
        ball.astype(np.uint8), labels, tmp_path / "mask.nii.gz")), *COMMON]) == 0
    lesions = json.loads(sitk.ReadImage(str(out)).GetMetaData("SemanticSynth_lesions"))
    assert lesions["Cyst"]["kind"] == "cyst" and lesions["Cyst"]["mean"] == pytest.approx(10.0)
    edited, = _arrays(out)
    assert abs(float(edited[ball].mean()) - 10.0) <= 5.0


def test_an_enlarged_organ_in_a_generated_volume_follows_its_new_labels(tmp_path):
    """Generate from the map, grow the spleen by two voxels into its neighbours, regenerate from the previous map:
    outside the changed voxels plus margin nothing moves; the grown spleen's mean is inside its prior range."""
    seg = sitk.ReadImage(str(SEG))
    ids = sitk.GetArrayFromImage(seg)
    spleen = 1
    from scipy import ndimage
    grown = ndimage.binary_dilation(ids == spleen, iterations=2) & (ids != 0)
    edited = ids.copy()
    edited[grown] = spleen
    new_labels = _write(edited, seg, tmp_path / "grown.nii.gz")
    first = tmp_path / "first.nii.gz"
    assert main(["generate", str(SEG), str(first), "--seed", "3", *COMMON]) == 0
    out = tmp_path / "regenerated.nrrd"
    assert main(["generate", str(new_labels), str(out), "--edit", str(first), "--previous-labels", str(SEG),
                 "--margin", "4", *COMMON]) == 0
    before, after = _arrays(first, out)
    changed = edited != ids
    weight = blend_weight(changed, seg.GetSpacing(), 4.0)
    assert np.array_equal(after[weight == 0], before[weight == 0])
    report = json.loads(sitk.ReadImage(str(out)).GetMetaData("SemanticSynth_calibration"))
    assert report["means_matched_to_priors"]
    mean = float(after[edited == spleen].mean())
    assert 20 <= mean <= 160, mean  # the solid-organ range of the CT priors; the spleen's measured prior is inside


def test_samples_give_a_spread_that_is_zero_where_the_existing_volume_is_kept(lesion_case, tmp_path):
    root, ball = lesion_case
    out, spread = tmp_path / "mean.nii.gz", tmp_path / "std.nii.gz"
    mask = _write(ball.astype(np.uint8), sitk.ReadImage(str(SEG)), tmp_path / "mask.nii.gz")
    assert main(["generate", str(SEG), str(out), "--edit", str(CT), "--region", str(mask), "--samples", "2",
                 "--uncertainty", str(spread), *COMMON]) == 0
    std, = _arrays(spread)
    weight = blend_weight(ball, sitk.ReadImage(str(SEG)).GetSpacing(), 6.0)
    assert np.all(std[weight == 0] == 0)
    assert std[ball].mean() > 0


def test_spread_per_label_reports_boundary_and_interior():
    ids = np.zeros((6, 6, 6), np.int64)
    ids[1:5, 1:5, 1:5] = 3
    edge = boundary_voxels(ids)
    assert edge[1, 1, 1] and not edge[2, 2, 2] and edge[0, 1, 1] and not edge[0, 0, 0]


@pytest.mark.parametrize("extra,expected", [
    (["--edit", "{ct}"], "exactly one of --previous-labels"),
    (["--region", "{ct}"], "give --edit too"),
    (["--edit", "{ct}", "--previous-labels", "{seg}"], "no voxel changed"),
    (["--edit", "{crop}", "--previous-labels", "{seg}"], "not on the label map's grid"),
    (["--uncertainty", "{out2}"], "--samples K with K >= 2"),
    (["--edit", "{ct}", "--region", "{empty}"], "--region is empty"),
    (["--edit", "{out}", "--previous-labels", "{seg}"], "input"),
])
def test_bad_edit_requests_fail_in_one_line_before_any_work(extra, expected, tmp_path, capsys):
    seg = sitk.ReadImage(str(SEG))
    paths = {"ct": CT, "seg": SEG, "crop": tmp_path / "crop.nii.gz", "empty": tmp_path / "empty.nii.gz",
             "out": tmp_path / "out.nii.gz", "out2": tmp_path / "std.nii.gz"}
    sitk.WriteImage(sitk.ReadImage(str(CT))[:60], str(paths["crop"]))
    _write(np.zeros(seg.GetSize()[::-1], np.uint8), seg, paths["empty"])
    if "{out}" in extra:
        sitk.WriteImage(sitk.ReadImage(str(CT)), str(paths["out"]))  # OUT is EXISTING: an output is never an input
    args = [a.format(**{k: str(v) for k, v in paths.items()}) for a in extra]
    code = main(["generate", str(SEG), str(paths["out"]), *args, *COMMON, "--overwrite"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and expected in err[0], err
    assert not list(tmp_path.glob(".partial-*"))


def test_a_map_that_is_its_own_working_grid_skips_resampling_with_the_same_masks_and_values(monkeypatch):
    """changed_on_grid and known_units take the map's own arrays where the working grid is the map's grid; the result
    is what linear resampling onto that grid gives (a region one voxel thin included)."""
    from SemanticSynthLib.engine.synthesis import region_edit as edits
    from SemanticSynthLib.engine.volume.io import array_of

    ct = sitk.ReadImage(str(CT))
    region = np.zeros(ct.GetSize()[::-1], bool)
    region[12, 40:60, 50:52] = True  # one voxel thin in z
    labels = sitk.ReadImage(str(SEG))
    edit = edits.region_edit(labels, ct, mask=_write_image(region.astype(np.uint8), labels))
    norm = {"kind": "piecewise_linear", "source_knots": [-1024.0, 3071.0], "unit_knots": [0.0, 1.0]}
    fast = [edits.changed_on_grid(edit, labels, labels), edits.changed_on_grid(edit, labels, labels, margin=False),
            edits.known_units(ct, labels, norm)]
    monkeypatch.setattr(edits, "same_grid", lambda a, b: False)
    resampled = [edits.changed_on_grid(edit, labels, labels), edits.changed_on_grid(edit, labels, labels, margin=False),
                 edits.known_units(ct, labels, norm)]
    assert fast[1].sum() == region.sum() and fast[0].sum() > fast[1].sum()
    assert np.array_equal(fast[0], resampled[0]) and np.array_equal(fast[1], resampled[1])
    assert np.allclose(fast[2], resampled[2], rtol=0, atol=1e-6) and fast[2].shape == array_of(ct).shape


def _write_image(array_zyx, reference):
    image = sitk.GetImageFromArray(array_zyx)
    image.CopyInformation(reference)
    return image
