"""oneDNN convolutions in NCDHW against channels-last (NDHWC) on 2 CPU threads, at the shapes of the bundled
brain-mri networks (engine/model/cpu_convolution.py routes inference through the faster layout).

python scripts/benchmark_conv_layout.py [--repeats 7]

Prints the median time of each layout per layer shape, their ratio, and the largest relative difference.
"""
from __future__ import annotations

import argparse
import statistics

import torch
from peers import _timed  # scripts/ is this script's own folder on sys.path
from torch.nn import functional as F

# (in, out, spatial, transposed): U-Net level 0 and 1, the VQVAE decoder's levels, the label-aware head
SHAPES = [(32, 32, (32, 32, 32), False), (96, 32, (32, 32, 32), False), (64, 64, (16, 16, 16), False),
          (64, 64, (32, 32, 32), False), (32, 32, (64, 64, 64), False), (8, 8, (128, 128, 66), False),
          (64, 32, (32, 32, 32), True), (32, 8, (64, 64, 34), True)]


def median_ms(fn, repeats: int) -> float:
    return statistics.median(_timed(fn, 1, repeats)) * 1000


def layer(transposed: bool):
    if transposed:
        return lambda x, w, b: F.conv_transpose3d(x, w, b, stride=2, padding=1)
    return lambda x, w, b: torch.ops.aten.mkldnn_convolution(x, w, b, [1, 1, 1], [1, 1, 1], [1, 1, 1], 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    last = torch.channels_last_3d
    with torch.no_grad():
        for cin, cout, spatial, transposed in SHAPES:
            x = torch.randn(1, cin, *spatial)
            w = torch.randn(*((cin, cout) if transposed else (cout, cin)), *((4,) * 3 if transposed else (3,) * 3))
            b = torch.randn(cout)
            fn = layer(transposed)
            xl, wl = x.contiguous(memory_format=last), w.contiguous(memory_format=last)
            plain, channels_last = median_ms(lambda: fn(x, w, b), args.repeats), median_ms(lambda: fn(xl, wl, b), args.repeats)
            expected = fn(x, w, b)
            diff = float((fn(xl, wl, b) - expected).abs().max() / expected.abs().max())
            kind = "transposed 4^3/2" if transposed else "3^3"
            print(f"{kind:16s} {cin:3d}->{cout:<3d} at {'x'.join(map(str, spatial)):11s} NCDHW {plain:7.1f} ms  "
                  f"NDHWC {channels_last:7.1f} ms  ratio {plain / channels_last:4.2f}  max rel. diff {diff:.1e}", flush=True)


if __name__ == "__main__":
    main()
