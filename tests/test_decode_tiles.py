"""Decoding in tiles with a halo equals one whole decode; the inference codebook lookup picks MONAI's codes."""
from __future__ import annotations

import torch

from SemanticSynthLib.engine.model.codebook import nearest_codes
from SemanticSynthLib.engine.model.label_autoencoder import LabelAwareVQVAE
from SemanticSynthLib.engine.model.networks import label_autoencoder_config
from SemanticSynthLib.engine.model.packing import depth_to_space, space_to_depth
from SemanticSynthLib.engine.model.priors import TISSUE_KINDS
from SemanticSynthLib.engine.model.precision import quantize_decode
from SemanticSynthLib.engine.model.schema import MAX_HEAD_BLOCKS
import pytest

from SemanticSynthLib.engine.reporting.progress import Progress
from SemanticSynthLib.engine.synthesis.sampling import DECODE_HALO, _tile_cores, decode, in_tiles
from SemanticSynthLib.errors import SynthError

FACTOR = 4  # the shipped VQVAE's two stride-2 stages


def _shipped_decoder(head_blocks: int = 0, codebook_groups: int = 1) -> LabelAwareVQVAE:
    """The bundled models' label-aware architecture with random weights (the modulation and any refinement block
    made non-trivial)."""
    torch.manual_seed(0)
    config = label_autoencoder_config()
    model = LabelAwareVQVAE(config["vqvae"], config["head_channels"], config["guide_hidden"], config["kind_embedding"],
                            head_blocks=head_blocks, codebook_groups=codebook_groups)
    torch.nn.init.normal_(model.modulation.gamma_beta.weight, std=0.3)
    for block in model.refinement:
        torch.nn.init.normal_(block.modulation.gamma_beta.weight, std=0.3)
        torch.nn.init.normal_(block.project.weight, std=0.1)
    return model.eval()


def _guide(shape) -> torch.Tensor:
    return torch.stack([torch.rand(1, *shape), torch.randint(0, len(TISSUE_KINDS), (1, *shape)).float()], 1)


@pytest.mark.parametrize("head_blocks", [0, MAX_HEAD_BLOCKS])
def test_the_halo_covers_the_decoders_reach(head_blocks):
    """Change one latent slice: the decoded output may change only within DECODE_HALO latent voxels of it, with
    as many refinement blocks as a package may have."""
    model = _shipped_decoder(head_blocks)
    depth = 2 * DECODE_HALO + 8
    latent = torch.randn(1, 8, 4, 4, depth)
    guide = _guide((16, 16, depth * FACTOR))
    centre = depth // 2
    changed = latent.clone()
    changed[..., centre] += 3.0
    with torch.no_grad():
        diff = (model.decode(changed, guide) - model.decode(latent, guide)).abs().amax(dim=(0, 1, 2, 3))
    reached = diff.nonzero().flatten()
    assert len(reached) > FACTOR  # the change does spread beyond its own voxels
    lo, hi = int(reached.min()), int(reached.max())
    assert lo >= (centre - DECODE_HALO) * FACTOR and hi < (centre + 1 + DECODE_HALO) * FACTOR, (lo, hi, centre)
    assert lo < (centre - DECODE_HALO + 2) * FACTOR  # and the halo is not much wider than needed


def test_tiles_join_into_the_whole_decode():
    model = _shipped_decoder()
    latent = torch.randn(1, 8, 10, 6, 40)
    guide = _guide((40, 24, 160))
    packed = torch.cat([latent, space_to_depth(guide, FACTOR)], dim=1)

    def decode(p):
        return quantize_decode(model, p[:, :8], False, depth_to_space(p[:, 8:], FACTOR))

    budget = 10 * 6 * 30
    assert len(_tile_cores([(0, 10), (0, 6), (0, 40)], (10, 6, 40), budget, DECODE_HALO)) > 1
    with torch.no_grad():
        tiled = in_tiles(decode, packed, budget, DECODE_HALO)
        whole = decode(packed)
    assert tiled.shape == whole.shape == (1, 1, 40, 24, 160)
    # convolutions over tiles of other shapes may take other kernels: rounding relative to the values' scale
    assert torch.allclose(tiled, whole, atol=1e-5 * whole.abs().max()), float((tiled - whole).abs().max())


