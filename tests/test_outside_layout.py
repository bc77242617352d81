"""The layout outside the labels (issue 33 item 6): learnt from the unlabelled part of training scans by direction
and distance from the labels in the patient's frame, painted into the U-Net's condition only."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from SemanticSynthLib.cli import main
from SemanticSynthLib.engine.model.conditioning import label_condition
from SemanticSynthLib.engine.model.outside_layout import measure_layout, read_layout
from SemanticSynthLib.engine.model.package import load_package
from SemanticSynthLib.engine.training.dataset import Case
from SemanticSynthLib.errors import SynthError

SPACING = (2.0, 2.0, 2.0)
IDENTITY = (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0)
# Array axis 0 runs along LPS -y (anterior), axis 1 along +z (superior), axis 2 along +x (left): another scanner's
# storage order of the same anatomy.
PERMUTED = (0, 0, 1.0, -1.0, 0, 0, 0, 1.0, 0)


def head(direction, shape=(48, 48, 48), radius_mm=24.0):
    """A round 'brain' (label 1) in a 'head': 0.1 (bone) within 6 mm of it, 0.6 (scalp) from 6 to 14 mm, air beyond,
    except an 'eye' (0.9) in front of the brain (LPS y < -32 mm from the centre, |x| < 12, |z| < 12)."""
    axes = np.array(direction, float).reshape(3, 3) * np.array(SPACING)[None, :]
    index = np.indices(shape).reshape(3, -1).T - (np.array(shape) - 1) / 2
    lps = (index @ axes.T).reshape(*shape, 3)
    r = np.linalg.norm(lps, axis=-1)
    classes = (r <= radius_mm).astype(np.int16)
    d = r - radius_mm
    image = np.where(d <= 6, 0.1, np.where(d <= 14, 0.6, 0.0)).astype(np.float32)
    eye = (lps[..., 1] < -radius_mm - 8) & (np.abs(lps[..., 0]) < 12) & (np.abs(lps[..., 2]) < 12)
    image[eye & (d > 6)] = 0.9
    image[classes > 0] = 0.5
    return Case(image, classes, "mri", "head", None, SPACING, direction)


def test_the_layout_follows_distance_and_direction_in_the_patient_frame():
    layout = measure_layout([head(IDENTITY)])
    other = head(PERMUTED)  # painted on a map stored in another axis order
    painted = layout.paint(other.classes, other.spacing, other.direction)
    outside = other.classes == 0
    assert np.isnan(painted[~outside]).all() and np.isfinite(painted[outside]).all()
    truth = other.image
    assert np.corrcoef(painted[outside], truth[outside])[0, 1] > 0.8
    # Bone, scalp and eye where the training scan had them, in the other map's own axes.
    for value in (0.1, 0.6):
        where = outside & (truth == value)
        assert abs(float(np.median(painted[where])) - value) < 0.15, value
    # The eye: brighter than what lies at its distances in other directions (15-degree bins and the 4 mm grid blur it).
    eye = truth == 0.9
    distance = np.linalg.norm(np.argwhere(outside) - (np.array(truth.shape) - 1) / 2, axis=1)
    near = np.zeros_like(outside)
    near[outside] = (distance >= distance[eye[outside]].min()) & (distance <= distance[eye[outside]].max())
    assert np.median(painted[eye]) > 0.5 and np.median(painted[eye]) > 1.5 * np.median(painted[near & ~eye])
    # The constant it replaces is far worse.
    assert np.abs(painted[outside] - truth[outside]).mean() < 0.5 * np.abs(truth[outside] - truth[outside].mean()).mean()
    assert layout.paint(np.zeros((8, 8, 8), np.int16), SPACING, IDENTITY) is None  # no label: nothing to paint


def test_a_damaged_layout_is_a_one_line_error():
    good = measure_layout([head(IDENTITY, (24, 24, 24), 10.0)]).metadata()
    assert np.allclose(read_layout(good).mean, np.array(good["mean"]).reshape(good["shape"]))
    for bad in ({**good, "shape": [2, 2]}, {**good, "mean": good["mean"][:-1]}, {**good, "mean": ["x"] * len(good["mean"])},
                {**good, "mean": [float("nan")] * len(good["mean"])}, {**good, "kind": "atlas"},
                {**good, "distance_step_mm": 0}, "layout"):
        with pytest.raises(SynthError, match=r"^the model's priors have a malformed 'outside_layout'.*reinstall it$"):
            read_layout(bad)


def test_train_diffusion_learns_the_layout_and_generation_conditions_on_it(tiny_model, tiny_dataset, tiny_labels, tmp_path,
                                                                         capsys):
    """--outside-layout measures the layout into the package; the condition then differs outside the labels only,
    the decoder's guide not at all; generation keeps the map's grid; a damaged layout stops generation in one line."""
    model = tmp_path / "model"
    assert main(["train-diffusion", "--data", str(tiny_dataset), "--autoencoder", str(tiny_model), "--init", str(tiny_model),
                 "--out", str(model), "--steps", "2", "--latent-patch", "8", "--progress", "none", "--default-steps", "2",
                 "--outside-layout"]) == 0
    meta = json.loads((model / "metadata.json").read_text(encoding="utf-8"))
    block = meta["priors"]["mri"]["outside_layout"]
    assert block["kind"] == "direction_distance" and len(block["mean"]) == int(np.prod(block["shape"]))
    assert meta["training"]["diffusion"]["outside_layout"] is True

    package = load_package(model)
    priors = package.priors("mri")
    ids = sitk.GetArrayFromImage(tiny_labels).transpose(2, 1, 0)
    classes = np.zeros(tuple(-(-s // 8) * 8 for s in ids.shape), np.int64)
    classes[: ids.shape[0], : ids.shape[1], : ids.shape[2]] = _classes(package, ids)
    t = torch.from_numpy(classes)[None, None]
    geometry = (tiny_labels.GetSpacing(), tiny_labels.GetDirection())
    with_layout = label_condition(t, package.labels.num_classes, package.factor, package.conditioning, priors, geometry)
    without = label_condition(t, package.labels.num_classes, package.factor, package.conditioning, priors)
    f = package.factor
    labelled_blocks = torch.nn.functional.max_pool3d((t > 0).float(), f)[0, 0] > 0
    all_labelled = -torch.nn.functional.max_pool3d(-(t > 0).float(), f)[0, 0] > 0
    changed = (with_layout != without).any(dim=1)[0]
    assert changed[~labelled_blocks].any() and not changed[all_labelled].any()
    assert np.array_equal(priors.guide(classes), package.priors("mri").guide(classes))  # the decoder's input as trained

    out = tmp_path / "out.nii.gz"
    labels = tmp_path / "labels.nii.gz"
    sitk.WriteImage(tiny_labels, str(labels))
    assert main(["generate", str(labels), str(out), "--model", str(model), "--progress", "none"]) == 0
    image = sitk.ReadImage(str(out))
    assert image.GetSize() == tiny_labels.GetSize() and image.GetSpacing() == tiny_labels.GetSpacing()

    damaged = tmp_path / "damaged"
    shutil.copytree(model, damaged)
    meta["priors"]["mri"]["outside_layout"]["mean"][3] = "x"
    (damaged / "metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    assert main(["generate", str(labels), str(tmp_path / "never.nii.gz"), "--model", str(damaged), "--progress", "none"]) != 0
    assert not (tmp_path / "never.nii.gz").exists()
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "malformed 'outside_layout'" in error[0], error


def _classes(package, ids: np.ndarray) -> np.ndarray:
    from SemanticSynthLib.engine.volume.labels import to_class_indices

    return to_class_indices(ids, package.labels, None, "background")
