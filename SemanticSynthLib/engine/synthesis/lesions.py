"""New tissue: a segment the model has never seen (a lesion) generated at an intensity of its own.

A lesion is a segment of the label map named with a lesion term ("Mass", "Tumor", "Cyst", "Lesion", ... in
label_tables/groups/lesions.json; a name the model or one of its vocabularies knows is never one), or an entry of
the --priors file with a "lesion" kind, keyed by the segment's id or name:

    {"Tumor": {"lesion": "hypodense"}, "7": {"lesion": "cyst"}, "liver mass": {"lesion": "hyperdense", "mean": 140}}

Kinds: hypodense and hyperdense (solid), cyst (fluid). Its intensity, unless "mean" gives it (HU for CT, multiples of
white matter for brain MRI), is relative to its host, the label that most surrounds it: CT adds the kind's HU offset
to the host's prior, MRI multiplies the host's prior by the kind's factor ("host_offset_hu" / "host_factor" in the
entry override the kind's); a cyst is fluid, the modality's fluid prior, whatever its host. Each lesion becomes one
extra class of the model's table with its tissue kind and that prior, so the network paints it like any unseen label
and the calibration holds its mean to the prior.
"""
from __future__ import annotations

import dataclasses
import json

import numpy as np
from scipy import ndimage

from ...errors import SynthError
from ..model.package import ModelPackage
from ..model.package_metadata import for_modality
from ..volume.intensity import denormalize
from ..volume.labels import BUILTIN_DIR, Label, LabelTable, id_counts, normalized_name
from ..volume.modalities import modality_of
from ..volume.vocabularies import candidates

TABLE = BUILTIN_DIR / "groups" / "lesions.json"


def lesion_table() -> dict:
    return json.loads(TABLE.read_text(encoding="utf-8"))


def lesion_kinds() -> list[str]:
    return sorted(lesion_table()["kinds"])


def kind_of_name(name: str, table: dict | None = None) -> str | None:
    """The lesion kind a segment name says (its first lesion term, as in 'Liver tumor' or 'Cyst_2'), or None."""
    table = table or lesion_table()
    key = normalized_name(name)
    hits = [(key.find(normalized_name(term)), kind) for term, kind in table["terms"].items()
            if normalized_name(term) in key]
    return min(hits)[1] if hits else None


def known_names(package: ModelPackage) -> set[str]:
    """Every label name and synonym of the model's table and of the vocabularies that translate to it."""
    names = set()
    for vocabulary in candidates(package.labels):
        for lab in vocabulary.as_table().labels:
            names.add(normalized_name(lab.name))
            names.update(normalized_name(s) for s in lab.synonyms)
    return names


def lesion_requests(entries: dict, written: dict[int, str], present: set[int], package: ModelPackage,
                    path: str | None = None) -> dict[int, dict]:
    """Input id -> {"name", "lesion", optional "mean", "host_offset_hu", "host_factor"}: the --priors file's lesion
    entries (`entries`, keyed by id or segment name) and the segments whose names say lesion (`written`: the file's
    segment names by id, labels.segment_names_as_written), of the ids present in the map. The file's entry wins."""
    table = lesion_table()
    known = known_names(package)
    found: dict[int, dict] = {}
    for label_id, name in written.items():
        kind = None if normalized_name(name) in known else kind_of_name(name, table)
        if kind and label_id in present:
            found[label_id] = {"name": name, "lesion": kind}
    by_name = {normalized_name(n): i for i, n in written.items()}
    for key, entry in entries.items():
        label_id = int(key) if str(key).isdigit() else by_name.get(normalized_name(str(key)))
        if label_id is None or label_id not in present:
            raise SynthError(f"priors file {path}: lesion '{key}' is not a segment of the label map; key it by the "
                             "segment's id or name")
        if entry["lesion"] not in table["kinds"]:
            raise SynthError(f"priors file {path}: lesion '{key}' has kind {entry['lesion']!r}; choose one of "
                             f"{', '.join(sorted(table['kinds']))}")
        for field in ("mean", "host_offset_hu", "host_factor"):
            value = entry.get(field)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not np.isfinite(value)):
                raise SynthError(f"priors file {path}: lesion '{key}': {field} must be a number")
        found[label_id] = {"name": written.get(label_id) or (f"lesion {key}" if str(key).isdigit() else str(key)), **entry}
    return found


