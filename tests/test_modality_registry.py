"""The modality registry (engine/volume/modalities.py): a third modality, registered here, takes its own entry's
normalisation, priors, calibration units and window/level through the schema, priors, calibration, the Slicer bridge
and the command line; a modality that is not registered is refused in one line instead of taking the MRI path."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from SemanticSynthLib.engine.model.package_metadata import read_metadata
from SemanticSynthLib.engine.model.priors import class_priors, priors_metadata
from SemanticSynthLib.engine.model.schema import validate_metadata
from SemanticSynthLib.engine.synthesis.calibration import calibrate, calibration_check
from SemanticSynthLib.engine.training.common import normalization_for
from SemanticSynthLib.engine.volume.intensity import (ct_normalization, denormalize, model_units,
                                                      modality_normalization, mri_normalization)
from SemanticSynthLib.engine.volume.labels import LabelTable
from SemanticSynthLib.engine.volume.modalities import (MODALITIES, Modality, default_generator, guessed_modality,
                                                       modality, modality_names, modality_of, phase_names,
                                                       register_modality, unregister_modality)
from SemanticSynthLib.errors import SynthError

from testdata import REPO

PET = Modality(
    "pet", "PET", "SUV",
    {"kind": "piecewise_linear", "source_knots": (0.0, 2.5, 10.0, 40.0), "unit_knots": (0.0, 0.4, 0.85, 1.0)},
    window_level=(6.0, 3.0), prior_kind="absolute", tolerance=0.5,
    kind_priors={"brain": (8.0, (6.0, 11.0)), "other": 1.5}, summary="PET in SUV")


@pytest.fixture()
def pet():
    entry = register_modality(PET)
    yield entry
    unregister_modality("pet")


def _table() -> LabelTable:
    return LabelTable.from_json({"name": "pet-test", "labels": [
        {"id": 1, "name": "cortex", "kind": "brain"}, {"id": 2, "name": "liver", "kind": "solid_organ"},
        {"id": 3, "name": "lesion", "kind": "other"}]})


def _pet_metadata() -> dict:
    """The bundled brain-mri package's metadata, naming pet instead of mri."""
    meta = json.loads((REPO / "SemanticSynthLib" / "models" / "brain-mri" / "metadata.json").read_text(encoding="utf-8"))
    meta["modalities"] = ["pet"]
    meta["normalization"] = {"pet": {"kind": "piecewise_linear", "source_knots": [0.0, 2.5, 10.0, 40.0],
                                     "unit_knots": [0.0, 0.4, 0.85, 1.0], "units": "SUV"}}
    return meta


def test_the_builtin_entries_are_what_the_engine_did_before():
    assert modality_names() == ("ct", "mri") and list(MODALITIES) == ["ct", "mri"]
    ct, mri = modality("ct"), modality("mri")
    assert (ct.display_name, ct.units, ct.window_level, ct.prior_units) == ("CT", "HU", (400.0, 40.0), "HU")
    assert (mri.display_name, mri.units, mri.window_level, mri.prior_units) == ("MRI", "scanner", None, "x white matter")
    assert modality_normalization("ct") == ct_normalization() == {
        "kind": "piecewise_linear", "source_knots": [-1024.0, -200.0, 300.0, 1500.0],
        "unit_knots": [0.0, 0.25, 0.85, 1.0], "units": "HU"}
    assert mri_normalization(500.0) == {"kind": "percentile_scale", "percentile": 99.5, "scale": 500.0, "units": "scanner"}
    assert modality_of(ct_normalization()) is ct and modality_of(mri_normalization(1.0)) is mri
    assert phase_names() == ("non_contrast", "arterial", "portal_venous", "delayed")
    assert default_generator("ct") == "abdomen-ct" and default_generator(None) == "brain-mri"
    assert guessed_modality(True) == "ct" and guessed_modality(False) == "mri"
    assert ct.kind_prior("muscle") == (50, (15, 80)) and mri.kind_prior("muscle") == (0.6, pytest.approx((0.48, 0.72)))


