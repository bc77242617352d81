"""The body outside a CT map's organ labels: its outline from a body mask, or soft tissue around the limb bones.

No TotalSegmentator v2 class marks the body, so beyond about 24 mm from a label the outline was the model's guess,
and an arm, which v2 labels only by its humerus, came out as air around a bright bone (issue 33). Two rules, from
label_tables/groups/body_outline.json (sources and depths in docs/priors.md, "Body outline"):

- **A body mask** (VISTA3D/MAISI 200 `body`; TotalSegmentator's body task `body_trunc`, `body_extremities`): the
  unlabelled voxels outside it become an "outside body" class at air's prior, so the outline is the mask's, and the
  body voxels within a few millimetres of that outline a "subcutaneous fat" class at fat's prior.
- **No body mask**: the unlabelled voxels around each limb bone become a sleeve, muscle near the bone and fat
  further out, at the depths of an adult arm or thigh.

Like the bowel gas (bowel_gas.py), each rule adds classes with a tissue kind and a prior to the model's table for
this generation, so the condition, the decoder's guide and the calibration all see them. Distances are Euclidean
(millimetres) on the working grid.
"""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
from scipy import ndimage

from ..model.package import ModelPackage
from ..volume.labels import BUILTIN_DIR, Label, LabelTable, normalized_name
from ..volume.modalities import MODALITIES

TABLE = BUILTIN_DIR / "groups" / "body_outline.json"


def body_outline_table() -> dict:
    return json.loads(TABLE.read_text(encoding="utf-8"))


def _by_phase(prior: dict) -> dict:
    """A prior for every CT phase: one given per phase as it is, one without phases (fat, air) the same in each."""
    phases = MODALITIES["ct"].phases
    return prior if set(prior) >= set(phases) else {p: dict(prior) for p in phases}


def shape_body(package: ModelPackage, classes: np.ndarray, spacing) -> tuple[ModelPackage, np.ndarray, dict]:
    """(package with the added classes, the class map with them, a record of what was done: {"rule": ..., "voxels":
    {class name: working voxels}}); the package and map unchanged when neither rule applies."""
    table = body_outline_table()
    index_of = {lab.name: i for i, lab in enumerate(package.labels.labels, start=1)}
    present = np.bincount(classes.ravel(), minlength=package.labels.num_classes) > 0
    # A vocabulary's own classes are named "vocabulary:name" in the model's table (vocabularies.translate).
    body_names = {normalized_name(n) for n in table["body_labels"]}
    body_classes = [i for i, lab in enumerate(package.labels.labels, start=1)
                    if present[i] and normalized_name(lab.name.split(":")[-1]) in body_names]
    labels = list(package.labels.labels)
    next_id = max(lab.id for lab in labels) + 1
    out = classes.copy()
    counts = {}

    def add(entry: dict, where: np.ndarray) -> None:
        nonlocal next_id
        labels.append(Label(next_id, entry["name"], None, [], entry["kind"], _by_phase(entry["prior"])))
        out[where] = len(labels)
        counts[entry["name"]] = int(where.sum())
        next_id += 1

    spacing = np.asarray(spacing, float)
    if body_classes:
        inside = classes > 0  # the body label and every organ in it
        add(table["outside"], ~inside)
        depth = ndimage.distance_transform_edt(inside, sampling=spacing)
        add(table["subcutaneous_fat"], np.isin(classes, body_classes) & (depth <= table["subcutaneous_fat"]["depth_mm"]))
        rule = "body mask"
    else:
        limbs = table["limbs"]
        bones = {kind: [index_of[n] for n, k in limbs["bones"].items() if k == kind and n in index_of and present[index_of[n]]]
                 for kind in limbs["sleeves"]}
        if not any(bones.values()):
            return package, classes, {}
        muscle = np.zeros(classes.shape, bool)
        fat = np.zeros(classes.shape, bool)
        for kind, ids in bones.items():
            if ids:
                distance = ndimage.distance_transform_edt(~np.isin(classes, ids), sampling=spacing)
                sleeve = limbs["sleeves"][kind]
                muscle |= (classes == 0) & (distance <= sleeve["muscle_mm"])
                fat |= (classes == 0) & (distance <= sleeve["fat_mm"])
        add(limbs["muscle"], muscle)
        add(limbs["fat"], fat & ~muscle)
        rule = "limb sleeves"
    return replace(package, labels=LabelTable(package.labels.name, labels)), out, {"rule": rule, "voxels": counts}
