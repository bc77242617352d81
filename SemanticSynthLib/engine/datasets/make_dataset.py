"""make-dataset: many label maps -> an nnU-Net v2 training set of generated volumes.

The model is loaded once. Every map is read first (plan): its vocabulary is detected as `generate` does, and the
structures it holds name the dataset's labels (the model's names, ids 1..N in the model table's order), so that
every case uses one label numbering and a bad map is known before any generation. Then each map gives --samples
cases; sample k uses seed SEED + k. A case is written whole (volume and labels together, each read back) and then
its provenance; a case with its provenance is finished and is skipped when the command runs again, so an
interrupted run resumes where it stopped and loses nothing. A map that cannot be read or generated is skipped and
listed at the end, in the dataset card (dataset_card.json and dataset_card.md), with the counts, the time, the
model and how the cases were made. dataset.json is written last.

The cases are made in this process, or by parallel workers on Ray (engine/datasets/ray_engine.py: on this machine
by default, or on the cluster at --address); both take the same arguments (make_cases_here's) and call back here as
each case is done, and only this process writes provenance, the card and dataset.json.
"""
from __future__ import annotations

import csv
import functools
import importlib.util
import json
import os
import time
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
from ..synthesis.generate import resolve
from ..synthesis.label_vocabulary import read_in_vocabulary
from ..volume.atomic import write_text_checked
from ..volume.io import array_of, read_volume
from ..volume.labels import segment_names, to_class_indices
from ..volume.outputs import is_inside, same_file
from .cases import Case, CaseJob, MapPlan, case_volumes, one_line, remove_partials, write_case
from .nnunet import case_name, dataset_json, image_path, label_path

MAP_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd", ".seg.nrrd")
PLAN = "plan.json"  # in provenance/: what the dataset was begun with; a resumed run must match it


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
            plan.voxels = int(np.prod(label_map.GetSize()))
        except SynthError as exc:
            plan.error = one_line(exc)
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
    make_cases = case_engine(request, progress)  # a bad --address fails here, before any work
    model = resolve_model(request.model, request.modality, download_reporter(progress))
    package = load_package(model, device="cpu")
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
    remove_partials(out)  # what a killed earlier run (its driver or a worker) left half written
    failed = [{"labels": str(p.path), "error": p.error} for p in plans if p.error]
    cases = [Case(p, k, case_name(p.stem, k)) for p in usable for k in range(request.samples)]
    todo = [c for c in cases if not _is_finished(out, c.name)]
    count = {"written": 0, "done": len(cases) - len(todo)}

    def finished(case: Case, record: dict | None, error: str | None, **info) -> None:
        """A case is done (by whichever worker): its provenance, written here only, marks it finished."""
        if error is None and not (image_path(out, case.name).is_file() and label_path(out, case.name).is_file()):
            error = f"its files are missing from {out} after they were written; rerun to make it again"
        if error is None:
            _write_json(out / "provenance" / f"{case.name}.json", record)
            count["written"] += 1
        else:
            failed.append({"labels": str(case.plan.path), "sample": case.sample, "error": error})
        count["done"] += 1
        progress.update(count["done"], case=case.name, **info)

    progress.stage("making dataset", len(cases))
    if count["done"]:
        progress.update(count["done"])
    try:
        how = make_cases(CaseJob(request, base, labels, out, model), todo, finished, package)
    finally:
        remove_partials(out)  # a worker killed mid-case leaves its temp files; nothing is writing now
    progress.close_bar()
    written, skipped = count["written"], len(cases) - len(todo)
    finished_cases = sorted(p.name[: -len(".json")] for p in (out / "provenance").glob("*.json") if p.name != PLAN)
    card = {"name": request.name, "model": name, "model_version": version, "modality": base.modality,
            "label_maps": len(plans), "samples_per_map": request.samples,
            "seeds": [request.seed + k for k in range(request.samples)],
            "cases": len(finished_cases), "written_now": written, "kept_from_before": skipped, "failed": failed,
            "time_s": round(time.monotonic() - started, 1), "labels": labels, "made_by": how, "software": SOFTWARE,
            "request": request.parameters()}
    _write_json(out / "dataset_card.json", card)
    write_text_checked(out / "dataset_card.md", _card_markdown(card), lambda back: True)
    _write_json(out / "dataset.json", dataset_json(request.name, base.modality, labels, len(finished_cases),
                                                   f"generated by {SOFTWARE} with {name} {version}"))
    for item in failed:
        progress.message(f"skipped {item['labels']}: {item['error']}", skipped=item)
    progress.message(f"wrote {len(finished_cases)} cases to {out} ({written} now, {skipped} kept, {len(failed)} "
                     f"failed); {_how_text(how)}", output=str(out), made_by=how)
    return Result("make-dataset", {"out": str(out), "dataset_json": str(out / "dataset.json")},
                  {"model": name, "model_version": version, "software": SOFTWARE, "request": request.parameters()},
                  card)


