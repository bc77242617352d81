"""What a job returns: its outputs, the provenance it recorded and what it reported on the way (JSON-ready)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


@dataclass
class Result:
    """The result of one request.

    Args:
        command: the request's command (generate, translate, evaluate, train-*).
        outputs: what was written, by role ({"out": path, "field": path, ...}).
        provenance: the record stamped on the outputs (model, version, software and the resolved request).
        report: what the run found on the way (generate: the calibration check's flags and unseen labels).
    """

    command: str
    outputs: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    report: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    @classmethod
    def from_json(cls, text: str) -> "Result":
        return cls(**json.loads(text))


def flagged_labels(flagged: list, limit: int | None = None) -> str:
    """The calibration check's flags as text: "liver 12.5 (range 40..90 HU), ..." (the first `limit`)."""
    shown = ", ".join(f"{f['name']} {f['mean']:g} (range {f['range'][0]:g}..{f['range'][1]:g} {f['units']})"
                      for f in flagged[:limit])
    return shown + (f" and {len(flagged) - limit} more" if limit is not None and len(flagged) > limit else "")


def calibration_flags(report: dict, limit: int = 8) -> str:
    """One line for a GUI's status: the labels whose generated mean came out outside their prior's range, and
    what was done with them; "" when none was flagged (or no check ran). `report` is a generate Result's report."""
    calibration = (report or {}).get("calibration") or {}
    flagged = calibration.get("outside_prior_range") or []
    if not flagged:
        return ""
    action = "moved onto their priors" if calibration.get("means_matched_to_priors") else "left as generated"
    return (f"Calibration check: {len(flagged)} label(s) came out outside their prior range, {action}: "
            f"{flagged_labels(flagged, limit)}")
