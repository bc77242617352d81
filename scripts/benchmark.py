"""Generation and translation speed and memory on 2 CPU threads, against MAISI and a SegGuidedDiff-style 2D DDPM.

python scripts/benchmark.py [--repeats 3] [--peers] [--json FILE]
python scripts/benchmark.py --translate [--repeats 3]   # the translator on a 128^3 T1
python scripts/benchmark.py --device cuda              # on a GPU (still 2 CPU threads); adds peak GPU memory
python scripts/benchmark.py --fine --model MODEL       # the CT sample at 1.5 and 1 mm, with MODEL's detail refiner
                                                       # and with --no-refine
python scripts/benchmark.py --throughput [--maps 8] [--samples 2]   # make-dataset's volumes per hour: one
                                                       # process, Ray with 1 worker, Ray with 2 workers (needs Ray)
python scripts/benchmark.py --edit [--edit-share 0.1]  # generate --edit: a ball of 10% of a 128^3 map regenerated
                                                       # in a generated volume, against a full generation
python scripts/benchmark.py --large [--repeats 1]      # `generate` on a 512^3 map at 1 mm (brain-mri, its 256^3
                                                       # working grid), read to write: time and peak RSS (issue 34
                                                       # item 7: at most 1.5 GB)

Each measurement runs in a fresh child process (so its peak RSS is its own); the median of the repeats is
printed. Label maps: the bundled CT sample (122x101x30), an MRI validation map (120x120x90), and real MUSE
label maps resampled to fill a 128^3 and a 256x256x128 grid at the brain model's 2 mm working spacing.
--large: the MRI validation map resampled to fill 512^3 voxels of 1 mm (generated on the model's 2 mm grid, the
volume resampled back onto the map's 512^3), timed as the whole `generate` command in the child (reading the map,
loading the model, generating, writing the .nii.gz with its read-back): the full-resolution copies that peak are
made in reading the map's vocabulary and in writing, which generate_volume alone does not show (at b32749b: 2.00 GB
for generate_volume, 3.46 GB for the command).
Translation: a real validation T1 resampled (linearly) to fill 128^3 at 2 mm. --fine: the CT sample's map split into
voxels of 1.5 mm (244x202x60) and 1 mm (366x303x90), nearest neighbour.
--throughput: make-dataset on the first --maps IXI label maps (120x120x90), --samples each, with brain-mri: in one
process (2 torch threads), and on a Ray cluster of this machine's cores started here (127.0.0.1) with 1 and with 2
workers. The rate is the steady one, from the case finish times (make-dataset's JSON progress): (N - W) cases over
the time from the W-th case to the N-th with W workers, so that Ray's and the workers' start (model loading) do not
count; the rate over the whole command (start included) is printed beside it.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("SEMANTICSYNTH_DATA", REPO.parent / "shared" / "data"))  # as tests/testdata.py
IXI_VAL = SHARED / "ixi_muse" / "labels" / "IXI012-HH-1211.nii.gz"
IXI_VAL_T1 = SHARED / "ixi_muse" / "t1" / "IXI012-HH-1211.nii.gz"
IXI_LABELS = SHARED / "ixi_muse" / "labels"
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}  # a private cluster on 127.0.0.1
CT_SAMPLE = REPO / "SemanticSynth" / "Resources" / "Samples" / "abdomen_ct_totalseg_labels.nii.gz"


def make_map(size, path: Path, source: Path = IXI_VAL, spacing: float = 2.0) -> Path:
    """A real MUSE label map (or T1) stretched onto a grid of `size` voxels at `spacing` mm (nearest neighbour)."""
    import numpy as np
    import SimpleITK as sitk

    src = sitk.DICOMOrient(sitk.ReadImage(str(source)), "LPS")
    ref = sitk.Image([int(s) for s in size], sitk.sitkUInt8)
    extent = np.array(src.GetSpacing()) * np.array(src.GetSize())
    ref.SetSpacing(tuple(extent / np.array(size)))
    ref.SetOrigin(src.GetOrigin())
    stretched = sitk.Resample(src, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    stretched.SetSpacing((float(spacing),) * 3)
    sitk.WriteImage(stretched, str(path))
    return path


def fine_map(spacing: float, path: Path) -> Path:
    """The bundled CT sample's label map on a grid of `spacing` mm over the same extent (nearest neighbour)."""
    import SimpleITK as sitk

    src = sitk.ReadImage(str(CT_SAMPLE))
    factor = [s / spacing for s in src.GetSpacing()]
    ref = sitk.Image([int(round(n * f)) for n, f in zip(src.GetSize(), factor)], src.GetPixelID())
    ref.SetSpacing([spacing] * 3)
    ref.SetDirection(src.GetDirection())
    ref.SetOrigin(src.TransformContinuousIndexToPhysicalPoint([(1 / f - 1) / 2 for f in factor]))
    sitk.WriteImage(sitk.Resample(src, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0), str(path))
    return path


