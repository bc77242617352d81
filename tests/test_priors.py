"""Issue 9: the label-aware decoder, intensity priors and kinds, the whole vocabulary, edges, calibration."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from SemanticSynthLib.engine.synthesis.calibration import calibrate, calibration_check
from SemanticSynthLib.engine.synthesis.generate import generate_volume
from SemanticSynthLib.engine.volume.geometry import edge_margins, extend_edges, inside_input, resample_labels, same_grid, working_grid
from SemanticSynthLib.engine.volume.intensity import ct_normalization, denormalize, normalize
from SemanticSynthLib.engine.volume.io import array_of
from SemanticSynthLib.engine.model.label_autoencoder import LabelAwareVQVAE
from SemanticSynthLib.engine.volume.labels import LabelTable
from SemanticSynthLib.engine.model.networks import label_autoencoder_config
from SemanticSynthLib.engine.model.package import load_package
from SemanticSynthLib.engine.model.priors import TISSUE_KINDS, class_priors, load_overrides, priors_metadata
from SemanticSynthLib.errors import SynthError


def _ct_table():
    return LabelTable.builtin("totalseg_v2")


def test_every_builtin_label_has_a_kind_and_ct_priors_for_both_phases():
    for name in ("totalseg_v2", "amos", "muse"):
        for lab in LabelTable.builtin(name).labels:
            assert lab.kind in TISSUE_KINDS[1:], (name, lab.name, lab.kind)
            if name != "muse":
                for phase in ("non_contrast", "portal_venous"):
                    p = lab.prior[phase]
                    assert p["range"][0] <= p["mean"] <= p["range"][1], (lab.name, phase)


def test_ct_priors_invert_to_the_reference_hu():
    table, norm = _ct_table(), ct_normalization()
    priors = class_priors(table, norm, {"measured": {}, "phase": "non_contrast"}, phase="portal_venous")
    hu = denormalize(priors.unit, norm)
    for index, lab in enumerate(table.labels, start=1):
        assert abs(hu[index] - lab.prior["portal_venous"]["mean"]) < 0.5, lab.name
        assert priors.source[index] == "reference:portal_venous"
    liver = table.id_by_name()["liver"]
    measured = {str(liver): {"mean": float(normalize(np.array([61.0]), norm)[0]), "std": 0.01, "voxels": 100}}
    default = class_priors(table, norm, {"measured": measured, "phase": "non_contrast"})
    liver_index = [lab.id for lab in table.labels].index(liver) + 1
    assert abs(denormalize(default.unit, norm)[liver_index] - 61.0) < 0.5  # the training data's own mean
    assert default.source[liver_index] == "measured"
    # An unseen class gets the reference of the training data's phase.
    aorta_index = [lab.name for lab in table.labels].index("aorta") + 1
    assert abs(denormalize(default.unit, norm)[aorta_index] - table.labels[aorta_index - 1].prior["non_contrast"]["mean"]) < 0.5


def test_mri_priors_are_multiples_of_white_matter(tmp_path):
    table = LabelTable.builtin("muse")
    wm = [lab for lab in table.labels if "WM" in lab.name.split("_")]
    index_of = {lab.id: i for i, lab in enumerate(table.labels, start=1)}
    measured = {index_of[wm[0].id]: {"mean": 0.5, "std": 0.02, "voxels": 1000}, 0: {"mean": 0.05, "std": 0.01, "voxels": 9}}
    meta = priors_metadata(table, measured, {"kind": "percentile_scale", "units": "scanner"}, None)
    assert meta["reference"]["mean"] == pytest.approx(0.5)
    overrides_file = tmp_path / "priors.json"
    overrides_file.write_text(json.dumps({"CortCSF": 0.4}), encoding="utf-8")
    priors = class_priors(table, {"kind": "percentile_scale", "units": "scanner"}, meta,
                          overrides=load_overrides(overrides_file, table))
    csf = index_of[table.id_by_name()["cortcsf"]]
    assert priors.unit[csf] == pytest.approx(0.2)  # 0.4 x white matter's 0.5
    assert priors.source[csf] == "override"
    with pytest.raises(SynthError, match="--phase applies to CT"):
        class_priors(table, {"kind": "percentile_scale", "units": "scanner"}, meta, phase="portal_venous")
    overrides_file.write_text(json.dumps({"no_such_region": 1.0}), encoding="utf-8")
    with pytest.raises(SynthError, match="not a label of the model"):
        load_overrides(overrides_file, table)


def test_calibration_flags_a_deliberately_wrong_prior(tmp_path):
    table, norm = _ct_table(), ct_normalization()
    priors = class_priors(table, norm, {"measured": {}, "phase": "non_contrast"}, phase="non_contrast")
    classes = np.zeros((20, 20, 20), np.int64)
    liver = [lab.name for lab in table.labels].index("liver") + 1
    spleen = [lab.name for lab in table.labels].index("spleen") + 1
    classes[:10], classes[10:] = liver, spleen
    values = denormalize(priors.paint(classes)[0], norm)
    assert calibration_check(values, classes, table, priors, norm) == []  # the priors themselves pass
    overrides_file = tmp_path / "wrong.json"
    overrides_file.write_text(json.dumps({"liver": {"mean": -900, "range": [-950, -850]}}), encoding="utf-8")
    wrong = class_priors(table, norm, {"measured": {}, "phase": "non_contrast"}, "non_contrast",
                         load_overrides(overrides_file, table))
    flagged = calibration_check(values, classes, table, wrong, norm)
    assert [f["name"] for f in flagged] == ["liver"]
    assert flagged[0]["range"] == [-950, -850] and flagged[0]["units"] == "HU"


def test_calibration_limits_a_label_spread_to_training_and_keeps_the_texture():
    """A bone label generated with 3x its training spread (the CT model's raw vertebrae) comes back at its
    training spread with its mean on the prior, and no dark core; a label within its spread is only shifted."""
    table, norm = _ct_table(), ct_normalization()
    names = [lab.name for lab in table.labels]
    bone, liver = names.index("vertebrae_L2") + 1, names.index("liver") + 1
    bone_id, liver_id = table.labels[bone - 1].id, table.labels[liver - 1].id
    measured = {str(bone_id): {"mean": float(normalize(np.array([180.0]), norm)[0]), "std": 0.02},
                str(liver_id): {"mean": float(normalize(np.array([50.0]), norm)[0]), "std": 0.02}}
    priors = class_priors(table, norm, {"measured": measured, "phase": "non_contrast"})
    rib = names.index("rib_left_3") + 1  # unseen bone: the median spread of measured bones
    assert priors.spread[bone] == pytest.approx(0.02) and priors.spread[rib] == pytest.approx(0.02)
    assert np.isnan(priors.spread[names.index("lung_upper_lobe_left") + 1])  # no measured class of its kind (lung)
    rng = np.random.default_rng(0)
    classes = np.zeros((16, 16, 16), np.int64)
    classes[:8], classes[8:] = bone, liver
    texture = rng.standard_normal(classes.shape)
    unit = (priors.unit[classes] + 0.06 + np.where(classes == bone, 0.06, 0.01) * texture).astype(np.float32)
    inside = np.ones(classes.shape, bool)
    out = calibrate(unit, classes, priors, norm, inside)
    calibrated_bone = normalize(out[classes == bone], norm)
    assert calibrated_bone.std() == pytest.approx(0.02, rel=0.02)
    assert out[classes == bone].mean() == pytest.approx(180.0, abs=0.5)
    assert out[classes == liver].mean() == pytest.approx(50.0, abs=0.5)
    assert np.corrcoef(calibrated_bone, texture[classes == bone])[0, 1] > 0.99  # texture kept, only scaled
    liver_before = denormalize(unit, norm)[classes == liver]
    assert np.allclose(out[classes == liver] - liver_before, (out[classes == liver] - liver_before).mean(), atol=1e-3)


def test_a_measured_gas_and_content_label_is_matched_in_model_units_not_lifted_in_hu():
    """A colon of gas (-950 HU) and content (0 HU) lies on both sides of the CT normalisation's knot, so the HU
    reading of its measured mean in model units is not its mean in HU. Generated exactly as its training voxels, it
    must come back unchanged (in HU it was lifted by 160-190 HU: issue 33 item 4, scripts/ct_artifacts.py); a prior
    given in HU (--priors) is still matched in HU."""
    table, norm = _ct_table(), ct_normalization()
    colon = [lab.name for lab in table.labels].index("colon") + 1
    hu = np.where(np.arange(16 ** 3).reshape(16, 16, 16) % 2 == 0, -950.0, 0.0)
    unit = normalize(hu, norm).astype(np.float32)
    measured = {str(table.labels[colon - 1].id): {"mean": float(unit.mean()), "std": float(unit.std())}}
    assert abs(float(denormalize(np.array([unit.mean()]), norm)[0]) - hu.mean()) > 100  # the knot's bias is real
    classes = np.full(hu.shape, colon, np.int64)
    inside = np.ones(hu.shape, bool)
    out = calibrate(unit, classes, class_priors(table, norm, {"measured": measured, "phase": "non_contrast"}), norm, inside)
    assert np.abs(out - hu).max() < 1.0
    given = class_priors(table, norm, {"measured": measured, "phase": "non_contrast"},
                         overrides={table.labels[colon - 1].id: {"mean": -300.0}})
    assert calibrate(unit, classes, given, norm, inside).mean() == pytest.approx(-300.0, abs=0.5)


def _random_head(model: LabelAwareVQVAE) -> LabelAwareVQVAE:
    # The modulations and each refinement block's last convolution start at zero (identity) by design; randomise
    # them so the labels act as trained ones would.
    torch.manual_seed(0)
    for modulation in [model.modulation] + [block.modulation for block in model.refinement]:
        torch.nn.init.normal_(modulation.gamma_beta.weight, std=0.3)
    for block in model.refinement:
        torch.nn.init.normal_(block.project.weight, std=0.1)
    return model.eval()


def _label_decoder(head_blocks: int) -> LabelAwareVQVAE:
    config = label_autoencoder_config()
    return _random_head(LabelAwareVQVAE(config["vqvae"], config["head_channels"], config["guide_hidden"],
                                        config["kind_embedding"], head_blocks=head_blocks))


@pytest.mark.parametrize("head_blocks", [0, 1])
def test_decoder_output_follows_the_labels_locally(head_blocks):
    config = label_autoencoder_config()
    model = _label_decoder(head_blocks)
    latent = torch.randn(1, config["vqvae"]["embedding_dim"], 8, 8, 8)
    guide = torch.zeros(1, 2, 32, 32, 32)
    guide[:, 0] = 0.3
    guide[:, 1] = TISSUE_KINDS.index("brain")
    changed = guide.clone()
    changed[:, 0, 12:18, 12:18, 12:18] = 0.8
    changed[:, 1, 12:18, 12:18, 12:18] = TISSUE_KINDS.index("fluid")
    with torch.no_grad():
        quantized, _ = model.quantize(latent)
        a = model.decode(quantized, guide)[0, 0]
        b = model.decode(quantized, changed)[0, 0]
    diff = (a - b).abs()
    assert diff[12:18, 12:18, 12:18].min() > 0.1  # the region follows its new label
    near = torch.zeros_like(diff, dtype=torch.bool)
    r = model.head_halo  # the guide's receptive field in the head: 2 voxels, and 2 more per refinement block
    near[12 - r:18 + r, 12 - r:18 + r, 12 - r:18 + r] = True
    assert diff[~near].max() == 0.0  # and nothing changes away from it


@pytest.mark.parametrize("head_blocks", [0, 1])
def test_decoder_in_slabs_equals_one_pass(monkeypatch, head_blocks):
    """Inference runs the last upsampling and the full-resolution head over slabs (bounded memory); the values
    must not change."""
    from SemanticSynthLib.engine.model import label_autoencoder

    monkeypatch.setattr(label_autoencoder, "HEAD_SLAB_VOXELS", 16 * 16 * 16)  # slabs of 16 on a 16x16 cross-section
    config = label_autoencoder_config()
    model = _label_decoder(head_blocks)
    torch.nn.init.normal_(model.modulation.shared[0].weight, std=0.3)
    depth = 3 * label_autoencoder.HEAD_SLAB_MIN + 8  # several slabs and a thin last one
    latent = torch.randn(1, config["vqvae"]["embedding_dim"], 4, 4, depth // 4)
    guide = torch.stack([torch.rand(1, 16, 16, depth), torch.randint(0, len(TISSUE_KINDS), (1, 16, 16, depth)).float()], 1)
    with torch.no_grad():
        quantized, _ = model.quantize(latent)
        slabs = model.decode(quantized, guide)
        features = model.vqvae.decode(quantized)
        whole = model._guided_head(features, guide)
    assert model._slab(guide) == label_autoencoder.HEAD_SLAB_MIN < depth
    assert slabs.shape == whole.shape == (1, 1, 16, 16, depth)
    # convolutions over slabs of other shapes may take other kernels: rounding relative to the values' scale
    assert torch.allclose(slabs, whole, atol=1e-5 * whole.abs().max()), float((slabs - whole).abs().max())


def test_edge_labels_are_replicated_into_the_working_grid():
    labels = sitk.GetImageFromArray(np.arange(1, 6, dtype=np.uint8).repeat(100).reshape(5, 10, 10))  # z = 5 slices
    labels.SetSpacing((1.0, 1.0, 3.0))
    grid = working_grid(labels, (1.0, 1.0, 1.0), 16)  # 16 working slices over 15 mm: one past the far edge
    plain = array_of(resample_labels(labels, grid))
    extended = array_of(resample_labels(extend_edges(labels, grid), grid))
    assert (plain[:10, :10, -1] == 0).all()  # background past the edge, as before
    assert (extended[..., -1] == 5).all()  # the last slice's labels instead, also past the x and y edges
    assert np.array_equal(plain[:10, :10, :15], extended[:10, :10, :15])  # the inside is untouched


def test_labels_cut_at_an_end_get_a_margin_of_replicated_labels():
    ids = np.zeros((5, 10, 10), np.uint8)
    ids[:, 2:8, 2:8] = np.arange(1, 6, dtype=np.uint8)[:, None, None]  # labelled in every z slice, not at x/y edges
    labels = sitk.GetImageFromArray(ids)
    labels.SetSpacing((1.0, 1.0, 3.0))
    labels.SetOrigin((10.0, 20.0, 30.0))
    margins = edge_margins(labels, 4)
    assert margins == ((0, 0), (0, 0), (4, 4))
    grid = working_grid(labels, (1.0, 1.0, 1.0), 16, margins)  # 15 mm + 2 x 4 mm -> 32 working slices
    assert grid.GetSize() == (16, 16, 32)
    # The 9 slices of rounding slack are shared: 4 + 4 before the input, 4 + 5 after (x and y have no margin: all
    # their slack lies past the far corner).
    assert np.allclose(grid.GetOrigin(), (10.0, 20.0, 30.0 - 1.0 - 8.0))  # first working centre 8 voxels before
    extended = array_of(resample_labels(extend_edges(labels, grid), grid))
    assert (extended[2:8, 2:8, :11] == 1).all() and (extended[2:8, 2:8, 20:] == 5).all()  # margin = edge slice
    inside = inside_input(labels, grid)
    assert inside[0, 0].tolist() == [8 <= k < 23 for k in range(32)]  # the input's own 15 slices only
    assert inside[:10, :10, 8:23].all() and not inside[10:].any() and not inside[:, 10:].any()


def test_a_margin_at_the_first_end_only_takes_all_the_slack():
    ids = np.zeros((5, 10, 10), np.uint8)
    ids[0, 2:8, 2:8] = 1  # labels in the first z slice only
    labels = sitk.GetImageFromArray(ids)
    labels.SetSpacing((1.0, 1.0, 3.0))
    margins = edge_margins(labels, 4)
    assert margins == ((0, 0), (0, 0), (4, 0))
    grid = working_grid(labels, (1.0, 1.0, 1.0), 16, margins)  # 15 + 4 -> 32: 13 of slack, all before
    inside = inside_input(labels, grid)
    assert grid.GetSize() == (16, 16, 32) and inside[0, 0].tolist() == [17 <= k < 32 for k in range(32)]


def test_the_class_matched_edge_figure_separates_a_slice_s_mix_from_its_quality():
    from SemanticSynthLib.engine.evaluation.edges import ends, per_slice_matched_mae
    rng = np.random.default_rng(0)
    classes = np.ones((6, 20, 20), np.int64)
    classes[:, :, 15:] = 2  # class 2 departs 10x as far as class 1 from its painting
    classes[0, :, 5:] = 2   # the first slice is mostly class 2: its raw error is far above the inside's
    spread = np.where(classes == 2, 10.0, 1.0)
    painted = np.zeros(classes.shape)
    a = painted + spread * rng.choice([-1.0, 1.0], classes.shape)
    labelled = np.ones(classes.shape, bool)
    raw = ends([float(np.abs(a - painted)[k].mean()) for k in range(6)])
    assert raw["first_ratio"] > 2  # by the raw figure the first slice looks bad...
    matched = ends(per_slice_matched_mae(a, painted, labelled, classes))
    assert matched["first_ratio"] == pytest.approx(1.0) and matched["last_ratio"] == pytest.approx(1.0)  # ...it is not
    a[-1] = painted[-1] + 3 * spread[-1] * rng.choice([-1.0, 1.0], classes.shape[1:])  # a real fault at the last slice
    assert ends(per_slice_matched_mae(a, painted, labelled, classes))["last_ratio"] == pytest.approx(3.0)


def test_generation_keeps_the_grid_of_a_map_cut_at_its_ends(tiny_model, tiny_labels):
    ids = sitk.GetArrayFromImage(tiny_labels)
    cut = sitk.GetImageFromArray(ids[ids.shape[0] // 3: 2 * ids.shape[0] // 3].copy())  # through the labels
    cut.CopyInformation(tiny_labels[:, :, ids.shape[0] // 3: 2 * ids.shape[0] // 3])
    assert any(any(end) for end in edge_margins(cut, 1))
    out = generate_volume(load_package(tiny_model), cut, steps=2, seed=0)
    assert same_grid(out, cut) and np.isfinite(sitk.GetArrayFromImage(out)).all()


def test_an_unseen_class_of_the_table_generates(tiny_model, tiny_labels):
    package = load_package(tiny_model)
    assert package.label_aware and package.labels.num_classes == len(LabelTable.builtin("muse").labels) + 1
    seen = package.seen_labels("mri")
    unseen = next(lab.id for lab in package.labels.labels if lab.id not in seen)
    ids = sitk.GetArrayFromImage(tiny_labels).copy()
    ids[10:20, 10:20, 10:20] = unseen
    labels = sitk.GetImageFromArray(ids)
    labels.CopyInformation(tiny_labels)
    out = generate_volume(package, labels, steps=2, seed=0)
    assert unseen in json.loads(out.GetMetaData("SemanticSynth_unseen_labels"))
    assert np.isfinite(sitk.GetArrayFromImage(out)).all()


def test_calibration_moves_label_means_onto_their_priors(tiny_model, tiny_labels):
    package = load_package(tiny_model)
    by_name = package.labels.id_by_name()
    csf = by_name["cortcsf"]
    wrong = {csf: {"mean": 0.15, "range": [0.14, 0.16]}}  # far darker than any T1 CSF the model saw
    raw = generate_volume(package, tiny_labels, steps=2, seed=0, prior_overrides=wrong, calibrate=False)
    report = json.loads(raw.GetMetaData("SemanticSynth_calibration"))
    assert "CortCSF" in [f["name"] for f in report["outside_prior_range"]]
    assert report["means_matched_to_priors"] is False
    calibrated = generate_volume(package, tiny_labels, steps=2, seed=0, prior_overrides=wrong)
    report = json.loads(calibrated.GetMetaData("SemanticSynth_calibration"))
    assert "CortCSF" in [f["name"] for f in report["outside_prior_range"]]  # the check reads the network's output
    assert report["means_matched_to_priors"] is True
    ids = sitk.GetArrayFromImage(tiny_labels)
    values = sitk.GetArrayFromImage(calibrated)
    wm = np.isin(ids, [lab.id for lab in package.labels.labels if "WM" in lab.name.split("_")])
    assert values[ids == csf].mean() / values[wm].mean() == pytest.approx(0.15, rel=0.03)
    assert not np.allclose(sitk.GetArrayFromImage(raw), values)


def test_a_surround_paints_the_unlabelled_voxels_near_a_label_and_fades_out():
    """A package's surround: unlabelled voxels within full_steps of a label get the surround's prior, further out
    it fades linearly to the background's, in the decoder's guide and in the diffusion condition; labelled voxels,
    the far background and the kind image keep theirs. A malformed surround is a one-line error."""
    from SemanticSynthLib.engine.model.conditioning import label_condition

    table, norm = _ct_table(), ct_normalization()
    meta = {"measured": {"0": {"mean": -0.5}}, "phase": "non_contrast"}
    plain = class_priors(table, norm, meta)
    ringed = class_priors(table, norm, {**meta, "surround": {"full_steps": 2, "fade_steps": 3, "mean": 0.3}})
    n = table.num_classes
    classes = np.zeros((24, 24, 24), np.int64)
    classes[10:13, 10:13, 10:13] = 5
    prior, kind = ringed.paint(classes)
    assert np.array_equal(kind, plain.paint(classes)[1])
    assert np.allclose(prior[classes == 5], plain.unit[5])
    # Along an axis from the label's face: steps 1 and 2 full, 3..5 fading by quarters, 6 and beyond background.
    line = prior[13:22, 11, 11]
    expected = [0.3, 0.3, 0.3 - 0.8 / 4, 0.3 - 0.8 / 2, 0.3 - 0.8 * 3 / 4, -0.5, -0.5, -0.5, -0.5]
    assert np.allclose(line, expected), line
    assert np.allclose(prior[0, 0, 0], -0.5) and len(ringed.unit) == n  # no extra class
    # The fade is rounder than a box: the body diagonal reaches step 2 one voxel out, step 6 (gone) four out.
    assert np.isclose(prior[13, 13, 13], 0.3) and np.isclose(prior[16, 16, 16], -0.5)

    t = torch.from_numpy(classes)[None, None]
    with_ring = label_condition(t, n, 4, "detail", ringed)
    without = label_condition(t, n, 4, "detail", plain)
    changed = (with_ring != without).any(dim=1)[0]  # latent voxels (4^3 blocks) the surround reaches
    assert changed.any() and not changed[0, 0, 0] and not changed[5, 5, 5]
    assert torch.equal(with_ring[:, 64:], without[:, 64:])  # the kind fractions: the surround is background

    for bad in ({"full_steps": 0, "fade_steps": 1, "mean": 0.2}, {"full_steps": 2, "fade_steps": 1, "mean": float("nan")},
                {"full_steps": 2, "mean": 0.2}, "ring"):
        with pytest.raises(SynthError, match="malformed 'surround'"):
            class_priors(table, norm, {**meta, "surround": bad})


def test_decoder_only_with_a_surround_writes_an_autoencoder_for_a_new_unet(tiny_model, tiny_dataset, tmp_path):
    """--surround-mm with --decoder-only changes the painting, so the package drops the U-Net trained on the old
    one; a U-Net trained on it (started from the old one) generates on the label map's grid."""
    from SemanticSynthLib.cli import main

    ae, model = tmp_path / "ae", tmp_path / "model"
    assert main(["train-autoencoder", "--data", str(tiny_dataset), "--out", str(ae), "--init", str(tiny_model),
                 "--label-table", "muse", "--decoder-only", "--surround-mm", "4,10", "--steps", "2", "--patch", "32",
                 "--progress", "none"]) == 0
    meta = json.loads((ae / "metadata.json").read_text(encoding="utf-8"))
    assert "diffusion" not in meta and not (ae / "diffusion.safetensors").exists()
    surround = next(iter(meta["priors"].values()))["surround"]
    # 4 mm at the tiny model's 2 mm: 2 steps; 10 mm: gone at step 5, so 2 fading steps between.
    assert (surround["full_steps"], surround["fade_steps"]) == (2, 2) and surround["voxels"] > 0
    assert load_package(ae, need_diffusion=False).priors("mri").surround == surround
    assert main(["train-diffusion", "--data", str(tiny_dataset), "--autoencoder", str(ae), "--init", str(tiny_model),
                 "--out", str(model), "--steps", "2", "--latent-patch", "8", "--progress", "none"]) == 0
    labels = sitk.ReadImage(str(next((tiny_dataset / "labelsTr").iterdir())))
    assert generate_volume(load_package(model), labels, steps=2).GetSize() == labels.GetSize()
    # Fine-tuning the whole autoencoder of a package with a surround keeps its surround (measured again).
    whole = tmp_path / "whole"
    assert main(["train-autoencoder", "--data", str(tiny_dataset), "--out", str(whole), "--init", str(model),
                 "--label-table", "muse", "--steps", "1", "--patch", "32", "--progress", "none"]) == 0
    kept = next(iter(json.loads((whole / "metadata.json").read_text(encoding="utf-8"))["priors"].values()))["surround"]
    assert (kept["full_steps"], kept["fade_steps"]) == (2, 2) and kept["mean"] == pytest.approx(surround["mean"])


def test_a_surround_needs_the_label_aware_autoencoder(tiny_dataset, tmp_path, capsys):
    """--surround-mm without --label-table: one line, before any data is read, nothing written."""
    from SemanticSynthLib.cli import main

    assert main(["train-autoencoder", "--data", str(tiny_dataset), "--out", str(tmp_path / "ae"), "--surround-mm", "4,10",
                 "--steps", "1", "--patch", "32", "--progress", "none"]) != 0
    err = capsys.readouterr().err
    assert "--surround-mm is for the label-aware autoencoder" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "ae").exists()
