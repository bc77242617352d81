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
