"""Label maps in the vocabularies users bring: which one a map uses, and how it becomes the model's.

Real maps only: the bundled TotalSegmentator v2 sample (and the same map rewritten in v1 and VISTA3D ids through
the vocabulary tables), and real MUSE maps merged into FreeSurfer aseg labels with muse_to_aseg.json.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from SemanticSynthLib.cli import main
from SemanticSynthLib.engine.model.package import load_package
from SemanticSynthLib.engine.model.store import resolve_model
from SemanticSynthLib.engine.synthesis.label_vocabulary import read_in_vocabulary
from SemanticSynthLib.engine.volume.io import array_of
from SemanticSynthLib.engine.volume.label_merges import read_merge, relabel
from SemanticSynthLib.engine.volume.labels import LabelTable
from SemanticSynthLib.engine.volume.vocabularies import (anatomy_checks, builtin_vocabularies, candidates, centroids_lps,
                                                          detect, image_to_lps, side, translate, vertebra_level)
from SemanticSynthLib.errors import SynthError
from testdata import IXI, IXI_IDS, in_vocabulary

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "SemanticSynth" / "Resources" / "Samples" / "abdomen_ct_totalseg_labels.nii.gz"
MERGE = read_merge("muse_to_aseg").merge


def aseg_of(case_id: str) -> sitk.Image:
    return relabel(sitk.ReadImage(str(IXI / "labels" / f"{case_id}.nii.gz")), MERGE)


def detected(image: sitk.Image, table: str, **kw) -> str:
    ids = array_of(image)
    present = {int(i) for i in np.unique(ids) if i > 0}
    return detect(present, LabelTable.builtin(table), centroids_lps(ids, image_to_lps(image)), **kw).name


def test_names_give_sides_and_vertebra_levels():
    assert [side(n) for n in ("kidney_left", "Right-Hippocampus", "Caudate_R", "ctx-lh-insula", "vertebrae_L1", "heart")] \
        == ["left", "right", "right", "left", None, None]
    assert vertebra_level("vertebrae_C1") < vertebra_level("vertebrae_T12") < vertebra_level("vertebrae_L5") \
        < vertebra_level("vertebrae_S1")


@pytest.mark.parametrize("vocabulary", ["totalseg_v2", "totalseg_v1", "vista3d"])
def test_the_same_ct_map_in_three_vocabularies_is_read_in_its_own(vocabulary):
    sample = sitk.ReadImage(str(SAMPLE))
    image = sample if vocabulary == "totalseg_v2" else in_vocabulary(sample, vocabulary)
    assert detected(image, "totalseg_v2") == vocabulary


def test_a_wrong_reading_breaks_the_anatomy():
    """The v1 copy of the sample fits v2's ids too, but read as v2 its left/right pairs and vertebrae conflict."""
    image = in_vocabulary(sitk.ReadImage(str(SAMPLE)), "totalseg_v1")
    ids = array_of(image)
    centres = centroids_lps(ids, image_to_lps(image))
    own, as_v2 = (anatomy_checks(v, centres) for v in (builtin_vocabularies()["totalseg_v1"],
                                                       candidates(LabelTable.builtin("totalseg_v2"))[0]))
    assert own[1] == 0 and own[0] >= 10
    assert as_v2[1] >= 3


@pytest.mark.parametrize("case_id", IXI_IDS[:2])
def test_muse_and_aseg_maps_are_told_apart(case_id):
    assert detected(sitk.ReadImage(str(IXI / "labels" / f"{case_id}.nii.gz")), "muse") == "muse"
    assert detected(aseg_of(case_id), "muse") == "freesurfer_aseg"


