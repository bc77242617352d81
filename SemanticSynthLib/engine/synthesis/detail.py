"""Generation's last step where the label map is finer than the model: the detail refiner on the map's own grid.

The volume generated on the working grid has been calibrated and linearly resampled onto the map's grid. The refiner
(engine/model/refiner.py) sees it with the map's guide painted there: the map's own classes, and where generation
added classes on the working grid (gas in the bowel, the body's outline) those, carried over by nearest neighbour.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import torch

from ..model.refiner import MIN_REFINE_FACTOR, fine_priors, refine_factor, refine_volume
from ..volume.geometry import resample_labels
from ..volume.intensity import denormalize, normalize
from ..volume.io import array_of, image_like
from ..volume.labels import to_class_indices
from .sampling import require_finite, with_fp32_fallback


def refines(package, label_map: sitk.Image) -> bool:
    """Whether generation refines on this map's grid: the package has a refiner and the map is finer than the
    working spacing by MIN_REFINE_FACTOR on some axis."""
    return (package.refiner is not None
            and refine_factor(label_map.GetSpacing(), package.working_spacing) >= MIN_REFINE_FACTOR)


def fine_classes(package, label_map: sitk.Image, working_classes: np.ndarray, grid: sitk.Image, table_classes: int,
                 mapping, unknown: str) -> np.ndarray:
    """The map's class indices on its own grid, with the classes added on the working grid (index >= table_classes)
    where they were placed."""
    fine = to_class_indices(array_of(label_map), package.labels, mapping, unknown)
    if package.labels.num_classes > table_classes:
        placed = image_like(working_classes.astype(np.int32), grid)
        added = array_of(resample_labels(placed, label_map))
        fine = np.where(added >= table_classes, added, fine)
    return fine


def refine_detail(package, image: sitk.Image, label_map: sitk.Image, working_classes: np.ndarray, grid: sitk.Image,
                  table_classes: int, priors, mapping, unknown: str, norm: dict, use_bf16: bool, progress):
    """The refined image (same grid, HU or scanner units) and its record for SemanticSynth_refined."""
    classes = fine_classes(package, label_map, working_classes, grid, table_classes, mapping, unknown)
    guide = fine_priors(priors, label_map.GetSpacing(), package.working_spacing).guide(classes).astype(np.float32)
    del classes
    coarse = normalize(array_of(image), norm).astype(np.float32)

    def run(bf16: bool) -> np.ndarray:
        return require_finite(torch.from_numpy(refine_volume(package.refiner, coarse, guide, bf16, progress)),
                              "detail refiner").numpy()

    values = denormalize(with_fp32_fallback(run, use_bf16, progress), norm)
    record = {"spacing": [round(float(s), 4) for s in label_map.GetSpacing()],
              "working_spacing": list(package.working_spacing),
              "factor": round(refine_factor(label_map.GetSpacing(), package.working_spacing), 3)}
    return image_like(values.astype(np.float32), image), record