def test_an_unregistered_modality_is_refused_in_one_line():
    for refuse in (lambda: modality("pet"), lambda: normalization_for("pet"), lambda: default_generator("pet"),
                   lambda: modality_of({"kind": "piecewise_linear", "units": "SUV"})):
        with pytest.raises(SynthError) as err:
            refuse()
        assert "\n" not in str(err.value)
    with pytest.raises(SynthError, match=r"^unknown modality 'pet'; choose one of ct, mri$"):
        modality("pet")
    with pytest.raises(SynthError, match=r"field modalities\[0\]: Input should be 'ct' or 'mri' \(got 'pet'\)"):
        validate_metadata(_pet_metadata(), "pet-package")


def test_a_bad_definition_is_refused_at_registration(pet):
    with pytest.raises(ValueError, match="registered already"):
        register_modality(PET)
    with pytest.raises(ValueError, match="units 'HU' are ct's already"):
        register_modality(Modality(**{**PET.__dict__, "name": "spect", "units": "HU"}))
    with pytest.raises(ValueError, match="'other'"):
        register_modality(Modality(**{**PET.__dict__, "name": "spect", "units": "counts", "kind_priors": {"brain": 1.0}}))
    with pytest.raises(ValueError, match="reference_tissue"):
        register_modality(Modality(**{**PET.__dict__, "name": "spect", "units": "counts", "prior_kind": "relative"}))
    assert list(MODALITIES) == ["ct", "mri", "pet"]


def test_a_registered_modality_takes_its_own_normalization(pet):
    norm = normalization_for("pet")
    assert norm == {"kind": "piecewise_linear", "source_knots": [0.0, 2.5, 10.0, 40.0],
                    "unit_knots": [0.0, 0.4, 0.85, 1.0], "units": "SUV"}
    assert modality_of(norm) is pet and modality_names() == ("ct", "mri", "pet")
    assert guessed_modality(False) == "mri"  # detected_by None: never guessed from voxels
    with pytest.raises(SynthError, match="no bundled model generates PET"):
        default_generator("pet")


