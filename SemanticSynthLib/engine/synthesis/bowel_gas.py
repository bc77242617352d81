"""Gas in the hollow organs of a CT: a colon is mostly gas or mostly content, not one flat mean.

Each hollow organ of label_tables/groups/bowel_gas.json (colon, stomach, small bowel, duodenum, oesophagus; sources
and rules in docs/priors.md) present in the map is split into two extra classes of the model's table:
- "NAME (gas)": kind gas, the gas prior (about -950 HU);
- "NAME (content)": kind hollow_organ, the content prior of the phase (wall plus fluid, food or faeces).
The gas takes the most anterior voxels of the organ's lumen, as in a supine patient (non-dependent), leaving the
outer wall (one working voxel, 3 mm) as content. Its share of the organ: `--bowel-gas low|typical|high` (the
table's values per organ), a fraction 0..1 for every organ, or `drawn`: per seed and organ between the table's low
and high around its typical value (a triangular draw). The calibration then holds each part to its own prior, so gas
stays gas whatever the network made of the organ.

Off unless asked: on the training case (48 % of its colon is gas) a seed-0 draw raised the raw per-organ error from
22.6 to 31.4 HU (colon +34 to +241 HU), so the default keeps each organ's whole-label prior (the training data's
measured mean) until the draw is checked on more patients.

Simplification: the gas-fluid level is one per organ (its most anterior voxels), not one per bowel segment.
"""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
from scipy import ndimage

from ..model.package import ModelPackage
from ..volume.labels import BUILTIN_DIR, Label, LabelTable

TABLE = BUILTIN_DIR / "groups" / "bowel_gas.json"
LEVELS = ("low", "typical", "high")  # with "drawn" and a fraction: the request's check, checks.BOWEL_GAS


def bowel_gas_table() -> dict:
    return json.loads(TABLE.read_text(encoding="utf-8"))


def fractions(setting: str | None, seed: int, organs: dict) -> dict[str, float]:
    """The gas share of each organ: fixed by the setting, or "drawn" per seed (triangular low, typical, high)."""
    rng = np.random.default_rng([seed, 33])
    out = {}
    for name, entry in sorted(organs.items()):
        f = entry["fraction"]
        if setting == "drawn":
            out[name] = float(rng.triangular(f["low"], f["typical"], f["high"])) if f["high"] > f["low"] else f["low"]
        elif setting in LEVELS:
            out[name] = float(f[setting])
        else:
            out[name] = float(setting)
    return out


def anterior_position(shape, grid) -> np.ndarray:
    """Each working voxel's LPS y (mm; smaller is more anterior), classes in (i, j, k) order."""
    direction = np.array(grid.GetDirection(), float).reshape(3, 3)
    spacing = np.array(grid.GetSpacing(), float)
    step = direction[1] * spacing  # dy per index step along i, j, k
    i, j, k = np.indices(shape, sparse=True)
    return grid.GetOrigin()[1] + i * step[0] + j * step[1] + k * step[2]


def place_bowel_gas(package: ModelPackage, classes: np.ndarray, grid, setting: str | None,
                    seed: int) -> tuple[ModelPackage, np.ndarray, dict[str, float]]:
    """(package with the gas and content classes, the class map with them, the gas share used per organ)."""
    table = bowel_gas_table()
    index_of = {lab.name: i for i, lab in enumerate(package.labels.labels, start=1)}
    present = set(np.flatnonzero(np.bincount(classes.ravel(), minlength=package.labels.num_classes)))
    organs = {n: e for n, e in table["organs"].items() if index_of.get(n) in present}
    if not organs:
        return package, classes, {}
    shares = fractions(setting, seed, organs)
    labels = list(package.labels.labels)
    next_id = max(lab.id for lab in labels) + 1
    out = classes.copy()
    y = None
    gas_prior = {p: dict(table["gas"]) for p in organs[next(iter(organs))]["content"]}
    for name, entry in organs.items():
        organ = classes == index_of[name]
        gas_class, content_class = len(labels) + 1, len(labels) + 2
        labels += [Label(next_id, f"{name} (gas)", None, [], "gas", gas_prior),
                   Label(next_id + 1, f"{name} (content)", None, [], "hollow_organ", entry["content"])]
        next_id += 2
        out[organ] = content_class
        lumen = ndimage.binary_erosion(organ)  # the outer wall stays content
        count = int(round(shares[name] * organ.sum()))
        if count == 0 or not lumen.any():
            continue
        if y is None:
            y = np.broadcast_to(anterior_position(classes.shape, grid), classes.shape)
        positions = y[lumen]
        count = min(count, positions.size)
        level = np.partition(positions, count - 1)[count - 1]  # the gas-fluid level
        out[lumen & (y <= level)] = gas_class
    seen = replace(package, labels=LabelTable(package.labels.name, labels))
    return seen, out, shares
