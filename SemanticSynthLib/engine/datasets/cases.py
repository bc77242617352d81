"""One case of make-dataset: made (generated, its labels renumbered) in whatever process runs it, then written.

The parts that a worker in another process runs too (engine/datasets/ray_engine.py): nothing here writes a case's
provenance, which the driver alone does once the case's files are in place, so a case is finished once whoever
made it. A worker that shares --out's file system writes the files itself (write_case); one that does not encodes
them (encode_case) and the driver writes the bytes (write_encoded). Both ways are atomic: temp files beside the
targets (.partial-*), read back, then renamed together.
"""
from __future__ import annotations

import contextlib
import shutil
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ...errors import SynthError
from ..reporting.progress import Progress
from ..requests import GenerationRequest
from ..requests.dataset import MakeDatasetRequest
from ..synthesis.generate import synthesize
from ..volume.atomic import PARTIAL_PREFIX, commit_files, temp_file_beside
from ..volume.io import array_of, image_like, read_volume, write_volumes
from .map_augmentation import augment_label_map
from .nnunet import image_path, label_path

PARTIAL_FOLDERS = ("", "imagesTr", "labelsTr", "provenance")  # where a killed process can leave .partial-* files


@dataclass
class MapPlan:
    path: Path
    stem: str
    names: dict = field(default_factory=dict)  # id in the map -> the model's name of its structure (known ids)
    error: str | None = None
    voxels: int = 0


@dataclass(frozen=True)
class Case:
    plan: MapPlan
    sample: int
    name: str


@dataclass
class CaseJob:
    """What every case of a run shares, sent once to each worker."""
    request: MakeDatasetRequest
    base: GenerationRequest  # resolved: the package's defaults filled in
    labels: dict             # the dataset's labels (name -> id)
    out: Path
    model: Path              # the package folder, as resolved by the driver


def one_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else exc.__class__.__name__


def case_volumes(package, job: CaseJob, case: Case, label_map: sitk.Image) -> tuple[sitk.Image, sitk.Image, dict]:
    """The volume generated from the case's map with seed SEED + k, the map in the dataset's label ids (both on the
    map's grid, deformed alike when augmenting), and the case's provenance record."""
    request, plan, k = job.request, case.plan, case.sample
    augmentation = None
    if request.augment:
        # Seeded by the map's name and the sample, not by its place in the list: a resumed or reordered run
        # draws the same deformation for the same case.
        rng = np.random.default_rng([request.seed, zlib.crc32(plan.stem.encode()), k])
        label_map, augmentation = augment_label_map(label_map, request.augment, rng, plan.names)
    generation = job.base.model_copy(update={"labels": str(plan.path), "out": str(image_path(job.out, case.name)),
                                             "seed": request.seed + k, "phase": request.phase,
                                             "label_table": request.label_table,
                                             "unknown_labels": request.unknown_labels, "texture": request.texture})
    image, record = synthesize(package, label_map, generation, Progress("none"))
    ids = array_of(label_map).astype(np.int64)
    lookup = np.zeros(max(int(ids.max()), *plan.names) + 1, np.int64)
    for i, structure in plan.names.items():  # the ids the model knows (read once, in the plan); others: background
        lookup[i] = i if request.label_ids == "map" else job.labels[structure]
    ids = lookup[ids]
    ids = ids.astype(np.uint8 if ids.max() < 256 else np.uint16 if ids.max() < 65536 else np.int32)
    record = {"case": case.name, "labels": str(plan.path), "sample": k, "augmentation": augmentation, **record}
    return image, image_like(ids, label_map), record


def write_case(out: Path, case: str, image: sitk.Image, labels: sitk.Image) -> None:
    for folder in ("imagesTr", "labelsTr"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    # Overwrite: only a case without provenance is made, i.e. one never finished (an interrupted earlier run's).
    write_volumes([(image, image_path(out, case)), (labels, label_path(out, case))], overwrite=True)


def encode_case(image: sitk.Image, labels: sitk.Image) -> dict[str, bytes]:
    """The case's two files as bytes, written (and read back) in a temp folder of this process."""
    with tempfile.TemporaryDirectory(prefix="semanticsynth-case-") as tmp:
        paths = write_volumes([(image, Path(tmp) / "image.nii.gz"), (labels, Path(tmp) / "labels.nii.gz")])
        return {"image": paths[0].read_bytes(), "labels": paths[1].read_bytes()}


def write_encoded(out: Path, case: str, files: dict[str, bytes]) -> None:
    """write_case for files encoded elsewhere: each to a temp file beside its target, read back, renamed together."""
    with contextlib.ExitStack() as stack:
        staged = []
        for key, target in (("image", image_path(out, case)), ("labels", label_path(out, case))):
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = stack.enter_context(temp_file_beside(target, ".nii.gz"))
            tmp.write_bytes(files[key])
            if tmp.read_bytes() != files[key]:
                raise SynthError(f"cannot write {target}: it did not read back as written (disk full?); free space "
                                 "or choose another --out")
            staged.append((tmp, target))
        commit_files(staged)


def read_encoded_map(data: bytes, name: str) -> sitk.Image:
    """A label map sent as bytes (to a worker that does not see the driver's files), read as read_volume does."""
    with tempfile.TemporaryDirectory(prefix="semanticsynth-map-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        return read_volume(path)


def remove_partials(out: Path) -> int:
    """Temp files a killed process (the driver, or a worker) left in the dataset; how many were removed."""
    removed = 0
    for folder in PARTIAL_FOLDERS:
        for path in (out / folder).glob(f"{PARTIAL_PREFIX}*") if (out / folder).is_dir() else ():
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(path) if path.is_dir() else path.unlink()
                removed += 1
    return removed
