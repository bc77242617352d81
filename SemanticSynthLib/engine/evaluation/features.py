"""FID features of 2D slices in three planes: the segmenter's encoder, or user-supplied Med3D weights.

Standard Inception or Med3D weights cannot be downloaded here, so by default the features come from the
project's own auxiliary segmenter (SegResNet encoder, average-pooled). `--feature-weights PATH` takes a
safetensors state dict for a MONAI 3D ResNet (MedicalNet/Med3D layout: resnet10, 18, 34 or 50), e.g.
converted from the published Med3D weights; the report names the network used.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ...errors import SynthError

SLICE_SIZE = 96  # slices are cropped/padded to this square (2 mm voxels: 19 cm)
PLANES = ("axial", "coronal", "sagittal")


def plane_slices(volume: np.ndarray, mask: np.ndarray, stride: int = 4) -> dict[str, np.ndarray]:
    """Every `stride`-th slice through the mask in each plane, centred on the mask and cut to SLICE_SIZE."""
    out = {}
    centre = [int(np.mean(i)) for i in np.nonzero(mask)]
    for axis, plane in zip((2, 1, 0), PLANES):
        present = np.nonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))[0]
        chosen = present[len(present) % stride // 2::stride]
        cuts = []
        for k in chosen:
            cut = np.take(volume, k, axis=axis)
            in_plane = [c for a, c in enumerate(centre) if a != axis]
            cuts.append(_square(cut, in_plane))
        out[plane] = np.stack(cuts) if cuts else np.zeros((0, SLICE_SIZE, SLICE_SIZE), np.float32)
    return out


def _square(image: np.ndarray, centre) -> np.ndarray:
    half = SLICE_SIZE // 2
    out = np.zeros((SLICE_SIZE, SLICE_SIZE), np.float32)
    src = [slice(max(c - half, 0), min(c + half, s)) for c, s in zip(centre, image.shape)]
    dst = [slice(sl.start - (c - half), sl.stop - (c - half)) for sl, c in zip(src, centre)]
    out[tuple(dst)] = image[tuple(src)]
    return out


class Med3DFeatures:
    """A MONAI 3D ResNet with user weights; slices enter one voxel thick, the pooled last stage is the feature."""

    def __init__(self, path: str | Path, depth: int):
        from monai.networks import nets

        builders = {10: nets.resnet10, 18: nets.resnet18, 34: nets.resnet34, 50: nets.resnet50}
        if depth not in builders:
            raise SynthError(f"--feature-depth must be one of {sorted(builders)}")
        self.name = f"MONAI resnet{depth} (Med3D layout) with weights {Path(path).name}"
        self.network = builders[depth](spatial_dims=3, n_input_channels=1, feed_forward=False,
                                            shortcut_type="A" if depth in (10, 18, 34) else "B", bias_downsample=False)
        try:
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise SynthError(f"cannot read --feature-weights {path}: {str(exc).splitlines()[0]}; give a safetensors file") from None
        state = {k.removeprefix("module."): v for k, v in state.items()}
        missing, unexpected = self.network.load_state_dict(state, strict=False)
        if missing:
            raise SynthError(f"--feature-weights {Path(path).name} does not fit resnet{depth} ({len(missing)} weights missing, "
                             f"e.g. {missing[0]}); check --feature-depth")
        self.network.eval()

    def slice_features(self, slices: np.ndarray, batch: int = 64) -> np.ndarray:
        out = []
        with torch.no_grad():
            for i in range(0, len(slices), batch):
                x = torch.from_numpy(np.ascontiguousarray(slices[i:i + batch], np.float32))[:, None, :, :, None]
                out.append(self.network(x).float().numpy())
        return np.concatenate(out)
