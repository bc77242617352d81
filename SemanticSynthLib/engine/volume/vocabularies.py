"""The label vocabularies users bring (FreeSurfer/SynthSeg, VISTA3D/MAISI, TotalSegmentator v1, MR and body), translated
to a model's own label table, and which one a label map uses.

A vocabulary is a JSON table in label_tables/ with `translates_to` (the model table it maps onto). Each label either
- lists `members`, names of the model table's labels: one member is the same structure under another id; several
  are a union (FreeSurfer's cortex is every MUSE cortical region of that side); or
- has its own `kind` and `prior` (a structure the model table lacks: a tumour, the body outline).
A model conditions on what a label is (tissue kind and intensity prior), not on its id, so a union or a new structure
becomes one extra class of the model's table with a kind and a prior derived here (translate()).

Which vocabulary a map uses (detect()): `--label-table NAME` if given; else the candidates whose ids include every id
of the map; of those, the ones whose left/right labels lie on the right sides and whose vertebrae are stacked in order;
of those, the ones that translate the map's ids differently. One left is used; several are an error naming them.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ...errors import SynthError
from .labels import BUILTIN_DIR, Label, LabelTable, normalized_name


@dataclass
class Term:
    id: int
    name: str
    synonyms: list[str] = field(default_factory=list)
    members: list[str] = field(default_factory=list)
    kind: str | None = None
    prior: dict | None = None


@dataclass
class Vocabulary:
    name: str
    title: str
    translates_to: str
    terms: list[Term]

    @classmethod
    def from_json(cls, data: dict) -> "Vocabulary":
        try:
            terms = [Term(int(e["id"]), str(e["name"]), list(e.get("synonyms", [])), list(e.get("members", [])),
                          e.get("kind"), e.get("prior")) for e in data["labels"]]
            return cls(str(data["name"]), str(data.get("title", data["name"])), str(data["translates_to"]), terms)
        except (KeyError, TypeError, ValueError) as exc:
            raise SynthError(f"vocabulary {data.get('name', '?')} is malformed ({exc.__class__.__name__}: {exc}); "
                             "fix the table") from None

    def ids(self) -> set[int]:
        return {t.id for t in self.terms}

    def as_table(self) -> LabelTable:
        """Its ids, names and synonyms as a LabelTable (to match segment names and export a map in its ids)."""
        return LabelTable(self.name, [Label(t.id, t.name, None, list(t.synonyms)) for t in self.terms])


def builtin_vocabularies() -> dict[str, Vocabulary]:
    """Every built-in table with `translates_to`, by name."""
    found = {}
    for path in sorted(BUILTIN_DIR.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if "translates_to" in data:
            found[data["name"]] = Vocabulary.from_json(data)
    return found


def identity(table: LabelTable) -> Vocabulary:
    """A model's own table as a vocabulary: every label is itself."""
    return Vocabulary(table.name, table.name, table.name,
                      [Term(lab.id, lab.name, list(lab.synonyms), [lab.name]) for lab in table.labels])


def candidates(table: LabelTable) -> list[Vocabulary]:
    """The model's own table first, then the vocabularies that translate to it."""
    return [identity(table)] + [v for v in builtin_vocabularies().values() if v.translates_to == table.name]


def choice_names(table: LabelTable) -> list[str]:
    return [v.name for v in candidates(table)]


@dataclass
class Translation:
    """A vocabulary applied to a model: the model's table with the extra classes, the extra measured priors
    (by new label id, per modality), and the map from the vocabulary's ids to the extended table's ids."""
    vocabulary: str
    table: LabelTable
    measured: dict[str, dict[str, dict]]
    ids: dict[int, int]


def _member_ids(term: Term, table: LabelTable, vocabulary: str) -> list[int]:
    by_name = table.id_by_name()
    found = []
    for member in term.members:
        label_id = by_name.get(normalized_name(member))
        if label_id is None:
            raise SynthError(f"vocabulary {vocabulary}: member '{member}' of {term.name} is not a label of {table.name}; "
                             "fix the table")
        found.append(label_id)
    return found


def _union_prior(labels: list[Label]) -> dict | None:
    """Per phase: the members' mean of means, and the range spanning theirs (CT reference HU)."""
    phases = set.intersection(*[set(lab.prior or {}) for lab in labels]) if labels else set()
    if not phases:
        return None
    return {p: {"mean": float(np.mean([lab.prior[p]["mean"] for lab in labels])),
                "range": [float(min(lab.prior[p]["range"][0] for lab in labels)),
                          float(max(lab.prior[p]["range"][1] for lab in labels))]} for p in sorted(phases)}


