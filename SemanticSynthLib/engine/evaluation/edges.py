"""Are the outermost slices as good as the inside? Per-slice measures of a volume along its last axis (docs/edges.md).

For one labelled volume, per slice along the label map's last axis (the one a working grid overhangs most), in
SimpleITK's (z, y, x) array order:
- `per_slice_mae`: mean absolute error over the labelled voxels of each slice (e.g. a reconstruction against the
  real image, or a generated volume against the label map painted with the model's priors);
- `per_slice_matched_mae`: the same, class for class, against what each slice's own mix of classes scores inside;
- `per_slice_label_mean_error`: each label's mean against its painted prior (texture averages out, a shifted
  intensity does not);
- `ends`, `summary`, `labelled_ends`: the first and last slice against the median of those between.
`load_edge_case` reads a package, an image and its label map into the units the figures are given in.
scripts/edge_check.py, scripts/edge_margin_sweep.py and scripts/boundary_rims.py are the command-line front ends.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk

from ...errors import SynthError
from ..model.package import load_package
from ..volume.intensity import denormalize
from ..volume.labels import to_class_indices
from ..volume.modalities import modality_of


def per_slice_mae(a: np.ndarray, b: np.ndarray, labelled: np.ndarray) -> list[float]:
    """Arrays in SimpleITK's (z, y, x) order; labelled voxels of each z-slice (all voxels where a slice has few)."""
    out = []
    for k in range(a.shape[0]):
        mask = labelled[k] if labelled[k].sum() >= 100 else np.ones_like(labelled[k])
        out.append(float(np.abs(a[k] - b[k])[mask].mean()))
    return out


def per_slice_matched_mae(a: np.ndarray, b: np.ndarray, labelled: np.ndarray, classes: np.ndarray) -> list[float]:
    """per_slice_mae over what the same voxels would score if each class departed as it does inside: each slice's
    error divided by sum_c n_c * e_c / n, where e_c is class c's mean absolute error pooled over the interior slices
    (all but the first and last). A slice's raw error mixes how good it is with what it holds: a CT's first slice
    that is 28% colon (gas in contents, hundreds of HU from one flat prior) scores worse than a slice of liver even
    where both are as good as anywhere else. 1 means "as good as the inside, class for class". Voxels of a class the
    interior does not hold are left out."""
    masks = [labelled[k] if labelled[k].sum() >= 100 else np.ones_like(labelled[k]) for k in range(a.shape[0])]
    error = np.abs(a - b)
    total, count = {}, {}
    for k in range(1, a.shape[0] - 1):
        for c in np.unique(classes[k][masks[k]]):
            voxels = masks[k] & (classes[k] == c)
            total[c] = total.get(c, 0.0) + float(error[k][voxels].sum())
            count[c] = count.get(c, 0) + int(voxels.sum())
    out = []
    for k in range(a.shape[0]):
        observed = expected = 0.0
        for c in np.unique(classes[k][masks[k]]):
            if c not in count:
                continue
            voxels = masks[k] & (classes[k] == c)
            observed += float(error[k][voxels].sum())
            expected += int(voxels.sum()) * total[c] / count[c]
        out.append(observed / expected if expected > 0 else float("nan"))
    return out


def per_slice_label_mean_error(a: np.ndarray, painted: np.ndarray, classes: np.ndarray) -> list[float]:
    """Per z-slice: how far each label's mean in `a` is from its painted prior (voxel-weighted over the labels with at
    least 20 voxels in that slice); NaN where a slice holds none. Texture averages out, a shifted intensity does not:
    air smeared into a last slice moves its labels' means (the fault this check is about)."""
    out = []
    for k in range(a.shape[0]):
        errors, weights = [], []
        for c in np.unique(classes[k]):
            mask = classes[k] == c
            if c == 0 or mask.sum() < 20:
                continue
            errors.append(abs(float(a[k][mask].mean()) - float(painted[k][mask].mean())))
            weights.append(int(mask.sum()))
        out.append(float(np.average(errors, weights=weights)) if errors else float("nan"))
    return out


