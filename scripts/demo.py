"""The main job: a CT from the bundled sample segmentation, an MRI from a validation label map, and the
translation of that validation T1 to the T2-like contrast with its displacement field and carried labels.

Writes NIfTI volumes and a PNG per result (label map and output, three planes) into OUT (default outputs/demo).
"""
import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from SemanticSynthLib.cli import main as cli_main  # noqa: E402
from SemanticSynthLib.engine.volume.io import read_volume  # noqa: E402
from preview import save_preview  # noqa: E402  (scripts/preview.py, beside this file)

IXI_VAL = REPO.parent / "shared" / "data" / "ixi_muse"
JOBS = [
    ("ct", REPO / "SemanticSynth" / "Resources" / "Samples" / "abdomen_ct_totalseg_labels.nii.gz", "abdomen-ct", (-160, 240)),
    ("mri", IXI_VAL / "labels" / "IXI012-HH-1211.nii.gz", "brain-mri", None),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(REPO / "outputs" / "demo"))
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for modality, labels, model, window in JOBS:
        if not labels.exists():
            print(f"skipping {modality}: {labels} not found (the shared data folder sits beside the repo)")
            continue
        volume = out / f"{modality}_generated.nii.gz"
        start = time.monotonic()
        argv = ["generate", str(labels), str(volume), "--model", model, "--modality", modality, "--seed", "0", "--overwrite"]
        if args.steps:
            argv += ["--steps", str(args.steps)]
        if cli_main(argv) != 0:
            sys.exit(2)
        png = save_preview(read_volume(labels), read_volume(volume), out / f"{modality}_preview.png",
                           f"{model}: {labels.name}", window)
        print(f"{modality}: {volume} and {png} in {time.monotonic() - start:.1f} s")
    translate(out, args.steps)


def translate(out: Path, steps):
    """T1 -> T2-like with the bundled translator; the field maps each output voxel back to the T1."""
    source, labels = IXI_VAL / "t1" / "IXI012-HH-1211.nii.gz", IXI_VAL / "labels" / "IXI012-HH-1211.nii.gz"
    if not source.exists():
        print(f"skipping translation: {source} not found")
        return
    start = time.monotonic()
    argv = ["translate", str(source), str(out / "t2like_translated.nii.gz"), "--field", str(out / "t2like_field.nrrd"),
            "--labels", str(labels), "--labels-out", str(out / "t2like_carried_labels.nii.gz"), "--overwrite"]
    if steps:
        argv += ["--steps", str(steps)]
    if cli_main(argv) != 0:
        sys.exit(2)
    png = save_preview(read_volume(out / "t2like_carried_labels.nii.gz"), read_volume(out / "t2like_translated.nii.gz"),
                       out / "t2like_preview.png", "brain-t1-to-t2like: IXI012 T1, labels carried by the field")
    print(f"translation: {out / 't2like_translated.nii.gz'}, field {out / 't2like_field.nrrd'} and {png} "
          f"in {time.monotonic() - start:.1f} s")


if __name__ == "__main__":
    main()