def one_translation(source: str, model: str | None, steps: int | None) -> dict:
    import torch

    torch.set_num_threads(2)
    from SemanticSynthLib.engine.volume.io import read_volume
    from SemanticSynthLib.engine.translation.translate import load_translator, translate_volume

    t0 = time.perf_counter()
    translator = load_translator(model)
    image = read_volume(source)
    t1 = time.perf_counter()
    translate_volume(translator, image, steps, seed=0)
    t2 = time.perf_counter()
    return {"load_s": t1 - t0, "generate_s": t2 - t1,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20}


def one_run(labels: str, model: str, modality: str, steps: int | None, device: str = "cpu", refine: bool = True,
            edit: tuple[str, str] | None = None) -> dict:
    import torch

    torch.set_num_threads(2)
    from SemanticSynthLib.engine.synthesis.generate import generate_volume
    from SemanticSynthLib.engine.volume.io import read_volume
    from SemanticSynthLib.engine.model.package import load_package
    from SemanticSynthLib.engine.model.store import resolve_model

    t0 = time.perf_counter()
    package = load_package(resolve_model(model, modality))
    label_map = read_volume(labels)
    region = None
    if edit:  # reading EXISTING and the mask, and the blend weight, count as the edit's work
        from SemanticSynthLib.engine.synthesis.region_edit import region_edit
    t1 = time.perf_counter()
    if edit:
        region = region_edit(label_map, read_volume(edit[0]), mask=read_volume(edit[1]))
    # generate_volume returns a SimpleITK image copied off the device, so the GPU's work is done when it returns.
    generate_volume(package, label_map, modality=modality, steps=steps, seed=0, unknown="background", device=device,
                    refine=refine, edit=region)
    t2 = time.perf_counter()
    result = {"load_s": t1 - t0, "generate_s": t2 - t1,
              "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20}
    if device == "cuda":
        result["peak_gpu_gb"] = torch.cuda.max_memory_allocated() / 2 ** 30
    return result


def one_command(labels: str, model: str, modality: str, steps: int | None) -> dict:
    """The whole `generate` command in this process: read, load, generate, write (and read back)."""
    import torch

    torch.set_num_threads(2)
    from SemanticSynthLib.engine.requests import GenerationRequest
    from SemanticSynthLib.engine.synthesis.generate import generate

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        generate(GenerationRequest(labels=labels, out=str(Path(tmp) / "out.nii.gz"), model=model, modality=modality,
                                   steps=steps))
        t1 = time.perf_counter()
    return {"load_s": 0.0, "generate_s": t1 - t0,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20}


def edit_inputs(labels: Path, model: str, share: float, tmp: Path) -> tuple[Path, Path]:
    """(a volume generated from the map, a centred ball holding `share` of its voxels)."""
    import numpy as np
    import SimpleITK as sitk

    existing = tmp / "existing.nii.gz"
    subprocess.run([sys.executable, "-m", "SemanticSynthLib", "generate", str(labels), str(existing), "--model", model,
                    "--unknown-labels", "background", "--progress", "none"], check=True, cwd=REPO)
    image = sitk.ReadImage(str(labels))
    shape = image.GetSize()[::-1]
    radius = (3 * share * np.prod(shape) / (4 * np.pi)) ** (1 / 3)
    z, y, x = np.ogrid[tuple(slice(0, n) for n in shape)]
    ball = sum((a - n / 2) ** 2 for a, n in zip((z, y, x), shape)) < radius ** 2
    mask = sitk.GetImageFromArray(ball.astype(np.uint8))
    mask.CopyInformation(image)
    sitk.WriteImage(mask, str(tmp / "ball.nii.gz"))
    print(f"edit: a ball of {ball.sum()} voxels ({ball.mean():.1%} of the map), radius {radius:.1f} voxels", flush=True)
    return existing, tmp / "ball.nii.gz"


def measure(labels, model, modality, steps, repeats, translate: bool = False, device: str = "cpu",
            refine: bool = True, edit: tuple | None = None, whole: bool = False) -> dict:
    runs = []
    for _ in range(repeats):
        cmd = [sys.executable, __file__, "--one", str(labels), "--modality", modality, "--device", device]
        cmd += ["--whole"] if whole else []
        cmd += ["--edit-files", str(edit[0]), str(edit[1])] if edit else []
        cmd += ["--model", model] if model else []
        cmd += ["--translate"] if translate else []
        cmd += [] if refine else ["--no-refine"]
        if steps:
            cmd += ["--steps", str(steps)]
        out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
        if out.returncode:
            return {"error": out.stderr.strip().splitlines()[-1]}
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    summary = {"generate_s_median": statistics.median(r["generate_s"] for r in runs),
               "generate_s_runs": [round(r["generate_s"], 2) for r in runs],
               "load_s_median": statistics.median(r["load_s"] for r in runs),
               "peak_rss_gb_max": max(r["peak_rss_gb"] for r in runs)}
    if "peak_gpu_gb" in runs[0]:
        summary["peak_gpu_gb_max"] = max(r["peak_gpu_gb"] for r in runs)
    return summary


def dataset_rate(maps: Path, out: Path, model: str, samples: int, steps: int | None, workers: int,
                 extra: list[str]) -> dict:
    """One make-dataset run in a child process: its steady and its whole-command volumes per hour."""
    cmd = [sys.executable, "-m", "SemanticSynthLib", "make-dataset", str(maps), str(out), "--model", model,
           "--samples", str(samples), "--progress", "json", *extra] + (["--steps", str(steps)] if steps else [])
    t0 = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **RAY_ENV, "OMP_NUM_THREADS": "2"})
    wall = time.perf_counter() - t0
    if run.returncode:
        return {"error": (run.stderr.strip().splitlines() or ["failed"])[-1]}
    records = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    times = [r["elapsed_s"] for r in records if r.get("stage") == "making dataset" and "case" in r]
    made_by = next(r["made_by"] for r in records if "made_by" in r)
    n = len(times)
    return {"cases": n, "steady_per_hour": (n - workers) / (times[-1] - times[workers - 1]) * 3600,
            "whole_per_hour": n / wall * 3600, "wall_s": wall, "cases_s": times[-1], "made_by": made_by}


