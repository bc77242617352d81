"""Range-checked values for the command line: argparse reports a bad one in one line naming the option."""
from __future__ import annotations

import argparse
import math

SEED_MAX = 2 ** 63 - 1  # torch.Generator.manual_seed takes a signed 64-bit seed


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def integer(low: int, high: int | None = None):
    """A whole number in [low, high]."""
    def parse(text: str) -> int:
        value = _int(text)
        if value < low or (high is not None and value > high):
            span = f"at least {low}" if high is None else f"between {low} and {high}"
            raise argparse.ArgumentTypeError(f"must be {span}, not {value}")
        return value
    parse.__name__ = "integer"
    return parse


def number(low: float | None = None, high: float | None = None, low_open: bool = False, high_open: bool = False):
    """A finite number in the given range (open ends where asked)."""
    def parse(text: str) -> float:
        value = _float(text)
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if too_low or too_high:
            parts = []
            if low is not None:
                parts.append(f"{'above' if low_open else 'at least'} {low:g}")
            if high is not None:
                parts.append(f"{'below' if high_open else 'at most'} {high:g}")
            raise argparse.ArgumentTypeError(f"must be {' and '.join(parts)}, not {text}")
        return value
    parse.__name__ = "number"
    return parse


def seed(text: str) -> int:
    return integer(0, SEED_MAX)(text)


def spacing(text: str):
    """One or three positive numbers in mm."""
    try:
        parts = [_float(v) for v in text.split(",")]
    except argparse.ArgumentTypeError:
        parts = []
    if len(parts) == 1:
        parts *= 3
    if len(parts) != 3 or min(parts) <= 0 or max(parts) > 100:
        raise argparse.ArgumentTypeError("spacing is one or three numbers in mm above 0 and at most 100, e.g. 2 or 1.5,1.5,3")
    return tuple(parts)


def surround(text: str) -> tuple[float, float]:
    """FULL,FADE_TO in mm: 0 < FULL < FADE_TO <= 100 (train-autoencoder --surround-mm)."""
    try:
        parts = [_float(v) for v in text.split(",")]
    except argparse.ArgumentTypeError:
        parts = []
    if len(parts) != 2 or not 0 < parts[0] < parts[1] <= 100:
        raise argparse.ArgumentTypeError("give two distances in mm, FULL,FADE_TO with 0 < FULL < FADE_TO <= 100, e.g. 6,24")
    return parts[0], parts[1]


def patch(multiple: int, low: int, high: int = 512):
    """One or three edge lengths in voxels, each a multiple of `multiple` in [low, high]."""
    def parse(text: str):
        try:
            parts = [int(v) for v in text.split(",")]
        except ValueError:
            parts = []
        if len(parts) == 1:
            parts *= 3
        if len(parts) != 3 or any(p < low or p > high or p % multiple for p in parts):
            raise argparse.ArgumentTypeError(f"give one or three sizes, each a multiple of {multiple} "
                                             f"between {low} and {high}, e.g. {max(low, 4 * multiple)}")
        return tuple(parts)
    parse.__name__ = "patch"
    return parse
