"""Memory: estimate what a working grid will need before allocating it, and refuse what cannot fit.

The estimate is per working voxel (the model's spacing over the input's extent), measured on generation:
the working label grid, class indices, class fractions and their counts, the decoded volume in float32
and the resampling back. A few latent and U-Net buffers are bounded by the window size and left out.
The input's own grid costs too: the volume read, the output resampled onto it in float32, and the output
read back to verify the write (measured: 17 bytes per voxel of a uint8 label map, 480x480x360 at 0.5 mm on
brain-mri's 2 mm grid). --max-voxels N allows what N working voxels would take (N x 80 bytes, 10.7 GB at
the default 512^3) for the two together: a 512^3 map at 2 mm (a 512^3 working grid and a 512^3 output,
about 13 GB by this estimate; it ran for minutes at 6 GB) is over it, a 256x256x128 one is far below.
Replicating the input's edges over the grid's margins (geometry.extend_edges) makes a padded copy at the
input's spacing; that copy is checked against the same allowance before it is made.
"""
from __future__ import annotations

import contextlib
import functools
import sys

from pathlib import Path

import numpy as np

from ...errors import SynthError

BYTES_PER_WORKING_VOXEL = 80
BYTES_PER_INPUT_VOXEL = 20
DEFAULT_MAX_VOXELS = 512 ** 3
_limit = {"max_voxels": DEFAULT_MAX_VOXELS, "option": "--max-voxels"}


def set_voxel_limit(max_voxels: int | None) -> None:
    """The CLI's --max-voxels: the largest working grid this process may allocate."""
    _limit["max_voxels"] = int(max_voxels) if max_voxels else DEFAULT_MAX_VOXELS


@contextlib.contextmanager
def voxel_limit(max_voxels: int | None):
    """set_voxel_limit for one job (a request's max_voxels); the previous limit comes back afterwards."""
    before = _limit["max_voxels"]
    set_voxel_limit(max_voxels)
    try:
        yield
    finally:
        _limit["max_voxels"] = before


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # no glibc (musl): nothing to trim
        return None


def release_freed_memory() -> None:
    """Give the C heap's free pages back to the system (glibc's malloc_trim) between the stages of a generation.

    numpy and torch free their arrays into the C heap; blocks below glibc's mmap threshold (which rises to 32 MB as
    large blocks come and go) stay there when freed, scattered between live ones, and still count in the process's
    resident memory. `generate` on a 512^3 map at 1 mm (brain-mri, a 256^3 working grid) peaked at 1.63 GB with no
    release, 1.31 GB with these (after denoising, after decoding, before the map's grid is filled, and after each
    large convolution: model/cpu_convolution.py; on large maps only, synthesis/generate.RELEASE_VOXELS). A few
    milliseconds each, and the pages are faulted in again when reused; a no-op without glibc."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def available_bytes() -> int | None:
    """Memory this process may still use: MemAvailable, lowered by a cgroup limit when there is one."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text(encoding="utf-8").strip()
        used = Path("/sys/fs/cgroup/memory.current").read_text(encoding="utf-8").strip()
        if limit.isdigit() and used.isdigit():
            found.append(int(limit) - int(used))
    except OSError:
        pass
    return min(found) if found else None


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def _voxels(size) -> int:
    return int(np.prod(np.array([int(s) for s in size], dtype=object)))  # exact, no overflow for absurd sizes


def _mm(spacing) -> str:
    return "x".join(f"{float(s):g}" for s in spacing)


ADVICE = "crop the volume to the region you need, or resample it to a smaller extent"


def check_working_grid(size, spacing, input_size=None) -> None:
    """Refuse a working grid over the voxel limit or the free memory, saying the estimate and the way out.

    `input_size`: the input's own grid, whose voxels (the volume read, the output resampled onto it and read back)
    count towards the same allowance (N working voxels' worth of memory for --max-voxels N)."""
    size = [int(s) for s in size]
    voxels = _voxels(size)
    need = voxels * BYTES_PER_WORKING_VOXEL
    grid = f"{'x'.join(map(str, size))} voxels at the model's {_mm(spacing)} mm spacing"
    limit = _limit["max_voxels"]
    if voxels > limit:
        raise SynthError(f"input too large: the working grid is {grid} ({voxels} voxels, about {_gb(need)} of memory), "
                         f"over the limit of {limit} voxels; {ADVICE}, or raise {_limit['option']}")
    if input_size is not None:
        grid += f", and the input is {'x'.join(str(int(s)) for s in input_size)} voxels"
        need += _voxels(input_size) * BYTES_PER_INPUT_VOXEL
        allowed = limit * BYTES_PER_WORKING_VOXEL
        if need > allowed:
            raise SynthError(f"input too large: the working grid is {grid}, about {_gb(need)} of memory in all, over the "
                             f"{_gb(allowed)} that the limit of {limit} working voxels allows ({BYTES_PER_WORKING_VOXEL} "
                             f"bytes each); {ADVICE}, or raise {_limit['option']}")
    free = available_bytes()
    if free is not None and need > free:
        raise SynthError(f"not enough memory: the working grid is {grid}, needing about {_gb(need)}, and "
                         f"{_gb(max(free, 0))} is available; {ADVICE}, or free memory")


def check_padded_input(padded_size, input_spacing, working_spacing, item_bytes: int) -> None:
    """Refuse replicating an input's edges out to a working grid's margins when the padded copy, at the input's own
    spacing, would be over the --max-voxels allowance or the free memory: an input whose voxels are far finer
    than the model's (a wrong spacing in its header, e.g. 1e-4 mm) needs a huge grid for a few mm of margin."""
    voxels = _voxels(padded_size)
    need = voxels * int(item_bytes)
    allowed = _limit["max_voxels"] * BYTES_PER_WORKING_VOXEL
    free = available_bytes()
    if need <= allowed and (free is None or need <= free):
        return
    over = (f"over the {_gb(allowed)} that the limit of {_limit['max_voxels']} working voxels allows"
            if need > allowed else f"and {_gb(max(free, 0))} is available")
    raise SynthError(f"input too large: its voxels ({_mm(input_spacing)} mm) are so much finer than the model's "
                     f"{_mm(working_spacing)} mm that replicating its edges over the working grid's margins needs a "
                     f"{'x'.join(str(int(s)) for s in padded_size)} grid of them ({voxels} voxels, about {_gb(need)}), "
                     f"{over}; check the voxel spacing in the file's header, or resample the volume to about the "
                     f"model's spacing first")


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