@contextlib.contextmanager
def ray_head(tmp: Path, cpus: int):
    """A Ray cluster of this machine (one node, `cpus` CPUs, 127.0.0.1) for the block; yields its address. Stopped by
    killing its own processes (those started with its temp dir, and their children), not every Ray on the machine."""
    import psutil

    temp = tempfile.mkdtemp(prefix="ssray-", dir="/tmp")  # short: Ray's socket paths live under it
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    try:
        subprocess.run([str(Path(sys.executable).with_name("ray")), "start", "--head", "--node-ip-address=127.0.0.1",
                        f"--port={ports[0]}", f"--num-cpus={cpus}", "--include-dashboard=false", f"--temp-dir={temp}",
                        "--disable-usage-stats", f"--dashboard-port={ports[1]}"],
                       env={**os.environ, **RAY_ENV}, check=True, capture_output=True, timeout=300)
        yield f"127.0.0.1:{ports[0]}"
    finally:
        found = {}
        for p in psutil.process_iter(["cmdline"]):
            if any(temp in part for part in (p.info["cmdline"] or [])):
                for q in [p, *p.children(recursive=True)]:
                    found[q.pid] = q
        for q in found.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                q.kill()
        shutil.rmtree(temp, ignore_errors=True)


def throughput(tmp: Path, n_maps: int, samples: int, model: str, steps: int | None) -> dict:
    maps = tmp / "maps"
    maps.mkdir()
    for path in sorted(IXI_LABELS.glob("*.nii.gz"))[:n_maps]:
        shutil.copy(path, maps / path.name)
    one = ["--workers", "1", "--threads", "2"]
    results = {"one process": dataset_rate(maps, tmp / "one", model, samples, steps, 1, one)}
    with ray_head(tmp, os.cpu_count() or 1) as address:
        for workers in (1, 2):
            ray = ["--address", address, "--workers", str(workers)]
            results[f"Ray, {workers} worker{'s' * (workers > 1)}"] = dataset_rate(maps, tmp / f"ray{workers}", model,
                                                                                  samples, steps, workers, ray)
    return results


