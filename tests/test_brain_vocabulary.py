"""Issue 33 item 1 (brain): the FreeSurfer aseg / SynthSeg / DKT vocabulary translated to MUSE, and the merge of
MUSE regions into SynthSeg's 32 labels (docs: "FreeSurfer / SynthSeg labels translated to MUSE").
Tables and real MUSE maps only: no model, no torch."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from testdata import IXI, IXI_IDS

TABLES = Path(__file__).resolve().parents[1] / "SemanticSynthLib" / "engine" / "volume" / "label_tables"
# SynthSeg 2.0's segmentation labels (BBillot/SynthSeg data/labels table.txt), background left out.
SYNTHSEG = {2, 3, 4, 5, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17, 18, 24, 26, 28,
            41, 42, 43, 44, 46, 47, 49, 50, 51, 52, 53, 54, 58, 60}
# aparc.DKTatlas+aseg: the Desikan-Killiany parcels less bankssts (1), frontalpole (32) and temporalpole (33).
DKT = [2, 3] + list(range(5, 32)) + [34, 35]
LEFT_OUT = {69}  # MUSE 69 (Neuromorphometrics optic chiasm): SynthSeg sends the chiasm to background


def _no_duplicate_keys(pairs):
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), f"duplicate keys {sorted(k for k in keys if keys.count(k) > 1)}"
    return dict(pairs)


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_no_duplicate_keys)


@pytest.fixture(scope="module")
def muse():
    return {e["name"]: e["id"] for e in _load(TABLES / "muse.json")["labels"]}


@pytest.fixture(scope="module")
def aseg():
    return _load(TABLES / "freesurfer_aseg.json")


@pytest.fixture(scope="module")
def merge():
    data = _load(TABLES / "groups" / "muse_to_aseg.json")
    assert (data["name"], data["source_table"], data["target_table"]) == ("muse_to_aseg", "muse", "freesurfer_aseg")
    return data


def _lut(merge) -> np.ndarray:
    lut = np.zeros(256, np.int16)
    for k, v in merge["merge"].items():
        lut[int(k)] = v
    return lut


def test_table_format_ids_and_members(aseg, muse):
    assert (aseg["name"], aseg["translates_to"]) == ("freesurfer_aseg", "muse")
    assert "FreeSurferColorLUT.txt" in aseg["source"] and "SynthSeg" in aseg["source"]
    ids = [e["id"] for e in aseg["labels"]]
    names = [e["name"] for e in aseg["labels"]]
    assert len(ids) == len(set(ids)) and len(names) == len(set(names))
    assert all(isinstance(i, int) and i > 0 for i in ids)
    for e in aseg["labels"]:
        assert set(e) <= {"id", "name", "synonyms", "members"}, e
        assert e["members"], f"{e['name']} has no member"
        missing = [m for m in e["members"] if m not in muse]
        assert not missing, f"{e['name']}: {missing} are not MUSE names"
        assert len(e["members"]) == len(set(e["members"])), e["name"]
    assert SYNTHSEG <= set(ids)


def test_freesurfer_names_and_dkt_parcels(aseg, muse):
    by_id = {e["id"]: e for e in aseg["labels"]}
    assert by_id[10]["name"] == "Left-Thalamus" and "Left-Thalamus-Proper" in by_id[10]["synonyms"]
    assert by_id[49]["name"] == "Right-Thalamus" and "Right-Thalamus-Proper" in by_id[49]["synonyms"]
    for i, n in [(2, "Left-Cerebral-White-Matter"), (5, "Left-Inf-Lat-Vent"), (16, "Brain-Stem"), (24, "CSF"),
                 (26, "Left-Accumbens-area"), (28, "Left-VentralDC"), (77, "WM-hypointensities"), (85, "Optic-Chiasm"),
                 (251, "CC_Posterior"), (255, "CC_Anterior"), (1028, "ctx-lh-superiorfrontal"),
                 (2035, "ctx-rh-insula")]:
        assert by_id[i]["name"] == n
    assert sorted(i for i in by_id if 1000 < i < 2000) == [1000 + k for k in DKT]
    assert sorted(i for i in by_id if 2000 < i < 3000) == [2000 + k for k in DKT]
    cortical = {n for n, i in muse.items() if 100 <= i <= 207}
    covered = set()
    for i, e in by_id.items():
        if i > 1000:
            side = "_L" if i < 2000 else "_R"
            assert e["name"].startswith("ctx-lh-" if i < 2000 else "ctx-rh-")
            assert all(m in cortical and m.endswith(side) for m in e["members"]), e
            assert by_id[1000 + i % 1000]["name"][7:] == by_id[2000 + i % 1000]["name"][7:]
            covered |= set(e["members"])
    assert covered == cortical  # every MUSE cortical region lies in some DKT parcel
    for i in range(251, 256):
        assert by_id[i]["members"] == ["CorpCall"]


def test_merge_is_a_function_onto_synthseg_consistent_with_members(merge, aseg, muse):
    ids = set(muse.values())
    keys = {int(k) for k in merge["merge"]}
    assert keys <= ids and ids - keys == LEFT_OUT
    assert all(str(i) in merge["note"] for i in LEFT_OUT)  # the note says why
    values = list(merge["merge"].values())
    assert all(isinstance(v, int) for v in values)
    assert set(values) == SYNTHSEG  # onto SynthSeg's 32 labels, nothing else
    name_of = {i: n for n, i in muse.items()}
    members = {e["id"]: set(e["members"]) for e in aseg["labels"] if e["id"] in SYNTHSEG}
    for a, ms in members.items():
        merged_here = {name_of[int(m)] for m, v in merge["merge"].items() if v == a}
        assert merged_here == ms, f"aseg {a}: merge gives {sorted(merged_here)}, members {sorted(ms)}"
    for k, (left, right) in merge["midline_split"].items():
        assert merge["merge"][k] == left and {left, right} <= SYNTHSEG and left != right


def test_spot_checks(aseg, merge, muse):
    by_id = {e["id"]: e["members"] for e in aseg["labels"]}
    assert by_id[17] == ["Hippocampus_L"] and by_id[53] == ["Hippocampus_R"]
    assert len(by_id[3]) >= 20 and len(by_id[42]) >= 20
    assert all(m.endswith("_L") for m in by_id[3]) and all(m.endswith("_R") for m in by_id[42])
    assert "CortCSF" in by_id[24] and "CorpCall" in by_id[2]
    m = merge["merge"]
    assert m[str(muse["Hippocampus_L"])] == 17 and m[str(muse["Hippocampus_R"])] == 53
    assert m[str(muse["CorpCall"])] == 2 and m[str(muse["CortCSF"])] == 24
    assert m[str(muse["SuperiorFrontalGyrus_R"])] == 42 and m[str(muse["Frontal_WM_L"])] == 2


@pytest.mark.parametrize("case_id", IXI_IDS[:2])
def test_merge_covers_real_maps_with_plausible_volumes(case_id, merge):
    ids = sitk.GetArrayFromImage(sitk.ReadImage(str(IXI / "labels" / f"{case_id}.nii.gz")))
    present = {int(i) for i in np.unique(ids)} - {0}
    keys = {int(k) for k in merge["merge"]}
    assert present - keys <= LEFT_OUT, sorted(present - keys - LEFT_OUT)
    merged = _lut(merge)[ids]
    brain = (merged > 0) & (merged != 24)
    assert ((ids > 0) & (merged == 0)).sum() < 1e-4 * brain.sum()  # only the few chiasm voxels drop out
    groups = {"cortex": [3, 42], "wm": [2, 41], "ventricles": [4, 5, 14, 15, 43, 44], "cerebellum": [7, 8, 46, 47]}
    fraction = {name: np.isin(merged, labels).sum() / brain.sum() for name, labels in groups.items()}
    assert 0.35 < fraction["cortex"] < 0.50 and 0.33 < fraction["wm"] < 0.45, fraction
    assert 0.002 < fraction["ventricles"] < 0.06 and 0.08 < fraction["cerebellum"] < 0.16, fraction