def test_schema_accepts_a_package_naming_a_registered_modality(pet, tmp_path):
    meta = _pet_metadata()
    (tmp_path / "metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    assert read_metadata(tmp_path)["modalities"] == ["pet"]
    wrong = {**meta, "normalization": {"pet": {**meta["normalization"]["pet"], "units": "HU"}}}
    with pytest.raises(SynthError, match="field normalization: normalization of pet is in 'HU', but pet is in 'SUV'"):
        validate_metadata(wrong, "pet-package")


def test_priors_of_a_registered_modality_are_absolute_in_its_units(pet):
    table, norm = _table(), normalization_for("pet")
    cortex_mean = float(model_units(np.array([5.0]), norm)[0])
    meta = priors_metadata(table, {0: {"mean": 0.0, "std": 0.0, "voxels": 10},
                                   1: {"mean": cortex_mean, "std": 0.01, "voxels": 10}}, norm, None)
    assert "reference" not in meta  # absolute priors: no reference tissue
    priors = class_priors(table, norm, meta)
    assert priors.source[1:] == ["measured", "kind", "kind"]
    natural = denormalize(priors.unit, norm)
    assert natural[1] == pytest.approx(5.0, abs=1e-3) and (priors.low[1], priors.high[1]) == pytest.approx((4.5, 5.5), abs=1e-3)
    # liver: no PET kind prior for solid_organ -> "other" (1.5 SUV), twice the tolerance either side
    assert natural[2] == pytest.approx(1.5, abs=1e-3) and (priors.low[2], priors.high[2]) == (0.5, 2.5)
    overridden = class_priors(table, norm, meta, overrides={3: {"mean": 12.0}})
    assert denormalize(overridden.unit, norm)[3] == pytest.approx(12.0, abs=1e-3) and overridden.low[3] == pytest.approx(11.5, abs=1e-3)
    with pytest.raises(SynthError, match="^--phase applies to CT models only; leave it out for PET$"):
        class_priors(table, norm, meta, phase="portal_venous")


def test_calibration_of_a_registered_modality_checks_and_reports_in_its_units(pet):
    table, norm = _table(), normalization_for("pet")
    priors = class_priors(table, norm, {"measured": {}})  # cortex 8, liver and lesion 1.5 SUV: kind priors
    rng = np.random.default_rng(0)
    classes = np.zeros((12, 12, 12), np.int64)
    classes[:4], classes[4:8], classes[8:] = 1, 2, 3
    values = (denormalize(priors.unit, norm)[classes] + rng.normal(0, 0.05, classes.shape)).astype(np.float32)
    assert calibration_check(values, classes, table, priors, norm) == []
    hot = values + np.where(classes == 2, 3.0, 0.0).astype(np.float32)  # the liver 3 SUV too bright
    flagged = calibration_check(hot, classes, table, priors, norm)
    assert [f["name"] for f in flagged] == ["liver"] and flagged[0]["units"] == "SUV"
    assert flagged[0]["range"] == [0.5, 2.5]
    unit = model_units(hot, norm)
    out = calibrate(unit, classes, priors, norm, np.ones(classes.shape, bool))
    assert out[classes == 2].mean() == pytest.approx(1.5, abs=1e-3) and out[classes == 1].mean() == pytest.approx(8.0, abs=1e-3)


def _volume_node(scene, tmp_path, values: np.ndarray):
    from SemanticSynthLib.bridge.scene import import_volume

    path = tmp_path / "volume.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(values.astype(np.float32)), str(path))
    return import_volume(scene, path, "volume")


def test_the_bridge_windows_a_registered_modality_by_its_entry(pet, tmp_path):
    import slicer

    from SemanticSynthLib.bridge.scene import apply_window_level

    scene = slicer.vtkMRMLScene()
    try:
        values = np.random.default_rng(1).uniform(0.0, 20.0, (8, 10, 12))
        node = _volume_node(scene, tmp_path, values)
        display = node.GetDisplayNode()
        apply_window_level(node, "pet")
        assert (display.GetWindow(), display.GetLevel()) == pytest.approx((6.0, 3.0))
        apply_window_level(node, "ct")
        assert (display.GetWindow(), display.GetLevel()) == pytest.approx((400.0, 40.0))
        for unknown in ("mri", None):  # no fixed window: the volume's 1st..99.5th percentile
            apply_window_level(node, unknown)
            low, high = np.percentile(slicer.util.arrayFromVolume(node), [1, 99.5])
            assert (display.GetWindow(), display.GetLevel()) == pytest.approx((high - low, (high + low) / 2), rel=1e-4)
        with pytest.raises(SynthError, match="^unknown modality 'spect'; choose one of ct, mri, pet$"):
            apply_window_level(node, "spect")
    finally:
        scene.Clear(True)


def test_cli_generates_a_registered_modality(pet, tiny_model, tiny_labels, tmp_path):
    """`semanticsynth generate --modality pet` with a tiny package whose metadata lists pet: its normalisation
    (SUV) on output, its priors, and the modality in the provenance."""
    from SemanticSynthLib.cli import main

    package = tmp_path / "tiny-pet"
    shutil.copytree(tiny_model, package)
    meta = json.loads((package / "metadata.json").read_text(encoding="utf-8"))
    old = meta["modalities"][0]
    meta["modalities"] = ["pet"]
    meta["normalization"] = {"pet": modality_normalization("pet")}
    if "priors" in meta:
        block = dict(meta["priors"].get(old, meta["priors"]))
        block.pop("reference", None)
        meta["priors"] = {"pet": block}
    (package / "metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    labels = tmp_path / "labels.nii.gz"
    sitk.WriteImage(tiny_labels, str(labels))
    out = tmp_path / "pet.nrrd"  # NRRD keeps the provenance (SemanticSynth_*)

    assert main(["generate", str(labels), str(out), "--model", str(package), "--modality", "pet", "--steps", "2",
                 "--progress", "none"]) == 0
    image = sitk.ReadImage(str(out))
    values = sitk.GetArrayFromImage(image)
    assert np.isfinite(values).all() and values.min() >= -1.0 and values.max() <= 41.0  # SUV, not scanner units
    assert image.GetMetaData("SemanticSynth_modality") == "pet"
    unregister_modality("pet")
    assert main(["generate", str(labels), str(tmp_path / "again.nrrd"), "--model", str(package), "--modality", "pet",
                 "--progress", "none"]) == 2
