"""Run a request: the checks before any work (preflight), the engine entry point, the result.

The CLI, `python -m SemanticSynthLib run REQUEST.json` (the Slicer bridge and the web page) and library users all
end here, so one request gives one behaviour whichever face started it. Each entry point is imported on use, so
that reading a request does not pay for torch and MONAI.
"""
from __future__ import annotations

from pathlib import Path

from ..reporting.progress import Progress
from ..reporting.results import Result
from ..requests import Request
from .preflight import check_paths, discard_new_side_paths, new_side_paths


def _generate(request, progress):
    from ..synthesis.generate import generate

    return generate(request, progress=progress)


def _translate(request, progress):
    from ..translation.translate import translate

    return translate(request, progress=progress)


def _evaluate(request, progress):
    from ..evaluation.evaluate import evaluate

    return evaluate(request, progress=progress)


def _train_autoencoder(request, progress):
    from ..training.autoencoder import train_autoencoder

    return train_autoencoder(request, progress=progress)


def _train_diffusion(request, progress):
    from ..training.diffusion import train_diffusion

    return train_diffusion(request, progress=progress)


def _train_segmenter(request, progress):
    from ..training.segmenter import train_segmenter

    return train_segmenter(request, progress=progress)


def _train_translator(request, progress):
    from ..training.translator import train_translator

    return train_translator(request, progress=progress)


def _train_refiner(request, progress):
    from ..training.refiner import train_refiner

    return train_refiner(request, progress=progress)


def _make_dataset(request, progress):
    from ..datasets.make_dataset import make_dataset

    return make_dataset(request, progress=progress)


ENTRY_POINTS = {
    "generate": _generate,
    "translate": _translate,
    "evaluate": _evaluate,
    "train-autoencoder": _train_autoencoder,
    "train-diffusion": _train_diffusion,
    "train-segmenter": _train_segmenter,
    "train-translator": _train_translator,
    "train-refiner": _train_refiner,
    "make-dataset": _make_dataset,
}


def run_request(request: Request, *, progress: Progress | str = "none", threads: int | None = None,
                result_path: str | Path | None = None) -> Result:
    """Check the request's paths, run it, and (with `result_path`) write its Result as JSON.

    Args:
        request: any request of engine.requests (REQUESTS names them by command).
        progress: a Progress, or its mode: "bar", "json" (one JSON object per line, for the bridge) or "none".
        threads: CPU threads for torch (None: torch's choice).
        result_path: where to write the Result (temp file, read back, renamed); None: not written.

    Returns:
        The entry point's Result.

    A failure leaves nothing behind: temporary files are removed, and a training run's new side paths (log,
    empty checkpoint folder) with them, unless it saved a checkpoint to resume.
    """
    from ..volume.atomic import remove_all, write_text_checked

    if threads:
        import torch

        torch.set_num_threads(threads)
    progress = progress if isinstance(progress, Progress) else Progress(progress)
    check_paths(request)
    side = new_side_paths(request)
    try:
        result = ENTRY_POINTS[request.command](request, progress)
        if result_path is not None:
            write_text_checked(Path(result_path), result.to_json() + "\n", lambda text: bool(text.strip()))
    except BaseException:
        remove_all()
        discard_new_side_paths(side)  # a failed training run leaves no log or empty checkpoint folder
        raise
    return result
