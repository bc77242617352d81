"""One command line for Slicer and for people: generate, train-autoencoder, train-diffusion."""
from __future__ import annotations

import argparse
import importlib
import sys

from .errors import SynthError


def _spacing(text: str):
    parts = [float(v) for v in text.split(",")]
    if len(parts) == 1:
        parts *= 3
    if len(parts) != 3 or min(parts) <= 0:
        raise argparse.ArgumentTypeError("spacing is one or three positive numbers in mm, e.g. 2 or 1.5,1.5,3")
    return tuple(parts)


def _patch(text: str):
    parts = [int(v) for v in text.split(",")]
    return tuple(parts * 3 if len(parts) == 1 else parts)


def _training_options(p: argparse.ArgumentParser, labelled: bool = True) -> None:
    if labelled:
        p.add_argument("--data", required=True, help="nnU-Net-style folder (imagesTr/labelsTr) or CSV with image,label[,modality]")
        p.add_argument("--modality", default="mri", choices=["ct", "mri"], help="modality of cases without a modality column")
        p.add_argument("--augment", action="store_true", help="random affine and intensity augmentation")
    else:
        p.add_argument("--data", required=True, help="CSV with source,target columns, or a folder with source/ and target/")
    p.add_argument("--out", required=True, help="model package folder to write")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from OUT.checkpoint if it exists")
    p.add_argument("--checkpoint-dir", default=None, help="default: OUT.checkpoint")
    p.add_argument("--checkpoint-every", type=int, default=200)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--progress", default="bar", choices=["bar", "json", "none"])
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="semanticsynth", description="Label map -> CT/MRI by 3D latent semantic diffusion")
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="generate a volume on the label map's grid")
    g.add_argument("labels", help="label map: NIfTI, NRRD, MHA or a DICOM series folder")
    g.add_argument("out", help="output volume (.nii.gz, .nii, .nrrd, .mha)")
    g.add_argument("--model", default=None, help="model package folder or bundled name (default: by modality)")
    g.add_argument("--modality", default=None, choices=["ct", "mri"], help="default: the model's first modality")
    g.add_argument("--steps", type=int, default=None, help="DDIM steps (default: the model's)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    g.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    g.add_argument("--progress", default="bar", choices=["bar", "json", "none"])
    g.add_argument("--label-mapping", default=None, help="JSON of input id -> model id or name")
    g.add_argument("--unknown-labels", default="error", choices=["error", "background"])
    g.add_argument("--max-voxels", type=int, default=512 ** 3, help="refuse label maps larger than this at working spacing (memory limit)")
    g.add_argument("--window", type=int, default=None, help="latent window edge for sliding-window generation")
    g.add_argument("--threads", type=int, default=None)
    g.add_argument("--fp32", action="store_true", help="no bf16 autocast")

    tr = sub.add_parser("translate", help="translate a volume to the model's target contrast, with a displacement field")
    tr.add_argument("source", help="source volume: NIfTI, NRRD, MHA or a DICOM series folder")
    tr.add_argument("out", help="translated volume, on the source's grid")
    tr.add_argument("--field", required=True, help="displacement field to write (ITK vector image, LPS mm): "
                    "output point x -> source point x + u(x)")
    tr.add_argument("--model", default=None, help="translator package folder or bundled name (default: brain-t1-to-t2like)")
    tr.add_argument("--no-deform", action="store_true", help="intensity translation only; the field is the identity (zero)")
    tr.add_argument("--steps", type=int, default=None, help="DDIM steps (default: the model's)")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--labels", default=None, help="source label map to carry through the field (nearest neighbour)")
    tr.add_argument("--labels-out", default=None, help="where to write the carried label map")
    tr.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    tr.add_argument("--overwrite", action="store_true", help="replace outputs that exist")
    tr.add_argument("--progress", default="bar", choices=["bar", "json", "none"])
    tr.add_argument("--threads", type=int, default=None)
    tr.add_argument("--fp32", action="store_true", help="no bf16 autocast")

    a = sub.add_parser("train-autoencoder", help="train the VQ-GAN autoencoder")
    _training_options(a)
    a.add_argument("--label-table", default=None, help="built-in table (muse, totalseg_v2, amos) or a JSON file")
    a.add_argument("--all-labels", action="store_true", help="keep the whole table, not just the labels in the data")
    a.add_argument("--spacing", type=_spacing, default=(2.0, 2.0, 2.0), help="working spacing in mm")
    a.add_argument("--patch", type=_patch, default=(64, 64, 64))
    a.add_argument("--num-embeddings", type=int, default=None)
    a.add_argument("--adv-weight", type=float, default=0.01)
    a.add_argument("--adv-start", type=int, default=500, help="step at which the adversarial loss starts")
    a.add_argument("--init", default=None, help="start from this package's autoencoder (fine-tuning for a new contrast)")

    d = sub.add_parser("train-diffusion", help="train the latent diffusion U-Net on top of an autoencoder package")
    _training_options(d)
    d.add_argument("--autoencoder", required=True, help="package written by train-autoencoder")
    d.add_argument("--conditioning", default="concat", choices=["concat", "spade", "edge"])
    d.add_argument("--latent-patch", type=_patch, default=(32, 32, 32), help="latent crop per sample")
    d.add_argument("--augment-copies", type=int, default=0, help="extra augmented copies of each case to encode")
    d.add_argument("--ema", type=float, default=0.999)
    d.add_argument("--default-steps", type=int, default=20)
    e = sub.add_parser("evaluate", help="fidelity and realism of a generator against real labelled cases")
    e.add_argument("--model", default=None, help="generator package folder or bundled name (default: by modality)")
    e.add_argument("--segmenter", required=True, help="segmenter package from train-segmenter")
    e.add_argument("--data", required=True, help="nnU-Net-style folder or CSV of real image,label pairs")
    e.add_argument("--out", required=True, help="report folder (report.json, report.md, PNGs)")
    e.add_argument("--samples", type=int, default=1, help="generated samples per case")
    e.add_argument("--steps", type=int, default=None, help="DDIM steps (default: the model's)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--modality", default=None, choices=["ct", "mri"])
    e.add_argument("--feature-weights", default=None, help="safetensors weights of a MONAI 3D ResNet (Med3D layout) for FID")
    e.add_argument("--feature-depth", type=int, default=10, help="depth of that ResNet: 10, 18, 34 or 50")
    e.add_argument("--pictures", type=int, default=3, help="cases drawn as slice grids")
    e.add_argument("--max-cases", type=int, default=None)
    e.add_argument("--overwrite", action="store_true", help="write into a non-empty report folder")
    e.add_argument("--progress", default="bar", choices=["bar", "json", "none"])
    e.add_argument("--threads", type=int, default=None)

    s = sub.add_parser("train-segmenter", help="train the auxiliary segmenter used by evaluate (MONAI SegResNet)")
    _training_options(s)
    s.set_defaults(steps=1500, lr=1e-3)
    s.add_argument("--label-groups", default="muse_groups",
                   help="built-in groups (muse_groups), a groups JSON file, or a label table (each label its own group)")
    s.add_argument("--spacing", type=_spacing, default=(2.0, 2.0, 2.0), help="working spacing in mm")
    s.add_argument("--patch", type=_patch, default=(80, 80, 80), help="training crop (multiple of 8)")
    s.add_argument("--filters", type=int, default=8, help="SegResNet init_filters")

    t = sub.add_parser("train-translator", help="train a traceable translator (spatial transform + intensity translator)")
    _training_options(t, labelled=False)
    t.set_defaults(steps=3000)
    t.add_argument("--autoencoder", required=True, help="autoencoder package for the target contrast")
    t.add_argument("--spatial-steps", type=int, default=600, help="steps for the velocity network (first stage)")
    t.add_argument("--spatial-lr", type=float, default=1e-3)
    t.add_argument("--smoothness", type=float, default=0.5, help="weight of the velocity's smoothness loss")
    t.add_argument("--ncc-kernel", type=int, default=7, help="local NCC window (voxels at half resolution)")
    t.add_argument("--refine-steps", type=int, default=0,
                   help="third stage: steps tuning the velocity net so the warped translation matches the target (MSE)")
    t.add_argument("--refine-sample-steps", type=int, default=10, help="DDIM steps for the translations of that stage")
    t.add_argument("--refine-smoothness", type=float, default=0.05, help="weight of the velocity's smoothness there")
    t.add_argument("--latent-patch", type=_patch, default=(24, 24, 24), help="latent crop per sample")
    t.add_argument("--ema", type=float, default=0.999)
    t.add_argument("--default-steps", type=int, default=20)
    t.add_argument("--source-modality", default="mri", choices=["ct", "mri"])
    t.add_argument("--target-modality", default="mri", choices=["ct", "mri"])
    t.add_argument("--source-contrast", default="T1")
    t.add_argument("--target-contrast", default="T2-like")
    return parser


COMMANDS = {
    "generate": (".engine.generate", "generate_file"),
    "translate": (".engine.translation.translate", "translate_file"),
    "evaluate": (".engine.evaluation.evaluate", "evaluate_file"),
    "train-autoencoder": (".engine.training.autoencoder", "train_autoencoder"),
    "train-diffusion": (".engine.training.diffusion", "train_diffusion"),
    "train-segmenter": (".engine.training.segmenter", "train_segmenter"),
    "train-translator": (".engine.training.translator", "train_translator"),
}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    try:
        module, function = COMMANDS[args.command]
        # Imported on use: `generate --help` and the Slicer bridge should not pay for torch and MONAI.
        getattr(importlib.import_module(module, __package__), function)(args)
    except SynthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
