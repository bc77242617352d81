"""Issue 9, CT: the bundled abdomen-ct model generates every TotalSegmentator v2 class, also those its one
training case lacks, each at an intensity inside its documented prior range (docs/priors.md)."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from SemanticSynthLib.engine.synthesis.generate import generate_volume
from SemanticSynthLib.engine.volume.labels import LabelTable
from SemanticSynthLib.engine.model.package import load_package
from SemanticSynthLib.engine.model.store import resolve_model
from testdata import SHARED

SEG = SHARED / "totalseg" / "example_seg.nii.gz"


@pytest.fixture(scope="module")
def ct_model():
    package = load_package(resolve_model("abdomen-ct"))
    if not package.label_aware:
        pytest.skip("the bundled abdomen-ct package predates label-aware models")
    return package


def _relabelled(pairs: dict[str, str]) -> sitk.Image:
    """The real training segmentation with some structures renamed to classes the training case lacks.

    The shapes stay those of real anatomy nearby (a rib stays rib-shaped as another rib, the vertebra body
    becomes a long-bone cross-section), so partial volume is realistic for the kind.
    """
    table = LabelTable.builtin("totalseg_v2")
    by_name = {lab.name: lab.id for lab in table.labels}
    seg = sitk.ReadImage(str(SEG))
    ids = sitk.GetArrayFromImage(seg)
    out = ids.copy()
    for src, dst in pairs.items():
        out[ids == by_name[src]] = by_name[dst]
    image = sitk.GetImageFromArray(out)
    image.CopyInformation(seg)
    return image


UNSEEN = {"rib_left_7": "rib_left_3", "rib_right_8": "rib_right_4", "vertebrae_L2": "femur_left",
          "vertebrae_L1": "humerus_right", "spleen": "heart"}


@pytest.mark.parametrize("phase", ["non_contrast", "portal_venous"])
def test_unseen_ct_classes_generate_inside_their_prior_ranges(ct_model, phase):
    labels = _relabelled(UNSEEN)
    table = ct_model.labels
    seen = ct_model.seen_labels("ct")
    by_name = {lab.name: lab for lab in table.labels}
    targets = [*UNSEEN.values(), "portal_vein_and_splenic_vein"]
    assert not {by_name[n].id for n in UNSEEN.values()} & seen  # really unseen in training
    out = sitk.GetArrayFromImage(generate_volume(ct_model, labels, modality="ct", steps=10, seed=0, phase=phase))
    ids = sitk.GetArrayFromImage(labels)
    for name in targets:
        lab = by_name[name]
        low, high = lab.prior[phase]["range"]
        mean = float(out[ids == lab.id].mean())
        assert low <= mean <= high, f"{name} ({phase}): {mean:.0f} HU outside [{low}, {high}]"


def test_every_totalsegmentator_class_is_accepted(ct_model):
    """All 117 ids in one label map: no 'unknown label' refusal, no --unknown-labels needed."""
    table = LabelTable.builtin("totalseg_v2")
    assert {lab.id for lab in table.labels} <= {lab.id for lab in ct_model.labels.labels}
    ids = np.zeros((16, 48, 48), np.uint8)
    for k, lab in enumerate(table.labels):
        ids.reshape(-1)[k * 180:(k + 1) * 180] = lab.id
    labels = sitk.GetImageFromArray(ids)
    labels.SetSpacing((3.0, 3.0, 3.0))
    out = generate_volume(ct_model, labels, modality="ct", steps=2, seed=0)
    assert np.isfinite(sitk.GetArrayFromImage(out)).all()
