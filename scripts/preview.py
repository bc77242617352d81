"""PNG previews for scripts/demo.py: axial, coronal and sagittal slices of a label map and a generated volume side by
side. A script helper, not part of the shipped library (matplotlib is no dependency of the engine)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from SemanticSynthLib.engine.volume.io import lps_array


def save_preview(label_map: sitk.Image, volume: sitk.Image, path: str | Path, title: str = "",
                 window: tuple[float, float] | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, spacing = lps_array(label_map)
    values, _ = lps_array(volume)
    if window is None:
        lo, hi = np.percentile(values, [1, 99.5])
    else:
        lo, hi = window
    centre = [int(np.argmax(labels.sum(axis=tuple(a for a in range(3) if a != k)) > 0) +
                  np.count_nonzero(labels.sum(axis=tuple(a for a in range(3) if a != k))) // 2) for k in range(3)]
    # Radiological display from LPS axes: patient's right on the image left, anterior and superior up.
    views = [("axial", lambda a: a[:, :, centre[2]].T, spacing[1] / spacing[0]),
             ("coronal", lambda a: a[:, centre[1], :].T[::-1, :], spacing[2] / spacing[0]),
             ("sagittal", lambda a: a[centre[0], :, :].T[::-1, :], spacing[2] / spacing[1])]
    fig, axes = plt.subplots(2, 3, figsize=(12, 8), facecolor="black")
    rng = np.random.default_rng(3)
    colours = rng.uniform(0.15, 1.0, (int(labels.max()) + 1, 3))
    colours[0] = 0
    for col, (name, cut, aspect) in enumerate(views):
        axes[0, col].imshow(colours[cut(labels).astype(int)], aspect=aspect, interpolation="nearest")
        axes[1, col].imshow(cut(values), cmap="gray", vmin=lo, vmax=hi, aspect=aspect, interpolation="nearest")
        for row, what in enumerate(("label map", "generated")):
            axes[row, col].set_title(f"{what}, {name}", color="white", fontsize=10)
            axes[row, col].axis("off")
    if title:
        fig.suptitle(title, color="white")
    fig.tight_layout()
    fig.savefig(path, dpi=80, facecolor="black")
    plt.close(fig)
    return Path(path)
