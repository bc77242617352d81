"""Image similarity inside a mask, with MONAI's metrics."""
from __future__ import annotations

import numpy as np
import torch
from monai.metrics import PSNRMetric, SSIMMetric


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
