"""The imaging modalities, in one registry: the package schema, intensity normalisation, priors, calibration, the
volume-kind guess, the default models, the Slicer bridge's window/level and the web page all read MODALITIES, so
another modality is one more `register_modality(...)` call, and a name that is not registered is refused in one line
instead of taking another modality's path.

A modality is:
- its name ("ct": the command line's --modality, a package's "modalities", a dataset CSV's modality column) and its
  display name ("CT");
- its natural units ("HU", "scanner"), which every normalisation it writes records as "units": a package's
  normalisation names its modality's entry by them (priors and calibration get a normalisation, not a name);
- its normalisation (engine/volume/intensity.py): "piecewise_linear", a fixed map of natural units onto [0, 1]
  (its knots here), or "percentile_scale", each volume divided by its own percentile of foreground and the package's
  median scale applied on output;
- its display window/level in natural units, or None for the volume's own 1st..99.5th percentile;
- how its priors are written (engine/model/priors.py): "absolute" in natural units (CT: HU), or "relative" as
  multiples of a reference tissue's mean (MRI: white matter, the labels whose name has the token "WM"); the calibration
  tolerance around a measured mean (natural units, or a fraction for relative priors); a typical prior per tissue kind
  for a class with no other source (a value, or (value, (low, high))); the contrast phases its label tables give
  reference priors for;
- what else depends on it: the bundled model generated when none is named, the evidence by which volume_kind.py guesses
  it from voxels, and whether train-translator supports it.

Torch- and numpy-free, so that the command line, the schema and the Slicer bridge can read it without loading torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from ...errors import SynthError

NORMALIZATION_KINDS = {"piecewise_linear": ("source_knots", "unit_knots"), "percentile_scale": ("percentile",)}
PRIOR_KINDS = ("absolute", "relative")
# volume_kind.py's evidence: markedly negative tissue (fat and air in HU), or none of that ("otherwise").
DETECTIONS = ("negative_tissue", "otherwise")


@dataclass(frozen=True)
class Modality:
    name: str
    display_name: str
    units: str                         # natural units, as its normalisations record them
    normalization: Mapping[str, object]  # "kind" and its fixed parameters (not "scale", not "units")
    window_level: tuple[float, float] | None  # (window, level) in natural units; None: the volume's percentiles
    prior_kind: str                    # one of PRIOR_KINDS
    tolerance: float                   # calibration range around a measured mean: natural units, or relative fraction
    kind_priors: Mapping[str, object]  # tissue kind -> value or (value, (low, high)), natural units; needs "other"
    reference_tissue: tuple[str, str] | None = None  # relative priors: (name, label-name token), ("white matter", "WM")
    phases: tuple[str, ...] = ()       # contrast phases of the label tables' reference priors
    default_phase: str | None = None   # the phase assumed when the training data recorded none
    default_generator: str | None = None  # bundled generator used when no model is named
    detected_by: str | None = None     # one of DETECTIONS: how volume_kind.py guesses it; None: never guessed
    translatable: bool = False         # train-translator normalises it
    summary: str = field(default="", compare=False)  # one line for --help and the README

    @property
    def prior_units(self) -> str:
        """How its priors and calibration ranges are written: "HU", "x white matter"."""
        return self.units if self.prior_kind == "absolute" else f"x {self.reference_tissue[0]}"

    def kind_prior(self, kind: str | None) -> tuple[float, tuple[float, float]]:
        """The prior (natural units) and range of a class known only by its tissue kind; an unknown kind is "other".
        A bare value gets twice the measured tolerance around it."""
        value = self.kind_priors.get(kind or "other", self.kind_priors["other"])
        if isinstance(value, tuple):
            return value[0], tuple(value[1])
        return value, self.around(value, 2)

    def around(self, natural: float, factor: float = 1) -> tuple[float, float]:
        """The calibration range of a prior: factor x the tolerance either side (relative: as a fraction)."""
        if self.prior_kind == "absolute":
            return natural - factor * self.tolerance, natural + factor * self.tolerance
        return natural * (1 - factor * self.tolerance), natural * (1 + factor * self.tolerance)


MODALITIES: dict[str, Modality] = {}
DEFAULT_MODALITY = "mri"  # cases without a modality column, and the default model when neither is named


def _check(entry: Modality) -> None:
    def bad(text):
        raise ValueError(f"modality {entry.name!r}: {text}")

    if not (isinstance(entry.name, str) and entry.name.isidentifier() and entry.name == entry.name.lower()):
        bad("the name must be a lower-case identifier")
    kind = entry.normalization.get("kind")
    if kind not in NORMALIZATION_KINDS:
        bad(f"normalization kind must be one of {', '.join(NORMALIZATION_KINDS)}")
    missing = [k for k in NORMALIZATION_KINDS[kind] if k not in entry.normalization]
    if missing or {"scale", "units"} & set(entry.normalization):
        bad(f"a {kind} normalization holds {', '.join(NORMALIZATION_KINDS[kind])} (not scale or units)")
    if entry.window_level is not None and not (len(entry.window_level) == 2 and entry.window_level[0] > 0):
        bad("window_level must be (window > 0, level) or None")
    if entry.prior_kind not in PRIOR_KINDS:
        bad(f"prior_kind must be one of {', '.join(PRIOR_KINDS)}")
    if entry.prior_kind == "relative" and entry.reference_tissue is None:
        bad("relative priors need a reference_tissue (name, label-name token)")
    if not entry.tolerance > 0:
        bad("tolerance must be > 0")
    if "other" not in entry.kind_priors:
        bad("kind_priors needs an 'other' entry")
    if (entry.default_phase is None) != (not entry.phases) or (entry.phases and entry.default_phase not in entry.phases):
        bad("default_phase must be one of its phases (and None without phases)")
    if entry.detected_by is not None and entry.detected_by not in DETECTIONS:
        bad(f"detected_by must be one of {', '.join(DETECTIONS)} or None")
    for other in MODALITIES.values():
        if other.name == entry.name:
            continue
        if other.units == entry.units:
            bad(f"units {entry.units!r} are {other.name}'s already (a normalisation names its modality by them)")
        if entry.detected_by is not None and other.detected_by == entry.detected_by:
            bad(f"{other.name} is detected by {entry.detected_by} already")


def register_modality(entry: Modality, replace: bool = False) -> Modality:
    """Add a modality (checked; ValueError on a bad definition). Its normalization and kind priors are frozen."""
    if entry.name in MODALITIES and not replace:
        raise ValueError(f"modality {entry.name!r} is registered already")
    entry = Modality(**{**entry.__dict__, "normalization": MappingProxyType(dict(entry.normalization)),
                        "kind_priors": MappingProxyType(dict(entry.kind_priors))})
    _check(entry)
    MODALITIES[entry.name] = entry
    return entry


def unregister_modality(name: str) -> None:
    """Remove a modality (tests and plug-ins); the built-in ones stay unless removed by name."""
    MODALITIES.pop(name, None)


def modality(name: str) -> Modality:
    """The registered modality of that name; a one-line SynthError naming the known ones otherwise."""
    try:
        return MODALITIES[name]
    except (KeyError, TypeError):
        raise SynthError(f"unknown modality {name!r}; choose one of {', '.join(MODALITIES)}") from None


def modality_of(norm: Mapping) -> Modality:
    """The modality a normalisation (a package's, or intensity.py's) is of, by the units it records."""
    units = norm.get("units")
    for entry in MODALITIES.values():
        if entry.units == units:
            return entry
    known = ", ".join(f"{m.units} ({m.name})" for m in MODALITIES.values())
    raise SynthError(f"the model's normalization is in units {units!r}, which no registered modality has "
                     f"(known: {known}); the package is from a newer version or needs its modality registered")


def guessed_modality(negative_tissue: bool) -> str:
    """The modality volume_kind.py takes an intensity volume for: the one detected by negative tissue, or otherwise."""
    wanted = DETECTIONS[0] if negative_tissue else DETECTIONS[1]
    for entry in MODALITIES.values():
        if entry.detected_by == wanted:
            return entry.name
    raise SynthError(f"no registered modality is detected by {wanted}; register one or name the modality")


def modality_names() -> tuple[str, ...]:
    """The registered modalities' names, in registration order (the command line's --modality choices)."""
    return tuple(MODALITIES)


def phase_names() -> tuple[str, ...]:
    """Every registered modality's contrast phases, in registration order (the command line's --phase choices)."""
    return tuple(dict.fromkeys(p for m in MODALITIES.values() for p in m.phases))


def default_generator(name: str | None) -> str:
    """The bundled generator for a modality (None: DEFAULT_MODALITY's)."""
    entry = modality(name or DEFAULT_MODALITY)
    if entry.default_generator is None:
        raise SynthError(f"no bundled model generates {entry.display_name}; give --model")
    return entry.default_generator


def modalities_help() -> str:
    return "; ".join(f"{m.name}: {m.summary or m.display_name}" for m in MODALITIES.values())


register_modality(Modality(
    "ct", "CT", "HU",
    # Soft tissue gets most of the range, as the abdominal-CT paper's L40/W400 window, but air, fat and bone stay apart.
    {"kind": "piecewise_linear", "source_knots": (-1024.0, -200.0, 300.0, 1500.0), "unit_knots": (0.0, 0.25, 0.85, 1.0)},
    window_level=(400.0, 40.0),  # abdominal soft-tissue window, as in the abdominal-CT paper
    prior_kind="absolute", tolerance=40.0,
    # Classes with neither a table prior nor training data (a custom table): a typical HU per kind, and range.
    kind_priors={"bone": (400, [150, 1000]), "muscle": (50, [15, 80]), "fat": (-100, [-140, -60]),
                 "lung": (-800, [-920, -600]), "gas": (-950, [-1024, -700]), "vessel": (45, [20, 250]),
                 "solid_organ": (60, [20, 160]), "hollow_organ": (20, [-600, 80]), "fluid": (10, [-10, 40]),
                 "brain": (35, [20, 50]), "other": (40, [-100, 200])},
    phases=("non_contrast", "arterial", "portal_venous", "delayed"), default_phase="portal_venous",
    default_generator="abdomen-ct", detected_by="negative_tissue", translatable=False,
    summary="CT in HU, a fixed HU map; priors in HU"))
register_modality(Modality(
    "mri", "MRI", "scanner",
    {"kind": "percentile_scale", "percentile": 99.5},
    window_level=None,
    prior_kind="relative", tolerance=0.10,
    # Classes never seen in training: a T1-typical brightness per kind, in multiples of white matter.
    kind_priors={"brain": 0.85, "fluid": 0.35, "fat": 1.2, "vessel": 0.6, "other": 0.6, "bone": 0.4},
    reference_tissue=("white matter", "WM"),
    default_generator="brain-mri", detected_by="otherwise", translatable=True,
    summary="MRI in scanner units, scaled by the 99.5th percentile; priors in multiples of white matter"))
