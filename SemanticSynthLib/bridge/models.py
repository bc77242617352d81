"""The model packages the bridge offers and what it reads of them before a job (torch-free): one place for the
generation and translation logic, the Slicer panel and the web page."""
from __future__ import annotations

from ..engine.model import store as model_store
from ..engine.model.package_metadata import DEFAULT_TRANSLATOR, read_package_metadata, sampling_defaults
from ..engine.volume.labels import LabelTable


def available_models(kind: str) -> list[str]:
    """Bundled packages of this kind ("generator", "translator") and those of the model manifest (downloaded on
    first use)."""
    return model_store.offered(kind)


def model_info(model: str | None, kind: str, modality: str | None = None) -> dict:
    """A local package's folder and checked metadata; a generator's also its label table and the defaults of the
    options a request may leave out (steps, guidance, temperature, phase: what the GUIs show as "model default").

    Args:
        model: a package folder or bundled/cached name; None: the default of the kind (by modality for generators).
        kind: "generator" or "translator".
        modality: a generator's modality (None: its first).

    Returns:
        {"path", "metadata"} and, for a generator, "labels" (LabelTable) and "defaults" (dict).
    """
    path = model_store.resolve_local(model or (DEFAULT_TRANSLATOR if kind == "translator" else None), modality)
    meta = read_package_metadata(path, kind)
    info = {"path": path, "metadata": meta}
    if kind == "generator":
        info["labels"] = LabelTable.from_json(meta["label_table"])
        info["defaults"] = sampling_defaults(meta, modality)
    return info


def needs_download(model: str | None, modality: str | None = None) -> bool:
    """Whether a model (None: the modality's default) is neither bundled nor downloaded yet (no network used)."""
    return model_store.needs_download(model, modality=modality)
