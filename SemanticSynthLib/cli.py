"""One command line for Slicer and for people: generate, translate, evaluate, the four trainers, serve."""
from __future__ import annotations

import argparse
import sys
import traceback

from . import arguments as num
from .engine.model.conditioning_modes import DEFAULT_MODE, MODES, modes_help
from .errors import SynthError


class Parser(argparse.ArgumentParser):
    """argparse, but a bad option is one line (no usage block), as every other error is."""

    def error(self, message):
        self.exit(2, f"error: {message}; see {self.prog} --help\n")


def _training_options(p: argparse.ArgumentParser, labelled: bool = True, min_steps: int = 1) -> None:
    if labelled:
        p.add_argument("--data", required=True, help="nnU-Net-style folder (imagesTr/labelsTr) or CSV with image,label[,modality]")
        p.add_argument("--modality", default="mri", choices=["ct", "mri"], help="modality of cases without a modality column")
        p.add_argument("--augment", action="store_true", help="random affine and intensity augmentation")
    else:
        p.add_argument("--data", required=True, help="CSV with source,target columns, or a folder with source/ and target/")
    p.add_argument("--out", required=True, help="model package folder to write (new or empty, or --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out once the new package is complete")
    p.add_argument("--steps", type=num.integer(min_steps), default=2000)
    p.add_argument("--batch", type=num.integer(1, 1024), default=2)
    p.add_argument("--lr", type=num.number(0, 10, low_open=True), default=2e-4,
                   help="Adam learning rate (with --resume: the rate from the resumed step on)")
    p.add_argument("--seed", type=num.seed, default=0)
    p.add_argument("--resume", action="store_true", help="continue from OUT.checkpoint if it exists")
    p.add_argument("--checkpoint-dir", default=None, help="default: OUT.checkpoint")
    p.add_argument("--checkpoint-every", type=num.integer(1), default=200)
    p.add_argument("--log-every", type=num.integer(1), default=10)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--progress", default="bar", choices=["bar", "json", "none"])
    p.add_argument("--threads", type=num.integer(1, 1024), default=None, help="CPU threads (default: torch's choice)")
    p.add_argument("--debug", action="store_true", help="show the traceback of unexpected errors")


TEMPERATURE = num.number(0, 1, low_open=True)