def present_ids(ids: np.ndarray) -> set[int]:
    """The non-zero ids of a label array (integer ids; a float or negative map is refused later, by the class
    lookup)."""
    if ids.dtype.kind not in "iub" or ids.size == 0 or ids.min() < 0:
        return set()
    return {int(i) for i in np.flatnonzero(id_counts(ids)) if i > 0}  # in slabs: no int64 copy of the map


def without_lesions(label_map, lesions: dict):
    """The label map with its lesions' voxels set to background (for reading its vocabulary), or itself."""
    if not lesions:
        return label_map
    import SimpleITK as sitk

    ids = sitk.GetArrayFromImage(label_map)
    ids[np.isin(ids, list(lesions))] = 0
    out = sitk.GetImageFromArray(ids)
    out.CopyInformation(label_map)
    return out


def host_of(ids: np.ndarray, lesion_id: int, lesion_ids: set[int]) -> int:
    """The input id that most surrounds a lesion: the commonest label in the one-voxel shell around it (the
    background and other lesions left out); 0 when it lies in the background alone."""
    lesion = ids == lesion_id
    shell = ndimage.binary_dilation(lesion) & ~lesion
    around = ids[shell]
    around = around[(around != 0) & ~np.isin(around, list(lesion_ids))]
    return int(np.bincount(around).argmax()) if around.size else 0


def with_lesions(package: ModelPackage, mapping: dict | None, ids: np.ndarray, lesions: dict[int, dict],
                 modality: str, phase: str | None, overrides: dict) -> tuple[ModelPackage, dict | None, dict, dict]:
    """(package with one extra class per lesion, input id -> model id mapping with them, priors overrides with
    their intensities, the report: per lesion its kind, host and intensity in natural units)."""
    if not lesions:
        return package, mapping, overrides, {}
    table = lesion_table()
    priors = package.priors(modality, phase, overrides)
    norm = package.normalization(modality)
    entry = modality_of(norm)
    reference = for_modality(package.metadata.get("priors", {}), modality).get("reference", {}).get("mean", 1.0)

    def natural(unit: float) -> float:
        return float(denormalize(np.array([unit]), norm)[0]) if entry.prior_kind == "absolute" else unit / reference

    labels = list(package.labels.labels)
    class_of = {lab.id: index for index, lab in enumerate(labels, start=1)}
    next_id = max(lab.id for lab in labels) + 1
    mapping, overrides, report = dict(mapping or {}), dict(overrides), {}
    for input_id, asked in sorted(lesions.items()):
        kind = table["kinds"][asked["lesion"]]
        host_input = host_of(ids, input_id, set(lesions))
        host_class = class_of.get(mapping.get(host_input, host_input), 0) if host_input else 0
        host_value = natural(float(priors.unit[host_class])) if host_class else entry.kind_prior("solid_organ")[0]
        if asked.get("mean") is not None:
            value = float(asked["mean"])
        elif kind.get("fluid"):
            value = float(entry.kind_prior("fluid")[0])
        elif entry.prior_kind == "absolute":
            value = host_value + float(asked.get("host_offset_hu", kind["host_offset_hu"]))
        else:
            value = host_value * float(asked.get("host_factor", kind["host_factor"]))
        labels.append(Label(next_id, asked["name"], None, [], kind["tissue"], None))
        overrides[next_id] = {"mean": value, "range": [float(v) for v in entry.around(value)]}
        mapping[input_id] = next_id
        report[asked["name"]] = {"id": input_id, "kind": asked["lesion"],
                                 "host": labels[host_class - 1].name if host_class else None,
                                 "mean": round(value, 3), "units": entry.units}
        next_id += 1
    extended = dataclasses.replace(package, labels=LabelTable(package.labels.name, labels))
    return extended, mapping, overrides, report
