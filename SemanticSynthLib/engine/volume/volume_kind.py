"""What kind of volume a file holds: a label map, a CT in HU or an MRI in scanner units.

The rules, measured on the shared data (IXI T1 and MUSE labels, TotalSegmentator CT, MR and labels,
MNI152 templates, and 16-24 voxel crops of each):
- label map: every value is a whole number and at least half of the pairs of neighbouring voxels
  inside the foreground have the same value (label maps: 0.75-0.83; images, even 8-bit ones: <= 0.12);
- CT: at least 0.05% of the voxels lie below -max(50, 5% of the 99.5th percentile): fat and air are
  negative in HU, while MRI has no markedly negative tissue (crops of CT that hold only soft tissue,
  blood or bone cannot be told from MRI by intensity, and pass as MRI);
- otherwise MRI.
Which registered modality each verdict names is its registry entry's `detected_by` (engine/volume/modalities.py);
a modality detected by neither is never guessed.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from .modalities import guessed_modality

LABEL_NEIGHBOUR_AGREEMENT = 0.5
CT_NEGATIVE_FRACTION = 0.0005


def neighbour_agreement(values: np.ndarray) -> float:
    """Fraction of neighbouring voxel pairs (along each axis) inside the foreground that are equal."""
    background = values.min()
    same = total = 0
    for axis in range(values.ndim):
        a = np.moveaxis(values, axis, 0)
        first, second = a[1:], a[:-1]
        inside = (first != background) | (second != background)
        total += int(np.count_nonzero(inside))
        same += int(np.count_nonzero((first == second) & inside))
    return same / total if total else 1.0


def looks_like_labels(values: np.ndarray) -> bool:
    values = np.asarray(values)
    if values.dtype.kind == "f" and not np.all(values == np.round(values)):
        return False
    return neighbour_agreement(values) >= LABEL_NEIGHBOUR_AGREEMENT


def looks_like_ct(values: np.ndarray) -> bool:
    values = np.asarray(values, dtype=np.float32)
    threshold = -max(50.0, 0.05 * abs(float(np.percentile(values, 99.5))))
    return float(np.mean(values < threshold)) >= CT_NEGATIVE_FRACTION


def volume_kind(image: sitk.Image) -> str:
    """'labels', or the modality guessed by the rules above ('ct' or 'mri')."""
    values = sitk.GetArrayViewFromImage(image)
    if looks_like_labels(values):
        return "labels"
    return guessed_modality(negative_tissue=looks_like_ct(values))