def _sampling_options(p) -> None:
    """How generation samples, for the commands that generate: both default to the model package's values."""
    p.add_argument("--guidance", type=num.number(1, 20), default=None,
                   help="classifier-free guidance scale (default: the model's; 1: none)")
    p.add_argument("--temperature", type=TEMPERATURE, default=None,
                   help="scale of the starting noise, above 0 and at most 1 (default: the model's). Lower follows the "
                        "labels more closely with less varied texture; 1 gives the most varied samples")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="semanticsynth", description="Label map -> CT/MRI by 3D latent semantic diffusion")
    parser.add_argument("--debug", dest="debug_all", action="store_true", help="show the traceback of unexpected errors")
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="generate a volume on the label map's grid")
    g.add_argument("labels", help="label map: NIfTI, NRRD, MHA or a DICOM series folder")
    g.add_argument("out", help="output volume (.nii.gz, .nii, .nrrd, .mha)")
    g.add_argument("--model", default=None, help="model package folder or bundled name (default: by modality)")
    g.add_argument("--modality", default=None, choices=["ct", "mri"], help="default: the model's first modality")
    g.add_argument("--steps", type=num.integer(1), default=None, help="DDIM steps (default: the model's)")
    g.add_argument("--seed", type=num.seed, default=0)
    _sampling_options(g)
    g.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    g.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    g.add_argument("--progress", default="bar", choices=["bar", "json", "none"])
    g.add_argument("--label-mapping", default=None, help="JSON of input id -> model id or name")
    g.add_argument("--unknown-labels", default="error", choices=["error", "background"])
    g.add_argument("--max-voxels", type=num.integer(1), default=512 ** 3, help="refuse label maps larger than this at working spacing (memory limit)")
    g.add_argument("--window", type=num.integer(8, 1024), default=None, help="latent window edge for sliding-window generation")
    g.add_argument("--threads", type=num.integer(1, 1024), default=None)
    g.add_argument("--fp32", action="store_true", help="no bf16 autocast")
    g.add_argument("--phase", default=None, choices=["non_contrast", "portal_venous"],
                   help="CT: generate every label at this contrast phase's reference HU (default: the training data's)")
    g.add_argument("--priors", default=None, help="JSON of label id or name -> mean (HU for CT, x white matter for MRI) "
                   "or {\"mean\": x, \"range\": [lo, hi]}, overriding the model's priors")
    g.add_argument("--no-calibrate", action="store_true", help="keep each label's mean as the network made it "
                   "(default: moved onto its prior; the check before is reported either way)")
    g.add_argument("--series", default=None, help="DICOM series UID, when the LABELS folder holds several")
    g.add_argument("--debug", action="store_true", help="show the traceback of unexpected errors")

    tr = sub.add_parser("translate", help="translate a volume to the model's target contrast, with a displacement field")
    tr.add_argument("source", help="source volume: NIfTI, NRRD, MHA or a DICOM series folder")
    tr.add_argument("out", help="translated volume, on the source's grid")
    tr.add_argument("--field", required=True, help="displacement field to write (ITK vector image, LPS mm): "
                    "output point x -> source point x + u(x)")
    tr.add_argument("--model", default=None, help="translator package folder or bundled name (default: brain-t1-to-t2like)")
    tr.add_argument("--no-deform", action="store_true", help="intensity translation only; the field is the identity (zero)")
    tr.add_argument("--steps", type=num.integer(1), default=None, help="DDIM steps (default: the model's)")
    tr.add_argument("--seed", type=num.seed, default=0)
    tr.add_argument("--labels", default=None, help="source label map to carry through the field (nearest neighbour)")
    tr.add_argument("--labels-out", default=None, help="where to write the carried label map")
    tr.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    tr.add_argument("--overwrite", action="store_true", help="replace outputs that exist")
    tr.add_argument("--progress", default="bar", choices=["bar", "json", "none"])
    tr.add_argument("--threads", type=num.integer(1, 1024), default=None)
    tr.add_argument("--fp32", action="store_true", help="no bf16 autocast")
    tr.add_argument("--series", default=None, help="DICOM series UID, when the SOURCE folder holds several")
    tr.add_argument("--debug", action="store_true", help="show the traceback of unexpected errors")

    a = sub.add_parser("train-autoencoder", help="train the VQ-GAN autoencoder")
    _training_options(a)
    a.add_argument("--label-table", default=None, help="built-in table (muse, totalseg_v2, amos) or a JSON file")
    a.add_argument("--all-labels", action="store_true", help="keep the whole table, not just the labels in the data")
    a.add_argument("--spacing", type=num.spacing, default=(2.0, 2.0, 2.0), help="working spacing in mm")
    a.add_argument("--patch", type=num.patch(4, 8), default=(64, 64, 64))
    a.add_argument("--num-embeddings", type=num.integer(2, 65536), default=None)
    a.add_argument("--codebook-groups", type=num.integer(1, 256), default=None,
                   help="label-aware autoencoder: quantize each latent voxel as this many groups of channels, each "
                        "with its own code (product quantization; default 1, or the --init package's)")
    a.add_argument("--latent-channels", type=num.integer(1, 256), default=None,
                   help="label-aware autoencoder: channels per latent voxel (default 8, or the --init package's). "
                        "Widening an --init package keeps its codebook; the decoder starts out ignoring the new "
                        "channels, and a diffusion U-Net must be trained on the new latents")
    a.add_argument("--head-blocks", type=num.integer(0, 8), default=None,
                   help="label-aware autoencoder: label-modulated refinement blocks at full resolution before the "
                        "output head (default 0, or the --init package's; at most 1). Added to an --init package "
                        "they start as the identity, so --decoder-only keeps its diffusion U-Net")
    a.add_argument("--adv-weight", type=num.number(0, 100), default=0.01)
    a.add_argument("--adv-start", type=num.integer(0), default=500, help="step at which the adversarial loss starts")
    a.add_argument("--gradient-weight", type=num.number(0, 100), default=0.0,
                   help="weight of the gradient-difference loss (L1 between the images' finite differences), which "
                        "penalises blurred edges that L1 alone tolerates")
    a.add_argument("--data-phase", default=None, choices=["non_contrast", "portal_venous"],
                   help="CT: the contrast phase of the training scans (which reference priors unseen classes get)")
    a.add_argument("--surround-mm", type=num.surround, default=None, metavar="FULL,FADE_TO",
                   help="label-aware autoencoder: paint the unlabelled voxels within FULL mm of a label with their own "
                        "measured mean instead of the background's, fading back to the background's at FADE_TO mm "
                        "(CT: fat and muscle around the organs, not air; against bright rims at organ boundaries; "
                        "e.g. 6,24). With --decoder-only the output is an autoencoder package: train a diffusion "
                        "U-Net on it")
    a.add_argument("--init", default=None, help="start from this package's autoencoder (fine-tuning for a new contrast)")
    a.add_argument("--decoder-only", action="store_true",
                   help="with --init: train the decoder only; the latent space stays, so an --init generator package "
                        "keeps its diffusion U-Net and the output is a whole generator package")

    d = sub.add_parser("train-diffusion", help="train the latent diffusion U-Net on top of an autoencoder package")
    _training_options(d)
    d.add_argument("--autoencoder", required=True, help="package written by train-autoencoder")
    d.add_argument("--conditioning", default=DEFAULT_MODE, choices=list(MODES), help=modes_help())
    d.add_argument("--latent-patch", type=num.patch(4, 4, 256), default=(32, 32, 32), help="latent crop per sample")
    d.add_argument("--augment-copies", type=num.integer(0, 100), default=0, help="extra augmented copies of each case to encode")
    d.add_argument("--ema", type=num.number(0, 1, high_open=True), default=0.999)
    d.add_argument("--default-steps", type=num.integer(1, 1000), default=20)
    d.add_argument("--condition-dropout", type=num.number(0, 1, high_open=True), default=0.0,
                   help="fraction of samples trained with the null label condition, for classifier-free guidance")
    d.add_argument("--guidance", type=num.number(1, 20), default=1.0,
                   help="the package's default guidance scale (1: off; above 1 needs --condition-dropout)")
    d.add_argument("--temperature", type=TEMPERATURE, default=1.0,
                   help="the package's default sampling temperature (1: the full noise the U-Net learnt from)")
    d.add_argument("--init", default=None, help="start the U-Net from this generator package's (same conditioning, "
                                                "or concat for detail; same latent channels and label table)")
    e = sub.add_parser("evaluate", help="fidelity and realism of a generator against real labelled cases")
    e.add_argument("--model", default=None, help="generator package folder or bundled name (default: by modality)")
    e.add_argument("--segmenter", required=True, help="segmenter package from train-segmenter")
    e.add_argument("--data", required=True, help="nnU-Net-style folder or CSV of real image,label pairs")
    e.add_argument("--out", required=True, help="report folder (report.json, report.md, PNGs)")
    e.add_argument("--samples", type=num.integer(1, 100), default=1, help="generated samples per case")
    e.add_argument("--steps", type=num.integer(1), default=None, help="DDIM steps (default: the model's)")
    _sampling_options(e)
    e.add_argument("--seed", type=num.seed, default=0)
    e.add_argument("--modality", default=None, choices=["ct", "mri"])
    e.add_argument("--feature-weights", default=None, help="safetensors weights of a MONAI 3D ResNet (Med3D layout) for FID")
    e.add_argument("--feature-depth", type=int, default=10, choices=[10, 18, 34, 50], help="depth of that ResNet: 10, 18, 34 or 50")
    e.add_argument("--pictures", type=num.integer(0), default=3, help="cases drawn as slice grids")
    e.add_argument("--max-cases", type=num.integer(1), default=None)
    e.add_argument("--overwrite", action="store_true", help="write into a non-empty report folder")
    e.add_argument("--progress", default="bar", choices=["bar", "json", "none"])
    e.add_argument("--threads", type=num.integer(1, 1024), default=None)
    e.add_argument("--debug", action="store_true", help="show the traceback of unexpected errors")

    s = sub.add_parser("train-segmenter", help="train the auxiliary segmenter used by evaluate (MONAI SegResNet)")
    _training_options(s)
    s.set_defaults(steps=1500, lr=1e-3)
    s.add_argument("--label-groups", default="muse_groups",
                   help="built-in groups (muse_groups), a groups JSON file, or a label table (each label its own group)")
    s.add_argument("--spacing", type=num.spacing, default=(2.0, 2.0, 2.0), help="working spacing in mm")
    s.add_argument("--patch", type=num.patch(8, 16), default=(80, 80, 80), help="training crop (multiple of 8)")
    s.add_argument("--filters", type=num.integer(1, 256), default=8, help="SegResNet init_filters")

    t = sub.add_parser("train-translator", help="train a traceable translator (spatial transform + intensity translator)")
    _training_options(t, labelled=False, min_steps=0)  # --steps 0: the spatial stage alone
    t.set_defaults(steps=3000)
    t.add_argument("--autoencoder", required=True, help="autoencoder package for the target contrast")
    t.add_argument("--spatial-steps", type=num.integer(1), default=600, help="steps for the velocity network (first stage)")
    t.add_argument("--spatial-lr", type=num.number(0, 10, low_open=True), default=1e-3)
    t.add_argument("--smoothness", type=num.number(0, 1000), default=0.5, help="weight of the velocity's smoothness loss")
    t.add_argument("--ncc-kernel", type=num.integer(3, 31), default=7, help="local NCC window (voxels at half resolution)")
    t.add_argument("--refine-steps", type=num.integer(0), default=0,
                   help="third stage: steps tuning the velocity net so the warped translation matches the target (MSE)")
    t.add_argument("--refine-sample-steps", type=num.integer(1, 1000), default=10, help="DDIM steps for the translations of that stage")
    t.add_argument("--refine-smoothness", type=num.number(0, 1000), default=0.05, help="weight of the velocity's smoothness there")
    t.add_argument("--latent-patch", type=num.patch(4, 4, 256), default=(24, 24, 24), help="latent crop per sample")
    t.add_argument("--ema", type=num.number(0, 1, high_open=True), default=0.999)
    t.add_argument("--default-steps", type=num.integer(1, 1000), default=20)
    t.add_argument("--source-modality", default="mri", choices=["ct", "mri"])
    t.add_argument("--target-modality", default="mri", choices=["ct", "mri"])
    t.add_argument("--source-contrast", default="T1")
    t.add_argument("--target-contrast", default="T2-like")

    w = sub.add_parser("serve", help="the web app in a browser (trame-slicer; needs the [web] extra)")
    w.add_argument("--port", type=num.integer(0, 65535), default=8080)
    w.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    w.add_argument("--max-upload-mb", type=num.number(0, 1e6, low_open=True), default=512, help="largest upload accepted")
    w.add_argument("--device", default=None, choices=["cpu", "cuda"], help="device of the engine runs")
    w.add_argument("--debug", action="store_true", help="show the traceback of unexpected errors")
    return parser


