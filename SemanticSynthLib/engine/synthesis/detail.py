"""Generation's last step where the label map is finer than the model: the detail refiner on the map's own grid.

The volume generated on the working grid has been calibrated. Tile by tile of the map's grid, it is linearly
resampled there (as it is without a refiner), the map's own classes are painted into the guide (where generation
added classes on the working grid, gas in the bowel or the body's outline, those, carried over by nearest neighbour),
and the refiner (engine/model/refiner.py) adds its residual. Each label's mean is then moved back to what it was
before the refiner, so that the refiner adds detail and leaves intensity to the priors and the calibration. No
full-resolution input is made for the whole map: the output is the one full-resolution array.

The surround's share of the painting (priors.ClassPriors.surround_weight) is made on the working grid and resampled,
since growing it on a 1 mm grid would take 3x the steps in every tile. Training paints it on the case's own grid
(fine_priors); the two differ only where the fade's steps fall.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import torch

from ..model.refiner import MIN_REFINE_FACTOR, TILE, refine_factor, refine_tiles, tile_boxes
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

    def tile_of(box) -> sitk.Image:
        return sitk.RegionOfInterest(label_map, [b.stop - b.start for b in box], [b.start for b in box])

    def classes_of(tile: sitk.Image) -> np.ndarray:
        ids = array_of(tile)
        # A tile of background alone is no error here (the map as a whole was checked on the working grid).
        classes = to_class_indices(ids, package.labels, mapping, unknown) if ids.any() else np.zeros(ids.shape, np.int64)
        if added is not None:
            placed = array_of(resample_labels(added, tile))
            classes = np.where(placed >= table_classes, placed, classes)
        return classes

    def upsampled(tile: sitk.Image) -> np.ndarray:  # what the map's grid gets without a refiner
        return array_of(resample_intensity(working, tile, default=background))

    def inputs(box):
        tile = tile_of(box)
        classes = classes_of(tile)
        share = array_of(resample_intensity(weight, tile, default=0.0)) if weight is not None else None
        prior = priors.prior_image(classes, share)
        return normalize(upsampled(tile), norm), np.stack([prior, priors.kind[classes].astype(np.float32)])

    def run(bf16: bool) -> np.ndarray:
        refined = refine_tiles(package.refiner, tuple(label_map.GetSize()), inputs, bf16, progress)
        return require_finite(torch.from_numpy(refined), "detail refiner").numpy()

    values = denormalize(with_fp32_fallback(run, use_bf16, progress), norm).astype(np.float32)
    # The refiner adds detail; each label keeps the mean it has without it (what the priors and the calibration
    # made). Measured on the training case's map at 1.5 mm: without this the refiner moved non-bone labels by 30 HU
    # on average and the lungs by up to 175 HU, towards the lungs of the CT it learnt detail from.
    boxes = [inner for inner, _ in tile_boxes(values.shape, TILE, 0)]
    sums = np.zeros((3, package.labels.num_classes + 1))  # voxels, refined and upsampled values, per class
    for box in boxes:
        tile = tile_of(box)
        classes = classes_of(tile).ravel()
        for row, weights in enumerate((None, values[box].ravel(), upsampled(tile).ravel())):
            sums[row] += np.bincount(classes, weights, sums.shape[1])
    counts = sums[0]
    shift = np.where(counts > 0, (sums[2] - sums[1]) / np.maximum(counts, 1), 0.0).astype(np.float32)
    shift[0] = 0.0  # the background, a mixture of tissues, stays as refined
    for box in boxes:
        values[box] += shift[classes_of(tile_of(box))]
    record = {"spacing": [round(float(s), 4) for s in label_map.GetSpacing()],
              "working_spacing": list(package.working_spacing),
              "factor": round(refine_factor(label_map.GetSpacing(), package.working_spacing), 3)}
    return image_like(values, label_map), record
