"""Issue 33 item 1 (CT): the vocabularies users bring (TotalSegmentator v1, total_mr, body; VISTA3D/MAISI) translate
to TotalSegmentator v2. Checks the tables against totalseg_v2.json and spot-checks ids against the tools' sources
(docs/priors.md, "Vocabularies translated to TotalSegmentator v2"). JSON only: no torch, no engine import."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

TABLES = Path(__file__).resolve().parents[1] / "SemanticSynthLib" / "engine" / "volume" / "label_tables"
KINDS = {"background", "bone", "muscle", "fat", "lung", "gas", "vessel", "solid_organ", "hollow_organ", "fluid",
         "brain", "other"}
PHASES = ("non_contrast", "arterial", "portal_venous", "delayed")

# Label counts of the sources (docs/priors.md): TotalSegmentator class_map["total_v1"] 104, class_map["total_mr"] 50
# (2.5.0 and later), class_map["body"] 2; VISTA3D label_dict.json 124 + MAISI's 129 "kidney mass" and 200 "body".
COUNTS = {"totalseg_v1": 104, "total_mr": 50, "vista3d": 126, "totalseg_body": 2}

# (id, name) pairs copied from the sources.
SPOT = {
    "totalseg_v1": [(1, "spleen"), (5, "liver"), (10, "pancreas"), (22, "vertebrae_L1"), (44, "heart_myocardium"),
                    (49, "pulmonary_artery"), (58, "rib_left_1"), (93, "face"), (104, "urinary_bladder")],
    "total_mr": [(1, "spleen"), (5, "liver"), (10, "lung_left"), (19, "vertebrae"), (20, "intervertebral_discs"),
                 (22, "heart"), (50, "brain")],
    "vista3d": [(1, "liver"), (3, "spleen"), (5, "right kidney"), (14, "left kidney"), (23, "lung tumor"),
                (28, "left lung upper lobe"), (33, "vertebrae L5"), (115, "heart"), (127, "vertebrae S1"),
                (128, "bone lesion"), (132, "airway"), (200, "body")],
    "totalseg_body": [(1, "body_trunc"), (2, "body_extremities")],
}

# Translations that are decisions, not spelling (docs/priors.md says why).
MEMBERS = {
    "totalseg_v1": {"liver": ["liver"], "heart_atrium_left": ["heart"], "sacrum": ["sacrum", "vertebrae_S1"],
                    "iliopsoas_left": ["iliopsoas_left"]},
    "total_mr": {"liver": ["liver"], "lung_right": ["lung_upper_lobe_right", "lung_middle_lobe_right",
                                                    "lung_lower_lobe_right"]},
    "vista3d": {"liver": ["liver"], "left iliac vena": ["iliac_vena_left"], "bladder": ["urinary_bladder"],
                "left rib 12": ["rib_left_12"], "left kidney cyst": ["kidney_cyst_left"]},
}
OWN = {"totalseg_v1": {"pulmonary_artery", "face"}, "total_mr": {"intervertebral_discs"},
       "vista3d": {"lung tumor", "pancreatic tumor", "hepatic vessel", "hepatic tumor", "colon cancer primaries",
                   "bone lesion", "kidney mass", "airway", "body"},
       "totalseg_body": {"body_trunc", "body_extremities"}}


def _load(name: str) -> dict:
    return json.loads((TABLES / f"{name}.json").read_text(encoding="utf-8"))


V2_NAMES = {lab["name"] for lab in _load("totalseg_v2")["labels"]}


def _check_prior(prior: dict, what: str) -> None:
    assert set(prior) == set(PHASES), what
    for phase in PHASES:
        entry = prior[phase]
        lo, hi = entry["range"]
        assert isinstance(entry["mean"], (int, float)) and lo <= entry["mean"] <= hi, (what, phase, entry)


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_vocabulary_table(name):
    table = _load(name)
    assert table["name"] == name and table["translates_to"] == "totalseg_v2"
    assert "commit" in table["source"] and "github.com/" in table["source"]
    labels = table["labels"]
    ids = [lab["id"] for lab in labels]
    assert all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in ids)
    assert len(set(ids)) == len(ids) == COUNTS[name]
    assert len({lab["name"] for lab in labels}) == len(labels)
    own = set()
    for lab in labels:
        if "members" in lab:
            assert lab["members"] and len(set(lab["members"])) == len(lab["members"]), lab
            assert set(lab["members"]) <= V2_NAMES, (lab["name"], set(lab["members"]) - V2_NAMES)
            assert "kind" not in lab and "prior" not in lab, lab["name"]
        else:
            own.add(lab["name"])
            assert lab.get("kind") in KINDS, lab["name"]
            _check_prior(lab["prior"], f"{name}:{lab['name']}")
    assert own == OWN[name]
    by_id = {lab["id"]: lab["name"] for lab in labels}
    for label_id, label_name in SPOT[name]:
        assert by_id[label_id] == label_name
    by_name = {lab["name"]: lab.get("members") for lab in labels}
    for label_name, members in MEMBERS.get(name, {}).items():
        assert by_name[label_name] == members


def test_v1_names_are_v2_names_except_the_moved_ones():
    """Every v1 class whose name v2 still has is a rename to it (only the ids moved)."""
    for lab in _load("totalseg_v1")["labels"]:
        if lab["name"] in V2_NAMES and lab["name"] != "sacrum":
            assert lab["members"] == [lab["name"]]


def test_total_mr_vertebrae_is_every_v2_vertebra():
    members = {lab["name"]: lab.get("members") for lab in _load("total_mr")["labels"]}["vertebrae"]
    assert sorted(members) == sorted(n for n in V2_NAMES if n.startswith("vertebrae_"))


def test_body_derived_masks_have_no_id():
    """body and skin are files the tool derives (body.nii.gz, skin.nii.gz), not classes of the multilabel map."""
    table = _load("totalseg_body")
    derived = {d["name"]: d for d in table["derived_masks"]}
    assert set(derived) == {"body", "skin"} and all("id" not in d for d in derived.values())
    assert derived["body"]["union_of"] == ["body_trunc", "body_extremities"]
    assert derived["skin"]["kind"] in KINDS
    _check_prior(derived["skin"]["prior"], "skin")
