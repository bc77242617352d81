"""What the five trainers need: one scaffold of options (TrainingRequest) and each trainer's own."""
from typing import ClassVar, Optional, Tuple

from ..model.conditioning_modes import DEFAULT_MODE, modes_help
from ..volume.modalities import DEFAULT_MODALITY
from .base import Request, option
from ...checks import GUIDANCE, TEMPERATURE, factors, integer, number, one_of, patch, seed, spacing, surround, text
from .registries import conditioning_names, modality_names, phase_names

TRAINING_DEVICES = ("cpu", "cuda")


class TrainingRequest(Request):
    """Options every trainer has: data in, a model package folder out, steps, batch, checkpoints, device.

    Args:
        data: the training cases (see each trainer).
        out: the model package folder to write (new or empty, or with overwrite).
        steps, batch, lr, seed: optimisation.
        resume, checkpoint_dir, checkpoint_every: continue from OUT.checkpoint (or checkpoint_dir), save every N.
        log_every: loss log interval. device: cpu or cuda (torchrun: one process per GPU or CPU share).
    """

    data: str = option(help="nnU-Net-style folder (imagesTr/labelsTr) or CSV with image,label[,modality]", check=text,
                       role="data")
    out: str = option(help="model package folder to write (new or empty, or --overwrite)", check=text, role="folder")
    overwrite: bool = option(False, "replace a non-empty --out once the new package is complete", recorded=False)
    steps: int = option(2000, "optimisation steps", check=integer(1))
    batch: int = option(2, "cases per step and process", check=integer(1, 1024))
    lr: float = option(2e-4, "Adam learning rate (with --resume: the rate from the resumed step on)",
                       check=number(0, 10, low_open=True))
    seed: int = option(0, "random seed", check=seed)
    resume: bool = option(False, "continue from OUT.checkpoint if it exists")
    checkpoint_dir: Optional[str] = option(None, "default: OUT.checkpoint", role="checkpoint")
    checkpoint_every: int = option(200, "steps between checkpoints", check=integer(1))
    log_every: int = option(10, "steps between loss log lines", check=integer(1))
    device: str = option("cpu", "cpu or cuda", check=one_of(TRAINING_DEVICES))


class LabelledTrainingRequest(TrainingRequest):
    """Trainers on labelled images (autoencoder, diffusion, segmenter)."""

    modality: str = option(DEFAULT_MODALITY, "modality of cases without a modality column",
                           check=one_of(modality_names))
    augment: bool = option(False, "random affine and intensity augmentation")


