"""Typed requests: one per job, JSON in and out (see base.py). REQUESTS maps each command to its request class."""
from .evaluation import EvaluationRequest
from .generation import GenerationRequest, Sampling
from .training import (TrainAutoencoderRequest, TrainDiffusionRequest, TrainingRequest, TrainSegmenterRequest,
                       TrainTranslatorRequest, TrainRefinerRequest)
from .translation import TranslationRequest
from .dataset import MakeDatasetRequest
from .base import Request

REQUESTS = {cls.command: cls for cls in (GenerationRequest, TranslationRequest, EvaluationRequest,
                                         TrainAutoencoderRequest, TrainDiffusionRequest, TrainSegmenterRequest,
                                         TrainTranslatorRequest, TrainRefinerRequest, MakeDatasetRequest)}


def read_request(path) -> Request:
    """A request file (`{"command": ..., options}`) -> its request, checked; SynthError with one line otherwise."""
    import json
    from pathlib import Path

    from ...errors import SynthError

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SynthError(f"cannot read the request file {path} ({exc.__class__.__name__}); give a UTF-8 JSON file") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SynthError(f"the request file {path} is not valid JSON ({exc.msg} at line {exc.lineno}); fix it, or "
                         "write it with Request.write") from None
    command = data.get("command") if isinstance(data, dict) else None
    if command not in REQUESTS:
        raise SynthError(f"the request file {path} names no known command ({command!r}); \"command\" must be one of "
                         f"{', '.join(REQUESTS)}")
    return REQUESTS[command].from_json(text)


__all__ = ["REQUESTS", "Request", "read_request", "GenerationRequest", "Sampling", "TranslationRequest",
           "EvaluationRequest", "TrainingRequest", "TrainAutoencoderRequest", "TrainDiffusionRequest",
           "TrainSegmenterRequest", "TrainTranslatorRequest", "TrainRefinerRequest", "MakeDatasetRequest"]
