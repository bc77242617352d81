"""The body outside a CT map's organs (issue 33 items 3 and 6): a body mask sets the outline and the subcutaneous fat;
without one, a limb bone gets soft tissue around it, not air."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from SemanticSynthLib.cli import main
from testdata import SHARED, in_vocabulary

SAMPLE = Path(__file__).resolve().parents[1] / "SemanticSynth" / "Resources" / "Samples" / "abdomen_ct_totalseg_labels.nii.gz"
REAL = SHARED / "totalseg" / "example_ct_sm.nii.gz"
VISTA_BODY = 200
HUMERUS_LEFT = 69  # TotalSegmentator v2


def real_body() -> np.ndarray:
    """The training case's body: above -500 HU, the largest component, holes filled slice by slice (z, y, x)."""
    ct = sitk.GetArrayFromImage(sitk.ReadImage(str(REAL)))
    body, _ = ndimage.label(ct > -500)
    sizes = np.bincount(body.ravel())
    sizes[0] = 0
    body = body == sizes.argmax()
    return np.stack([ndimage.binary_fill_holes(s) for s in body])


def generate(tmp_path, labels: sitk.Image, name: str, *extra: str) -> sitk.Image:
    path, out = tmp_path / f"{name}.nii.gz", tmp_path / f"{name}.nrrd"
    sitk.WriteImage(labels, str(path))
    assert main(["generate", str(path), str(out), "--model", "abdomen-ct", "--modality", "ct", "--steps", "1",
                 "--progress", "none", *extra]) == 0
    return sitk.ReadImage(str(out))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / float(a.sum() + b.sum())


def test_a_body_mask_sets_the_outline_and_the_subcutaneous_fat(tmp_path):
    """The sample as a VISTA3D map, with and without the real scan's body as label 200: with it, the generated body
    (above -500 HU) matches the real one better, the air outside is air and the body's outer 12 mm is fat."""
    vista = in_vocabulary(sitk.ReadImage(str(SAMPLE)), "vista3d")
    ids = sitk.GetArrayFromImage(vista)
    body = real_body()
    with_body = ids.copy()
    with_body[(ids == 0) & body] = VISTA_BODY
    mask = sitk.GetImageFromArray(with_body)
    mask.CopyInformation(vista)
    plain = sitk.GetArrayFromImage(generate(tmp_path, vista, "plain"))
    image = generate(tmp_path, mask, "body")
    shaped = sitk.GetArrayFromImage(image)
    outline_plain, outline_body = dice(plain > -500, body), dice(shaped > -500, body)
    assert outline_body > max(outline_plain + 0.01, 0.97), (outline_plain, outline_body)
    inner = np.stack([ndimage.binary_erosion(s, iterations=2) for s in body])  # beyond the partial-volume rim
    assert shaped[~np.stack([ndimage.binary_dilation(s, iterations=2) for s in body])].mean() < -900
    record = json.loads(image.GetMetaData("SemanticSynth_body_outline"))
    assert record["rule"] == "body mask" and record["voxels"]["subcutaneous fat"] > 0
    spacing = np.array(vista.GetSpacing())[::-1]
    depth = ndimage.distance_transform_edt(body, sampling=spacing)
    shell = inner & (with_body == VISTA_BODY) & (depth <= 12)
    assert -140 < shaped[shell].mean() < -60  # fat, where the body label without it is a -55 HU mix of fat and muscle


def test_without_a_body_mask_a_humerus_gets_soft_tissue_around_it(tmp_path):
    """A humerus alone in air (an arm beside the trunk, which v2 labels only by its bone): the voxels within 2 cm of
    it come out as soft tissue (-150 to 100 HU), not air, and the sleeve is recorded."""
    ids = np.zeros((40, 60, 60), np.int16)
    z, y, x = np.indices(ids.shape)
    ids[(y - 30) ** 2 + (x - 30) ** 2 <= 4 ** 2] = HUMERUS_LEFT  # a rod of 8 voxels (12 mm at 1.5 mm)
    labels = sitk.GetImageFromArray(ids)
    labels.SetSpacing((1.5, 1.5, 3.0))
    image = generate(tmp_path, labels, "arm", "--label-table", "totalseg_v2")  # one id: several tables have it
    values = sitk.GetArrayFromImage(image)
    distance = ndimage.distance_transform_edt(ids != HUMERUS_LEFT, sampling=(3.0, 1.5, 1.5))
    near = (distance > 3) & (distance <= 18)
    near[:3], near[-3:] = False, False  # away from the ends
    assert -150 < values[near].mean() < 100 and (values[near] < -500).mean() < 0.05
    record = json.loads(image.GetMetaData("SemanticSynth_body_outline"))
    assert record["rule"] == "limb sleeves" and record["voxels"]["limb muscle"] > 0
