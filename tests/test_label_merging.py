"""Training on merged label maps: the MUSE model sees aseg-level conditions of the same latents."""
from __future__ import annotations

import json

import numpy as np
import pytest

from SemanticSynthLib.cli import main
from SemanticSynthLib.engine.model.package import load_package
from SemanticSynthLib.engine.model.store import resolve_model
from SemanticSynthLib.engine.training.label_merging import load_label_merge
from SemanticSynthLib.errors import SynthError
from testdata import IXI, IXI_IDS


@pytest.fixture(scope="module")
def brain():
    return load_package(resolve_model("brain-mri"), need_diffusion=False)


def test_a_merged_copy_merges_whole_structures(brain):
    merge = load_label_merge(brain, "muse_to_aseg")
    muse = {lab.name: i for i, lab in enumerate(brain.labels.labels, start=1)}
    classes = np.array([muse["Hippocampus_L"], muse["Frontal_WM_L"], muse["Occipital_WM_L"], muse["CorpCall"],
                        muse["AngularGyrus_L"], muse["CalcarineCortex_L"], 0])
    everything = merge.sample(classes, np.random.default_rng(0), 1.0)
    assert everything[0] == classes[0] and everything[-1] == 0  # a one-label structure and background stay
    assert everything[1] == everything[2] == everything[3] > brain.labels.num_classes - 1  # left cerebral WM
    assert everything[4] == everything[5] != everything[1]  # left cortex
    draws = [merge.sample(classes, np.random.default_rng(s), 0.5) for s in range(40)]
    assert any((d[1:4] == classes[1:4]).all() for d in draws) and any(d[1] == d[2] for d in draws)  # partly merged
    assert all(d[1] == d[2] == d[3] or (d[1:4] == classes[1:4]).all() for d in draws)  # a structure merges whole


def test_a_merge_for_another_table_is_refused(brain, tmp_path):
    other = tmp_path / "merge.json"
    other.write_text(json.dumps({"source_table": "totalseg_v2", "target_table": "totalseg_v1", "merge": {"1": 1}}), encoding="utf-8")
    with pytest.raises(SynthError, match="merges totalseg_v2 labels, but the model uses muse"):
        load_label_merge(brain, str(other))
    with pytest.raises(SynthError, match="cannot read the label merge nothing_here"):
        load_label_merge(brain, "nothing_here")


def test_train_diffusion_with_merged_copies_records_the_merge(tmp_path):
    data = tmp_path / "one.csv"
    case = IXI_IDS[0]
    data.write_text(f"image,label,modality\n{IXI / 't1' / f'{case}.nii.gz'},{IXI / 'labels' / f'{case}.nii.gz'},mri\n", encoding="utf-8")
    out = tmp_path / "model"
    assert main(["train-diffusion", "--data", str(data), "--autoencoder", str(resolve_model("brain-mri")),
                 "--init", str(resolve_model("brain-mri")), "--out", str(out), "--conditioning", "detail",
                 "--steps", "2", "--latent-patch", "16", "--merge-labels", "muse_to_aseg", "--progress", "none"]) == 0
    record = json.loads((out / "metadata.json").read_text(encoding="utf-8"))["training"]["diffusion"]
    assert record["merge_labels"] == "muse_to_aseg" and record["merge_fraction"] == 0.5
