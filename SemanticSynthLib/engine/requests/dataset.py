"""What `make-dataset` needs: label maps in, an nnU-Net v2 training set of generated volumes out."""
from typing import ClassVar, Optional

from .base import option
from .generation import Sampling
from ...checks import integer, one_of, subset, text
from .registries import device_names, label_table_names, modality_names, phase_names


def worker_count(value):
    """auto (None) or a number of workers from 1 to 1024."""
    if value is None or (isinstance(value, str) and value.strip() == "auto"):
        return None
    return integer(1, 1024)(value)


worker_count.low, worker_count.high = 1, 1024  # read by the GUIs' widgets (their ranges)


def ray_address(value) -> str:
    """auto, HOST:PORT or ray://HOST:PORT (a port from 1 to 65535)."""
    value = text(value).strip()
    host, _, port = value[len("ray://"):].rpartition(":") if value.startswith("ray://") else value.rpartition(":")
    if value != "auto" and not (host.strip("[]") and port.isdigit() and 1 <= int(port) <= 65535):
        raise ValueError(f"give HOST:PORT, ray://HOST:PORT or auto, not {value!r}")
    return value


AUGMENTATIONS = ("affine", "elastic", "mirror")  # engine/datasets/map_augmentation.py draws each


class MakeDatasetRequest(Sampling):
    """Generate K volumes from each of many label maps, as an nnU-Net v2 dataset (imagesTr, labelsTr, dataset.json).

    Args:
        labels: a folder of label maps, an nnU-Net/MSD dataset folder (its labelsTr), or a CSV with a label column.
        out: the dataset folder: new, or one this command made before (finished cases are kept: the run resumes).
        model, modality, device, phase, label_table, unknown_labels: as for generate.
        samples: volumes per label map; sample k of every map uses seed SEED + k.
        augment: label-map augmentation before generation, some of affine, elastic, mirror (left-right, with
            paired structures swapped); the deformed map is the case's label file.
        label_ids: the label files' ids: "dataset" (0..N, consecutive, named in dataset.json: what nnU-Net v2
            accepts) or "map" (each map's own ids, e.g. for train-segmenter --label-groups; not nnU-Net-valid when
            the ids have gaps).
        name: the dataset's name in dataset.json.
        workers, address, results: how the cases are made, not what they are (not recorded): parallel workers on
            Ray (engine/datasets/ray_engine.py), on this machine or on the cluster at `address`; `results`
            "driver" has this process send the maps to the workers and write the files they return, as it does
            for workers that do not see --out.
    """

    command: ClassVar[str] = "make-dataset"

    labels: str = option(help="folder of label maps, nnU-Net/MSD dataset folder (labelsTr) or CSV with a label column",
                         check=text, role="data", positional=True)
    out: str = option(help="dataset folder to write: new, or one make-dataset began (its finished cases are kept)",
                      check=text, positional=True, recorded=False)
    model: Optional[str] = option(None, "model package folder or bundled name (default: by modality)", role="model")
    modality: Optional[str] = option(None, "default: the model's first modality", check=one_of(modality_names))
    samples: int = option(1, "volumes per label map (sample k uses seed SEED + k)", check=integer(1, 1000))
    device: str = option("auto", "where the networks run: auto (CUDA where available), cpu or cuda",
                         check=one_of(device_names))
    phase: Optional[str] = option(None, "CT: generate every label at this contrast phase's reference HU",
                                  check=one_of(phase_names))
    label_table: Optional[str] = option(None, "the maps' vocabulary (default: detected per map)",
                                        check=one_of(label_table_names))
    unknown_labels: str = option("error", "labels the model does not know: error (the map is skipped and listed), "
                                          "or generate them as background", check=one_of(("error", "background")))
    texture: bool = option(True, "leave out the scanner texture (default: added where the model's package has a "
                                 "profile, as generate does)", flag="--no-texture")
    augment: tuple = option((), "label-map augmentation before generation: some of affine, elastic, mirror "
                                "(left-right with paired labels swapped), comma-separated", check=subset(AUGMENTATIONS))
    label_ids: str = option("dataset", "label files' ids: dataset (0..N named in dataset.json, what nnU-Net wants) or "
                                       "map (each map's own ids)", check=one_of(("dataset", "map")))
    name: str = option("SemanticSynth", "the dataset's name in dataset.json", check=text)
    workers: Optional[int] = option(None, "parallel workers, each with the model loaded once (needs Ray, the [scale] "
                                          "extra): auto (default) is one per core, or per GPU on a GPU cluster; "
                                          "1 without --address: one process", check=worker_count, metavar="N",
                                    recorded=False)
    address: Optional[str] = option(None, "an existing Ray cluster to run on: HOST:PORT, ray://HOST:PORT or auto "
                                          "(default: Ray on this machine, started and stopped by this command)",
                                    check=ray_address, metavar="ADDRESS", recorded=False)
    results: str = option("auto", "who writes the case files: auto (the workers where they see --out, else this "
                                  "process) or driver (this process sends the maps and writes the files the "
                                  "workers return, as for workers that do not share its file system)",
                          check=one_of(("auto", "driver")), recorded=False)
