"""Memory: estimate what a working grid will need before allocating it, and refuse what cannot fit.

The estimate is per working voxel (the model's spacing over the input's extent), measured on generation:
the working label grid, class indices, class fractions and their counts, the decoded volume in float32
and the resampling back. A few latent and U-Net buffers are bounded by the window size and left out.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import SynthError

BYTES_PER_WORKING_VOXEL = 80
DEFAULT_MAX_VOXELS = 512 ** 3
_limit = {"max_voxels": DEFAULT_MAX_VOXELS, "option": "--max-voxels"}


def set_voxel_limit(max_voxels: int | None) -> None:
    """The CLI's --max-voxels: the largest working grid this process may allocate."""
    _limit["max_voxels"] = int(max_voxels) if max_voxels else DEFAULT_MAX_VOXELS


def available_bytes() -> int | None:
    """Memory this process may still use: MemAvailable, lowered by a cgroup limit when there is one."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = Path("/sys/fs/cgroup/memory.current").read_text().strip()
        if limit.isdigit() and used.isdigit():
            found.append(int(limit) - int(used))
    except OSError:
        pass
    return min(found) if found else None


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def check_working_grid(size, spacing) -> None:
    """Refuse a working grid over the voxel limit or the free memory, saying the estimate and the way out."""
    size = [int(s) for s in size]
    voxels = int(np.prod(np.array(size, dtype=object)))  # exact, no overflow for absurd sizes
    need = voxels * BYTES_PER_WORKING_VOXEL
    spacing_text = "x".join(f"{float(s):g}" for s in spacing)
    grid = f"{'x'.join(map(str, size))} voxels at the model's {spacing_text} mm spacing"
    advice = "crop the volume to the region you need, or resample it to a smaller extent"
    if voxels > _limit["max_voxels"]:
        raise SynthError(f"input too large: the working grid is {grid} ({voxels} voxels, about {_gb(need)} of memory), "
                         f"over the limit of {_limit['max_voxels']} voxels; {advice}, or raise {_limit['option']}")
    free = available_bytes()
    if free is not None and need > free:
        raise SynthError(f"not enough memory: the working grid is {grid}, needing about {_gb(need)}, and "
                         f"{_gb(max(free, 0))} is available; {advice}, or free memory")



def check_network_size(build, what: str):
    """Build a network from a package's config on the meta device first (no memory), and refuse it when
    its weights alone would not fit in free memory; otherwise build it for real. A config within the
    schema's caps can still ask for several GB."""
    import torch

    with torch.device("meta"):
        probe = build()
    need = sum(p.numel() * p.element_size() for p in probe.parameters()) + sum(
        b.numel() * b.element_size() for b in probe.buffers())
    free = available_bytes()
    if free is not None and need > free:
        raise SynthError(f"the model package's {what} would need {_gb(need)} for its weights alone, more than the "
                         f"{_gb(free)} free; the package's network config is wrong or too large for this machine")
    return build()
