"""Label vocabularies: a model's label table and the matching of input label ids to it."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import SynthError

BUILTIN_DIR = Path(__file__).parent / "label_tables"


def normalized_name(name: str) -> str:
    """Case- and separator-insensitive key: 'Kidney_Left', 'kidney left' and 'kidney-left' agree."""
    return re.sub(r"[^a-z0-9]+", "", name.lower())


@dataclass
class Label:
    id: int
    name: str
    color: list[int] | None = None
    synonyms: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        out = {"id": self.id, "name": self.name}
        if self.color:
            out["color"] = list(self.color)
        if self.synonyms:
            out["synonyms"] = list(self.synonyms)
        return out


@dataclass
class LabelTable:
    """The labels a model knows. Class index 0 is background; label i of `labels` is class i + 1."""

    name: str
    labels: list[Label]

    @classmethod
    def from_json(cls, data: dict) -> "LabelTable":
        labels = [Label(int(e["id"]), str(e["name"]), e.get("color"), list(e.get("synonyms", []))) for e in data["labels"]]
        ids = [lab.id for lab in labels]
        if len(set(ids)) != len(ids) or 0 in ids:
            raise SynthError(f"label table {data.get('name')} has duplicate ids or uses id 0; fix the table")
        return cls(str(data.get("name", "custom")), labels)

    @classmethod
    def builtin(cls, name: str) -> "LabelTable":
        path = BUILTIN_DIR / f"{name}.json"
        if not path.exists():
            known = ", ".join(sorted(p.stem for p in BUILTIN_DIR.glob("*.json")))
            raise SynthError(f"unknown label table '{name}'; built-in tables: {known}")
        return cls.from_json(json.loads(path.read_text(encoding="utf-8")))

    @classmethod
    def from_spec(cls, spec: str) -> "LabelTable":
        """A built-in table's name (muse, totalseg_v2, amos) or a JSON file with {"name", "labels": [...]}."""
        if not spec.lower().endswith(".json"):
            return cls.builtin(spec)
        try:
            return cls.from_json(json.loads(Path(spec).read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError, KeyError) as exc:
            raise SynthError(f"cannot read label table {spec}: {exc}; give a JSON file with a 'labels' list") from None

    def to_json(self) -> dict:
        return {"name": self.name, "labels": [lab.to_json() for lab in self.labels]}

    def subset(self, ids) -> "LabelTable":
        keep = set(int(i) for i in ids)
        return LabelTable(self.name, [lab for lab in self.labels if lab.id in keep])

    @property
    def num_classes(self) -> int:
        """Classes including background."""
        return len(self.labels) + 1

    def id_by_name(self) -> dict[str, int]:
        out = {}
        for lab in self.labels:
            for n in [lab.name, *lab.synonyms]:
                out.setdefault(normalized_name(n), lab.id)
        return out

    def class_lookup(self, max_id: int) -> np.ndarray:
        """Array mapping a label id to its class index (0 for ids not in the table)."""
        lut = np.zeros(max(max_id, max(lab.id for lab in self.labels)) + 1, np.int64)
        for index, lab in enumerate(self.labels, start=1):
            lut[lab.id] = index
        return lut


def load_name_mapping(path: str | Path, table: LabelTable) -> dict[int, int]:
    """A JSON mapping of input ids to model ids: values may be model ids or model label names."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SynthError(f"cannot read label mapping {path}: {exc}; give a JSON object of input id -> model id or name") from None
    by_name = table.id_by_name()
    mapping = {}
    for key, value in raw.items():
        if isinstance(value, str):
            if normalized_name(value) not in by_name:
                raise SynthError(f"label mapping {path}: '{value}' is not a label of the model; use one of its names or ids")
            value = by_name[normalized_name(value)]
        mapping[int(key)] = int(value)
    return mapping


def to_class_indices(label_ids: np.ndarray, table: LabelTable, mapping: dict[int, int] | None = None,
                     unknown: str = "error") -> np.ndarray:
    """Turn a label map's ids into the model's class indices (0 = background).

    unknown="error" lists the ids the model does not know; unknown="background" maps them to 0.
    """
    if label_ids.dtype.kind == "f":
        if not np.all(np.isfinite(label_ids)) or not np.all(label_ids == np.round(label_ids)):
            raise SynthError("the label map has non-integer values; give a label map of integer ids, not an image")
        label_ids = label_ids.astype(np.int64)
    elif label_ids.dtype.kind not in "iub":
        raise SynthError(f"the label map has voxel type {label_ids.dtype}; give integer label ids")
    label_ids = label_ids.astype(np.int64)
    if label_ids.min() < 0:
        raise SynthError("the label map has negative ids; label ids must be 0 (background) or positive")
    present = np.unique(label_ids)
    if mapping:
        lut_in = np.arange(int(present.max()) + 1)
        for src, dst in mapping.items():
            if src <= present.max():
                lut_in[src] = dst
        label_ids = lut_in[label_ids]
        present = np.unique(label_ids)
    if present.max() == 0:
        raise SynthError("the label map is empty (background only); give a label map with at least one label")
    known = {lab.id for lab in table.labels}
    missing = [int(i) for i in present if i != 0 and i not in known]
    if missing and unknown != "background":
        shown = ", ".join(map(str, missing[:20])) + (" ..." if len(missing) > 20 else "")
        raise SynthError(f"labels unknown to the model ({table.name}): {shown}; "
                         "map them with --label-mapping or pass --unknown-labels background")
    lut = table.class_lookup(int(present.max()))
    classes = lut[label_ids]
    if classes.max() == 0:
        raise SynthError("none of the label map's labels are known to the model; check the label table or mapping")
    return classes
