"""Range checks of request options and package defaults: the one place where each allowed range is written.

Each check takes the value as typed on a command line (text) or as read from a request file (a number, a list)
and returns it converted, or raises ValueError with the reason ("must be at least 1, not 0"); the request turns
that into one line naming the option. Torch-free: the CLI, the Slicer bridge and the web page import it.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable, Union

SEED_MAX = 2 ** 63 - 1  # torch.Generator.manual_seed takes a signed 64-bit seed


def _int(value) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError(f"{value!r} is not a whole number") from None


def _float(value) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return number


def integer(low: int, high: Union[int, None] = None):
    """A whole number in [low, high]."""
    def check(value) -> int:
        number = _int(value)
        if number < low or (high is not None and number > high):
            span = f"at least {low}" if high is None else f"between {low} and {high}"
            raise ValueError(f"must be {span}, not {number}")
        return number
    check.__name__ = "integer"
    check.low, check.high = low, high  # read by the GUIs' widgets (their ranges), not written again there
    return check


def number(low: Union[float, None] = None, high: Union[float, None] = None, low_open: bool = False,
           high_open: bool = False):
    """A finite number in the given range (open ends where asked)."""
    def check(value) -> float:
        x = _float(value)
        too_low = low is not None and (x <= low if low_open else x < low)
        too_high = high is not None and (x >= high if high_open else x > high)
        if too_low or too_high:
            parts = []
            if low is not None:
                parts.append(f"{'above' if low_open else 'at least'} {low:g}")
            if high is not None:
                parts.append(f"{'below' if high_open else 'at most'} {high:g}")
            raise ValueError(f"must be {' and '.join(parts)}, not {value}")
        return x
    check.__name__ = "number"
    # read by the GUIs' widgets (their ranges), not written again there
    check.low, check.high, check.low_open, check.high_open = low, high, low_open, high_open
    return check


def seed(value) -> int:
    return integer(0, SEED_MAX)(value)


def one_of(names: Union[Iterable, Callable[[], Iterable]]):
    """One of a fixed list, or of a registry's names read at check time (so a newly registered entry counts)."""
    def allowed():
        return list(names() if callable(names) else names)

    def check(value):
        options = allowed()
        if value not in options:
            raise ValueError(f"must be one of {', '.join(map(str, options))}, not {value!r}")
        return value
    check.choices = allowed
    check.__name__ = "one_of"
    return check


def _numbers(value) -> list:
    """'1.5,1.5,3' or [1.5, 1.5, 3] -> list of floats (ValueError on anything else)."""
    items = value.split(",") if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else [value]
    return [_float(v) for v in items]


def spacing(value) -> tuple:
    """One or three positive numbers in mm."""
    try:
        parts = _numbers(value)
    except (ValueError, TypeError):
        parts = []
    if len(parts) == 1:
        parts *= 3
    if len(parts) != 3 or min(parts) <= 0 or max(parts) > 100:
        raise ValueError("spacing is one or three numbers in mm above 0 and at most 100, e.g. 2 or 1.5,1.5,3")
    return tuple(parts)


def surround(value) -> tuple:
    """FULL,FADE_TO in mm: 0 < FULL < FADE_TO <= 100 (train-autoencoder --surround-mm)."""
    try:
        parts = _numbers(value)
    except (ValueError, TypeError):
        parts = []
    if len(parts) != 2 or not 0 < parts[0] < parts[1] <= 100:
        raise ValueError("give two distances in mm, FULL,FADE_TO with 0 < FULL < FADE_TO <= 100, e.g. 6,24")
    return parts[0], parts[1]


def factors(value) -> tuple:
    """One or more coarsening factors, each in [1.25, 8] (train-refiner --factors)."""
    try:
        parts = _numbers(value)
    except (ValueError, TypeError):
        parts = []
    if not parts or len(parts) > 8 or any(not 1.25 <= p <= 8 for p in parts):
        raise ValueError("give one to eight factors between 1.25 and 8, e.g. 2,3")
    return tuple(parts)


def subset(names: Iterable):
    """A comma-separated choice of some of `names` ('affine,mirror'), kept in the order given; 'none' is none."""
    allowed = list(names)

    def check(value) -> tuple:
        items = [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value or ())
        items = [v for v in items if v and v != "none"]
        bad = [v for v in items if v not in allowed]
        if bad or len(set(items)) != len(items):
            raise ValueError(f"give some of {', '.join(allowed)}, separated by commas (or none), not {value!r}")
        return tuple(items)
    check.__name__ = "subset"
    return check


def patch(multiple: int, low: int, high: int = 512):
    """One or three edge lengths in voxels, each a multiple of `multiple` in [low, high]."""
    def check(value) -> tuple:
        items = value.split(",") if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else [value]
        try:
            parts = [_int(v) for v in items]
        except ValueError:
            parts = []
        if len(parts) == 1:
            parts *= 3
        if len(parts) != 3 or any(p < low or p > high or p % multiple for p in parts):
            raise ValueError(f"give one or three sizes, each a multiple of {multiple} "
                             f"between {low} and {high}, e.g. {max(low, 4 * multiple)}")
        return tuple(parts)
    check.__name__ = "patch"
    return check


def text(value) -> str:
    """A non-empty string (a path, a name)."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a non-empty text, not {value!r}")
    return value


# Shared ranges, named once: the CLI, the request files, the GUIs' widgets and the package schema read these.
STEPS = integer(1)
GUIDANCE = number(1, 20)
TEMPERATURE = number(0, 1, low_open=True)
THREADS = integer(1, 1024)
MARGIN_MM = number(0, 200)
SAMPLES = integer(1, 64)


def BOWEL_GAS(value):
    """CT --bowel-gas: low, typical, high (the literature's per-organ values), drawn (per seed) or a fraction 0..1."""
    if value is None or value in ("low", "typical", "high", "drawn"):
        return value
    try:
        fraction = float(value)
    except (TypeError, ValueError):
        fraction = None
    if fraction is None or not 0.0 <= fraction <= 1.0:
        raise ValueError(f"must be low, typical, high, drawn or a fraction from 0 to 1, not {value!r}")
    return str(value)