def _is_finished(out: Path, case: str) -> bool:
    return ((out / "provenance" / f"{case}.json").is_file() and image_path(out, case).is_file()
            and label_path(out, case).is_file())


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def case_engine(request: MakeDatasetRequest, progress: Progress):
    """make_cases_here, or Ray's make_cases (which starts Ray on this machine, or connects to --address, only once
    there are cases to make; the address is checked now). One process where one worker is all there is (one core,
    or --workers 1 without --address) and where Ray is not installed (with a note: the same cases, not in
    parallel)."""
    cores = available_cores()
    if request.address is None and (request.workers or cores) == 1:
        return make_cases_here
    if importlib.util.find_spec("ray") is None:
        if request.address is not None:
            raise SynthError(f"--address {request.address} needs Ray: pip install 'semanticsynth[scale]', or leave "
                             "--address out to make the cases in this process")
        progress.message("Ray is not installed: making the cases in one process (pip install 'semanticsynth[scale]' "
                         "for parallel workers)")
        return make_cases_here
    from .ray_engine import check_address, make_cases

    check_address(request.address)
    return functools.partial(make_cases, cores=cores)


def make_cases_here(job: CaseJob, todo: list[Case], finished, package) -> dict:
    """Each case in turn, in this process, with the package loaded here; `finished` is called as each is done."""
    for case in todo:
        try:
            image, labels, record = case_volumes(package, job, case, read_volume(case.plan.path))
            write_case(job.out, case.name, image, labels)
        except SynthError as exc:
            finished(case, None, one_line(exc))
            continue
        finished(case, record, None)
    return {"engine": "one process", "results": "written by this process"}


def _how_text(how: dict) -> str:
    if how["engine"] != "ray":
        return {"one process": "made in one process", "none": "nothing left to make"}.get(how["engine"], how["engine"])
    threads = how["threads_per_worker"]
    return (f"made on Ray ({how['address']}) by {how['workers']} workers x {threads} thread{'s' * (threads > 1)}"
            + (" with a GPU each" if how.get("gpus_per_worker") else "") + f", files {how['results']}"
            + (f", {how['worker_deaths']} worker deaths survived" if how.get("worker_deaths") else ""))


def _card_markdown(card: dict) -> str:
    lines = [f"# {card['name']}", "",
             f"{card['cases']} cases generated by {card['software']} with `{card['model']}` {card['model_version']} "
             f"({card['modality']}) from {card['label_maps']} label maps, {card['samples_per_map']} per map "
             f"(seeds {', '.join(map(str, card['seeds']))}); nnU-Net v2 layout (imagesTr, labelsTr, dataset.json).", "",
             f"This run: {card['written_now']} written, {card['kept_from_before']} kept from before, "
             f"{len(card['failed'])} failed, {card['time_s']} s; {_how_text(card['made_by'])}. Each case's provenance "
             "is in provenance/CASE.json.", "",
             "| label | id |", "|---|---|"]
    lines += [f"| {name} | {i} |" for name, i in card["labels"].items()]
    if card["failed"]:
        lines += ["", "## Skipped", ""] + [f"- `{f['labels']}`: {f['error']}" for f in card["failed"]]
    return "\n".join(lines) + "\n"