def _union_measured(ids: list[int], measured: dict) -> dict | None:
    """The members' training statistics pooled by voxel count (model units)."""
    stats = [measured[str(i)] for i in ids if str(i) in measured]
    if not stats:
        return None
    voxels = np.array([s.get("voxels", 1) for s in stats], float)
    means = np.array([s["mean"] for s in stats])
    stds = np.array([s.get("std", 0.0) for s in stats])
    mean = float(np.average(means, weights=voxels))
    var = float(np.average(stds ** 2 + (means - mean) ** 2, weights=voxels))
    return {"mean": mean, "std": float(np.sqrt(var)), "voxels": int(voxels.sum())}


def translate(vocabulary: Vocabulary, table: LabelTable, measured: dict[str, dict] | None = None) -> Translation:
    """The model's table extended for a vocabulary. measured: {modality: {label id: stats}} of the package."""
    if vocabulary.translates_to != table.name:
        raise SynthError(f"the label table {vocabulary.name} translates to {vocabulary.translates_to}, but the model "
                         f"uses {table.name}; choose one of {', '.join(choice_names(table))}")
    measured = measured or {}
    by_id = {lab.id: lab for lab in table.labels}
    labels, ids, extra = list(table.labels), {}, {m: {} for m in measured}
    next_id = max(by_id) + 1
    for term in vocabulary.terms:
        members = _member_ids(term, table, vocabulary.name)
        if len(members) == 1:
            ids[term.id] = members[0]
            continue
        if members:
            kinds = Counter(by_id[i].kind for i in members)
            kind, prior = kinds.most_common(1)[0][0], _union_prior([by_id[i] for i in members])
            for modality, stats in measured.items():
                pooled = _union_measured(members, stats)
                if pooled is not None:
                    extra[modality][str(next_id)] = pooled
        else:
            kind, prior = term.kind, term.prior
        labels.append(Label(next_id, f"{vocabulary.name}:{term.name}", None, [], kind, prior))
        ids[term.id] = next_id
        next_id += 1
    return Translation(vocabulary.name, LabelTable(table.name, labels), extra, ids)


# ------------------------------------------------------------------------------------------------ detection
_LEFT = re.compile(r"(^|[^a-z0-9])(left|lh|l)([^a-z0-9]|$)", re.I)
_RIGHT = re.compile(r"(^|[^a-z0-9])(right|rh|r)([^a-z0-9]|$)", re.I)
_VERTEBRA = re.compile(r"vertebrae?[ _-]?([CTLS])(\d+)", re.I)
_LEVEL_BASE = {"C": 0, "T": 7, "L": 19, "S": 24}  # C1 is the highest, S1 the lowest


def _words(name: str) -> str:
    return re.sub(r"[-_.]+", " ", name)


def side(name: str) -> str | None:
    """'left', 'right' or None from a label name (kidney_left, Left-Hippocampus, Caudate_R, ctx-lh-insula)."""
    left, right = bool(_LEFT.search(_words(name))), bool(_RIGHT.search(_words(name)))
    return "left" if left and not right else "right" if right and not left else None


def _unsided(name: str) -> str:
    """The name with its side word removed: kidney_left and kidney_right agree."""
    return normalized_name(_RIGHT.sub(" ", _LEFT.sub(" ", _words(name))))


def vertebra_level(name: str) -> int | None:
    """Rank from the top of the spine (C1 = 1) for vertebra labels (vertebrae_L1, vertebrae_T12, vertebrae_S1)."""
    m = _VERTEBRA.search(name)
    return _LEVEL_BASE[m.group(1).upper()] + int(m.group(2)) if m else None


CENTROID_VOXELS = 4_000_000  # above this, centroids are taken on every n-th voxel: positions need no more