class TrainAutoencoderRequest(LabelledTrainingRequest):
    """Train the VQ-GAN autoencoder (label-aware with a label table). See `semanticsynth train-autoencoder --help`."""

    command: ClassVar[str] = "train-autoencoder"

    label_table: Optional[str] = option(None, "built-in table (muse, totalseg_v2, amos) or a JSON file", role="input",
                                        recorded=True)
    all_labels: bool = option(False, "keep the whole table, not just the labels in the data")
    spacing: Tuple[float, float, float] = option((2.0, 2.0, 2.0), "working spacing in mm", check=spacing)
    patch: Tuple[int, int, int] = option((64, 64, 64), "training crop in voxels", check=patch(4, 8))
    num_embeddings: Optional[int] = option(None, "codebook size", check=integer(2, 65536))
    codebook_groups: Optional[int] = option(
        None, "label-aware autoencoder: quantize each latent voxel as this many groups of channels, each with its "
              "own code (product quantization; default 1, or the --init package's)", check=integer(1, 256))
    latent_channels: Optional[int] = option(
        None, "label-aware autoencoder: channels per latent voxel (default 8, or the --init package's). Widening an "
              "--init package keeps its codebook; the decoder starts out ignoring the new channels, and a diffusion "
              "U-Net must be trained on the new latents", check=integer(1, 256))
    head_blocks: Optional[int] = option(
        None, "label-aware autoencoder: label-modulated refinement blocks at full resolution before the output head "
              "(default 0, or the --init package's; at most 1). Added to an --init package they start as the "
              "identity, so --decoder-only keeps its diffusion U-Net", check=integer(0, 8))
    adv_weight: float = option(0.01, "weight of the adversarial loss", check=number(0, 100))
    adv_start: int = option(500, "step at which the adversarial loss starts", check=integer(0))
    gradient_weight: float = option(
        0.0, "weight of the gradient-difference loss (L1 between the images' finite differences), which penalises "
             "blurred edges that L1 alone tolerates", check=number(0, 100))
    data_phase: Optional[str] = option(None, "CT: the contrast phase of the training scans (which reference priors "
                                             "unseen classes get)", check=one_of(phase_names))
    surround_mm: Optional[Tuple[float, float]] = option(
        None, "label-aware autoencoder: paint the unlabelled voxels within FULL mm of a label with their own measured "
              "mean instead of the background's, fading back to the background's at FADE_TO mm (CT: fat and muscle "
              "around the organs, not air; against bright rims at organ boundaries; e.g. 6,24). With --decoder-only "
              "the output is an autoencoder package: train a diffusion U-Net on it", check=surround,
        metavar="FULL,FADE_TO")
    init: Optional[str] = option(None, "start from this package's autoencoder (fine-tuning for a new contrast)",
                                 role="model")
    decoder_only: bool = option(False, "with --init: train the decoder only; the latent space stays, so an --init "
                                       "generator package keeps its diffusion U-Net and the output is a whole "
                                       "generator package")


class TrainDiffusionRequest(LabelledTrainingRequest):
    """Train the latent diffusion U-Net on top of an autoencoder package."""

    command: ClassVar[str] = "train-diffusion"

    autoencoder: str = option(help="package written by train-autoencoder", check=text, role="model")
    conditioning: str = option(DEFAULT_MODE, modes_help(), check=one_of(conditioning_names))
    latent_patch: Tuple[int, int, int] = option((32, 32, 32), "latent crop per sample", check=patch(4, 4, 256))
    augment_copies: int = option(0, "extra augmented copies of each case to encode", check=integer(0, 100))
    ema: float = option(0.999, "decay of the weights' exponential moving average", check=number(0, 1, high_open=True))
    default_steps: int = option(20, "the package's default DDIM steps", check=integer(1, 1000))
    condition_dropout: float = option(0.0, "fraction of samples trained with the null label condition, for "
                                           "classifier-free guidance", check=number(0, 1, high_open=True))
    guidance: float = option(1.0, "the package's default guidance scale (1: off; above 1 needs --condition-dropout)",
                             check=GUIDANCE)
    temperature: float = option(1.0, "the package's default sampling temperature (1: the full noise the U-Net "
                                     "learnt from)", check=TEMPERATURE)
    init: Optional[str] = option(None, "start the U-Net from this generator package's (same conditioning, or concat "
                                       "for detail; same latent channels and label table)", role="model")
    merge_labels: Optional[str] = option(None, "also train on conditions of merged label maps: a built-in merge "
                                               "(muse_to_aseg) or a JSON file; one merged copy per encoded case")
    merge_fraction: float = option(0.5, "with --merge-labels: the chance that each coarse structure of a merged copy "
                                        "is merged", check=number(0, 1, low_open=True))
    outside_layout: bool = option(False, "measure the training scans' intensity outside the labels by direction and "
                                         "distance from them, and condition on it there (a head around a brain map)")


class TrainSegmenterRequest(LabelledTrainingRequest):
    """Train the auxiliary segmenter that `evaluate` uses (MONAI SegResNet)."""

    command: ClassVar[str] = "train-segmenter"

    steps: int = option(1500, "optimisation steps", check=integer(1))
    lr: float = option(1e-3, "Adam learning rate (with --resume: the rate from the resumed step on)",
                       check=number(0, 10, low_open=True))
    label_groups: str = option("muse_groups", "built-in groups (muse_groups), a groups JSON file, or a label table "
                                              "(each label its own group)", role="input", recorded=True)
    spacing: Tuple[float, float, float] = option((2.0, 2.0, 2.0), "working spacing in mm", check=spacing)
    patch: Tuple[int, int, int] = option((80, 80, 80), "training crop (multiple of 8)", check=patch(8, 16))
    filters: int = option(8, "SegResNet init_filters", check=integer(1, 256))