def test_a_decoder_that_gives_nan_stops_generation():
    """A broken package (or a faulty bf16 kernel) must end in an error, never in a volume of NaN voxels."""
    model = _shipped_decoder()
    latent, guide = torch.randn(1, 8, 4, 4, 4), _guide((16, 16, 16))
    image = decode(model, latent, 1.0, 64, False, Progress("none"), guide, FACTOR)
    assert image.shape == (1, 1, 16, 16, 16) and torch.isfinite(image).all()
    with torch.no_grad():
        next(p for p in model.modulation.parameters()).fill_(float("nan"))
    with pytest.raises(SynthError, match="decoder produced non-finite"):
        decode(model, latent, 1.0, 64, False, Progress("none"), guide, FACTOR)


def test_tiles_fit_the_budget_and_cover_the_volume_once():
    spatial = (64, 64, 32)
    cores = _tile_cores([(0, s) for s in spatial], spatial, 48 ** 3, DECODE_HALO)
    assert len(cores) == 2  # the 256x256x128 case: two tiles along the first axis
    covered = torch.zeros(spatial, dtype=torch.int)
    for core in cores:
        extent = [min(b + DECODE_HALO, s) - max(a - DECODE_HALO, 0) for (a, b), s in zip(core, spatial)]
        assert extent[0] * extent[1] * extent[2] <= 48 ** 3
        covered[tuple(slice(a, b) for a, b in core)] += 1
    assert bool((covered == 1).all())


@pytest.mark.parametrize("groups", [1, 8])  # 8-channel codes (the full search); one-channel codes (binary search)
def test_inference_codebook_lookup_picks_monais_codes(groups):
    model = _shipped_decoder(codebook_groups=groups)
    torch.nn.init.normal_(model.vqvae.quantizer.quantizer.embedding.weight)
    latent = torch.randn(1, 8, 12, 9, 7)
    with torch.no_grad():
        monai_codes, _ = model.quantize(latent)
        ours = nearest_codes(model, latent)
    assert ours.shape == monai_codes.shape
    assert torch.allclose(ours, monai_codes, atol=1e-6)


def test_scalar_codebook_lookup_breaks_ties_as_monai_does():
    """One-channel codes take the binary-search path. At an exact midpoint the two codes' distances are equal, and
    MONAI's torch.max takes the one that comes first in the codebook, whichever is larger; outside the codes'
    range the end code is taken."""
    model = _shipped_decoder(codebook_groups=8)  # brain-mri's layout: one channel per codebook group
    weight = model.vqvae.quantizer.quantizer.embedding.weight
    assert weight.shape[1] == 1
    with torch.no_grad():
        weight.copy_(torch.linspace(2.0, -2.0, weight.shape[0])[:, None])  # descending: the larger code comes first
        weight[7] = 0.25  # and one out of order
    step = 4.0 / (weight.shape[0] - 1)
    values = torch.tensor([2.0 - 2.5 * step, 2.0 - 10.5 * step, 0.25 + 1e-3, -7.0, 9.0, 0.0])
    latent = values.repeat(8 * 4 * 4).reshape(1, 8, 4, 4, 6)
    with torch.no_grad():
        monai_codes, _ = model.quantize(latent)
        ours = nearest_codes(model, latent)
    assert torch.allclose(ours, monai_codes, atol=1e-6)
    assert torch.isclose(ours[0, 0, 0, 0, 0], torch.tensor(2.0 - 2 * step))  # the tie went to the earlier code


def test_bf16_nan_falls_back_to_fp32_and_fp32_nan_is_an_error():
    from SemanticSynthLib.engine.synthesis.sampling import require_finite, with_fp32_fallback

    asked = []

    def run(bf16):
        asked.append(bf16)
        return require_finite(torch.tensor([float("nan") if bf16 else 1.0]), "decoder")

    assert with_fp32_fallback(run, True, Progress("none")).item() == 1.0 and asked == [True, False]
    with pytest.raises(SynthError, match="non-finite"):
        with_fp32_fallback(lambda bf16: require_finite(torch.tensor([float("nan")]), "decoder"), True, Progress("none"))
