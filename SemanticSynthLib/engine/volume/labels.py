"""Label vocabularies: a model's label table and the matching of input label ids to it."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import SynthError

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
    kind: str | None = None     # tissue kind (engine/model/priors.py TISSUE_KINDS): how a model conditions on an unseen id
    prior: dict | None = None   # reference intensity: CT {"phase": {"mean": HU, "range": [lo, hi]}}; MRI relative to WM

    def to_json(self) -> dict:
        out = {"id": self.id, "name": self.name}
        if self.color:
            out["color"] = list(self.color)
        if self.synonyms:
            out["synonyms"] = list(self.synonyms)
        if self.kind:
            out["kind"] = self.kind
        if self.prior:
            out["prior"] = self.prior
        return out


@dataclass
class LabelTable:
    """The labels a model knows. Class index 0 is background; label i of `labels` is class i + 1."""

    name: str
    labels: list[Label]

    @classmethod
    def from_json(cls, data: dict) -> "LabelTable":
        for e in data["labels"]:
            if isinstance(e["id"], bool) or (isinstance(e["id"], float) and not e["id"].is_integer()):
                raise SynthError(f"label table {data.get('name')}: label {e.get('name')!r} has id {e['id']!r}; label ids "
                                 "are whole numbers, fix the table")
        labels = [Label(int(e["id"]), str(e["name"]), e.get("color"), list(e.get("synonyms", [])), e.get("kind"), e.get("prior"))
                  for e in data["labels"]]
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
        except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
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


MAX_LABEL_ID = 2 ** 31 - 1
DENSE_LOOKUP_IDS = 2 ** 20  # below this largest id, classes come from an id-indexed table (at most 8 MB)


def segment_names_as_written(image) -> dict[int, str]:
    """Names the label map file itself gives its ids (Slicer .seg.nrrd: SegmentN_Name, SegmentN_LabelValue), as
    written, by id (the first segment's name where several share an id)."""
    keys = set(image.GetMetaDataKeys())
    names = {}
    for key in sorted(keys):
        if key.startswith("Segment") and key.endswith("_Name"):
            value_key = key[: -len("_Name")] + "_LabelValue"
            if value_key in keys and image.GetMetaData(value_key).strip().isdigit():
                names.setdefault(int(image.GetMetaData(value_key)), image.GetMetaData(key))
    return names


def segment_names(image) -> dict[str, int]:
    """segment_names_as_written, keyed by normalized name."""
    names = {}
    for label_id, name in segment_names_as_written(image).items():
        names.setdefault(normalized_name(name), label_id)
    return names


def _mapping_id(text, path, what: str) -> int:
    if isinstance(text, bool) or not isinstance(text, (int, str)) or (isinstance(text, str) and not text.strip().isdigit()):
        raise SynthError(f"label mapping {path}: {what} {text!r} is not a label id; ids are whole numbers from 0 to {MAX_LABEL_ID}")
    value = int(text)
    if value < 0:
        raise SynthError(f"label mapping {path}: {what} {text!r} is not a label id; ids are whole numbers from 0 to {MAX_LABEL_ID}")
    if value > MAX_LABEL_ID:
        raise SynthError(f"label mapping {path}: {what} {value} is out of range; ids are whole numbers from 0 to {MAX_LABEL_ID}")
    return value


def load_name_mapping(path: str | Path, table: LabelTable, input_names: dict[str, int] | None = None) -> dict[int, int]:
    """A JSON object of input label -> model label, checked for types and ranges.

    Keys are the input's ids ("23"), or names the label map itself gives its ids (Slicer segment names);
    values are model ids (whole numbers, 0 for background) or model label names.
    """
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise SynthError(f"cannot read label mapping {path}: {exc.__class__.__name__}; give a JSON object of input id -> "
                         "model id or name") from None
    if not isinstance(raw, dict):
        raise SynthError(f"label mapping {path} is not a JSON object; give {{\"input id\": model id or name, ...}}")
    by_name, known = table.id_by_name(), {lab.id for lab in table.labels}
    input_names = input_names or {}
    mapping = {}
    for key, value in raw.items():
        if key.strip().isdigit():
            source = _mapping_id(key, path, "input id")
        elif normalized_name(key) in input_names:
            source = input_names[normalized_name(key)]
        else:
            where = "the label map's segment names" if input_names else "the label map (it names no segments)"
            raise SynthError(f"label mapping {path}: key {key!r} is neither an input id (a whole number >= 0) nor a name in "
                             f"{where}; use the input's label ids as keys")
        if isinstance(value, str) and not value.strip().isdigit():
            if normalized_name(value) not in by_name:
                raise SynthError(f"label mapping {path}: '{value}' is not a label of the model; use one of its names or ids")
            target = by_name[normalized_name(value)]
        else:
            target = _mapping_id(value, path, f"the target of {key!r},")
            if target != 0 and target not in known:
                raise SynthError(f"label mapping {path}: the target of {key!r}, {target}, is not a label of the model "
                                 f"({table.name}); use one of its ids or names, or 0 for background")
        if source in mapping:
            raise SynthError(f"label mapping {path}: input id {source} is mapped twice; keep one entry")
        mapping[source] = target
    return mapping


def check_label_volume(image, what: str = "the label map") -> None:
    """A label map carried or read as ids: whole-number values of an integer or float type, none negative. A float
    image with fractions (an intensity volume given as the labels) would otherwise be carried and written as a
    'label map' of intensities."""
    import SimpleITK as sitk

    values = sitk.GetArrayViewFromImage(image)
    if values.dtype.kind == "f":
        fractional = values != np.round(values)
        if np.any(fractional):
            example = float(values[fractional].flat[0])
            raise SynthError(f"{what} has non-integer values (e.g. {example:g}), so it is not a label map; give the "
                             "segmentation, whose voxels are whole-number label ids")
    elif values.dtype.kind not in "iub":
        raise SynthError(f"{what} has voxel type {values.dtype}; give a label map of whole-number ids")
    if values.size and values.min() < 0:
        raise SynthError(f"{what} has negative values (e.g. {float(values.min()):g}), so it is not a label map; label ids are 0 "
                         "(background) or positive")


def class_index_dtype(num_classes: int) -> np.dtype:
    """The smallest integer type holding class indices 0..num_classes (num_classes itself: a spare index, as the
    calibration gives voxels outside the map)."""
    for dtype in (np.uint8, np.int16, np.int32):
        if num_classes <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.int64)


