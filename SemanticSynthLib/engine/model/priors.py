"""Intensity priors and tissue kinds per class: what the label-aware autoencoder and the diffusion condition see.

A model conditions on *what a label is* (its tissue kind) and *how bright it should be* (its prior), not
on the ids it happened to see in training, so every class of its label table generates.

Where a class's prior comes from, in order:
1. a user override (`--priors FILE`), in natural units: HU for CT, multiples of white matter for MRI;
2. CT with `--phase`: the label table's reference HU for that contrast phase;
3. the class's mean intensity measured on the training data (what the model learned on);
4. CT: the reference HU for the training data's phase; MRI: a typical value for the tissue kind.
How a modality's priors are written (absolute or relative to a reference tissue), their tolerance, the typical value
per kind and the phases are its entry in the registry (engine/volume/modalities.py); the modality is the one whose
units the package's normalization records.

Every class also gets a calibration range: the generated mean is checked against it after generation.

A package may also paint a *surround*: unlabelled voxels near a label get the mean that such voxels had in
training (CT: fat and muscle around the organs, about -45 HU) instead of the background's (CT: air mixed with
body, about -300 HU), fading back to the background's further out. Why: the decoder adds a smooth residual to
the painting, and where the painting drops by hundreds of HU at every organ's edge, that residual spills a
bright rim into the organ and leaves a dark one outside it (docs/ct_unet.md, "Rims"). The fade matters as much:
a surround that stops in one step moves the rim to where it stops.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...errors import SynthError
from ..volume.intensity import denormalize, model_units
from ..volume.modalities import MODALITIES, modality_of, phase_names
from ..volume.labels import LabelTable, normalized_name
from .outside_layout import OutsideLayout, read_layout

TISSUE_KINDS = ("background", "bone", "muscle", "fat", "lung", "gas", "vessel", "solid_organ", "hollow_organ",
                "fluid", "brain", "other")


def kind_index(kind: str | None) -> int:
    return TISSUE_KINDS.index(kind) if kind in TISSUE_KINDS else TISSUE_KINDS.index("other")


@dataclass
class ClassPriors:
    """Per class index (0 = background): prior in model units, tissue kind, calibration range, source, and the
    voxel spread (std, model units) the class had in training (NaN: unknown, no limit).

    `surround` (a package's, see check_surround): the painting of the unlabelled voxels near a label. It changes
    only the painted prior; class maps, kinds, calibration and reports are as without it."""

    unit: np.ndarray
    kind: np.ndarray
    low: np.ndarray
    high: np.ndarray
    source: list[str]
    spread: np.ndarray | None = None
    surround: dict | None = None
    outside: OutsideLayout | None = None  # the U-Net condition's painting outside the labels (outside_layout.py)

    def condition_prior(self, classes: torch.Tensor, geometry=None) -> torch.Tensor:
        """The painted prior the U-Net's condition sees (N, 1, X, Y, Z): prior_image, and with a package's outside
        layout and the grid's (spacing, direction), the layout outside the labels. The decoder's guide keeps
        prior_image: the autoencoder was trained on it."""
        prior = self.prior_image(classes)
        if self.outside is None or geometry is None:
            return prior
        out = prior.clone()
        for n in range(classes.shape[0]):
            painted = self.outside.paint(classes[n, 0].cpu().numpy(), *geometry)
            if painted is not None:
                layout = torch.from_numpy(painted).to(prior.device)
                out[n, 0] = torch.where(classes[n, 0] == 0, layout, prior[n, 0])
        return out

    def surround_weight(self, classes: torch.Tensor) -> torch.Tensor | None:
        """The surround's share of the painting at each voxel of a class map (torch): 1 on the labels and within
        full_steps of them, fading to 0 beyond; None for a package without a surround."""
        if self.surround is None:
            return None
        s = self.surround
        steps = growth_steps(classes, s["full_steps"] + s["fade_steps"])
        return torch.from_numpy(surround_weights(s["full_steps"], s["fade_steps"])).to(classes.device)[steps.long()]

    def prior_image(self, classes, weight=None):
        """The painted prior (model units, float32) of a class map, numpy or torch (then on its device). `weight`:
        the surround's share (surround_weight) where it was made elsewhere, e.g. on a coarser grid and resampled."""
        as_numpy = isinstance(classes, np.ndarray)
        if as_numpy and self.surround is None:  # the class map indexes the table as it is, in whatever integer type
            return np.asarray(self.unit, np.float32)[classes]
        t = torch.from_numpy(np.ascontiguousarray(classes)) if as_numpy else classes
        prior = torch.from_numpy(self.unit).to(t.device)[t.long()].float()
        if self.surround is not None:
            weight = self.surround_weight(t) if weight is None else torch.as_tensor(weight).to(t.device)
            prior = torch.where(t == 0, prior + weight * (float(self.surround["mean"]) - prior), prior)
        return prior.numpy() if as_numpy else prior

    def paint(self, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Prior image (model units) and kind image for a class-index map."""
        return self.prior_image(classes), np.asarray(self.kind, np.float32)[classes]

    def guide(self, classes: np.ndarray) -> np.ndarray:
        """The decoder's label input: (2, X, Y, Z) = painted prior and kind index, each written into it as made."""
        guide = np.empty((2, *np.shape(classes)), np.float32)
        guide[0] = self.prior_image(classes)
        guide[1] = np.asarray(self.kind, np.float32)[classes]
        return guide


def growth_steps(classes: torch.Tensor, steps: int) -> torch.Tensor:
    """For every voxel of a class map (last three axes spatial): 0 on a label, else the growth step (1..steps) at
    which the labelled region first reaches it, steps + 1 beyond. Odd steps grow to the 6 face neighbours, even
    ones to all 26: an octagonal distance in working voxels, rounder than a box (whose corners showed in the
    output). Boolean shifts only: about 15 ms a step at 256x256x128 on 2 threads."""
    region = classes > 0
    out = torch.full(classes.shape, steps + 1, dtype=torch.uint8, device=classes.device)
    out[region] = 0
    for step in range(1, steps + 1):
        grown = _grow(region, every_neighbour=step % 2 == 0)
        out[grown & ~region] = step
        region = grown
    return out


def _grow(region: torch.Tensor, every_neighbour: bool) -> torch.Tensor:
    """One voxel of growth along each spatial axis: from the region itself (face neighbours), or from the region
    grown along the axes before (a box: all 26 neighbours)."""
    source, grown = region, region.clone()
    for dim in range(region.ndim - 3, region.ndim):
        ahead = [slice(None)] * region.ndim
        behind = list(ahead)
        ahead[dim], behind[dim] = slice(1, None), slice(None, -1)
        if every_neighbour:
            source = grown.clone()
        grown[tuple(ahead)] |= source[tuple(behind)]
        grown[tuple(behind)] |= source[tuple(ahead)]
    return grown


def surround_weights(full_steps: int, fade_steps: int) -> np.ndarray:
    """The surround's share of the painting by growth step (index 0, labels: unused): 1 up to full_steps, then
    falling linearly over fade_steps to 0 beyond."""
    steps = np.arange(full_steps + fade_steps + 2, dtype=np.float32)
    return np.clip((full_steps + fade_steps + 1 - steps) / (fade_steps + 1), 0, 1).astype(np.float32)


def surround_steps(spacing, full_mm: float, fade_to_mm: float) -> tuple[int, int]:
    """A surround of full weight within `full_mm` of a label, fading out at `fade_to_mm`, in growth steps of the
    working grid's finest spacing."""
    finest = min(float(s) for s in spacing)
    full = max(1, int(round(full_mm / finest)))
    return full, max(0, int(round(fade_to_mm / finest)) - full - 1)  # the weight reaches 0 at step full + fade + 1


def measure_surround(cases, full_steps: int, fade_steps: int) -> dict:
    """Mean and std (model units) of the unlabelled voxels within full_steps of a label, over the labelled cases."""
    values = []
    for case in cases:
        if case.image is None or case.classes is None:
            continue
        steps = growth_steps(torch.from_numpy(case.classes.astype(np.int64)), full_steps).numpy()
        values.append(case.image[(steps >= 1) & (steps <= full_steps)].astype(np.float64))
    v = np.concatenate(values) if values else np.zeros(0)
    if v.size == 0:
        raise SynthError("--surround-mm needs labelled training cases; give a CSV with a label column")
    return {"full_steps": full_steps, "fade_steps": fade_steps, "mean": float(v.mean()), "std": float(v.std()),
            "voxels": int(v.size)}


def measure_class_means(cases, num_classes: int) -> dict[int, dict]:
    """Mean and std of every class's intensity (model units) over all labelled training cases."""
    total = np.zeros(num_classes)
    square = np.zeros(num_classes)
    count = np.zeros(num_classes)
    for case in cases:
        if case.image is None or case.classes is None:
            continue
        c = case.classes.reshape(-1).astype(np.int64)
        v = case.image.reshape(-1).astype(np.float64)
        total += np.bincount(c, v, num_classes)
        square += np.bincount(c, v * v, num_classes)
        count += np.bincount(c, None, num_classes)
    out = {}
    for index in np.nonzero(count)[0]:
        mean = total[index] / count[index]
        out[int(index)] = {"mean": float(mean), "std": float(np.sqrt(max(square[index] / count[index] - mean ** 2, 0.0))),
                           "voxels": int(count[index])}
    return out


def priors_metadata(table: LabelTable, measured: dict[int, dict], norm: dict, phase: str | None) -> dict:
    """What a package records: measured means by label id (0 = background), seen ids, the data's phase,
    and for relative priors (MRI) the reference tissue (white matter) that they are multiples of."""
    by_id = {"0" if index == 0 else str(table.labels[index - 1].id): stats for index, stats in measured.items()}
    meta = {"measured": by_id, "seen_labels": sorted(int(k) for k in by_id if k != "0"), "phase": phase}
    entry = modality_of(norm)
    if entry.prior_kind == "relative":
        name, token = entry.reference_tissue
        wm = [str(lab.id) for lab in table.labels if token in lab.name.split("_") and str(lab.id) in by_id]
        if wm:
            weights = np.array([by_id[i]["voxels"] for i in wm], float)
            meta["reference"] = {"name": name, "ids": [int(i) for i in wm],
                                 "mean": float(np.average([by_id[i]["mean"] for i in wm], weights=weights))}
    return meta


def read_priors_file(path: str | Path | None) -> dict:
    """The --priors JSON object as written (label or segment -> entry), or {} without a file."""
    if not path:
        return {}
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SynthError(f"cannot read priors file {path}: {exc.__class__.__name__}; give a JSON object of label -> mean") from None
    if not isinstance(raw, dict):
        raise SynthError(f"priors file {path} must be a JSON object of label id or name -> mean")
    return raw


def lesion_entries(path: str | Path | None) -> dict:
    """The --priors entries that describe new tissue ({"lesion": kind, ...}; engine/synthesis/lesions.py)."""
    return {k: v for k, v in read_priors_file(path).items() if isinstance(v, dict) and "lesion" in v}


def load_overrides(path: str | Path | None, table: LabelTable) -> dict[int, dict]:
    """A JSON object: label id or name -> a number or {"mean": x, "range": [lo, hi]}, in natural units. Lesion
    entries (with a "lesion" kind) are not labels of the model and are read by lesion_entries."""
    raw = {k: v for k, v in read_priors_file(path).items() if k not in lesion_entries(path)}
    by_name = table.id_by_name()
    out = {}
    for key, value in raw.items():
        label_id = int(key) if str(key).isdigit() else by_name.get(normalized_name(str(key)))
        if label_id is None or label_id not in {lab.id for lab in table.labels}:
            raise SynthError(f"priors file {path}: '{key}' is not a label of the model; use its ids or names")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value):
            value = {"mean": float(value)}
        ok = isinstance(value, dict) and isinstance(value.get("mean"), (int, float)) and np.isfinite(value["mean"])
        rng = value.get("range") if isinstance(value, dict) else None
        ok = ok and (rng is None or (isinstance(rng, list) and len(rng) == 2 and all(isinstance(r, (int, float)) for r in rng)
                                     and rng[0] <= value["mean"] <= rng[1]))
        if not ok:
            raise SynthError(f"priors file {path}: the value for '{key}' must be a number or "
                             "{\"mean\": x, \"range\": [lo, hi]} with lo <= x <= hi")
        out[label_id] = value
    return out


def class_priors(table: LabelTable, norm: dict, meta: dict, phase: str | None = None,
                 overrides: dict[int, dict] | None = None) -> ClassPriors:
    """Priors for every class of the table (see the module docstring for the order)."""
    if phase is not None and phase not in phase_names():
        raise SynthError(f"unknown --phase {phase}; choose one of {', '.join(phase_names())}")
    entry = modality_of(norm)
    if phase is not None and phase not in entry.phases:
        if entry.phases:
            raise SynthError(f"--phase {phase} is not a {entry.display_name} phase; choose one of {', '.join(entry.phases)}")
        with_phases = " or ".join(m.display_name for m in MODALITIES.values() if m.phases)
        raise SynthError(f"--phase applies to {with_phases} models only; leave it out for {entry.display_name}")
    overrides = overrides or {}
    measured = meta.get("measured", {})
    absolute = entry.prior_kind == "absolute"  # CT: HU; else multiples of the reference tissue
    reference = meta.get("reference", {}).get("mean", 1.0)  # relative (MRI): white matter's mean in model units

    def to_unit(natural: float) -> float:
        return float(model_units(np.array([natural]), norm)[0]) if absolute else float(natural) * reference

    def to_natural(unit: float) -> float:
        return float(denormalize(np.array([unit]), norm)[0]) if absolute else float(unit) / reference

    def measured_range(mean_unit: float) -> tuple[float, float]:
        return entry.around(to_natural(mean_unit))

    n = table.num_classes
    unit, kind, low, high = np.zeros(n, np.float32), np.zeros(n, np.int64), np.zeros(n), np.zeros(n)
    source = ["background"] * n
    background = measured.get("0", {}).get("mean", 0.0)
    unit[0], low[0], high[0] = background, -np.inf, np.inf
    for index, lab in enumerate(table.labels, start=1):
        kind[index] = kind_index(lab.kind)
        ref = (lab.prior or {}).get(phase or meta.get("phase") or entry.default_phase) if entry.phases else None
        if lab.id in overrides:
            o = overrides[lab.id]
            value, rng, src = o["mean"], o.get("range"), "override"
            if rng is None:
                rng = measured_range(to_unit(value))
        elif phase and ref:
            value, rng, src = ref["mean"], ref["range"], f"reference:{phase}"
        elif str(lab.id) in measured:
            value = to_natural(measured[str(lab.id)]["mean"])
            rng, src = measured_range(measured[str(lab.id)]["mean"]), "measured"
        elif ref:
            value, rng, src = ref["mean"], ref["range"], f"reference:{meta.get('phase') or entry.default_phase}"
        else:
            value, rng = entry.kind_prior(lab.kind)
            src = "kind"
        unit[index] = to_unit(value)
        low[index], high[index] = float(min(rng)), float(max(rng))
        source[index] = src
    surround, outside = meta.get("surround"), meta.get("outside_layout")
    return ClassPriors(unit, kind, low, high, source, class_spreads(table, measured, kind),
                       None if surround is None else check_surround(surround),
                       None if outside is None else read_layout(outside))


def check_surround(surround) -> dict:
    """A package's surround block, validated before any work: full_steps (>= 1) and fade_steps (>= 0) growth
    steps on the working grid, and the painted mean (model units)."""
    def steps(key, low):
        value = surround.get(key) if isinstance(surround, dict) else None
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= 64

    mean = surround.get("mean") if isinstance(surround, dict) else None
    if not (steps("full_steps", 1) and steps("fade_steps", 0) and isinstance(mean, (int, float))
            and not isinstance(mean, bool) and np.isfinite(mean)):
        raise SynthError("the model's priors have a malformed 'surround' (need full_steps 1..64, fade_steps 0..64 and "
                         "a finite mean); the package is damaged, reinstall it")
    return surround


def class_spreads(table: LabelTable, measured: dict, kind: np.ndarray) -> np.ndarray:
    """Each class's voxel std in training (model units); an unseen class gets the median of its tissue kind's
    measured classes, NaN where the kind was never measured."""
    spread = np.full(table.num_classes, np.nan)
    for index, lab in enumerate(table.labels, start=1):
        if "std" in measured.get(str(lab.id), {}):
            spread[index] = measured[str(lab.id)]["std"]
    for k in np.unique(kind[1:]):
        same = (kind == k) & (np.arange(len(kind)) > 0)
        known = spread[same & np.isfinite(spread)]
        if known.size:
            spread[same & ~np.isfinite(spread)] = float(np.median(known))
    return spread
