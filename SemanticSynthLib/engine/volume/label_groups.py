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


def _whole(value) -> bool:
    """A whole number in JSON: an int (not a bool), or a float with no fraction (1.0)."""
    return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, float) and value.is_integer())


@dataclass
class LabelGroups:
    name: str
    names: list[str]           # group i + 1 is names[i]; 0 is background
    members: list[list[int]]   # label ids of each group

    @classmethod
    def from_json(cls, data: dict, source: str | None = None) -> "LabelGroups":
        """Groups from their JSON form; `source` (the file) names where a bad entry is in the error."""
        where = f"label groups {source or (data.get('name') if isinstance(data, dict) else None)}"
        if not isinstance(data, dict) or not isinstance(data.get("groups"), list) or not data["groups"]:
            raise SynthError(f"{where}: expected a JSON object with a non-empty 'groups' list, e.g. "
                             '{"name": "mine", "groups": [{"id": 1, "name": "white matter", "members": [1, 2]}]}; '
                             "fix the file")
        groups = []
        for i, g in enumerate(data["groups"]):
            if not isinstance(g, dict) or not {"id", "name", "members"} <= set(g):
                raise SynthError(f"{where}: group {i + 1} is not an object with 'id', 'name' and 'members'; fix the file")
            if not _whole(g["id"]) or g["id"] < 1:
                raise SynthError(f"{where}: group {i + 1} has id {g['id']!r}; group ids are whole numbers 1..N, fix the file")
            members = g["members"]
            bad = [m for m in members if not _whole(m) or m < 0] if isinstance(members, list) and members else [members]
            if bad:
                raise SynthError(f"{where}: group {g['id']} ({g['name']}) has member {bad[0]!r}; members are a non-empty "
                                 "list of label ids, whole numbers >= 0, fix the file")
            groups.append(g)
        groups.sort(key=lambda g: g["id"])
        if [g["id"] for g in groups] != list(range(1, len(groups) + 1)):
            raise SynthError(f"{where}: group ids must be 1..N")
        return cls(str(data.get("name", "groups")), [str(g["name"]) for g in groups],
                   [[int(m) for m in g["members"]] for g in groups])

    @classmethod
    def from_spec(cls, spec: str) -> "LabelGroups":
        """A built-in name (muse_groups), a JSON groups file, or a label table (each label its own group)."""
        path = BUILTIN_DIR / f"{spec}.json" if (BUILTIN_DIR / f"{spec}.json").exists() else Path(spec)
        if path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise SynthError(f"label groups {path} is not valid JSON ({exc.msg} at line {exc.lineno}, column "
                                 f"{exc.colno}); fix the file") from None
            except (OSError, UnicodeDecodeError) as exc:
                raise SynthError(f"cannot read label groups {path} ({exc.__class__.__name__}: {exc}); give a JSON "
                                 "groups file or a label table") from None
            if isinstance(data, dict) and "groups" in data:
                return cls.from_json(data, str(path))
            try:
                table = LabelTable.from_json(data)
            except (KeyError, TypeError, ValueError, AttributeError):
                raise SynthError(f"label groups {path} is neither a groups file (with a 'groups' list of id, name and "
                                 "members) nor a label table (with a 'labels' list of whole-number ids and names); "
                                 "fix the file") from None
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
