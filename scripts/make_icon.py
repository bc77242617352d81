"""Draw the 128x128 extension icon from real data: a label map turning into a CT (diagonal split).

python scripts/make_icon.py   -> SemanticSynth.png and SemanticSynth/Resources/Icons/SemanticSynth.png
"""
import shutil
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "totalseg"


def main():
    labels = sitk.GetArrayFromImage(sitk.DICOMOrient(sitk.ReadImage(str(DATA / "example_seg.nii.gz")), "LPS"))[15]
    ct = sitk.GetArrayFromImage(sitk.DICOMOrient(sitk.ReadImage(str(DATA / "example_ct_sm.nii.gz")), "LPS"))[15]
    rng = np.random.default_rng(7)
    colours = (rng.uniform(0.25, 1.0, (int(labels.max()) + 1, 3)) * 255).astype(np.uint8)
    colours[0] = (20, 24, 40)
    left = colours[labels]
    grey = (np.clip((ct + 160) / 400, 0, 1) * 255).astype(np.uint8)
    right = np.stack([grey] * 3, axis=-1)
    h, w = labels.shape
    yy, xx = np.mgrid[0:h, 0:w]
    picture = np.where((xx / w + yy / h < 1.0)[..., None], left, right)
    image = Image.fromarray(picture).resize((128, 128), Image.NEAREST)
    out = REPO / "SemanticSynth.png"
    image.save(out)
    (REPO / "SemanticSynth" / "Resources" / "Icons").mkdir(parents=True, exist_ok=True)
    shutil.copy(out, REPO / "SemanticSynth" / "Resources" / "Icons" / "SemanticSynth.png")


if __name__ == "__main__":
    main()
