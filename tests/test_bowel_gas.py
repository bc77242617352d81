"""Gas in the hollow organs of a generated CT (issue 33 item 3): anterior, its share set or drawn per seed."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from SemanticSynthLib.cli import main
from SemanticSynthLib.engine.requests import GenerationRequest
from SemanticSynthLib.engine.synthesis.bowel_gas import bowel_gas_table, fractions
from SemanticSynthLib.errors import SynthError

SAMPLE = Path(__file__).resolve().parents[1] / "SemanticSynth" / "Resources" / "Samples" / "abdomen_ct_totalseg_labels.nii.gz"
COLON, STOMACH = 20, 6  # TotalSegmentator v2 ids


def generate(tmp_path, *extra) -> sitk.Image:
    out = tmp_path / f"ct{'_'.join(extra)}.nrrd"
    assert main(["generate", str(SAMPLE), str(out), "--modality", "ct", "--steps", "1", "--progress", "none",
                 *extra]) == 0
    return sitk.ReadImage(str(out))


def lps_y(image: sitk.Image) -> np.ndarray:
    """LPS y (mm) of every voxel, in GetArrayFromImage's (z, y, x) order."""
    z, y, x = np.indices(sitk.GetArrayFromImage(image).shape)
    d = np.array(image.GetDirection()).reshape(3, 3)[1] * np.array(image.GetSpacing())
    return image.GetOrigin()[1] + x * d[0] + y * d[1] + z * d[2]


def test_a_colon_with_gas_has_gas_voxels_and_they_lie_anterior(tmp_path):
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(SAMPLE)))
    image = generate(tmp_path, "--bowel-gas", "high")
    values, y = sitk.GetArrayFromImage(image), lps_y(image)
    colon = labels == COLON
    gas = colon & (values < -500)
    assert gas.mean() / colon.mean() > 0.4  # the high share is 0.6 of the colon
    assert y[gas].mean() < y[colon & ~gas].mean() - 5  # non-dependent: anterior (smaller LPS y) in a supine patient
    assert json.loads(image.GetMetaData("SemanticSynth_bowel_gas"))["colon"] == 0.6
    none = sitk.GetArrayFromImage(generate(tmp_path, "--bowel-gas", "0"))
    assert (none[colon] < -500).mean() < 0.01 and (none[labels == STOMACH] < -500).mean() < 0.01
    default = generate(tmp_path)  # off unless asked: no split, no record
    assert not default.HasMetaDataKey("SemanticSynth_bowel_gas")


def test_the_default_share_is_drawn_per_seed_within_the_literature_range():
    organs = bowel_gas_table()["organs"]
    draws = [fractions("drawn", seed, organs) for seed in range(50)]
    assert fractions("drawn", 7, organs) == fractions("drawn", 7, organs)
    for name, entry in organs.items():
        shares = [d[name] for d in draws]
        assert entry["fraction"]["low"] <= min(shares) and max(shares) <= entry["fraction"]["high"]
        assert len(set(shares)) > 40 or entry["fraction"]["low"] == entry["fraction"]["high"]
    assert fractions("typical", 0, organs)["colon"] == organs["colon"]["fraction"]["typical"]


@pytest.mark.parametrize("value", ["lots", "1.5", "-0.1"])
def test_a_bad_bowel_gas_value_is_one_line(value):
    with pytest.raises(SynthError, match=r"^argument --bowel-gas: must be low, typical, high, drawn or a fraction from 0 to 1"):
        GenerationRequest.build({"labels": "a.nii.gz", "out": "b.nii.gz", "bowel_gas": value})