def print_throughput(results: dict, n_maps: int, samples: int) -> None:
    print(f"make-dataset, {n_maps} IXI maps (120x120x90) x {samples} samples, brain-mri, {os.cpu_count()} cores:")
    for name, r in results.items():
        if "error" in r:
            print(f"  {name:16s} failed: {r['error']}")
            continue
        how = r["made_by"]
        threads = how.get("threads_per_worker", 2)
        print(f"  {name:16s} {r['steady_per_hour']:7.0f} volumes/h steady ({r['cases']} cases in {r['cases_s']:.1f} s, "
              f"{threads} thread{'s' * (threads > 1)} per worker); {r['whole_per_hour']:6.0f} volumes/h over the whole "
              f"command ({r['wall_s']:.1f} s)")
    one, ray1, ray2 = (results[k] for k in ("one process", "Ray, 1 worker", "Ray, 2 workers"))
    if not any("error" in r for r in (one, ray1, ray2)):
        results["scaling_efficiency"] = ray2["steady_per_hour"] / (2 * ray1["steady_per_hour"])
        results["ray2_over_one_process"] = ray2["steady_per_hour"] / one["steady_per_hour"]
        results["ray2_over_one_process_whole"] = ray2["whole_per_hour"] / one["whole_per_hour"]
        print(f"  scaling efficiency, 2 workers / (2 x 1 worker): {results['scaling_efficiency']:.2f}")
        print(f"  Ray 2 workers / one process: {results['ray2_over_one_process']:.2f} steady, "
              f"{results['ray2_over_one_process_whole']:.2f} over the whole command (target >= 0.9)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--model", default=None)
    parser.add_argument("--modality", default="mri")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peers", action="store_true", help="also time MAISI and SegGuidedDiff networks (minutes)")
    parser.add_argument("--json", default=None, help="write the results here too")
    parser.add_argument("--translate", action="store_true", help="time the translator instead of generation")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="generation only")
    parser.add_argument("--fine", action="store_true", help="the CT sample at 1.5 and 1 mm, refined and not")
    parser.add_argument("--no-refine", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--throughput", action="store_true", help="make-dataset's volumes per hour: one process, Ray")
    parser.add_argument("--maps", type=int, default=8, help="--throughput: IXI label maps")
    parser.add_argument("--samples", type=int, default=2, help="--throughput: samples per map")
    parser.add_argument("--edit", action="store_true", help="generate --edit of a ball in a 128^3 map against a full "
                                                              "generation")
    parser.add_argument("--edit-share", type=float, default=0.1, help="--edit: the ball's share of the map")
    parser.add_argument("--edit-files", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--large", action="store_true", help="`generate` on a 512^3 map at 1 mm with brain-mri: time "
                                                               "and peak RSS")
    parser.add_argument("--whole", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.translate and args.device != "cpu":
        parser.error("--translate times the CPU only")
    if args.one:
        if args.translate:
            print(json.dumps(one_translation(args.one, args.model, args.steps)))
        elif args.whole:
            print(json.dumps(one_command(args.one, args.model, args.modality, args.steps)))
        else:
            print(json.dumps(one_run(args.one, args.model, args.modality, args.steps, args.device, not args.no_refine,
                                     args.edit_files)))
        return
    tmp = Path(tempfile.mkdtemp())
    if args.throughput:
        results = throughput(tmp, args.maps, args.samples, args.model or "brain-mri", args.steps)
        print_throughput(results, args.maps, args.samples)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1), encoding="utf-8")
        sys.exit(1 if any("error" in r for r in results.values() if isinstance(r, dict)) else 0)
    refine, edits, whole = {}, {}, set()
    if args.edit:
        labels = make_map((128, 128, 128), tmp / "map128.nii.gz")
        edits["128^3, edit a ball of the map"] = edit_inputs(labels, args.model or "brain-mri", args.edit_share, tmp)
        cases = [("128^3, full generation", labels, args.model or "brain-mri", "mri"),
                 ("128^3, edit a ball of the map", labels, args.model or "brain-mri", "mri")]
    elif args.large:
        cases = [("512^3 at 1 mm", make_map((512, 512, 512), tmp / "map512.nii.gz", spacing=1.0),
                  args.model or "brain-mri", "mri")]
        whole.add(cases[0][0])
    elif args.translate:
        cases = [("translate 128^3 T1", make_map((128, 128, 128), tmp / "t1_128.nii.gz", IXI_VAL_T1), args.model, "mri")]
    elif args.fine:
        model = args.model or "abdomen-ct"
        cases = []
        for spacing, size in ((1.5, "244x202x60"), (1.0, "366x303x90")):
            labels = fine_map(spacing, tmp / f"ct_{spacing}.nii.gz")
            cases += [(f"CT {spacing} mm {size}", labels, model, "ct"), (f"CT {spacing} mm, --no-refine", labels, model, "ct")]
            refine[f"CT {spacing} mm, --no-refine"] = False
    else:
        cases = [
            ("CT sample 122x101x30", CT_SAMPLE, args.model or "abdomen-ct", "ct"),
            ("MRI validation 120x120x90", IXI_VAL, args.model or "brain-mri", "mri"),
            ("128^3", make_map((128, 128, 128), tmp / "map128.nii.gz"), args.model or "brain-mri", "mri"),
            ("256x256x128", make_map((256, 256, 128), tmp / "map256.nii.gz"), args.model or "brain-mri", "mri"),
        ]
    results = {}
    for name, labels, model, modality in cases:
        results[name] = measure(labels, model, modality, args.steps, args.repeats, args.translate, args.device,
                                refine.get(name, True), edits.get(name), name in whole)
        r = results[name]
        if "error" in r:
            print(f"{name:28s} failed: {r['error']}", flush=True)
            continue
        timed = "whole command" if name in whole else "generate"
        loaded = "" if name in whole else f"load {r['load_s_median']:.2f} s, "
        print(f"{name:28s} {timed} {r['generate_s_median']:7.2f} s (median of {args.repeats}: {r['generate_s_runs']}), "
              f"{loaded}peak RSS {r['peak_rss_gb_max']:.2f} GB"
              + (f", peak GPU {r['peak_gpu_gb_max']:.2f} GB" if "peak_gpu_gb_max" in r else ""), flush=True)
    if args.peers:
        import torch

        torch.set_num_threads(2)
        sys.path.insert(0, str(REPO / "scripts"))
        import peers

        ours = results["256x256x128"]["generate_s_median"]
        maisi = peers.time_maisi((256, 256, 128))
        seg = peers.time_segguided((256, 256, 128))
        results["peers"] = {"maisi": maisi, "segguided": seg,
                            "ratio_maisi_over_ours": maisi["total_s"] / ours,
                            "ratio_segguided_50ddim_over_ours": seg["total_50_ddim_s"] / ours,
                            "ratio_segguided_1000ddpm_over_ours": seg["total_1000_ddpm_s"] / ours}
        print(f"MAISI rflow-ct 256x256x128: {maisi['total_s']:.0f} s ({results['peers']['ratio_maisi_over_ours']:.1f}x ours)")
        print(f"SegGuidedDiff 256x256x128: 50 DDIM {seg['total_50_ddim_s']:.0f} s "
              f"({results['peers']['ratio_segguided_50ddim_over_ours']:.0f}x), 1000 DDPM {seg['total_1000_ddpm_s']:.0f} s "
              f"({results['peers']['ratio_segguided_1000ddpm_over_ours']:.0f}x)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1), encoding="utf-8")
    if any("error" in r for r in results.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
