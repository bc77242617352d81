"""Stand-in training pairs for translation, made from one real scan: a known contrast and a known warp.

Real paired CT/MRI of one patient is not available here. A pair is therefore built from a real T1:
- target contrast: a fixed per-tissue remap of the T1 to a T2-like contrast (CSF bright, white matter
  dark, fat mid-grey), so the intensity translator has a real many-to-one job to learn;
- target geometry: a smooth diffeomorphic warp that depends on the anatomy, like a susceptibility
  distortion: a shift along the phase-encode axis that grows with the local amount of tissue, plus a
  pull towards the head's outline. Because it depends only on the source, a network can learn to
  predict it; a warp drawn independently of the image could not be predicted from the source alone.
The true correspondence is then known exactly, which is what the evaluation needs.

Used by scripts/make_translation_pairs.py (which writes such pairs for training and evaluation) and by the tests.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import torch
from scipy.ndimage import gaussian_filter

from ..volume.intensity import mri_normalization, normalize
from ..volume.io import array_of, image_like
from .fields import field_image, integrate_velocity, warp

# T1 in model units (1 = 1.5x the 99.5th percentile): air 0, CSF ~0.2, grey ~0.4, white ~0.6, fat ~0.9.
T1_KNOTS = [0.0, 0.08, 0.22, 0.40, 0.62, 0.80, 1.0]
T2_LIKE_KNOTS = [0.0, 0.05, 0.95, 0.60, 0.30, 0.45, 0.50]
TARGET_SCALE = 1000.0  # written target in pseudo scanner units


def t2_like_contrast(unit: np.ndarray) -> np.ndarray:
    return np.interp(unit, T1_KNOTS, T2_LIKE_KNOTS).astype(np.float32)


def anatomical_velocity(unit: np.ndarray, shift: float = 2.6, pull: float = 1.5, sigma: float = 4.0,
                        phase_axis: int = 1) -> np.ndarray:
    """(3, X, Y, Z) stationary velocity in voxels: `shift` voxels along `phase_axis` inside tissue,
    plus a pull of about `pull` voxels towards the head's outline.

    The shift is deliberately not a whole number of voxels: with an integer shift, nearest-neighbour
    label maps moved by the true and by a predicted field agree wherever the prediction is within half a
    voxel, which would flatter the Dice of deep structures."""
    tissue = gaussian_filter((unit > 0.1).astype(np.float32), sigma)
    velocity = np.zeros((3,) + unit.shape, np.float32)
    velocity[phase_axis] += shift * tissue
    for k, grad in enumerate(np.gradient(tissue)):
        velocity[k] += pull * sigma * np.sqrt(2 * np.pi) * grad
    return velocity


def true_displacement(unit: np.ndarray, **kwargs) -> np.ndarray:
    velocity = torch.from_numpy(anatomical_velocity(unit, **kwargs))[None]
    with torch.no_grad():
        return integrate_velocity(velocity)[0].numpy()


def make_pair(source: sitk.Image, labels: sitk.Image | None = None):
    """source T1 -> (target, true field, target labels): target(x) = T2like(source)(x + u(x))."""
    unit = normalize(array_of(source), mri_normalization(1.0))
    displacement = true_displacement(unit)
    disp_t = torch.from_numpy(displacement)[None]
    with torch.no_grad():
        contrast = torch.from_numpy(t2_like_contrast(unit))[None, None]
        target = warp(contrast, disp_t)[0, 0].numpy() * TARGET_SCALE
        target_labels = None
        if labels is not None:
            lab = torch.from_numpy(array_of(labels).astype(np.float32))[None, None]
            target_labels = image_like(warp(lab, disp_t, mode="nearest")[0, 0].numpy().astype(np.int16), labels)
    return image_like(target.astype(np.float32), source), field_image(displacement, source), target_labels
