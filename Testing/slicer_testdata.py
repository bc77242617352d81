"""Paths shared by the Slicer-side tests."""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE_SEGMENTATION = REPO.parent / "shared" / "data" / "totalseg" / "example_seg.nii.gz"
SAMPLE_CT = REPO.parent / "shared" / "data" / "totalseg" / "example_ct_sm.nii.gz"
IXI_T1 = REPO.parent / "shared" / "data" / "ixi_muse" / "t1"

# The engine-side helpers (tiny real crops, the tiny translator) live with the engine tests.
sys.path.insert(0, str(REPO / "tests"))