def test_ambiguous_ids_are_a_one_line_error_naming_the_tables():
    """Id 4 alone, no sides to check: MUSE's 3rd ventricle or FreeSurfer's left lateral ventricle."""
    image = sitk.GetImageFromArray(np.pad(np.full((4, 4, 4), 4, np.int16), 4))
    with pytest.raises(SynthError, match=r"^the label map's ids fit several label tables \(muse, freesurfer_aseg\) .*"
                                         r"give --label-table with one of them$"):
        detected(image, "muse")
    assert detected(image, "muse", asked="freesurfer_aseg") == "freesurfer_aseg"
    with pytest.raises(SynthError, match="--label-table vista3d is not a vocabulary of this model .muse.; choose one of "
                                         "muse, freesurfer_aseg"):
        detected(image, "muse", asked="vista3d")


def test_a_union_becomes_one_class_with_its_members_pooled_prior():
    package = load_package(resolve_model("brain-mri"), need_diffusion=False)
    vocabulary = builtin_vocabularies()["freesurfer_aseg"]
    measured = package.metadata["priors"]["mri"]["measured"] if "mri" in package.metadata["priors"] \
        else package.metadata["priors"]["measured"]
    t = translate(vocabulary, package.labels, {"mri": measured})
    muse = {lab.name: lab.id for lab in package.labels.labels}
    assert t.ids[17] == muse["Hippocampus_L"] and t.ids[53] == muse["Hippocampus_R"]  # renames
    cortex = t.ids[3]
    assert cortex not in {lab.id for lab in package.labels.labels}  # a new class
    label = next(lab for lab in t.table.labels if lab.id == cortex)
    assert label.name == "freesurfer_aseg:Left-Cerebral-Cortex" and label.kind == "brain"
    members = [muse[m] for m in next(x for x in vocabulary.terms if x.id == 3).members]
    stats = [measured[str(i)] for i in members if str(i) in measured]
    weights = [s["voxels"] for s in stats]
    pooled = t.measured["mri"][str(cortex)]
    assert pooled["voxels"] == sum(weights)
    assert pooled["mean"] == pytest.approx(np.average([s["mean"] for s in stats], weights=weights), rel=1e-9)
    assert min(s["mean"] for s in stats) <= pooled["mean"] <= max(s["mean"] for s in stats)


def test_the_package_seen_through_a_vocabulary_counts_unions_as_seen():
    package = load_package(resolve_model("brain-mri"))
    seen_as, mapping, name = read_in_vocabulary(package, aseg_of(IXI_IDS[0]))
    assert name == "freesurfer_aseg" and {int(i) for i in MERGE.values()} <= set(mapping)
    priors = seen_as.priors("mri")
    cortex_class = [lab.id for lab in seen_as.labels.labels].index(mapping[3]) + 1
    assert priors.source[cortex_class] == "measured"
    assert package.labels.num_classes == 149 and seen_as.labels.num_classes > 149  # the original is untouched


