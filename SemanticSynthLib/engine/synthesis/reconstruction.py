"""The autoencoder alone: encode a real image and decode it again, on the image's own grid.

This is the ceiling of every generator built on the autoencoder: no diffusion model can give the
decoder a better latent than the encoder's own. A label-aware autoencoder gets the labels' guide, as it
does in generation.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import torch

from ..volume.geometry import edge_margins, extend_edges, resample_intensity, resample_labels, working_grid
from ..volume.intensity import denormalize
from ..volume.io import array_of
from ..volume.labels import to_class_indices
from ..model.package import ModelPackage
from ..model.precision import encode_latent, quantize_decode
from .sampling import EDGE_MARGIN, UNET_MULTIPLE
from ..volume.working_image import units_on_grid


def reconstruct_volume(package: ModelPackage, image: sitk.Image, label_map: sitk.Image | None, modality: str,
                       use_bf16: bool = True) -> sitk.Image:
    """The autoencoder's reconstruction of `image` (HU or scanner units), on the image's grid."""
    margins = edge_margins(label_map, EDGE_MARGIN * package.factor) if label_map is not None else ((0, 0),) * 3
    grid = working_grid(image, package.working_spacing, package.factor * UNET_MULTIPLE, margins)  # as generation's
    norm = package.normalization(modality)
    unit = units_on_grid(image, grid, norm, extend=True)
    x = torch.from_numpy(np.ascontiguousarray(unit))[None, None]
    guide = None
    priors = package.priors(modality)
    if priors is not None:
        if label_map is not None:
            ids = array_of(resample_labels(extend_edges(label_map, grid), grid))
            classes = to_class_indices(ids, package.labels, unknown="background")
        else:  # an unlabelled image: every voxel is the background class, as unlabelled voxels are in training
            classes = np.zeros(grid.GetSize(), np.int64)
        guide = torch.from_numpy(priors.guide(classes))[None]
    with torch.no_grad():
        latent = encode_latent(package.autoencoder, x, use_bf16, guide)
        out = quantize_decode(package.autoencoder, latent, use_bf16, guide)[0, 0].numpy()
    values = denormalize(out, norm)  # MRI: in the model's fixed output scale, like a generated volume
    working = sitk.GetImageFromArray(np.ascontiguousarray(values.transpose(2, 1, 0)))
    working.CopyInformation(grid)
    return resample_intensity(working, image, default=float(denormalize(np.zeros(1), norm)[0]))
