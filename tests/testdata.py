"""Real-data helpers shared by the tests: paths to ../shared/data, tiny crops, grid comparison."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SEMANTICSYNTH_DATA", REPO.parent / "shared" / "data"))
IXI = SHARED / "ixi_muse"
IXI_IDS = ["IXI013-HH-1212", "IXI014-HH-1236", "IXI015-HH-1258"]


def crop_case(case_id: str, size=32):
    """A centred crop of a real IXI T1 and its MUSE labels, geometry kept (origin moves with the crop)."""
    image = sitk.ReadImage(str(IXI / "t1" / f"{case_id}.nii.gz"))
    labels = sitk.ReadImage(str(IXI / "labels" / f"{case_id}.nii.gz"))
    start = [(s - size) // 2 for s in image.GetSize()]
    return (sitk.RegionOfInterest(image, [size] * 3, start), sitk.RegionOfInterest(labels, [size] * 3, start))


def geometry_of(image: sitk.Image):
    return image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection()


def assert_same_grid(a: sitk.Image, b: sitk.Image):
    assert a.GetSize() == b.GetSize()
    np.testing.assert_allclose(a.GetSpacing(), b.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(a.GetDirection(), b.GetDirection(), atol=1e-6)
