"""Why the autoencoder's ceiling loses Dice: is it blur, or intensity? (issue 9)

On the first validation subjects (five unless --cases), the bundled segmenter's mean Dice on: the real T1; the
real T1 blurred (Gaussian, sigma 0.5 and 0.8 working voxels); the package's reconstruction; the reconstruction with
each structure's mean set to the real image's; the real T1 plus the reconstruction's error smoothed (sigma 1 voxel),
i.e. only its low-frequency error. Prints each with its ratio to the real image's Dice, and the reconstruction's
PSNR inside the labels (as `semanticsynth evaluate` reports the ceiling's).

python scripts/ceiling_diagnosis.py [PACKAGE] [--checkpoint DIR] [--cases N] [--quick]
PACKAGE: default the bundled brain-mri. --checkpoint: a train-autoencoder checkpoint folder (OUT.checkpoint) whose
autoencoder replaces the package's, to follow a run without packaging it (a --decoder-only, --head-blocks or
--latent-channels run from PACKAGE).
"""
import argparse, csv, sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
torch.set_num_threads(2)
from scipy.ndimage import gaussian_filter
from SemanticSynthLib.engine.model.segmenter import MULTIPLE, load_segmenter
from SemanticSynthLib.engine.model.package import load_package
from SemanticSynthLib.engine.model.store import resolve_model
from SemanticSynthLib.engine.volume.geometry import working_grid, resample_labels, resample_intensity
from SemanticSynthLib.engine.volume.io import array_of, read_volume
from SemanticSynthLib.engine.volume.working_image import units_on_grid
from SemanticSynthLib.engine.synthesis.reconstruction import reconstruct_volume
from SemanticSynthLib.engine.volume.intensity import model_units
from SemanticSynthLib.engine.evaluation.metrics import dice_per_class, psnr_in_mask
from SemanticSynthLib.engine.training.checkpoint import load_checkpoint
parser = argparse.ArgumentParser()
parser.add_argument("package", nargs="?", default="brain-mri")
parser.add_argument("--checkpoint")
parser.add_argument("--cases", type=int, default=5)
parser.add_argument("--quick", action="store_true", help="only the real T1 and the reconstruction (to follow a run)")
args = parser.parse_args()
seg = load_segmenter(str(REPO / "SemanticSynthLib" / "models" / "brain-mri-segmenter"))
pkg = load_package(resolve_model(args.package, "mri"))
if args.checkpoint:
    from types import SimpleNamespace
    from safetensors import safe_open
    from SemanticSynthLib.engine.model.cpu_convolution import for_inference
    from SemanticSynthLib.engine.model.networks import build_autoencoder
    from SemanticSynthLib.engine.training.autoencoder import with_head_blocks, with_latent_layout
    with safe_open(str(Path(args.checkpoint) / "checkpoint.safetensors"), "pt") as f:
        blocks = len({k.split(".")[3] for k in f.keys() if k.startswith("module.autoencoder.refinement.")})
        channels = f.get_slice("module.autoencoder.vqvae.decoder.blocks.0.conv.weight").get_shape()[1]
    # A --head-blocks or --latent-channels run of this package: the config the trainer made for it, from the
    # checkpoint's shapes; a decoder of that config takes the checkpoint.
    asked = SimpleNamespace(num_embeddings=None, codebook_groups=None, latent_channels=channels,
                            head_blocks=blocks or None)
    config = with_head_blocks(with_latent_layout(pkg.metadata["autoencoder"]["config"], asked), asked, None)
    if config != pkg.metadata["autoencoder"]["config"]:
        pkg.metadata["autoencoder"]["config"] = config
        pkg.autoencoder = for_inference(build_autoencoder(config)).eval()
    # The checkpoint's autoencoder only (its discriminator and optimizers stay unread), checked like a --resume.
    info = load_checkpoint(args.checkpoint, {"autoencoder": pkg.autoencoder}, {})
    print(f"autoencoder from {args.checkpoint}, step {info['step']}")
rows = list(csv.DictReader(open(REPO / "runs" / "brain-mri" / "val.csv", encoding="utf-8")))[:args.cases]  # from scripts/brain_mri_split.py
acc = {}
psnr = []
for r in rows:
    lab = read_volume(r["label"]); img = read_volume(r["image"])
    grid = working_grid(lab, seg.working_spacing, MULTIPLE)
    ids = array_of(resample_labels(lab, grid)); truth = seg.groups.group_map(ids); n = seg.groups.num_classes
    norm = pkg.normalization("mri")
    real = units_on_grid(img, grid, norm)
    rec = model_units(array_of(resample_intensity(reconstruct_volume(pkg, img, lab, "mri"), grid)), norm)
    fixed = rec.copy()
    for k in range(1, n):
        m = truth == k
        if m.any(): fixed[m] += real[m].mean() - rec[m].mean()
    vols = {"real": real, "real blurred s=0.5": gaussian_filter(real, 0.5), "real blurred s=0.8": gaussian_filter(real, 0.8),
            "reconstruction": rec, "reconstruction, structure means set to real": fixed,
            "real + (recon - real) smoothed": real + gaussian_filter(rec - real, 1.0)}
    if args.quick:
        vols = {k: vols[k] for k in ("real", "reconstruction")}
    for name, v in vols.items():
        acc.setdefault(name, []).append(np.nanmean(dice_per_class(seg.segment(v), truth, n)))
    # The ceiling's PSNR as `semanticsynth evaluate` reports it: inside the labelled region, in model units.
    psnr.append(psnr_in_mask(rec, real, ids > 0))
    print(r["image"].split("/")[-1], {k: round(v[-1], 3) for k, v in acc.items()}, flush=True)
base = np.mean(acc["real"])
for k, v in acc.items():
    print(f"{k:48s} Dice {np.mean(v):.3f}  ratio {np.mean(v) / base:.3f}")
print(f"reconstruction PSNR inside the labels: {np.mean(psnr):.2f} dB")