def test_generate_reads_an_aseg_map_and_records_its_table(tmp_path):
    aseg = aseg_of(IXI_IDS[0])
    size = np.array(aseg.GetSize())
    crop = sitk.RegionOfInterest(aseg, [32, 32, 24], [int(s) for s in (size - [32, 32, 24]) // 2])
    path = tmp_path / "aseg.nii.gz"
    sitk.WriteImage(crop, str(path))
    out = tmp_path / "t1.nrrd"
    assert main(["generate", str(path), str(out), "--model", "brain-mri", "--steps", "1", "--progress", "none"]) == 0
    image = sitk.ReadImage(str(out))
    assert json.loads(image.GetMetaData("SemanticSynth_request"))["label_table"] == "freesurfer_aseg"
    assert image.GetSize() == crop.GetSize() and image.GetOrigin() == crop.GetOrigin()
    values = sitk.GetArrayFromImage(image)
    cortex = sitk.GetArrayFromImage(crop) == 3
    white = sitk.GetArrayFromImage(crop) == 2
    assert values[white].mean() > values[cortex].mean()  # T1: white matter brighter than cortex


def test_outside_labels_background_gives_a_skull_stripped_volume(tmp_path):
    """--outside-labels background: every voxel outside the labels is the model's zero; inside, the same volume."""
    labels = sitk.ReadImage(str(IXI / "labels" / f"{IXI_IDS[0]}.nii.gz"))
    size = np.array(labels.GetSize())
    crop = sitk.RegionOfInterest(labels, [40, 40, 24], [int(s) for s in (size - [40, 40, 24]) // 2])
    path = tmp_path / "muse.nii.gz"
    sitk.WriteImage(crop, str(path))
    outs = {}
    for mode in ("anatomy", "background"):
        outs[mode] = tmp_path / f"{mode}.nrrd"
        assert main(["generate", str(path), str(outs[mode]), "--model", "brain-mri", "--steps", "1",
                     "--outside-labels", mode, "--progress", "none"]) == 0
    inside = sitk.GetArrayFromImage(crop) > 0
    assert 0 < inside.mean() < 1
    anatomy, stripped = (sitk.GetArrayFromImage(sitk.ReadImage(str(outs[m]))) for m in ("anatomy", "background"))
    assert (stripped[~inside] == 0).all() and (anatomy[~inside] != 0).mean() > 0.5
    np.testing.assert_array_equal(stripped[inside], anatomy[inside])
    assert json.loads(sitk.ReadImage(str(outs["background"])).GetMetaData("SemanticSynth_request"))["outside_labels"] \
        == "background"


@pytest.fixture(scope="module")
def v2_generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("v2") / "ct.nrrd"
    assert main(["generate", str(SAMPLE), str(out), "--model", "abdomen-ct", "--modality", "ct", "--steps", "1",
                 "--progress", "none"]) == 0
    return sitk.GetArrayFromImage(sitk.ReadImage(str(out)))


@pytest.mark.parametrize("vocabulary", ["totalseg_v1", "vista3d", "total_mr"])
def test_a_ct_map_in_another_vocabulary_generates_the_same_organs(vocabulary, v2_generated, tmp_path):
    """The sample rewritten in v1, VISTA3D and total_mr ids generates without --unknown-labels or --label-table, the
    table is recorded, and each organ comes out as it does from the v2 map (same priors, same seed)."""
    sample = sitk.ReadImage(str(SAMPLE))
    path = tmp_path / f"{vocabulary}.nii.gz"
    sitk.WriteImage(in_vocabulary(sample, vocabulary), str(path))
    out = tmp_path / "ct.nrrd"
    assert main(["generate", str(path), str(out), "--model", "abdomen-ct", "--modality", "ct", "--steps", "1",
                 "--progress", "none"]) == 0
    image = sitk.ReadImage(str(out))
    assert json.loads(image.GetMetaData("SemanticSynth_request"))["label_table"] == vocabulary
    values, labels = sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(sample)
    v2 = {lab.name: lab.id for lab in LabelTable.builtin("totalseg_v2").labels}
    for organ in ("liver", "spleen", "kidney_left", "kidney_right", "stomach"):
        inside = labels == v2[organ]
        assert abs(values[inside].mean() - v2_generated[inside].mean()) < 15, organ


def test_centroids_of_a_large_map_are_taken_on_a_subsample_within_a_voxel():
    ids = np.zeros((300, 300, 200), np.int16)
    ids[10:100, 50:150, 20:60], ids[200:290, 50:151, 21:60] = 3, 4
    to_lps = np.array([[0, 0.8, 0, -50], [-0.8, 0, 0, 20], [0, 0, 1.5, 5], [0, 0, 0, 1.0]])  # axes permuted
    assert ids.size > 4_000_000
    subsampled = centroids_lps(ids, to_lps)
    for label in (3, 4):
        exact = to_lps @ np.append(np.argwhere(ids == label).mean(axis=0), 1.0)
        assert np.abs(subsampled[label] - exact[:3]).max() <= 1.5  # within one voxel
