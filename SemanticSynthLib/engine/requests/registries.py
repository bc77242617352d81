"""The names the requests accept, read from the registries that own them at check time (a newly registered
modality is accepted at once). Torch-free."""
from __future__ import annotations

DEVICES = ("auto", "cpu", "cuda")


def device_names() -> tuple:
    return DEVICES


def modality_names() -> list:
    from ..volume.modalities import modality_names as names

    return list(names())


def phase_names() -> list:
    """Contrast phases of every registered modality (CT: non_contrast, portal_venous)."""
    from ..volume.modalities import phase_names as names

    return list(names())


def conditioning_names() -> list:
    from ..model.conditioning_modes import MODES

    return list(MODES)


def label_table_names() -> list:
    """Built-in label tables: the models' own (muse, totalseg_v2, amos) and the vocabularies translated to them."""
    from ..volume.labels import BUILTIN_DIR

    return sorted(p.stem for p in BUILTIN_DIR.glob("*.json"))
