"""The auxiliary segmenter (MONAI SegResNet): its network, its package, and inference: Dice on real and generated
images and FID features in evaluation, trained by training/segmenter.py. It lives here, outside both, so that
neither subpackage imports the other.

Its package is a folder like the generator's: metadata.json (kind "segmenter", label groups, working
spacing, normalization, per-group mean intensity of the training images for the painting baseline)
and segmenter.safetensors.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from monai.inferers import sliding_window_inference
from monai.networks.nets import SegResNet

from ..volume.label_groups import LabelGroups
from .package import load_networks

WEIGHTS = "segmenter.safetensors"
MULTIPLE = 8  # SegResNet halves three times
# The segmenter is the measuring instrument, so it runs in fp32 everywhere, bf16 CPUs included: on an AMX Xeon
# (torch 2.13) bf16 autocast gave all-NaN FID features for one-voxel-thick slices, within one evaluate run and not
# in a fresh process, which crashed the FID's matrix square root; and fp32 keeps its Dice comparable across machines.


def default_segmenter_config() -> dict:
    return {"init_filters": 16, "blocks_down": [1, 2, 2, 4], "blocks_up": [1, 1, 1], "dropout_prob": 0.0}


def build_segmenter(config: dict, num_classes: int) -> SegResNet:
    return SegResNet(spatial_dims=3, in_channels=1, out_channels=num_classes, init_filters=config["init_filters"],
                     blocks_down=tuple(config["blocks_down"]), blocks_up=tuple(config["blocks_up"]),
                     dropout_prob=config.get("dropout_prob", 0.0))


@dataclass
class Segmenter:
    path: Path
    metadata: dict
    network: SegResNet
    groups: LabelGroups

    @property
    def name(self) -> str:
        return self.metadata.get("name", self.path.name)

    @property
    def working_spacing(self):
        return tuple(self.metadata["working_spacing"])

    def segment(self, unit: np.ndarray, window: int | None = None) -> np.ndarray:
        """Group index per voxel of an image in model units (x, y, z), on the same grid."""
        window = int(window or self.metadata["segmenter"].get("window", 80))
        x = torch.from_numpy(np.ascontiguousarray(unit, np.float32))[None, None]
        pad = [(-s) % MULTIPLE for s in x.shape[2:]]
        x = F.pad(x, [p for s in reversed(pad) for p in (0, s)], mode="replicate")

        with torch.no_grad():
            logits = sliding_window_inference(x, (window,) * 3, 1, self.network, overlap=0.25, mode="gaussian")
        labels = logits.argmax(1)[0].numpy().astype(np.int16)
        return labels[tuple(slice(0, s) for s in unit.shape)]

    def slice_features(self, slices: np.ndarray, batch: int = 64) -> np.ndarray:
        """FID features of 2D slices (N, H, W): the encoder's deepest feature map, average-pooled.

        A slice goes in as a volume one voxel thick, so the 3D encoder sees it as it sees thin slabs."""
        out = []
        with torch.no_grad():
            for i in range(0, len(slices), batch):
                x = torch.from_numpy(np.ascontiguousarray(slices[i:i + batch], np.float32))[:, None, :, :, None]
                pad = [(-s) % MULTIPLE for s in x.shape[2:4]]
                x = F.pad(x, [0, 0, 0, pad[1], 0, pad[0]], mode="constant")
                deepest, _ = self.network.encode(x)
                out.append(deepest.mean(dim=(2, 3, 4)).numpy())
        return np.concatenate(out)


def load_segmenter(path: str | Path, device: str = "cpu") -> Segmenter:
    """A segmenter package (MONAI SegResNet and its label groups), ready for inference."""
    path, meta, built = load_networks(path, "segmenter", lambda meta: {"segmenter": (
        lambda: build_segmenter(meta["segmenter"]["config"], LabelGroups.from_json(meta["groups"]).num_classes),
        WEIGHTS)}, device)
    return Segmenter(path, meta, built["segmenter"], LabelGroups.from_json(meta["groups"]))