def centroids_lps(label_ids: np.ndarray, ijk_to_lps: np.ndarray) -> dict[int, np.ndarray]:
    """Physical centroid (LPS mm) of every label present. label_ids in (i, j, k) index order (volume.io.array_of).
    A large map is subsampled (a label too small to be hit is left out, which only skips its checks)."""
    stride = max(1, int(np.ceil((label_ids.size / CENTROID_VOXELS) ** (1 / 3))))
    if stride > 1:
        ijk_to_lps = ijk_to_lps @ np.diag([stride, stride, stride, 1.0])
        label_ids = label_ids[::stride, ::stride, ::stride]
    ids = label_ids.ravel().astype(np.int64)
    counts = np.bincount(ids)
    present = [int(i) for i in np.flatnonzero(counts) if i > 0]
    if not present:
        return {}
    axes = np.indices(label_ids.shape, sparse=True)
    sums = [np.bincount(ids, np.broadcast_to(a, label_ids.shape).ravel().astype(np.float64), len(counts)) for a in axes]
    return {i: (ijk_to_lps @ np.array([sums[0][i] / counts[i], sums[1][i] / counts[i], sums[2][i] / counts[i], 1.0]))[:3]
            for i in present}


def image_to_lps(image) -> np.ndarray:
    """A SimpleITK image's 4x4 index-to-LPS matrix."""
    matrix = np.eye(4)
    matrix[:3, :3] = np.array(image.GetDirection(), float).reshape(3, 3) * np.array(image.GetSpacing(), float)
    matrix[:3, 3] = image.GetOrigin()
    return matrix


def anatomy_checks(vocabulary: Vocabulary, centres: dict[int, np.ndarray]) -> tuple[int, int]:
    """(agreeing, conflicting) checks of the map read with this vocabulary's names: every left/right pair of labels
    (the left one further to the patient's left, +x in LPS) and every two vertebrae next in order (the upper one
    higher, +z). The right vocabulary agrees everywhere; one that names the ids wrongly seldom does."""
    names = {t.id: t.name for t in vocabulary.terms if t.id in centres}
    rights = {_unsided(n): i for i, n in names.items() if side(n) == "right"}
    agree = conflict = 0
    for i, n in names.items():
        j = rights.get(_unsided(n)) if side(n) == "left" else None
        if j is not None:
            ok = centres[i][0] > centres[j][0]
            agree, conflict = agree + ok, conflict + (not ok)
    levels = sorted((level, centres[i][2]) for i, n in names.items() if (level := vertebra_level(n)) is not None)
    for (_, upper), (_, lower) in zip(levels, levels[1:]):
        ok = upper > lower
        agree, conflict = agree + ok, conflict + (not ok)
    return agree, conflict


def names_agree(vocabulary: Vocabulary, named: dict[str, int]) -> bool:
    """Whether every segment name the file stores (normalized name -> id) is this vocabulary's name for that id."""
    terms = {t.id: {normalized_name(n) for n in [t.name, *t.synonyms]} for t in vocabulary.terms}
    return all(name in terms.get(label_id, ()) for name, label_id in named.items())


def detect(present_ids: set[int], table: LabelTable, centres: dict[int, np.ndarray] | None = None,
           asked: str | None = None, named: dict[str, int] | None = None) -> Vocabulary:
    """The vocabulary of a label map (see the module docstring); the model's own table is a Vocabulary too.

    named: the file's own segment names (normalized name -> id, e.g. from a .seg.nrrd): the vocabularies whose names
    they are come first."""
    options = candidates(table)
    if asked:
        for v in options:
            if normalized_name(v.name) == normalized_name(asked):
                return v
        raise SynthError(f"--label-table {asked} is not a vocabulary of this model ({table.name}); choose one of "
                         f"{', '.join(v.name for v in options)}")
    fitting = [v for v in options if present_ids <= v.ids()]
    if not fitting:
        return options[0]  # ids outside every vocabulary: the model's table reports them (or --unknown-labels)
    by_names = [v for v in fitting if named and names_agree(v, named)]
    fitting = by_names or fitting
    if centres:  # a conflict weighs twice an agreement: a wrong reading agrees about half the time
        score = {v.name: (lambda a, c: a - 2 * c)(*anatomy_checks(v, centres)) for v in fitting}
        best = max(score.values())
        fitting = [v for v in fitting if score[v.name] == best]
    # Vocabularies that read the map's ids as the same model labels give the same volume: not an ambiguity.
    readings = {}
    for v in fitting:
        terms = {t.id: t for t in v.terms}
        key = tuple(sorted((i, tuple(sorted(normalized_name(m) for m in terms[i].members)) or (v.name, terms[i].name))
                           for i in present_ids))
        readings.setdefault(key, v)
    if len(readings) == 1:
        return next(iter(readings.values()))
    names = ", ".join(v.name for v in readings.values())
    raise SynthError(f"the label map's ids fit several label tables ({names}) that read them as different structures; "
                     f"give --label-table with one of them")
