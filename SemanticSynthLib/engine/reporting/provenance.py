"""What a result records about how it was made: one schema for the CLI's file metadata (SemanticSynth_KEY), the
Slicer bridge's node attributes (SemanticSynth.KEY) and the web app's provenance.json.

Keys: model, model_version (the package's version; `software` is SemanticSynth's own), steps, seed, software,
per kind of result modality, conditioning, guidance and temperature (generation) or deform and field_convention
(translation), and `request`: the resolved request's parameters (every option that shapes the result, defaults
filled in; no paths), so a result can be made again from its record. The child process writes the record; the
bridge and the web page read it back from the result file rather than rebuilding it. Torch-free.
"""
from __future__ import annotations

import json

from ... import __version__

SOFTWARE = f"SemanticSynth {__version__}"
FILE_PREFIX = "SemanticSynth_"  # image metadata keys in NRRD/NIfTI files written by the CLI


def _record(model: str, metadata: dict, steps: int, seed: int) -> dict:
    return {"model": model, "model_version": metadata.get("version"), "steps": steps, "seed": seed,
            "software": SOFTWARE}


def generation_provenance(model: str, metadata: dict, request) -> dict:
    """A generated volume's record; `metadata` is the generator package's metadata.json and `request` the
    resolved GenerationRequest (engine/synthesis/generate.resolve: no option left to a default)."""
    return {**_record(model, metadata, request.steps, request.seed), "modality": request.modality,
            "conditioning": metadata["diffusion"]["conditioning"], "guidance": float(request.guidance),
            "temperature": float(request.temperature), "request": request.parameters()}


def translation_provenance(model: str, metadata: dict, request, field_convention: str) -> dict:
    """A translated volume's (and its field's) record, from the resolved TranslationRequest; the field convention
    says how its vectors are read (a file's LPS vectors, or a Slicer transform's "from parent" direction)."""
    return {**_record(model, metadata, request.steps, request.seed), "deform": bool(request.deform),
            "field_convention": field_convention, "request": request.parameters()}


def as_text(value) -> str:
    """A record value as image metadata or a node attribute hold it: JSON for records, else plain text."""
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else str(value)


def stamp(image, record: dict) -> None:
    """Write a record into a SimpleITK image's metadata (kept by NRRD and MHA writers)."""
    for key, value in record.items():
        image.SetMetaData(FILE_PREFIX + key, as_text(value))