# Each command imports its engine module on use, so that `generate --help` and the Slicer bridge do not pay for
# torch and MONAI; plain import statements, so that tools and "go to definition" follow them.
def _generate(args):
    from .engine.synthesis.generate import generate_file

    return generate_file(args)


def _translate(args):
    from .engine.translation.translate import translate_file

    return translate_file(args)


def _evaluate(args):
    from .engine.evaluation.evaluate import evaluate_file

    return evaluate_file(args)


def _train_autoencoder(args):
    from .engine.training.autoencoder import train_autoencoder

    return train_autoencoder(args)


def _train_diffusion(args):
    from .engine.training.diffusion import train_diffusion

    return train_diffusion(args)


def _train_segmenter(args):
    from .engine.training.segmenter import train_segmenter

    return train_segmenter(args)


def _train_translator(args):
    from .engine.training.translator import train_translator

    return train_translator(args)


def _serve(args):
    from .web.serve import serve

    return serve(args)


COMMANDS = {
    "generate": _generate,
    "translate": _translate,
    "evaluate": _evaluate,
    "train-autoencoder": _train_autoencoder,
    "train-diffusion": _train_diffusion,
    "train-segmenter": _train_segmenter,
    "train-translator": _train_translator,
    "serve": _serve,
}


# What each command reads and writes, for the checks before any work (engine/commands/preflight.py).
PATHS = {
    "generate": {"inputs": ("labels", "label_mapping"), "models": ("model",), "files": ("out",)},
    "translate": {"inputs": ("source", "labels"), "models": ("model",), "files": ("out", "field", "labels_out")},
    "evaluate": {"inputs": ("data", "feature_weights"), "models": ("model", "segmenter"), "folder": "out"},
    "train-autoencoder": {"inputs": ("data", "label_table"), "models": ("init",), "folder": "out"},
    "train-diffusion": {"inputs": ("data",), "models": ("autoencoder",), "folder": "out"},
    "train-segmenter": {"inputs": ("data", "label_groups"), "models": (), "folder": "out"},
    "train-translator": {"inputs": ("data",), "models": ("autoencoder",), "folder": "out"},
    "serve": {},
}


