"""Faster fp32 CPU inference convolutions, with the same results.

Three slow paths of torch 2.13's CPU conv3d, measured on this project's networks (2 threads):
- PyTorch picks oneDNN only when N*C*D*H > 20480, a rule written for 4-D tensors, so many small 3D
  convolutions (latent-sized maps, batch 1) fall to `aten::slow_conv3d`, 57% of a U-Net step
  (PERFORMANCE-NOTES). Calling oneDNN directly gives the same result (about 2e-7 relative).
- 1x1x1 convolutions over full-resolution maps (the label-aware decoder's head) are slow in both paths:
  8 -> 1 channels at 128^3 took 150 ms as a convolution and 4 ms as one matrix product.
- oneDNN's channels-last (NDHWC) kernels beat its NCDHW ones on this CPU, 1.1-1.9x per layer: 32 -> 32
  channels at 64^3 took 77 ms against 120, 8 -> 8 at 128x128x66 38 against 71, the decoder's 4^3 stride-2
  transposed convolutions 58 against 104 and 72 against 118 (scripts/benchmark_conv_layout.py). Routed
  layers therefore take and give channels-last tensors; the norms and activations between them keep that
  layout at about the same speed.
Only inference is routed: with gradients on, under autocast or on another device, the layer runs its own
forward, so training and CUDA are unchanged.

Within releasing_layers(), after an inference convolution over a map of RELEASE_BYTES or more (fp32 or bf16), the C
heap's free pages go back to the system (volume/memory.release_freed_memory): a network's activations of a few to
32 MB are freed between its layers into glibc's heap, which keeps them, scattered, as resident memory. On a 512^3 map
at 1 mm (brain-mri, its 256^3 working grid; issue 34 item 7) `generate` peaked at 1.45-1.50 GB in denoising without
this (two runs), 1.31 GB with it. It is not free: the released pages are faulted in again by the next layers. There
the 370 releases made generate_volume 8% slower (59.5 s against 55.2, medians of 2 alternated runs on 2 shared
cores); on a 256x256x128 map its 154 releases cost 18% (33.6 s against 28.4, medians of 4), so generation asks for it
on large maps only (synthesis/generate.py).
"""
from __future__ import annotations

import contextlib
import functools

import torch
from torch import nn

from ..volume.memory import release_freed_memory

RELEASE_BYTES = 8 * 2 ** 20
_releasing = {"on": False}


@contextlib.contextmanager
def releasing_layers(on: bool = True):
    """Within the block (where `on`), each large inference convolution gives the C heap's free pages back."""
    before = _releasing["on"]
    _releasing["on"] = bool(on)
    try:
        yield
    finally:
        _releasing["on"] = before


def _routable(conv: nn.Conv3d | nn.ConvTranspose3d, x: torch.Tensor) -> bool:
    return (x.device.type == "cpu" and x.dtype == torch.float32 and conv.weight.dtype == torch.float32
            and x.dim() == 5 and not torch.is_grad_enabled() and not torch.is_autocast_enabled("cpu")
            and conv.padding_mode == "zeros" and isinstance(conv.padding, tuple))


def _pointwise(conv: nn.Conv3d) -> bool:
    return (conv.kernel_size == (1, 1, 1) and conv.stride == (1, 1, 1) and conv.padding == (0, 0, 0)
            and conv.groups == 1)


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last_3d)


def _matmul_pointwise(conv: nn.Conv3d, x: torch.Tensor) -> torch.Tensor:
    """A 1x1x1 convolution as one matrix product: (voxels, in) x (in, out) for a channels-last input, else
    (out, in) x (in, voxels) per batch item."""
    weight = conv.weight.reshape(conv.out_channels, conv.in_channels)
    if x.is_contiguous(memory_format=torch.channels_last_3d) and not x.is_contiguous():
        rows = x.permute(0, 2, 3, 4, 1).reshape(-1, conv.in_channels)  # a view: NDHWC is this matrix
        flat = rows @ weight.t() if conv.bias is None else torch.addmm(conv.bias, rows, weight.t())
        return flat.view(x.shape[0], *x.shape[2:], conv.out_channels).permute(0, 4, 1, 2, 3)
    out = x.new_empty((x.shape[0], conv.out_channels, *x.shape[2:]))
    for n in range(x.shape[0]):
        flat = x[n].reshape(conv.in_channels, -1)
        target = out[n].view(conv.out_channels, -1)
        if conv.bias is None:
            torch.mm(weight, flat, out=target)
        else:
            torch.addmm(conv.bias[:, None], weight, flat, out=target)
    return out


def _released(x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    if (_releasing["on"] and x.device.type == "cpu" and not torch.is_grad_enabled()
            and max(x.numel() * x.element_size(), out.numel() * out.element_size()) >= RELEASE_BYTES):
        release_freed_memory()
    return out


def _conv3d_forward(conv: nn.Conv3d, x: torch.Tensor) -> torch.Tensor:
    return _released(x, _conv3d(conv, x))


def _conv3d(conv: nn.Conv3d, x: torch.Tensor) -> torch.Tensor:
    if not _routable(conv, x):
        return conv._conv_forward(x, conv.weight, conv.bias)
    if _pointwise(conv):
        return _matmul_pointwise(conv, x)
    if not torch.backends.mkldnn.is_available():
        return conv._conv_forward(x, conv.weight, conv.bias)
    return torch.ops.aten.mkldnn_convolution(_channels_last(x), _channels_last(conv.weight), conv.bias,
                                             list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)


def _conv_transpose3d_forward(conv: nn.ConvTranspose3d, x: torch.Tensor, output_size=None) -> torch.Tensor:
    return _released(x, _conv_transpose3d(conv, x, output_size))


def _conv_transpose3d(conv: nn.ConvTranspose3d, x: torch.Tensor, output_size=None) -> torch.Tensor:
    if not _routable(conv, x):
        return nn.ConvTranspose3d.forward(conv, x, output_size)
    output_padding = conv._output_padding(x, output_size, conv.stride, conv.padding, conv.kernel_size, 3,
                                          conv.dilation)
    return nn.functional.conv_transpose3d(_channels_last(x), _channels_last(conv.weight), conv.bias, conv.stride,
                                          conv.padding, output_padding, conv.groups, conv.dilation)


def route_convolutions(module: nn.Module) -> nn.Module:
    """Route `module`'s Conv3d layers to the fast fp32 CPU inference paths (in place; weights untouched)."""
    for layer in module.modules():
        if type(layer) is nn.Conv3d:
            layer.forward = functools.partial(_conv3d_forward, layer)
        elif type(layer) is nn.ConvTranspose3d:
            layer.forward = functools.partial(_conv_transpose3d_forward, layer)
    return module


def for_inference(module: nn.Module, device: str | torch.device = "cpu") -> nn.Module:
    """A loaded network on `device` in eval mode, with the fast CPU paths routed there."""
    module = module.to(device).eval()
    return route_convolutions(module) if torch.device(device).type == "cpu" else module