class TrainTranslatorRequest(TrainingRequest):
    """Train a traceable translator: a spatial transform (velocity network) and an intensity translator."""

    command: ClassVar[str] = "train-translator"

    data: str = option(help="CSV with source,target columns, or a folder with source/ and target/", check=text,
                       role="data")
    steps: int = option(3000, "intensity translator steps (0: the spatial stage alone)", check=integer(0))
    autoencoder: str = option(help="autoencoder package for the target contrast", check=text, role="model")
    spatial_steps: int = option(600, "steps for the velocity network (first stage)", check=integer(1))
    spatial_lr: float = option(1e-3, "learning rate of the velocity network", check=number(0, 10, low_open=True))
    smoothness: float = option(0.5, "weight of the velocity's smoothness loss", check=number(0, 1000))
    ncc_kernel: int = option(7, "local NCC window (voxels at half resolution)", check=integer(3, 31))
    refine_steps: int = option(0, "third stage: steps tuning the velocity net so the warped translation matches the "
                                  "target (MSE)", check=integer(0))
    refine_sample_steps: int = option(10, "DDIM steps for the translations of that stage", check=integer(1, 1000))
    refine_smoothness: float = option(0.05, "weight of the velocity's smoothness there", check=number(0, 1000))
    latent_patch: Tuple[int, int, int] = option((24, 24, 24), "latent crop per sample", check=patch(4, 4, 256))
    ema: float = option(0.999, "decay of the weights' exponential moving average", check=number(0, 1, high_open=True))
    default_steps: int = option(20, "the package's default DDIM steps", check=integer(1, 1000))
    source_modality: str = option(DEFAULT_MODALITY, "modality of the sources", check=one_of(modality_names))
    target_modality: str = option(DEFAULT_MODALITY, "modality of the targets", check=one_of(modality_names))
    source_contrast: str = option("T1", "the sources' contrast, as recorded in the package")
    target_contrast: str = option("T2-like", "the targets' contrast, as recorded in the package")


class TrainRefinerRequest(TrainingRequest):
    """Train the detail refiner of a generator package: its output at the label map's own spacing, finer than the
    model's working spacing (engine/model/refiner.py)."""

    command: ClassVar[str] = "train-refiner"

    data: str = option(help="CSV with image[,label][,modality] rows: real scans at a spacing finer than the model's "
                            "working spacing (or as fine as it, degraded further); labels where they exist",
                       check=text, role="data")
    out: str = option(help="generator package folder to write: the --model package with the refiner added",
                      check=text, role="folder")
    model: str = option(help="the generator package to add the refiner to (an existing refiner is trained on)",
                        check=text, role="model")
    modality: str = option("ct", "modality of cases without a modality column", check=one_of(modality_names))
    steps: int = option(1500, "optimisation steps", check=integer(1))
    lr: float = option(1e-3, "Adam learning rate (with --resume: the rate from the resumed step on)",
                       check=number(0, 10, low_open=True))
    factors: Tuple[float, ...] = option((2.0, 3.0), "degradations: each case at its spacing times each factor, "
                                                    "restored by linear upsampling (and by the model's autoencoder "
                                                    "where that is its working spacing)", check=factors)
    patch: Tuple[int, int, int] = option((48, 48, 48), "training crop in voxels of the case's own grid",
                                         check=patch(1, 16))
    channels: int = option(8, "refiner channels", check=integer(1, 64))
    blocks: int = option(3, "label-modulated residual blocks", check=integer(1, 8))
    gradient_weight: float = option(1.0, "weight of the gradient-difference loss against blurred edges",
                                    check=number(0, 100))
