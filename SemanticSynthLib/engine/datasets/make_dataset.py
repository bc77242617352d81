"""make-dataset: many label maps -> an nnU-Net v2 training set of generated volumes, in one process.

The model is loaded once. Every map is read first (plan): its vocabulary is detected as `generate` does, and the
structures it holds name the dataset's labels (the model's names, ids 1..N in the model table's order), so that
every case uses one label numbering and a bad map is known before any generation. Then each map gives --samples
cases; sample k uses seed SEED + k. A case is written whole (volume and labels together, each read back) and then
its provenance; a case with its provenance is finished and is skipped when the command runs again, so an
interrupted run resumes where it stopped and loses nothing. A map that cannot be read or generated is skipped and
listed at the end, in the dataset card (dataset_card.json and dataset_card.md), with the counts, the time and the
model. dataset.json is written last.
"""
from __future__ import annotations

import csv
import json
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import SynthError
from ..model.package import load_package
from ..model.store import download_reporter, resolve_model
from ..reporting.progress import Progress
from ..reporting.provenance import SOFTWARE
from ..reporting.results import Result
from ..requests import GenerationRequest
from ..requests.dataset import MakeDatasetRequest
from ..synthesis.generate import resolve, synthesize
from ..synthesis.label_vocabulary import read_in_vocabulary
from ..volume.atomic import write_text_checked
from ..volume.io import array_of, image_like, read_volume, write_volumes
from ..volume.labels import segment_names, to_class_indices
from ..volume.outputs import is_inside, same_file
from .map_augmentation import augment_label_map
from .nnunet import case_name, dataset_json, image_path, label_path

MAP_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd", ".seg.nrrd")
PLAN = "plan.json"  # in provenance/: what the dataset was begun with; a resumed run must match it


@dataclass
class MapPlan:
    path: Path
    stem: str
    names: dict = field(default_factory=dict)  # id in the map -> the model's name of its structure (known ids)
    error: str | None = None


def list_label_maps(source: str | Path) -> list[Path]:
    """The label maps of a folder, of an nnU-Net/MSD dataset (its labelsTr), or of a CSV's label column."""
    source = Path(source)
    if source.is_file() and source.suffix.lower() == ".csv":
        rows = list(csv.DictReader(open(source, encoding="utf-8")))
        if not rows or "label" not in rows[0]:
            raise SynthError(f"{source}: a CSV of label maps needs a header with a label column")
        return [(source.parent / r["label"]) if not Path(r["label"]).is_absolute() else Path(r["label"])
                for r in rows if (r.get("label") or "").strip()]
    if not source.is_dir():
        raise SynthError(f"{source} is neither a folder of label maps, an nnU-Net dataset nor a CSV; give one of them")
    folder = source / "labelsTr" if (source / "labelsTr").is_dir() else source
    maps = sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(MAP_SUFFIXES)
                  and not p.name.startswith("."))
    if not maps:
        raise SynthError(f"{folder} holds no label maps (.nii.gz, .nii, .nrrd, .mha); give a folder of label maps")
    return maps


