"""What the trainers share besides their scaffold (run.py): loading cases on every rank, the normalization table,
and optimizer steps that survive a non-finite gradient."""
from __future__ import annotations

import numpy as np
import torch

from ...errors import SynthError
from ..volume.cases import list_cases
from ..volume.intensity import modality_normalization
from ..volume.labels import LabelTable
from ..reporting.progress import Progress
from .dataset import Case, load_case


def normalization_for(modality: str) -> dict:
    """A training case's normalization: its registered modality's (a percentile scale per case, the scale unused);
    an unregistered modality is refused in one line."""
    return modality_normalization(modality)


def load_cases(dataset, modality: str, spacing, table: LabelTable | None, multiple: int, progress: Progress,
               label_transform=None) -> list[Case]:
    files = list_cases(dataset, modality)
    progress.stage("loading cases", len(files))
    cases = []
    for i, f in enumerate(files):
        cases.append(load_case(f, spacing, table, normalization_for(f.modality), multiple, label_transform))
        progress.update(i + 1)
    return cases


def package_normalization(cases: list[Case]) -> dict:
    """One normalization per modality (its registered one); a percentile scale's output scale (MRI's) is the median
    training percentile."""
    out = {}
    for modality in sorted({c.modality for c in cases}):
        out[modality] = modality_normalization(modality)
        if out[modality]["kind"] == "percentile_scale":
            scales = [c.scale for c in cases if c.modality == modality and c.scale]
            out[modality]["scale"] = float(np.median(scales))
    return out


class GuardedStep:
    """Optimizer steps that skip non-finite gradients, as AMP's GradScaler does.

    torch 2.13's CPU bf16 conv3d backward now and then returns NaN weight gradients for small spatial
    sizes (reproduced with a lone Conv3d on a 2x2x8 input). One such step would poison the weights, so it
    is skipped and counted; many skips mean real divergence and stop the run.
    """

    def __init__(self, optimizer, parameters, max_norm: float | None = None):
        self.optimizer, self.parameters = optimizer, list(parameters)
        self.max_norm = max_norm if max_norm is not None else float("inf")
        self.taken = self.skipped = 0

    def __call__(self) -> bool:
        norm = torch.nn.utils.clip_grad_norm_(self.parameters, self.max_norm)
        if torch.isfinite(norm):
            self.optimizer.step()
            self.taken += 1
            return True
        self.optimizer.zero_grad(set_to_none=True)
        self.skipped += 1
        if self.skipped > max(10, 0.2 * (self.taken + self.skipped)):
            raise SynthError(f"training diverged: {self.skipped} of {self.taken + self.skipped} steps had non-finite "
                             "gradients; lower --lr or check the data")
        return False


def check_finite(loss: torch.Tensor, step: int) -> None:
    if not torch.isfinite(loss):
        raise SynthError(f"training diverged at step {step + 1} (loss is not finite); lower --lr or check the data")


def backward_step(loss: torch.Tensor, step: int, optimizer, guarded_step: "GuardedStep") -> bool:
    """Check the loss, backpropagate, step; False when the step was skipped for non-finite gradients."""
    check_finite(loss, step)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    return guarded_step()


def final_loss(losses: list[float], fallback: float | None = None) -> float | None:
    """The mean of a stage's last 50 losses for its package record; `fallback` when this run took no step of the
    stage (a resume past it: the value its checkpoint kept)."""
    return float(np.mean(losses[-50:])) if losses else fallback
