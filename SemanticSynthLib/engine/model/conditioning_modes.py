"""The conditioning modes of the diffusion U-Net (abdominal-CT paper), in one registry: the command line's
choices, the package schema, the label condition (conditioning.py), the U-Net (networks.py) and the tests all read
MODES, so another mode is one more entry here.

A mode is two choices:
- where the label condition enters the U-Net: "input" (embedded and concatenated to the noisy latent) or "spade"
  (SPADE normalization in the U-Net's separate label branch);
- whether a label-boundary channel is added: the fraction of label-edge voxels in each latent voxel.

Torch-free, so that the command line and the schema can list the modes without loading torch.
"""
from __future__ import annotations

from dataclasses import dataclass

INJECTIONS = ("input", "spade")


@dataclass(frozen=True)
class ConditioningMode:
    name: str
    injection: str  # one of INJECTIONS
    boundary: bool  # adds the label-boundary channel
    summary: str    # one line for --help and the README
    fine: bool = False  # working-resolution detail folded into channels


MODES: dict[str, ConditioningMode] = {m.name: m for m in (
    ConditioningMode("concat", "input", False, "label fractions concatenated to the noisy latent"),
    ConditioningMode("spade", "spade", False, "label fractions in SPADE normalization, a separate branch"),
    ConditioningMode("edge", "input", True, "concat plus a label-boundary channel"),
    ConditioningMode("detail", "input", False, "concat with the working-resolution painted prior (or, without priors, "
                     "the label boundaries) folded into channels, not averaged per latent voxel", fine=True),
)}
DEFAULT_MODE = "concat"


def conditioning_mode(name: str) -> ConditioningMode:
    """The registered mode of that name; ValueError naming the known ones otherwise."""
    try:
        return MODES[name]
    except KeyError:
        raise ValueError(f"conditioning must be one of {', '.join(MODES)}, not {name!r}") from None


def modes_help() -> str:
    return "; ".join(f"{m.name}: {m.summary}" for m in MODES.values())
