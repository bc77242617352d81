"""Paths shared by the Slicer-side tests."""
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE_SEGMENTATION = REPO.parent / "shared" / "data" / "totalseg" / "example_seg.nii.gz"
SAMPLE_CT = REPO.parent / "shared" / "data" / "totalseg" / "example_ct_sm.nii.gz"
