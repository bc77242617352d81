"""Sliding latent windows: Gaussian blending leaves no seam where naive tiling does."""
from __future__ import annotations

import numpy as np
import torch
from monai.inferers import sliding_window_inference

from SemanticSynthLib.engine.synthesis.sampling import windowed
from SemanticSynthLib.engine.model.package import load_package


def _seam_ratio(volume: np.ndarray, edges) -> float:
    """Mean jump between neighbouring x-planes across window edges, over the mean jump elsewhere."""
    jumps = np.abs(np.diff(volume, axis=0)).mean(axis=(1, 2))
    borders = np.zeros(len(jumps), bool)
    borders[[e - 1 for e in edges]] = True
    return float(jumps[borders].mean() / jumps[~borders].mean())


def test_blended_windows_have_no_seams(tiny_model):
    package = load_package(tiny_model)
    torch.manual_seed(0)
    # Randomise the zero-initialised output convolution (MONAI), or the untrained net predicts zeros.
    for module in package.denoiser.unet.out.modules():
        if isinstance(module, torch.nn.Conv3d):
            torch.nn.init.normal_(module.weight, std=0.05)
    t = torch.tensor([500])
    mod = torch.tensor([0])
    channels = package.denoiser.latent_channels + package.denoiser.label_embedding.in_channels
    smooth = torch.nn.functional.avg_pool3d(torch.randn(1, channels, 48, 24, 24), 5, stride=1, padding=2)

    def predict(x):
        return package.denoiser.forward_packed(x, t.expand(x.shape[0]), mod.expand(x.shape[0]))

    with torch.no_grad():
        blended = windowed(predict, smooth, window=16)[0].numpy()
        naive = sliding_window_inference(smooth, (16, 16, 16), 1, predict, overlap=0.0, mode="constant")[0].numpy()
        whole = predict(smooth)[0].numpy()
    assert blended.shape == whole.shape
    naive_ratio = _seam_ratio(naive.transpose(1, 0, 2, 3).reshape(48, -1, 24), [16, 32])
    # MONAI's windows along x for 48 voxels, edge 16, overlap 0.5: starts 0, 8, 16, 24, 32.
    blended_ratio = _seam_ratio(blended.transpose(1, 0, 2, 3).reshape(48, -1, 24), [8, 16, 24, 32, 40])
    assert naive_ratio > 1.5, naive_ratio  # the metric does see seams when they exist
    assert blended_ratio < 1.2, blended_ratio
