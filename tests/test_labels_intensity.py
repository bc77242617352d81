"""Label tables, id/name matching, and the invertible intensity normalizations."""
from __future__ import annotations

import json

import numpy as np
import pytest

from SemanticSynthLib.engine.volume.intensity import ct_normalization, denormalize, mri_normalization, normalize
from SemanticSynthLib.engine.volume.labels import LabelTable, load_name_mapping, normalized_name, to_class_indices
from SemanticSynthLib.errors import SynthError


def test_builtin_tables():
    assert len(LabelTable.builtin("amos").labels) == 15
    assert len(LabelTable.builtin("totalseg_v2").labels) == 117
    muse = LabelTable.builtin("muse")
    assert {4: "3rdVentricle", 47: "Hippocampus_R"}.items() <= {lab.id: lab.name for lab in muse.labels}.items()
    with pytest.raises(SynthError, match="built-in tables"):
        LabelTable.builtin("nope")


def test_ids_become_class_indices_and_unknown_ids_are_listed():
    table = LabelTable.builtin("amos")
    ids = np.array([[[0, 1, 6, 15]]])
    np.testing.assert_array_equal(to_class_indices(ids, table), [[[0, 1, 6, 15]]])
    with pytest.raises(SynthError, match="16, 40"):
        to_class_indices(np.array([[[0, 16, 40, 1]]]), table)
    np.testing.assert_array_equal(to_class_indices(np.array([[[0, 16, 1]]]), table, unknown="background"), [[[0, 0, 1]]])


def test_mapping_by_name_is_case_and_separator_insensitive(tmp_path):
    table = LabelTable.builtin("totalseg_v2").subset([1, 5])  # spleen, liver
    assert normalized_name("Kidney_Left") == normalized_name("kidney-left") == normalized_name("KIDNEY LEFT")
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"7": "Liver", "9": "SPLEEN", "3": 5}), encoding="utf-8")
    mapping = load_name_mapping(path, table)
    assert mapping == {7: 5, 9: 1, 3: 5}
    np.testing.assert_array_equal(to_class_indices(np.array([[[0, 7, 9, 3]]]), table, mapping), [[[0, 2, 1, 2]]])
    path.write_text(json.dumps({"7": "pancreas"}), encoding="utf-8")
    with pytest.raises(SynthError, match="pancreas"):
        load_name_mapping(path, table)


def test_ct_normalization_round_trips_hu_and_keeps_tissues_apart():
    norm = ct_normalization()
    hu = np.array([-1000.0, -100.0, 40.0, 700.0, 1200.0])  # air, fat, soft tissue, bone, dense bone
    unit = normalize(hu, norm)
    assert np.all(np.diff(unit) > 0.05)
    np.testing.assert_allclose(denormalize(unit, norm), hu, atol=0.5)


def test_mri_normalization_uses_the_percentile_and_the_package_scale():
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1000, (20, 20, 20)).astype(np.float32)
    norm = mri_normalization(scale=500.0)
    unit = normalize(image, norm)
    assert 0.6 < unit.max() <= 1.0
    np.testing.assert_allclose(denormalize(np.array([1 / 1.5]), norm), [500.0], rtol=1e-6)