def _report_bug(exc: BaseException, debug: bool) -> None:
    if debug:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    text = " ".join(str(exc).split())[:200] or "no message"
    hint = "" if debug else "; rerun with --debug for the traceback"
    print(f"error: unexpected {type(exc).__name__}: {text}; this is a bug, please report it with the command line{hint}",
          file=sys.stderr)


def main(argv=None) -> int:
    from .engine.volume.atomic import Interrupted, install_signal_handlers, remove_all

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    install_signal_handlers()
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # --help (0) or a bad option, already reported in one line (2)
            return exc.code if isinstance(exc.code, int) else 0
        if getattr(args, "threads", None):
            import torch

            torch.set_num_threads(args.threads)
        from .engine.commands.preflight import check_paths, discard_new_side_paths, new_side_paths

        check_paths(args, PATHS[args.command])
        side = new_side_paths(args, PATHS[args.command])
        try:
            COMMANDS[args.command](args)
        except BaseException:
            remove_all()
            discard_new_side_paths(side)  # a failed training run leaves no log or empty checkpoint folder
            raise
    except SynthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Interrupted as exc:
        print(f"error: interrupted by {exc}; nothing was written", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("error: interrupted; nothing was written", file=sys.stderr)
        return 130
    except MemoryError:
        print("error: out of memory; crop the input, lower --window or --batch, or free memory", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - the last line of defence: no traceback reaches the user
        _report_bug(exc, debug)
        return 1
    finally:
        remove_all()
        # --max-voxels holds for this command only: library calls after it in the same process get the default.
        from .engine.volume.memory import set_voxel_limit

        set_voxel_limit(None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
