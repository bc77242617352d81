"""Label merges: a fine label table's ids mapped onto a coarser vocabulary's (MUSE regions onto FreeSurfer/SynthSeg
aseg labels, label_tables/groups/muse_to_aseg.json), and a label map rewritten through such a map.

A merge file is JSON: {"source_table", "target_table", "merge": {source id: target id}}. Training reads it to learn
coarse maps (engine/training/label_merging.py); scripts/aseg_maps.py and the tests make coarse maps with it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ...errors import SynthError
from .labels import BUILTIN_DIR


@dataclass
class LabelMerge:
    name: str
    source_table: str
    target_table: str
    merge: dict[int, int]


def read_merge(name: str) -> LabelMerge:
    """A built-in merge (groups/NAME.json, e.g. muse_to_aseg) or a JSON file."""
    path = Path(name) if name.lower().endswith(".json") else BUILTIN_DIR / "groups" / f"{name}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        merge = {int(k): int(v) for k, v in data["merge"].items()}
        return LabelMerge(name, data["source_table"], data["target_table"], merge)
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise SynthError(f"cannot read the label merge {name} ({exc.__class__.__name__}); give a built-in merge such as "
                         "muse_to_aseg or a JSON file with source_table, target_table and merge") from None


def relabel(image: sitk.Image, lookup: dict[int, int]) -> sitk.Image:
    """The label map with each id replaced by lookup[id]; ids the lookup lacks become background. Same grid."""
    ids = sitk.GetArrayFromImage(image).astype(np.int64)
    table = np.zeros(max(int(ids.max()), max(lookup)) + 1, np.int32)
    for source, target in lookup.items():
        table[source] = target
    out = sitk.GetImageFromArray(table[ids].astype(np.int16))
    out.CopyInformation(image)
    return out
