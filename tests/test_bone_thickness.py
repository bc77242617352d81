"""CT bone priors from each bone's thickness at the working spacing (issue 33 item 3)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from SemanticSynthLib.cli import main
from SemanticSynthLib.engine.synthesis.bone_thickness import surface_to_volume

SAMPLE = Path(__file__).resolve().parents[1] / "SemanticSynth" / "Resources" / "Samples" / "abdomen_ct_totalseg_labels.nii.gz"
L1, RIBS_10_TO_12 = 31, (101, 102, 103, 113, 114, 115)  # TotalSegmentator v2: vertebrae_L1; ribs 10-12 left and right


def test_surface_to_volume_of_a_rod_is_two_over_its_radius():
    """A/V counts the faces between classes, 2/3 of them (a staircase's excess), and none on the image border."""
    x, y = np.mgrid[:64, :64] - 31.5
    rod = np.broadcast_to(((x ** 2 + y ** 2) <= 20 ** 2)[:, :, None], (64, 64, 16)).astype(np.int64)
    ratio = surface_to_volume(rod, (1.0, 1.0, 3.0), 2)
    # An axis-aligned rod's staircase outline is 8r long (4/pi of its circumference): 2/3 x 8r / (pi r^2). Its ends
    # lie on the image border, so they are not surface.
    assert ratio[1] == pytest.approx((2 / 3) * 8 / (np.pi * 20), rel=0.03)
    thin = surface_to_volume(rod, (0.25, 0.25, 3.0), 2)[1]  # the same voxels, a rod of 5 mm
    assert thin == pytest.approx(4 * ratio[1], rel=1e-6)


def test_a_thin_rib_comes_out_brighter_than_a_vertebral_body(tmp_path):
    """Generated from the sample, each through the CLI: ribs 10-12 above L1's body (the training case's own means
    were 226-270 HU against 196); the priors used are recorded with the output, and a --priors override wins."""
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(SAMPLE)))
    out = tmp_path / "ct.nrrd"
    assert main(["generate", str(SAMPLE), str(out), "--modality", "ct", "--steps", "1", "--progress", "none"]) == 0
    image = sitk.ReadImage(str(out))
    values = sitk.GetArrayFromImage(image)
    ribs = np.isin(labels, RIBS_10_TO_12)
    assert values[ribs].mean() > values[labels == L1].mean() + 15
    recorded = json.loads(image.GetMetaData("SemanticSynth_bone_priors"))
    assert min(recorded[f"rib_{side}_{n}"] for side in ("left", "right") for n in (10, 11, 12)) > recorded["vertebrae_L1"] + 15
    assert 150 < recorded["vertebrae_L1"] < 260

    priors = tmp_path / "priors.json"
    priors.write_text(json.dumps({"vertebrae_L1": 400}), encoding="utf-8")
    assert main(["generate", str(SAMPLE), str(tmp_path / "own.nrrd"), "--modality", "ct", "--steps", "1", "--progress", "none",
                 "--priors", str(priors)]) == 0
    own = sitk.ReadImage(str(tmp_path / "own.nrrd"))
    assert "vertebrae_L1" not in json.loads(own.GetMetaData("SemanticSynth_bone_priors"))
    assert sitk.GetArrayFromImage(own)[labels == L1].mean() == pytest.approx(400, abs=25)
