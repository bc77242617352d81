"""What `evaluate` needs: a generator, a segmenter and real labelled cases in; a report folder out."""
from typing import ClassVar, Optional

from .base import option
from ...checks import integer, one_of, text
from .generation import Sampling
from .registries import modality_names


class EvaluationRequest(Sampling):
    """Label fidelity and realism of a generator against real labelled cases.

    Args:
        model: the generator package folder or bundled name (None: by modality).
        segmenter: a segmenter package from train-segmenter.
        data: an nnU-Net-style folder or CSV of real image,label pairs.
        out: the report folder (report.json, report.md, PNGs).
        samples: generated samples per case. steps, seed, guidance, temperature: sampling (None: the model's).
        modality, feature_weights, feature_depth: modality, and the 3D ResNet (safetensors) whose features give FID.
        frd: also the Fréchet Radiomics Distance (frd-score, optional extra [realism]): minutes more.
        training_data: the generator's training pairs (CSV or folder): the memorisation check compares generation
            from training and from held-out maps with their real scans (memorisation_cases of them).
        pictures, max_cases, overwrite: cases drawn as slice grids, a cap on the cases, write into a non-empty folder.
    """

    command: ClassVar[str] = "evaluate"

    model: Optional[str] = option(None, "generator package folder or bundled name (default: by modality)", role="model")
    segmenter: str = option(help="segmenter package from train-segmenter", check=text, role="model")
    data: str = option(help="nnU-Net-style folder or CSV of real image,label pairs", check=text, role="data")
    out: str = option(help="report folder (report.json, report.md, PNGs)", check=text, role="folder")
    samples: int = option(1, "generated samples per case", check=integer(1, 100))
    modality: Optional[str] = option(None, "default: the model's first modality", check=one_of(modality_names))
    feature_weights: Optional[str] = option(None, "safetensors weights of a MONAI 3D ResNet (Med3D layout) for FID",
                                            role="input", recorded=True)
    feature_depth: int = option(10, "depth of that ResNet: 10, 18, 34 or 50", check=one_of((10, 18, 34, 50)))
    calibrate: bool = option(True, "score the network's own output (default: each label's mean moved onto its prior, "
                                   "as generate does)", flag="--no-calibrate")
    frd: bool = option(False, "also FRD v1 (radiomics features; frd-score, the [realism] extra), inside the labels "
                              "and the real scans' foreground, with the real-vs-real floor and the painting")
    training_data: Optional[str] = option(None, "the generator's training pairs (CSV or folder): memorisation check "
                                                "of training against held-out subjects", role="data")
    memorisation_cases: int = option(20, "training subjects the memorisation check generates", check=integer(1, 1000))
    pictures: int = option(3, "cases drawn as slice grids", check=integer(0))
    max_cases: Optional[int] = option(None, "evaluate at most this many cases", check=integer(1))
    overwrite: bool = option(False, "write into a non-empty report folder", recorded=False)