def id_counts(ids: np.ndarray, slab_voxels: int = 2 ** 22) -> np.ndarray:
    """Voxel counts by id, np.bincount of the ids as int64, counted a slab of the first axis at a time: a 512^3
    map's ids as int64 would be 1 GB."""
    ids = np.asarray(ids)
    if ids.ndim == 0:
        return np.bincount(ids.reshape(1).astype(np.int64))
    step = max(1, slab_voxels // max(1, ids[:1].size))
    counts = np.zeros(1, np.int64)
    for start in range(0, ids.shape[0], step):
        part = np.bincount(ids[start:start + step].ravel().astype(np.int64))
        if len(part) > len(counts):
            part[:len(counts)] += counts
            counts = part
        else:
            counts[:len(part)] += part
    return counts


def to_class_indices(label_ids: np.ndarray, table: LabelTable, mapping: dict[int, int] | None = None,
                     unknown: str = "error") -> np.ndarray:
    """Turn a label map's ids into the model's class indices (0 = background).

    unknown="error" lists the ids the model does not know; unknown="background" maps them to 0. Works on the
    ids present: a lookup table indexed by id only while the largest id is below DENSE_LOOKUP_IDS.
    """
    label_ids = np.asarray(label_ids)
    if label_ids.dtype.kind == "f":
        if not np.all(np.isfinite(label_ids)) or not np.all(label_ids == np.round(label_ids)):
            raise SynthError("the label map has non-integer values; give a label map of integer ids, not an image")
    elif label_ids.dtype.kind not in "iub":
        raise SynthError(f"the label map has voxel type {label_ids.dtype}; give integer label ids")
    if label_ids.size == 0:
        raise SynthError("the label map is empty (no voxels); give a 3D label map")
    if label_ids.min() < 0:
        raise SynthError("the label map has negative ids; label ids must be 0 (background) or positive")
    if label_ids.max() > MAX_LABEL_ID:
        raise SynthError(f"the label map has ids above {MAX_LABEL_ID}; give a label map of ordinary label ids")
    ids = label_ids.astype(np.int64, copy=False)
    if int(ids.max()) < DENSE_LOOKUP_IDS:
        # Ordinary ids: count them and look classes up in a table indexed by id, 5x faster than np.unique's sort
        # (0.03 s against 0.16 s at 128^3).
        present, inverse = np.flatnonzero(np.bincount(ids.ravel())), None
    else:
        present, inverse = np.unique(ids, return_inverse=True)
    targets = present.copy()
    for src, dst in (mapping or {}).items():
        if src < 0 or dst < 0 or src > MAX_LABEL_ID or dst > MAX_LABEL_ID:
            raise SynthError(f"label mapping {src} -> {dst} is out of range; ids are whole numbers from 0 to {MAX_LABEL_ID}")
        targets[present == src] = dst
    if targets.max() == 0:
        raise SynthError("the label map is empty (background only); give a label map with at least one label")
    class_of = {lab.id: index for index, lab in enumerate(table.labels, start=1)}
    missing = sorted({int(i) for i in targets if i != 0 and int(i) not in class_of})
    if missing and unknown != "background":
        shown = ", ".join(map(str, missing[:20])) + (" ..." if len(missing) > 20 else "")
        raise SynthError(f"labels unknown to the model ({table.name}): {shown}; "
                         "map them with --label-mapping or pass --unknown-labels background")
    classes_present = np.array([class_of.get(int(i), 0) for i in targets], np.int64)
    if classes_present.max() == 0:
        raise SynthError("none of the label map's labels are known to the model; check the label table or mapping")
    if inverse is not None:
        return classes_present[inverse.reshape(label_ids.shape)]
    lookup = np.zeros(int(present[-1]) + 1, np.int64)
    lookup[present] = classes_present
    return lookup[ids]
