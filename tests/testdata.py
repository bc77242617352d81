"""Real-data helpers shared by the tests: paths to ../shared/data, tiny crops, grid comparison."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SEMANTICSYNTH_DATA", REPO.parent / "shared" / "data"))
IXI = SHARED / "ixi_muse"
IXI_IDS = ["IXI013-HH-1212", "IXI014-HH-1236", "IXI015-HH-1258"]


def crop_case(case_id: str, size=32):
    """A centred crop of a real IXI T1 and its MUSE labels, geometry kept (origin moves with the crop)."""
    image = sitk.ReadImage(str(IXI / "t1" / f"{case_id}.nii.gz"))
    labels = sitk.ReadImage(str(IXI / "labels" / f"{case_id}.nii.gz"))
    start = [(s - size) // 2 for s in image.GetSize()]
    return (sitk.RegionOfInterest(image, [size] * 3, start), sitk.RegionOfInterest(labels, [size] * 3, start))


def geometry_of(image: sitk.Image):
    return image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection()


def assert_same_grid(a: sitk.Image, b: sitk.Image):
    assert a.GetSize() == b.GetSize()
    np.testing.assert_allclose(a.GetSpacing(), b.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(a.GetDirection(), b.GetDirection(), atol=1e-6)


def map_points(field: sitk.Image, points_lps: np.ndarray) -> np.ndarray:
    """A field file read independently of ITK's transform classes: output points (N,3, LPS mm) -> source points.

    Trilinear interpolation of the vectors at each point's continuous index, as ITK does inside the grid."""
    from scipy.ndimage import map_coordinates

    points = np.atleast_2d(np.asarray(points_lps, np.float64))
    index_to_physical = np.array(field.GetDirection()).reshape(3, 3) @ np.diag(field.GetSpacing())
    index = np.linalg.solve(index_to_physical, (points - np.array(field.GetOrigin())).T)
    vectors = sitk.GetArrayFromImage(field).transpose(2, 1, 0, 3)
    moved = np.stack([map_coordinates(vectors[..., k], index, order=1, mode="nearest") for k in range(3)], axis=1)
    return points + moved


def write_tiny_pairs(root: Path, size: int = 32) -> Path:
    """Stand-in translation pairs (source/, target/ folders) from real IXI crops, with their truth
    (labels/, target_labels/, field/) beside them."""
    from SemanticSynthLib.engine.translation.synthetic_pairs import make_pair

    for sub in ("source", "target", "labels", "target_labels", "field"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for case_id in IXI_IDS[:2]:
        image, labels = crop_case(case_id, size)
        target, field, target_labels = make_pair(image, labels)
        for sub, volume in (("source", image), ("target", target), ("labels", labels),
                            ("target_labels", target_labels), ("field", field)):
            sitk.WriteImage(volume, str(root / sub / f"{case_id}.nii.gz"))
    return root


def train_tiny_translator(root: Path, spatial_steps: int = 3, steps: int = 3, refine_steps: int = 2) -> Path:
    """A translator package trained for a few steps on tiny pairs: every code path, seconds of CPU."""
    from SemanticSynthLib.cli import main

    pairs = write_tiny_pairs(root / "pairs")
    targets = root / "targets.csv"
    targets.write_text("image,label,modality\n" + "".join(f"{p},,mri\n" for p in sorted((pairs / "target").iterdir())), encoding="utf-8")
    assert main(["train-autoencoder", "--data", str(targets), "--out", str(root / "ae"), "--steps", "3", "--patch", "32",
                 "--adv-weight", "0", "--progress", "none"]) == 0
    assert main(["train-translator", "--data", str(pairs), "--autoencoder", str(root / "ae"), "--out", str(root / "translator"),
                 "--spatial-steps", str(spatial_steps), "--steps", str(steps), "--refine-steps", str(refine_steps),
                 "--refine-sample-steps", "2", "--latent-patch", "8", "--progress", "none",
                 "--default-steps", "2", "--log-every", "1"]) == 0
    return root / "translator"


def in_vocabulary(image: sitk.Image, vocabulary: str) -> sitk.Image:
    """The v2 sample rewritten in another TotalSegmentator-family vocabulary (its one-member renames)."""
    from SemanticSynthLib.engine.volume.label_merges import relabel
    from SemanticSynthLib.engine.volume.labels import LabelTable
    from SemanticSynthLib.engine.volume.vocabularies import builtin_vocabularies

    v2 = {lab.name: lab.id for lab in LabelTable.builtin("totalseg_v2").labels}
    terms = builtin_vocabularies()[vocabulary].terms
    return relabel(image, {v2[t.members[0]]: t.id for t in terms if len(t.members) == 1})
