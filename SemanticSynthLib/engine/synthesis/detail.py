"""Generation's last step where the label map is finer than the model: the detail refiner on the map's own grid.

The volume generated on the working grid has been calibrated. Tile by tile of the map's grid, it is linearly
resampled there (as it is without a refiner), the map's own classes are painted into the guide (where generation
added classes on the working grid, gas in the bowel or the body's outline, those, carried over by nearest neighbour),
and the refiner (engine/model/refiner.py) adds its residual. No full-resolution input is made for the whole map: the
output is the one full-resolution array.

The surround's share of the painting (priors.ClassPriors.surround_weight) is made on the working grid and resampled,
since growing it on a 1 mm grid would take 3x the steps in every tile. Training paints it on the case's own grid
(fine_priors); the two differ only where the fade's steps fall.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import torch

from ..model.refiner import MIN_REFINE_FACTOR, refine_factor, refine_tiles
from ..volume.geometry import resample_intensity, resample_labels
from ..volume.intensity import denormalize, normalize
from ..volume.io import array_of, image_like
from ..volume.labels import to_class_indices
from .sampling import require_finite, with_fp32_fallback


def refines(package, label_map: sitk.Image) -> bool:
    """Whether generation refines on this map's grid: the package has a refiner and the map is finer than the
    working spacing by MIN_REFINE_FACTOR on some axis."""
    return (package.refiner is not None
            and refine_factor(label_map.GetSpacing(), package.working_spacing) >= MIN_REFINE_FACTOR)


def refine_detail(package, working: sitk.Image, label_map: sitk.Image, working_classes: np.ndarray,
                  table_classes: int, priors, mapping, unknown: str, norm: dict, background: float, use_bf16: bool,
                  progress) -> tuple[sitk.Image, dict]:
    """The refined volume on the map's grid (HU or scanner units) and its record for SemanticSynth_refined.

    `working`: the calibrated volume on the working grid (HU or scanner units); `working_classes`: its class map
    ((x, y, z), classes added for the map from index `table_classes` on)."""
    added = None
    if package.labels.num_classes > table_classes:
        added = image_like(working_classes.astype(np.int32), working)
    weight = priors.surround_weight(torch.from_numpy(working_classes))
    weight = image_like(weight.numpy(), working) if weight is not None else None

    def inputs(box):
        tile = sitk.RegionOfInterest(label_map, [b.stop - b.start for b in box], [b.start for b in box])
        classes = to_class_indices(array_of(tile), package.labels, mapping, unknown)
        if added is not None:
            placed = array_of(resample_labels(added, tile))
            classes = np.where(placed >= table_classes, placed, classes)
        share = array_of(resample_intensity(weight, tile, default=0.0)) if weight is not None else None
        prior = priors.prior_image(classes, share)
        coarse = normalize(array_of(resample_intensity(working, tile, default=background)), norm)
        return coarse, np.stack([prior, priors.kind[classes].astype(np.float32)])

    def run(bf16: bool) -> np.ndarray:
        refined = refine_tiles(package.refiner, tuple(label_map.GetSize()), inputs, bf16, progress)
        return require_finite(torch.from_numpy(refined), "detail refiner").numpy()

    values = denormalize(with_fp32_fallback(run, use_bf16, progress), norm).astype(np.float32)
    record = {"spacing": [round(float(s), 4) for s in label_map.GetSpacing()],
              "working_spacing": list(package.working_spacing),
              "factor": round(refine_factor(label_map.GetSpacing(), package.working_spacing), 3)}
    return image_like(values, label_map), record