def _stem(path: Path) -> str:
    name = path.name
    for suffix in sorted(MAP_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _one_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else exc.__class__.__name__


def plan_maps(package, paths: list[Path], request: MakeDatasetRequest, progress: Progress) -> list[MapPlan]:
    """Each map read and its structures named (the model's names); a map that fails gets its one-line error."""
    plans, stems = [], {}
    progress.stage("reading label maps", len(paths))
    for i, path in enumerate(paths, 1):
        stem = _stem(path)
        stems[stem] = stems.get(stem, 0) + 1
        plan = MapPlan(path, stem if stems[stem] == 1 else f"{stem}-{stems[stem]}")
        try:
            label_map = read_volume(path)
            plan.names = structure_names(package, label_map, request)
        except SynthError as exc:
            plan.error = _one_line(exc)
        plans.append(plan)
        progress.update(i)
    return plans


def structure_names(package, label_map, request: MakeDatasetRequest) -> dict[int, str]:
    """id in the map -> the model's name of the structure it is, for the ids the model knows (the unknown ones
    raise, or are dropped with --unknown-labels background)."""
    seen, mapping, _ = read_in_vocabulary(package, label_map, request.label_table, segment_names(label_map))
    ids = array_of(label_map)
    present = np.flatnonzero(np.bincount(ids.ravel().astype(np.int64)))
    present = present[present > 0]
    classes = to_class_indices(present, seen.labels, mapping, request.unknown_labels)
    return {int(i): seen.labels.labels[c - 1].name for i, c in zip(present, classes) if c > 0}


def dataset_labels(package, plans: list[MapPlan], label_ids: str) -> dict[str, int]:
    """dataset.json's labels. "dataset": background 0, then every structure some map holds, in the model table's
    order (others after, by name), numbered 1..N. "map": the maps' own ids, named by structure (an id whose name
    another id has too gets its id added)."""
    if label_ids == "map":
        named = {}
        for p in plans:
            named.update(p.names)
        counts = {}
        for name in named.values():
            counts[name] = counts.get(name, 0) + 1
        return {"background": 0, **{(n if counts[n] == 1 else f"{n} ({i})"): i for i, n in sorted(named.items())}}
    present = {n for p in plans for n in p.names.values()}
    order = [lab.name for lab in package.labels.labels if lab.name in present]
    order += sorted(present - set(order))
    return {"background": 0, **{name: i for i, name in enumerate(order, 1)}}


def _check_out(out: Path, paths: list[Path]) -> None:
    if out.exists() and not out.is_dir():
        raise SynthError(f"--out {out} is a file; give a folder for the dataset")
    for path in paths:
        if same_file(path, out) or is_inside(path, out):
            raise SynthError(f"--out {out} holds the label map {path}; choose another folder for the dataset")
    if out.is_dir() and any(out.iterdir()) and not (out / "provenance" / PLAN).is_file():
        raise SynthError(f"--out {out} is not empty and was not begun by make-dataset; choose a new folder")


def _write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(value, indent=1)
    write_text_checked(path, text, lambda back: back == text)


def _begin(out: Path, plan_record: dict) -> None:
    """Record what the dataset is made of, or check that a resumed run makes the same."""
    path = out / "provenance" / PLAN
    if path.is_file():
        before = json.loads(path.read_text(encoding="utf-8"))
        for key in ("model", "model_version", "labels", "samples", "seed", "augment", "label_ids"):
            if before.get(key) != plan_record.get(key):
                raise SynthError(f"--out {out} was begun with another {key} ({before.get(key)!r}); resume with the same "
                                 "maps and options, or choose a new folder")
        return
    _write_json(path, plan_record)


def make_dataset(request: MakeDatasetRequest, *, progress: Progress | str | None = None) -> Result:
    """Run a MakeDatasetRequest (see the module docstring).

    Returns:
        Result with outputs {"out": the dataset folder, "dataset_json": its dataset.json} and the card as report.
    """
    progress = progress if isinstance(progress, Progress) else Progress(progress or "none")
    started = time.monotonic()
    out = Path(request.out)
    paths = list_label_maps(request.labels)
    _check_out(out, paths)
    package = load_package(resolve_model(request.model, request.modality, download_reporter(progress)), device="cpu")
    base = resolve(GenerationRequest(labels="-", out="-", model=request.model, modality=request.modality,
                                     steps=request.steps, seed=request.seed, guidance=request.guidance,
                                     temperature=request.temperature, device=request.device), package)
    plans = plan_maps(package, paths, request, progress)
    usable = [p for p in plans if p.error is None]
    if not usable:
        raise SynthError(f"none of the {len(plans)} label maps can be generated (first: {plans[0].path.name}: "
                         f"{plans[0].error}); fix the maps or choose --label-table / --unknown-labels")
    labels = dataset_labels(package, usable, request.label_ids)
    name, version = package.metadata.get("name", package.path.name), package.metadata.get("version")
    _begin(out, {"model": name, "model_version": version, "labels": labels, "samples": request.samples,
                 "seed": request.seed, "augment": list(request.augment), "label_ids": request.label_ids,
                 "request": request.parameters(), "software": SOFTWARE})
    failed = [{"labels": str(p.path), "error": p.error} for p in plans if p.error]
    cases = [(p, k) for p in usable for k in range(request.samples)]
    written = skipped = 0
    progress.stage("making dataset", len(cases))
    for done, (plan, k) in enumerate(cases, 1):
        case = case_name(plan.stem, k)
        record_path = out / "provenance" / f"{case}.json"
        if record_path.is_file() and image_path(out, case).is_file() and label_path(out, case).is_file():
            skipped += 1
        else:
            try:
                _make_case(package, plan, k, case, labels, request, base, out)
                written += 1
            except SynthError as exc:
                failed.append({"labels": str(plan.path), "sample": k, "error": _one_line(exc)})
        progress.update(done, case=case)
    progress.close_bar()
    finished = sorted(p.name[: -len(".json")] for p in (out / "provenance").glob("*.json") if p.name != PLAN)
    card = {"name": request.name, "model": name, "model_version": version, "modality": base.modality,
            "label_maps": len(plans), "samples_per_map": request.samples, "seeds": [request.seed + k for k in range(request.samples)],
            "cases": len(finished), "written_now": written, "kept_from_before": skipped, "failed": failed,
            "time_s": round(time.monotonic() - started, 1), "labels": labels, "software": SOFTWARE,
            "request": request.parameters()}
    _write_json(out / "dataset_card.json", card)
    write_text_checked(out / "dataset_card.md", _card_markdown(card), lambda back: True)
    _write_json(out / "dataset.json", dataset_json(request.name, base.modality, labels, len(finished),
                                                   f"generated by {SOFTWARE} with {name} {version}"))
    for item in failed:
        progress.message(f"skipped {item['labels']}: {item['error']}", skipped=item)
    progress.message(f"wrote {len(finished)} cases to {out} ({written} now, {skipped} kept, {len(failed)} failed)",
                     output=str(out))
    return Result("make-dataset", {"out": str(out), "dataset_json": str(out / "dataset.json")},
                  {"model": name, "model_version": version, "software": SOFTWARE, "request": request.parameters()},
                  card)


def _make_case(package, plan: MapPlan, k: int, case: str, labels: dict, request: MakeDatasetRequest,
               base: GenerationRequest, out: Path) -> None:
    """One case: the volume generated from the map with seed SEED + k, the map in the dataset's label ids, both
    written together, then the case's provenance (which marks it finished)."""
    label_map = read_volume(plan.path)
    augmentation = None
    if request.augment:
        # Seeded by the map's name and the sample, not by its place in the list: a resumed or reordered run
        # draws the same deformation for the same case.
        rng = np.random.default_rng([request.seed, zlib.crc32(plan.stem.encode()), k])
        label_map, augmentation = augment_label_map(label_map, request.augment, rng, plan.names)
    generation = base.model_copy(update={"labels": str(plan.path), "out": str(image_path(out, case)),
                                         "seed": request.seed + k, "phase": request.phase,
                                         "label_table": request.label_table, "unknown_labels": request.unknown_labels})
    image, record = synthesize(package, label_map, generation, Progress("none"))
    ids = array_of(label_map).astype(np.int64)
    lookup = np.zeros(max(int(ids.max()), *plan.names) + 1, np.int64)
    for i, structure in plan.names.items():  # the ids the model knows (read once, in the plan); others: background
        lookup[i] = i if request.label_ids == "map" else labels[structure]
    ids = lookup[ids]
    ids = ids.astype(np.uint8 if ids.max() < 256 else np.uint16 if ids.max() < 65536 else np.int32)
    for folder in ("imagesTr", "labelsTr"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    # Overwrite: only a case without provenance gets here, i.e. never finished (an interrupted earlier run's).
    write_volumes([(image, image_path(out, case)), (image_like(ids, label_map), label_path(out, case))], overwrite=True)
    _write_json(out / "provenance" / f"{case}.json",
                {"case": case, "labels": str(plan.path), "sample": k, "augmentation": augmentation, **record})


def _card_markdown(card: dict) -> str:
    lines = [f"# {card['name']}", "",
             f"{card['cases']} cases generated by {card['software']} with `{card['model']}` {card['model_version']} "
             f"({card['modality']}) from {card['label_maps']} label maps, {card['samples_per_map']} per map "
             f"(seeds {', '.join(map(str, card['seeds']))}); nnU-Net v2 layout (imagesTr, labelsTr, dataset.json).", "",
             f"This run: {card['written_now']} written, {card['kept_from_before']} kept from before, "
             f"{len(card['failed'])} failed, {card['time_s']} s. Each case's provenance is in provenance/CASE.json.", "",
             "| label | id |", "|---|---|"]
    lines += [f"| {name} | {i} |" for name, i in card["labels"].items()]
    if card["failed"]:
        lines += ["", "## Skipped", ""] + [f"- `{f['labels']}`: {f['error']}" for f in card["failed"]]
    return "\n".join(lines) + "\n"
