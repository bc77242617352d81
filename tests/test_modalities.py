"""One package, two modalities: CT and MRI from one label table, the modality as the U-Net's class condition."""
from __future__ import annotations

import json

import numpy as np
import SimpleITK as sitk

from SemanticSynthLib.cli import main
from SemanticSynthLib.engine.synthesis.generate import generate_volume
from SemanticSynthLib.engine.volume.io import array_of
from SemanticSynthLib.engine.model.package import load_package

from testdata import SHARED, crop_case


def test_one_package_generates_ct_and_mri(tmp_path):
    # MRI crops with MUSE ids; a CT crop whose TotalSegmentator ids are shifted onto MUSE ids, so that both
    # modalities share one label table (what a user does with --label-mapping on real paired tables).
    rows = ["image,label,modality"]
    for i, case_id in enumerate(["IXI013-HH-1212", "IXI014-HH-1236"]):
        image, labels = crop_case(case_id)
        sitk.WriteImage(image, str(tmp_path / f"mri{i}.nii.gz"))
        sitk.WriteImage(labels, str(tmp_path / f"mri{i}_labels.nii.gz"))
        rows.append(f"mri{i}.nii.gz,mri{i}_labels.nii.gz,mri")
    ct = sitk.ReadImage(str(SHARED / "totalseg" / "example_ct_sm.nii.gz"))[40:72, 30:62, :]
    seg = sitk.ReadImage(str(SHARED / "totalseg" / "example_seg.nii.gz"))[40:72, 30:62, :]
    seg_arr = sitk.GetArrayFromImage(seg)
    remapped = sitk.GetImageFromArray(np.where(seg_arr > 0, 4, 0).astype(np.uint8))  # every organ -> MUSE 4
    remapped.CopyInformation(seg)
    sitk.WriteImage(ct, str(tmp_path / "ct.nii.gz"))
    sitk.WriteImage(remapped, str(tmp_path / "ct_labels.nii.gz"))
    rows.append("ct.nii.gz,ct_labels.nii.gz,ct")
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    data = str(tmp_path / "data.csv")
    assert main(["train-autoencoder", "--data", data, "--out", str(tmp_path / "ae"), "--label-table", "muse",
                 "--spacing", "2", "--steps", "3", "--patch", "32", "--adv-start", "100", "--progress", "none"]) == 0
    assert main(["train-diffusion", "--data", data, "--autoencoder", str(tmp_path / "ae"), "--out", str(tmp_path / "m"),
                 "--steps", "3", "--latent-patch", "8", "--progress", "none"]) == 0
    meta = json.loads((tmp_path / "m" / "metadata.json").read_text(encoding="utf-8"))
    assert meta["modalities"] == ["ct", "mri"]
    assert meta["normalization"]["ct"]["units"] == "HU" and meta["normalization"]["mri"]["units"] == "scanner"
    package = load_package(tmp_path / "m")
    labels = sitk.ReadImage(str(tmp_path / "mri0_labels.nii.gz"))
    ct_out = array_of(generate_volume(package, labels, modality="ct", steps=2, seed=0, unknown="background"))
    mri_out = array_of(generate_volume(package, labels, modality="mri", steps=2, seed=0, unknown="background"))
    # CT in HU: brain labels are soft tissue (their CT priors come from the tissue kind); MRI in scanner units.
    assert -200 < np.median(ct_out) < 200
    assert mri_out.min() >= 0 and np.median(mri_out) > 200
    assert not np.allclose(ct_out, mri_out)
