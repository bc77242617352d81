"""Time two peer methods' networks on CPU (random weights, speed only).

Peers (see /work/shared/PERFORMANCE-NOTES.md, "Peers measured on the same CPU"):

* MAISI rflow-ct (NV-Generate-CTMR).  Networks from ``monai.apps.generation.maisi``,
  configured as in NV-Generate-CTMR ``configs/config_network_rflow.json`` and
  ``configs/config_infer_16g_256x256x128.json`` (values copied below).  The inference
  loop mirrors ``scripts/utils_infer.py::run_controlnet_conditioned_image_dm``: per step one
  ControlNet forward then one U-Net forward; after the loop one VAE decode of the whole
  latent (at 256x256x128 the 64x64x32 latent is smaller than the 96^3 sliding window, so
  ``dynamic_infer`` decodes it in one call).
  CPU changes: VAE ``norm_float16=False`` (fails under CPU autocast), flash attention off
  (CUDA-only).

* SegGuidedDiff (mazurowski-lab/segmentation-guided-diffusion ``main.py``): a 2D pixel-space
  diffusers ``UNet2DModel`` (layers_per_block=2, block_out_channels=(128,128,256,256,512,512),
  one AttnDownBlock2D at the 5th level / AttnUpBlock2D mirrored, attention_head_dim=8,
  in_channels=2 for ``segmentation_channel_mode="single"``, out_channels=1, 256x256).
  diffusers is not installed, so the architecture is rebuilt with MONAI's 2D
  ``DiffusionModelUNet`` (same block layout: conv down/up-samplers, 2 resnets per down level,
  3 per up level, attention+resnet mid block, 4x time embedding).

Usage:
    python scripts/peers.py --which both --size 256 256 128 [--fp32]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from contextlib import nullcontext

import torch

# --------------------------------------------------------------------------------------
# MAISI configuration (NV-Generate-CTMR, configs/config_network_rflow.json)
# --------------------------------------------------------------------------------------
LATENT_CHANNELS = 4

MAISI_AUTOENCODER_DEF = dict(
    spatial_dims=3,
    in_channels=1,
    out_channels=1,
    latent_channels=LATENT_CHANNELS,
    num_channels=[64, 128, 256],
    num_res_blocks=[2, 2, 2],
    norm_num_groups=32,
    norm_eps=1e-06,
    attention_levels=[False, False, False],
    with_encoder_nonlocal_attn=False,
    with_decoder_nonlocal_attn=False,
    use_checkpointing=False,
    use_convtranspose=False,
    norm_float16=True,  # published; forced False on CPU below
    num_splits=4,  # published; overridden by autoencoder_tp_num_splits below
    dim_split=1,
)

# What the U-Net and its ControlNet share in config_network_rflow.json.
_MAISI_BACKBONE = dict(
    spatial_dims=3,
    in_channels=LATENT_CHANNELS,
    num_channels=[64, 128, 256, 512],
    attention_levels=[False, False, True, True],
    num_head_channels=[0, 0, 32, 32],
    num_res_blocks=2,
    use_flash_attention=True,  # published; forced False on CPU below
    num_class_embeds=128,
    resblock_updown=True,
    include_fc=True,
)

MAISI_UNET_DEF = dict(
    _MAISI_BACKBONE,
    out_channels=LATENT_CHANNELS,
    include_top_region_index_input=False,  # include_body_region = false
    include_bottom_region_index_input=False,
    include_spacing_input=True,
)

MAISI_CONTROLNET_DEF = dict(
    _MAISI_BACKBONE,
    conditioning_embedding_in_channels=8,
    conditioning_embedding_num_channels=[8, 32, 64],
)

# configs/config_infer_16g_256x256x128.json (inference settings that matter for speed)
MAISI_INFER = dict(
    num_inference_steps=30,
    output_size=[256, 256, 128],
    spacing=[1.5, 1.5, 4.0],
    autoencoder_sliding_window_infer_size=[96, 96, 96],
    autoencoder_sliding_window_infer_overlap=0.25,
    autoencoder_tp_num_splits=2,  # scripts/inference.py copies this into autoencoder_def["num_splits"]
    modality=1,  # CT
    cfg_guidance_scale=0.0,  # no CFG -> batch 1
)

# CPU-only overrides
MAISI_CPU_OVERRIDES = dict(norm_float16=False, use_flash_attention=False)

# --------------------------------------------------------------------------------------
# SegGuidedDiff configuration (mazurowski-lab main.py, diffusers UNet2DModel defaults)
# --------------------------------------------------------------------------------------
SEGGUIDED_UNET_DEF = dict(
    spatial_dims=2,
    in_channels=2,  # image + single-channel mask (segmentation_channel_mode="single")
    out_channels=1,
    num_res_blocks=2,  # layers_per_block
    channels=(128, 128, 256, 256, 512, 512),
    attention_levels=(False, False, False, False, True, False),  # AttnDownBlock2D at level 5
    norm_num_groups=32,  # diffusers norm_num_groups default
    norm_eps=1e-5,  # diffusers norm_eps default
    resblock_updown=False,  # diffusers Downsample2D/Upsample2D are convs, not resnets
    num_head_channels=8,  # diffusers UNet2DModel attention_head_dim default = 8
    include_fc=True,
    use_flash_attention=False,
)
SEGGUIDED_IMAGE_SIZE = 256


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------
def _bf16_ok(bf16: bool) -> bool:
    if not bf16:
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:
        return False


def _autocast(bf16: bool):
    if _bf16_ok(bf16):
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return nullcontext()


def _n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _peak_rss_gb() -> float:
    # Linux: ru_maxrss in KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024.0**2)


def _timed(fn, warmup: int, n: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


# --------------------------------------------------------------------------------------
# MAISI
# --------------------------------------------------------------------------------------
def build_maisi(output_size=(256, 256, 128)):
    """Return (unet, controlnet, autoencoder) with random weights, CPU settings applied."""
    from monai.apps.generation.maisi.networks.autoencoderkl_maisi import AutoencoderKlMaisi
    from monai.apps.generation.maisi.networks.controlnet_maisi import ControlNetMaisi
    from monai.apps.generation.maisi.networks.diffusion_model_unet_maisi import DiffusionModelUNetMaisi

    unet_def = dict(MAISI_UNET_DEF, use_flash_attention=False)
    cn_def = dict(MAISI_CONTROLNET_DEF, use_flash_attention=False)
    ae_def = dict(
        MAISI_AUTOENCODER_DEF,
        norm_float16=False,
        num_splits=MAISI_INFER["autoencoder_tp_num_splits"],
    )
    unet = DiffusionModelUNetMaisi(**unet_def).eval()
    controlnet = ControlNetMaisi(**cn_def).eval()
    autoencoder = AutoencoderKlMaisi(**ae_def).eval()
    return unet, controlnet, autoencoder


def time_maisi(output_size=(256, 256, 128), steps=30, timed_steps=2, bf16=True) -> dict:
    """Time MAISI rflow-ct: U-Net+ControlNet steps at the latent size and one VAE decode.

    Returns per_step_s (median of ``timed_steps`` after one warm-up step), decode_s (one
    decode of the whole latent), steps, total_s = per_step_s*steps + decode_s, parameter
    counts and peak RSS of this process.
    """
    output_size = tuple(int(s) for s in output_size)
    if any(s % 4 for s in output_size):
        raise ValueError(f"output_size must be divisible by 4, got {output_size}")
    latent_spatial = tuple(s // 4 for s in output_size)

    torch.manual_seed(0)
    unet, controlnet, autoencoder = build_maisi(output_size)

    # dummy inputs shaped as in utils_infer.run_controlnet_conditioned_image_dm (batch 1, no CFG)
    latents = torch.randn(1, LATENT_CHANNELS, *latent_spatial)
    # binarize_labels(mask) -> 8 binary channels at output resolution
    controlnet_cond = (torch.rand(1, MAISI_CONTROLNET_DEF["conditioning_embedding_in_channels"], *output_size) > 0.5).float()
    # spacing tensor: FloatTensor(spacing) * 1e2, shape (1, 3)
    spacing_tensor = torch.tensor([MAISI_INFER["spacing"]], dtype=torch.float32) * 1e2
    modality_tensor = MAISI_INFER["modality"] * torch.ones((1,), dtype=torch.long)
    timestep = torch.tensor([500.0])

    def one_step():
        down_res, mid_res = controlnet(
            x=latents, timesteps=timestep, controlnet_cond=controlnet_cond, class_labels=modality_tensor
        )
        return unet(
            x=latents,
            timesteps=timestep,
            spacing_tensor=spacing_tensor,
            down_block_additional_residuals=down_res,
            mid_block_additional_residual=mid_res,
            class_labels=modality_tensor,
        )

    scale_factor = 1.0
    with torch.no_grad(), _autocast(bf16):
        step_times = _timed(one_step, warmup=1, n=max(1, int(timed_steps)))
        # one decode of the whole latent (ReconModel: decode_stage_2_outputs(z / scale_factor))
        t0 = time.perf_counter()
        img = autoencoder.decode_stage_2_outputs(latents / scale_factor)
        decode_s = time.perf_counter() - t0
    assert tuple(img.shape[-3:]) == output_size, img.shape
    del img

    per_step = statistics.median(step_times)
    return {
        "per_step_s": per_step,
        "decode_s": decode_s,
        "steps": int(steps),
        "total_s": per_step * steps + decode_s,
        "unet_params": _n_params(unet),
        "controlnet_params": _n_params(controlnet),
        "vae_params": _n_params(autoencoder),
        "peak_rss_gb": _peak_rss_gb(),
        "output_size": list(output_size),
        "latent_size": [LATENT_CHANNELS, *latent_spatial],
        "bf16": _bf16_ok(bf16),
        "step_times_s": step_times,
    }


# --------------------------------------------------------------------------------------
# SegGuidedDiff
# --------------------------------------------------------------------------------------
def build_segguided():
    from monai.networks.nets import DiffusionModelUNet

    return DiffusionModelUNet(**SEGGUIDED_UNET_DEF).eval()


def time_segguided(output_size=(256, 256, 128), timed_steps=3, bf16=True) -> dict:
    """Time one 2D 256x256 step at batch 1 and extrapolate to ``output_size[2]`` slices.

    The 2D image size is the SegGuidedDiff default (256x256) regardless of
    output_size[:2]; only the slice count is taken from output_size.
    """
    torch.manual_seed(0)
    net = build_segguided()
    x = torch.randn(1, SEGGUIDED_UNET_DEF["in_channels"], SEGGUIDED_IMAGE_SIZE, SEGGUIDED_IMAGE_SIZE)
    t = torch.tensor([500], dtype=torch.long)

    with torch.no_grad(), _autocast(bf16):
        times = _timed(lambda: net(x, t), warmup=1, n=max(1, int(timed_steps)))

    per = statistics.median(times)
    slices = int(output_size[2])
    return {
        "per_slice_step_s": per,
        "params": _n_params(net),
        "slices": slices,
        "total_50_ddim_s": per * slices * 50,
        "total_1000_ddpm_s": per * slices * 1000,
        "bf16": _bf16_ok(bf16),
        "step_times_s": times,
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, nargs=3, default=[256, 256, 128], metavar=("H", "W", "D"))
    p.add_argument("--fp32", action="store_true", help="disable bf16 autocast")
    p.add_argument("--which", choices=["maisi", "segguided", "both"], default="both")
    p.add_argument("--steps", type=int, default=MAISI_INFER["num_inference_steps"])
    p.add_argument("--timed-steps", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    bf16 = not a.fp32
    res = {}
    if a.which in ("segguided", "both"):
        kw = {} if a.timed_steps is None else {"timed_steps": a.timed_steps}
        res["segguided"] = time_segguided(tuple(a.size), bf16=bf16, **kw)
    if a.which in ("maisi", "both"):
        kw = {} if a.timed_steps is None else {"timed_steps": a.timed_steps}
        res["maisi"] = time_maisi(tuple(a.size), steps=a.steps, bf16=bf16, **kw)
    print(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
