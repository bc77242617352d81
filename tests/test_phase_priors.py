"""Issue 33 item 3: every CT label's reference prior has four contrast phases, non_contrast, arterial, portal_venous and
delayed (docs/priors.md, "Arterial and delayed phases"). JSON only: no torch, no engine import."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

TABLES = Path(__file__).resolve().parents[1] / "SemanticSynthLib" / "engine" / "volume" / "label_tables"
FILES = ("totalseg_v2", "totalseg_v1", "total_mr", "vista3d", "totalseg_body")
PHASES = ("non_contrast", "arterial", "portal_venous", "delayed")  # in temporal order, as in the files

# Kinds whose tissue does not take up contrast: arterial and delayed means equal the unenhanced mean.
NON_ENHANCING = {"bone", "fat", "gas", "lung", "fluid"}
# (label, phase) pairs of those kinds that differ on purpose (docs/priors.md says why).
EXCEPTIONS = {
    # Small renal cysts take the enhancing cortex/nephrogram by partial volume and show pseudoenhancement, as the
    # portal venous prior already does (8 -> 20 HU): arterial 16, delayed 18.
    ("kidney_cyst_left", "arterial"), ("kidney_cyst_left", "delayed"),
    ("kidney_cyst_right", "arterial"), ("kidney_cyst_right", "delayed"),
    # At 3-5 min excretion has begun: a dependent layer of opacified urine raises the whole-bladder mean.
    ("urinary_bladder", "delayed"),
}


def _load(name: str) -> dict:
    return json.loads((TABLES / f"{name}.json").read_text(encoding="utf-8"))


def _priors() -> list[tuple[str, str, str, dict]]:
    """(file, label name, kind, prior) of every label that carries its own prior, derived masks included."""
    out = []
    for name in FILES:
        table = _load(name)
        for lab in table["labels"] + table.get("derived_masks", []):
            if "prior" in lab:
                out.append((name, lab["name"], lab["kind"], lab["prior"]))
    return out


def _v2() -> dict[str, dict]:
    return {lab["name"]: lab["prior"] for lab in _load("totalseg_v2")["labels"]}


def test_every_label_has_exactly_the_four_phases_with_the_mean_inside_the_range():
    priors = _priors()
    assert len([p for p in priors if p[0] == "totalseg_v2"]) == 117
    assert len(priors) == 117 + 2 + 1 + 9 + 3  # v2; v1 pulmonary_artery, face; total_mr discs; 9 VISTA3D; body x2, skin
    for name, label, _, prior in priors:
        assert tuple(prior) == PHASES, (name, label, list(prior))
        for phase in PHASES:
            entry = prior[phase]
            assert set(entry) == {"mean", "range"}, (name, label, phase)
            lo, hi = entry["range"]
            assert all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (entry["mean"], lo, hi))
            assert lo <= entry["mean"] <= hi, (name, label, phase, entry)


def test_labels_with_members_carry_no_prior():
    """Renames and unions take their priors (all four phases) from their totalseg_v2 members."""
    for name in FILES[1:]:
        for lab in _load(name)["labels"]:
            assert ("members" in lab) != ("prior" in lab), (name, lab["name"])


def test_non_enhancing_kinds_keep_the_unenhanced_mean():
    checked = 0
    for name, label, kind, prior in _priors():
        if kind not in NON_ENHANCING:
            continue
        for phase in ("arterial", "delayed"):
            if (label, phase) in EXCEPTIONS:
                continue
            assert prior[phase]["mean"] == prior["non_contrast"]["mean"], (name, label, phase)
            checked += 1
    assert checked > 100
    kinds = {lab: kind for _, lab, kind, _ in _priors()}
    assert all(kinds[label] in NON_ENHANCING for label, _ in EXCEPTIONS)


def test_bone_lung_and_gas_are_identical_in_every_phase():
    for name, label, kind, prior in _priors():
        if kind in {"bone", "lung", "gas"}:
            assert all(prior[p] == prior["non_contrast"] for p in PHASES), (name, label)


def test_vessels_and_solid_organs_enhance_in_both_new_phases():
    for name, label, kind, prior in _priors():
        if kind in {"vessel", "solid_organ"}:
            for phase in ("arterial", "delayed"):
                assert prior[phase]["mean"] > prior["non_contrast"]["mean"], (name, label, phase)


def test_reference_orderings():
    v2 = _v2()
    mean = {n: {p: v2[n][p]["mean"] for p in PHASES} for n in v2}
    aorta = mean["aorta"]
    assert aorta["arterial"] > aorta["portal_venous"] > aorta["delayed"] > aorta["non_contrast"]
    assert 250 <= aorta["arterial"] <= 350 and 100 <= aorta["delayed"] <= 130
    assert mean["pancreas"]["arterial"] > mean["pancreas"]["portal_venous"]
    assert mean["liver"]["portal_venous"] > mean["liver"]["arterial"] > mean["liver"]["non_contrast"]
    assert mean["liver"]["portal_venous"] > mean["liver"]["delayed"]
    # Late arterial: the portal vein is partly opacified, the infrarenal blood from the legs is not yet.
    assert mean["portal_vein_and_splenic_vein"]["arterial"] < mean["portal_vein_and_splenic_vein"]["portal_venous"]
    for vein in ("iliac_vena_left", "iliac_vena_right", "inferior_vena_cava"):
        assert mean[vein]["arterial"] < mean[vein]["portal_venous"], vein
    assert mean["iliac_vena_left"]["arterial"] - mean["iliac_vena_left"]["non_contrast"] <= 20
    # Arteries peak in the arterial phase; in the delayed (equilibrium) phase the blood pool is nearly uniform.
    arteries = ["aorta", "iliac_artery_left", "iliac_artery_right", "brachiocephalic_trunk", "subclavian_artery_left",
                "subclavian_artery_right", "common_carotid_artery_left", "common_carotid_artery_right"]
    for artery in arteries:
        assert mean[artery]["arterial"] > mean[artery]["portal_venous"] > mean[artery]["delayed"], artery
    kinds = {lab["name"]: lab["kind"] for lab in _load("totalseg_v2")["labels"]}
    blood = [mean[n]["delayed"] for n in v2 if kinds[n] == "vessel"]
    assert max(blood) - min(blood) <= 20
    assert mean["spleen"]["arterial"] > mean["spleen"]["portal_venous"]
    assert mean["heart"]["arterial"] > mean["heart"]["portal_venous"] > mean["heart"]["delayed"]


@pytest.mark.parametrize("name", FILES)
def test_file_keeps_its_format(name):
    """The file is valid JSON in its own style: totalseg_v2 as json.dumps(indent=1); the others one label a line."""
    text = (TABLES / f"{name}.json").read_text(encoding="utf-8")
    data = json.loads(text)
    if name == "totalseg_v2":
        assert json.dumps(data, indent=1) == text
    else:
        lines = [line for line in text.splitlines() if '"id":' in line and '"prior"' in line]
        for line in lines:
            assert line.strip().startswith("{") and '"arterial"' in line and '"delayed"' in line
