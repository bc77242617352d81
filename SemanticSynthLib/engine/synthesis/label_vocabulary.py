"""A label map in the user's vocabulary (FreeSurfer, VISTA3D, TotalSegmentator v1/MR/body, ...) made into the
model's: which vocabulary (engine/volume/vocabularies.py detect), and the package seen through it (its label table
with the unions and new structures as extra classes, their priors pooled from the members' training statistics)."""
from __future__ import annotations

import copy
import dataclasses

import numpy as np
import SimpleITK as sitk

from ..model.package import ModelPackage
from ..model.package_metadata import for_modality
from ..volume.labels import id_counts
from ..volume.vocabularies import centroids_lps, detect, image_to_lps, translate


def _priors_blocks(metadata: dict, modalities: list[str]) -> dict[str, dict]:
    """The priors block of each modality in a metadata dict (the same dict for a single-modality package)."""
    priors = metadata.get("priors", {})
    return {m: for_modality(priors, m) for m in modalities}


def through_vocabulary(package: ModelPackage, translation) -> ModelPackage:
    """A copy of the package whose label table and priors include the translation's extra classes."""
    metadata = copy.deepcopy(package.metadata)
    for modality, block in _priors_blocks(metadata, package.modalities).items():
        extra = translation.measured.get(modality, {})
        if block and extra:
            block.setdefault("measured", {}).update(extra)
            block["seen_labels"] = sorted(set(block.get("seen_labels", [])) | {int(i) for i in extra})
    return dataclasses.replace(package, metadata=metadata, labels=translation.table)


def read_in_vocabulary(package: ModelPackage, label_map, asked: str | None = None,
                       names: dict[str, int] | None = None) -> tuple[ModelPackage, dict | None, str]:
    """(package seen through the map's vocabulary, input id -> class id mapping or None, the vocabulary's name).

    asked: --label-table; names: segment names stored in the file (Slicer .seg.nrrd), which pick the vocabulary
    whose names they are where the ids alone do not."""
    ids = sitk.GetArrayViewFromImage(label_map)  # (z, y, x), no copy: a 512^3 map's ids as int64 would be 1 GB
    present = {int(i) for i in np.flatnonzero(id_counts(ids)) if i > 0}
    centres = centroids_lps(ids.transpose(2, 1, 0), image_to_lps(label_map))
    vocabulary = detect(present, package.labels, centres, asked, named=names)  # segment_names: normalized already
    if vocabulary.name == package.labels.name:
        return package, None, vocabulary.name
    seen, ids = package_through(package, vocabulary)
    return seen, ids, vocabulary.name


def package_through(package: ModelPackage, vocabulary) -> tuple[ModelPackage, dict[int, int]]:
    """(the package seen through a vocabulary, the vocabulary's ids -> the extended table's ids)."""
    measured = {m: block.get("measured", {}) for m, block in _priors_blocks(package.metadata, package.modalities).items()}
    translation = translate(vocabulary, package.labels, measured)
    return through_vocabulary(package, translation), translation.ids
