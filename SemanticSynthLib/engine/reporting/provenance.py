"""What a result records about how it was made: one schema for the CLI's file metadata (SemanticSynth_KEY), the
Slicer bridge's node attributes (SemanticSynth.KEY) and the web app's provenance.json.

Keys: model, model_version (the package's version; `software` is SemanticSynth's own), steps, seed, software, and
per kind of result modality and conditioning (generation) or deform and field_convention (translation).
Torch-free: the bridge builds the same record from a package's metadata alone.
"""
from __future__ import annotations

from ... import __version__

SOFTWARE = f"SemanticSynth {__version__}"
FILE_PREFIX = "SemanticSynth_"  # image metadata keys in NRRD/NIfTI files written by the CLI


def _record(model: str, metadata: dict, steps: int, seed: int) -> dict:
    return {"model": model, "model_version": metadata.get("version"), "steps": steps, "seed": seed,
            "software": SOFTWARE}


def generation_provenance(model: str, metadata: dict, modality: str, steps: int, seed: int,
                          guidance: float | None = None, temperature: float | None = None) -> dict:
    """A generated volume's record; `metadata` is the generator package's metadata.json. `guidance` and
    `temperature`: the values asked for, else the package's defaults."""
    diffusion = metadata["diffusion"]
    scale = diffusion.get("guidance", 1.0) if guidance is None else guidance
    spread = diffusion.get("temperature", 1.0) if temperature is None else temperature
    return {**_record(model, metadata, steps, seed), "modality": modality,
            "conditioning": diffusion["conditioning"], "guidance": float(scale), "temperature": float(spread)}


def translation_provenance(model: str, metadata: dict, steps: int, seed: int, deform: bool,
                           field_convention: str) -> dict:
    """A translated volume's (and its field's) record; the field convention says how its vectors are read
    (a file's LPS vectors, or a Slicer transform's "from parent" direction)."""
    return {**_record(model, metadata, steps, seed), "deform": bool(deform), "field_convention": field_convention}


def stamp(image, record: dict) -> None:
    """Write a record into a SimpleITK image's metadata (kept by NRRD and MHA writers)."""
    for key, value in record.items():
        image.SetMetaData(FILE_PREFIX + key, str(value))
