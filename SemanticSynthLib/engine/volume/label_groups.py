"""Label groups: e.g. MUSE's 148 regions as seven brain structures, what the auxiliary segmenter learns and
evaluation scores.

A groups file is JSON: {"name", "groups": [{"id": 1, "name": "white matter", "members": [label ids]}, ...]}.
Without a groups file every label of the table is its own group.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import SynthError
from .labels import BUILTIN_DIR as TABLES_DIR, LabelTable

BUILTIN_DIR = TABLES_DIR / "groups"  # beside the built-in label tables they group


@dataclass
class LabelGroups:
    name: str
    names: list[str]           # group i + 1 is names[i]; 0 is background
    members: list[list[int]]   # label ids of each group

    @classmethod
    def from_json(cls, data: dict) -> "LabelGroups":
        groups = sorted(data["groups"], key=lambda g: g["id"])
        if [g["id"] for g in groups] != list(range(1, len(groups) + 1)):
            raise SynthError(f"label groups {data.get('name')}: group ids must be 1..N")
        return cls(data.get("name", "groups"), [g["name"] for g in groups], [list(map(int, g["members"])) for g in groups])

    @classmethod
    def from_spec(cls, spec: str) -> "LabelGroups":
        """A built-in name (muse_groups), a JSON groups file, or a label table (each label its own group)."""
        path = BUILTIN_DIR / f"{spec}.json" if (BUILTIN_DIR / f"{spec}.json").exists() else Path(spec)
        if path.exists():
            data = json.loads(path.read_text(encoding="utf-8"))
            if "groups" in data:
                return cls.from_json(data)
            table = LabelTable.from_json(data)
        else:
            table = LabelTable.builtin(spec)  # its error names the built-in tables
        return cls(table.name, [lab.name for lab in table.labels], [[lab.id] for lab in table.labels])

    def to_json(self) -> dict:
        return {"name": self.name, "groups": [{"id": i + 1, "name": n, "members": m}
                                              for i, (n, m) in enumerate(zip(self.names, self.members))]}

    @property
    def num_classes(self) -> int:
        return len(self.names) + 1

    def group_map(self, label_ids: np.ndarray) -> np.ndarray:
        """Label ids -> group indices (0 for background and labels in no group)."""
        top = max(int(label_ids.max()), max(max(m) for m in self.members)) + 1
        lookup = np.zeros(top, np.int16)
        for i, members in enumerate(self.members):
            lookup[members] = i + 1
        if label_ids.min() < 0:
            raise SynthError("label map has negative ids; give a label map of non-negative integers")
        return lookup[label_ids.astype(np.int64)]