def labelled_ends(values: list[float]) -> dict:
    """ends() over the slices that hold labels (NaN elsewhere), with their indices."""
    held = [k for k, v in enumerate(values) if not np.isnan(v)]
    if len(held) < 3:
        raise SynthError("fewer than 3 slices hold 20 voxels of a label; crop less (--slices) or check the labels")
    return {"slices": [held[0], held[-1]], **ends([values[k] for k in held]), "per_slice": values}


def ends(values: list[float]) -> dict:
    """The first and last values against the median of those between."""
    interior = float(np.median(values[1:-1]))
    return {"first": values[0], "last": values[-1], "interior_median": interior,
            "first_ratio": values[0] / interior, "last_ratio": values[-1] / interior}


def describe(title: str, s: dict, units: str) -> str:
    """One printed line for an ends() result."""
    return (f"{title}: first {s['first']:.4g} ({s['first_ratio']:.2f}x), last {s['last']:.4g} ({s['last_ratio']:.2f}x), "
            f"interior median {s['interior_median']:.4g} {units}")


def summary(values: list[float], labelled: np.ndarray) -> dict:
    out = {**ends(values), "per_slice": values}
    held = [k for k in range(labelled.shape[0]) if labelled[k].sum() >= 100]
    if len(held) > 2 and (held[0] > 0 or held[-1] < labelled.shape[0] - 1):
        out["labelled_extent"] = {"slices": [held[0], held[-1]], **ends([values[k] for k in held])}
    return out


@dataclass
class EdgeCase:
    """A package, the (cropped) image and label map, the class map, and the real image and the painting in the units
    the figures are given in; `to_units` puts a volume the package made into those units."""
    package: Any
    modality: str
    image: sitk.Image
    labels: sitk.Image
    classes: np.ndarray
    labelled: np.ndarray
    real: np.ndarray
    painted: np.ndarray
    divide: float
    units: str

    def to_units(self, volume: np.ndarray) -> np.ndarray:
        return volume / self.divide


def load_edge_case(model, image, labels, *, slices: str | None = None, need_diffusion: bool = True) -> EdgeCase:
    """The volume to check, in the units of the edge figures.

    Args:
        model: a model package folder.
        image: the real image's path.
        labels: its label map's path.
        slices: "A:B" crops image and labels to slices A..B-1 of the last axis first (SimpleITK slicing keeps the
            physical placement), so that the outermost input slices cut through labelled anatomy.
        need_diffusion: False loads an autoencoder package (reconstructions only).

    Returns:
        An EdgeCase: CT in HU as they are; MRI in model units, the real image by its own scale.
    """
    package = load_package(model, need_diffusion=need_diffusion)
    modality = package.modalities[0]
    norm = package.normalization(modality)
    image, labels = sitk.ReadImage(str(image), sitk.sitkFloat32), sitk.ReadImage(str(labels))
    if slices:
        a, b = (int(v) for v in slices.split(":"))
        image, labels = image[:, :, a:b], labels[:, :, a:b]  # SimpleITK slicing keeps the physical placement
    classes = to_class_indices(sitk.GetArrayFromImage(labels), package.labels, unknown="background")
    real = sitk.GetArrayFromImage(image)
    painted = denormalize(package.priors(modality).paint(classes)[0], norm)

    divide = 1.0  # CT: HU as they are
    if norm["kind"] == "percentile_scale":  # MRI: compare in model units, the real image by its own scale
        real = real / float(np.percentile(real[real > 0], norm["percentile"])) / 1.5
        divide = 1.5 * norm["scale"]
    return EdgeCase(package=package, modality=modality, image=image, labels=labels, classes=classes,
                    labelled=classes > 0, real=real, painted=painted / divide, divide=divide,
                    units="model units" if norm["kind"] == "percentile_scale" else modality_of(norm).units)
