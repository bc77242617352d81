"""Numeric precision on CPU and CUDA: bf16 autocast where the hardware has it, fp32 quantization always.

PERFORMANCE-NOTES: bf16 autocast is 2-5x faster on CPUs with native bf16; MONAI's VectorQuantizer only
turns off CUDA autocast, so under CPU autocast its codebook distances would run in bf16 and codes would
change. The quantizer therefore always runs outside autocast, in fp32.
"""
from __future__ import annotations

import contextlib
import functools

import torch

from .codebook import nearest_codes


def bf16_available(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()) and native_cpu_bf16()


@functools.lru_cache(maxsize=1)
def native_cpu_bf16() -> bool:
    """Whether the CPU computes bf16 in hardware (AVX512-BF16 or AMX).

    oneDNN also reports bf16 "supported" on plain AVX-512 CPUs, where it is emulated: on such an Intel Xeon
    (no avx512_bf16) a 128^3 generation took 26.6 s in bf16 autocast against 15.0 s in fp32. Where the
    flags cannot be read (not Linux), oneDNN's answer stands.
    """
    if not torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
        # ATen dispatching to its AVX2 or default kernels (ATEN_CPU_CAPABILITY, or a CPU without AVX-512): its bf16
        # convolutions fail there ("pack_vnni2 is only supported when avx512 is supported", torch 2.13), whatever
        # the CPU's flags say.
        return False
    try:
        flags = next((line for line in open("/proc/cpuinfo", encoding="utf-8") if line.startswith("flags")), "")
    except OSError:
        return True
    return not flags or any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))


def bf16_training_safe(device: torch.device, smallest_first_dim: int) -> bool:
    """Whether bf16 autocast gives correct conv3d weight gradients here.

    torch 2.13 on this CPU returns NaN or garbage weight gradients from bf16 conv3d backward when the
    first spatial dimension is 2 (measured: (2,2,2), (2,4,4), (2,8,8) broken; (4,2,2), (8,7,2) and up
    within 0.3% of fp32). Training falls back to fp32 whenever a feature map would be that thin.
    """
    return device.type != "cpu" or smallest_first_dim >= 4


def bf16_for_training(device: torch.device) -> bool:
    """Whether training should run under bf16 autocast.

    Not on the CPU: a VQVAE (32,64) forward+backward at 2x64^3 took 2.6 s in bf16 autocast against 0.65 s in
    fp32 on this machine (torch 2.13, 2 threads), since bf16 conv3d backward misses oneDNN's fast paths.
    """
    return device.type == "cuda"


def autocast(device: torch.device, enabled: bool = True):
    if enabled and bf16_available(device):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16, )
    return contextlib.nullcontext()


def _encode(autoencoder, image, guide):
    return autoencoder.encode(image) if guide is None else autoencoder.encode(image, guide)


def _decode(autoencoder, quantized, guide):
    return autoencoder.decode(quantized) if guide is None else autoencoder.decode(quantized, guide)


def encode_latent(autoencoder, image: torch.Tensor, use_bf16: bool = True, guide: torch.Tensor | None = None) -> torch.Tensor:
    """Encoder in autocast, quantizer in fp32: the quantized latent. `guide`: the label-aware
    autoencoder's painted prior and kinds (None for the plain VQVAE)."""
    with autocast(image.device, use_bf16):
        z = _encode(autoencoder, image, guide)
    with autocast(image.device, False):
        # Without gradients, the same nearest codes without MONAI's training by-products (its one-hot of every voxel
        # against every code): 2.9 s of a 3.7 s encoding of a 120x120x90 brain (brain-mri, 4 codebook groups).
        quantized = (nearest_codes(autoencoder, z.float()) if not torch.is_grad_enabled()
                     else autoencoder.quantize(z.float())[0])
    return quantized.float()


def quantize_decode(autoencoder, latent: torch.Tensor, use_bf16: bool = True, guide: torch.Tensor | None = None) -> torch.Tensor:
    """Quantizer in fp32, decoder in autocast: latent -> image (fp32). Without gradients the codebook lookup
    skips MONAI's training by-products (engine/model/codebook.py)."""
    with autocast(latent.device, False):
        quantized = (nearest_codes(autoencoder, latent) if not torch.is_grad_enabled()
                     else autoencoder.quantize(latent.float())[0])
    with autocast(latent.device, use_bf16):
        image = _decode(autoencoder, quantized, guide)
    return image.float()


def reconstruct(autoencoder, image: torch.Tensor, use_bf16: bool = True, guide: torch.Tensor | None = None,
                frozen_latent: bool = False):
    """Encode, quantize (fp32) and decode with gradients, for training: image and codebook loss.
    frozen_latent: the encoder and codebook are not trained (decoder fine-tuning), so they run without a graph."""
    with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen_latent):
        with autocast(image.device, use_bf16):
            z = _encode(autoencoder, image, guide)
        with autocast(image.device, False):
            quantized, codebook_loss = autoencoder.quantize(z.float())
    with autocast(image.device, use_bf16):
        recon = _decode(autoencoder, quantized, guide)
    return recon.float(), codebook_loss
