"""Image similarity inside a mask, with MONAI's metrics."""
from __future__ import annotations

import numpy as np
import torch
from monai.metrics import PSNRMetric, SSIMMetric

from ...errors import SynthError


def bounding_box(mask: np.ndarray, margin: int = 4) -> tuple[slice, ...]:
    idx = np.nonzero(mask)
    return tuple(slice(max(int(i.min()) - margin, 0), int(i.max()) + margin + 1) for i in idx)


def psnr_in_mask(pred: np.ndarray, real: np.ndarray, mask: np.ndarray, data_range: float = 1.0) -> float:
    """PSNR over the mask's voxels only."""
    metric = PSNRMetric(max_val=data_range)
    p = torch.from_numpy(pred[mask].astype(np.float32))[None, None]
    r = torch.from_numpy(real[mask].astype(np.float32))[None, None]
    return float(metric(p, r).item())


def ssim_in_mask(pred: np.ndarray, real: np.ndarray, mask: np.ndarray, data_range: float = 1.0) -> float:
    """3D SSIM on the mask's bounding box, with voxels outside the mask set to 0 in both volumes."""
    box = bounding_box(mask)
    p = np.where(mask, pred, 0)[box].astype(np.float32)
    r = np.where(mask, real, 0)[box].astype(np.float32)
    metric = SSIMMetric(spatial_dims=3, data_range=data_range, win_size=7)
    return float(metric(torch.from_numpy(p)[None, None], torch.from_numpy(r)[None, None]).item())


# Three scales with the 7-voxel window fit brain boxes of ~50 voxels (five scales of 11 would need 160+).
MS_SSIM_WEIGHTS = (0.2856, 0.3001, 0.2363)


def ms_ssim_in_mask(pred: np.ndarray, real: np.ndarray, mask: np.ndarray, data_range: float = 1.0) -> float:
    """3D multi-scale SSIM on the mask's bounding box, outside the mask set to 0 in both volumes."""
    from monai.metrics import MultiScaleSSIMMetric

    box = bounding_box(mask)
    p = np.where(mask, pred, 0)[box].astype(np.float32)
    r = np.where(mask, real, 0)[box].astype(np.float32)
    metric = MultiScaleSSIMMetric(spatial_dims=3, data_range=data_range, kernel_size=7, weights=MS_SSIM_WEIGHTS)
    return float(metric(torch.from_numpy(p)[None, None], torch.from_numpy(r)[None, None]).item())


def dice_per_class(pred: np.ndarray, truth: np.ndarray, num_classes: int) -> np.ndarray:
    """Dice of classes 1..num_classes-1 (MONAI DiceMetric); NaN where a class is in neither map."""
    from monai.metrics import DiceMetric
    from monai.networks.utils import one_hot

    metric = DiceMetric(include_background=False, reduction="none", ignore_empty=True)
    p = one_hot(torch.from_numpy(pred.astype(np.int64))[None, None], num_classes)
    t = one_hot(torch.from_numpy(truth.astype(np.int64))[None, None], num_classes)
    values = metric(p, t)[0].numpy().astype(np.float64)
    both_empty = (p.sum(dim=(2, 3, 4)) == 0)[0, 1:].numpy() & (t.sum(dim=(2, 3, 4)) == 0)[0, 1:].numpy()
    values[both_empty] = np.nan
    return values


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID between two sets of feature vectors (N, D) (MONAI FIDMetric)."""
    from monai.metrics import FIDMetric

    a = torch.from_numpy(np.asarray(features_a, np.float64))
    b = torch.from_numpy(np.asarray(features_b, np.float64))
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        # scipy's sqrtm fails on them with an internal error that names nothing.
        raise SynthError("the FID features are not finite (NaN or inf from the feature network); check "
                         "--feature-weights, or reinstall the segmenter package")
    return float(FIDMetric()(a, b).item())


def ncc_in_mask(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Normalised cross-correlation (Pearson) of two volumes over the mask's voxels; 0 where either is flat."""
    x = a[mask].astype(np.float64)
    y = b[mask].astype(np.float64)
    x -= x.mean()
    y -= y.mean()
    denominator = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / denominator) if denominator > 0 else 0.0
