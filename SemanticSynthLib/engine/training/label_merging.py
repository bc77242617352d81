"""Training conditions from coarser label maps: a model trained on fine labels (MUSE) also learns to generate from
maps that merge them (FreeSurfer/SynthSeg aseg), by seeing the same latents with merged conditions.

A merge file (label_tables/groups/NAME.json: source_table, target_table, merge {source id: target id}) says which
fine labels make each coarse one. The coarse table is a vocabulary of the model (engine/volume/vocabularies.py), so a
merged structure is the same extra class, with the same pooled prior, that generation gives a real coarse map.
Each merged copy merges every coarse structure with probability `fraction`: maps that are partly fine and partly
coarse (FreeSurfer's DKT cortex with aseg's deep structures) are seen too.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import SynthError
from ..model.package import ModelPackage
from ..synthesis.label_vocabulary import package_through
from ..volume.label_merges import read_merge
from ..volume.vocabularies import builtin_vocabularies


@dataclass
class LabelMerge:
    package: ModelPackage                 # the model seen through the coarse vocabulary (extra classes, their priors)
    groups: list[tuple[int, np.ndarray]]  # (coarse class index, fine class indices merged into it)

    def sample(self, classes: np.ndarray, rng, fraction: float) -> np.ndarray:
        """The class map with each coarse structure merged with probability `fraction` (at least one merged)."""
        lookup = np.arange(self.package.labels.num_classes)
        chosen = [g for g in self.groups if rng.random() < fraction] or [self.groups[rng.integers(len(self.groups))]]
        for target, sources in chosen:
            lookup[sources] = target
        return lookup[classes]


def load_label_merge(package: ModelPackage, name: str) -> LabelMerge:
    """A built-in merge (groups/NAME.json, e.g. muse_to_aseg) or a JSON file, checked against the model's table."""
    read = read_merge(name)
    merge, source, target = read.merge, read.source_table, read.target_table
    if source != package.labels.name:
        raise SynthError(f"the label merge {name} merges {source} labels, but the model uses {package.labels.name}")
    vocabulary = builtin_vocabularies().get(target)
    if vocabulary is None or vocabulary.translates_to != package.labels.name:
        raise SynthError(f"the label merge {name} merges into {target}, which is not a vocabulary of {package.labels.name}")
    seen, ids = package_through(package, vocabulary)
    index = {lab.id: i for i, lab in enumerate(seen.labels.labels, start=1)}
    groups: dict[int, list[int]] = {}
    for fine, coarse in merge.items():
        if fine in index and coarse in ids:
            groups.setdefault(index[ids[coarse]], []).append(index[fine])
    # A coarse label that is one fine label (Left-Hippocampus) changes nothing when merged: only real unions count.
    unions = [(t, np.array(s)) for t, s in sorted(groups.items()) if len(s) > 1 or t != s[0]]
    if not unions:
        raise SynthError(f"the label merge {name} merges no labels of {package.labels.name}")
    return LabelMerge(seen, unions)
