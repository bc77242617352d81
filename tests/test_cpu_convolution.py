"""The fast fp32 CPU inference convolutions give the layers' own results, and leave training alone."""
import copy

import torch
from torch import nn

from SemanticSynthLib.engine.model.cpu_convolution import for_inference


def _network():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv3d(3, 8, 3, padding=1), nn.SiLU(), nn.Conv3d(8, 8, 4, stride=2, padding=1),
                         nn.GroupNorm(4, 8), nn.ConvTranspose3d(8, 8, 4, stride=2, padding=1),
                         nn.Conv3d(8, 8, 4, stride=2, padding=1), nn.Conv3d(8, 4, 1), nn.Conv3d(4, 2, 1, bias=False))


def test_routed_inference_matches_the_layers_own_forward():
    plain = _network().eval()
    routed = for_inference(copy.deepcopy(plain))
    x = torch.randn(2, 3, 12, 10, 8)
    with torch.no_grad():
        expected, got = plain(x), routed(x)
    assert got.shape == expected.shape == (2, 2, 6, 5, 4)
    scale = expected.abs().max()  # another summation order: rounding relative to the outputs' scale
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-5 * scale)
    # Each batch item is its own product: swapping the items swaps the outputs.
    with torch.no_grad():
        assert torch.allclose(routed(x.flip(0)), expected.flip(0), rtol=1e-5, atol=1e-5 * scale)
    # Routed layers hand on channels-last tensors; a channels-last input gives the same values too.
    assert got.is_contiguous(memory_format=torch.channels_last_3d) and not got.is_contiguous()
    with torch.no_grad():
        assert torch.allclose(routed(x.contiguous(memory_format=torch.channels_last_3d)), expected, rtol=1e-5,
                              atol=1e-5 * scale)


def test_pointwise_layer_on_either_layout():
    layer = nn.Conv3d(6, 3, 1).eval()
    routed = for_inference(copy.deepcopy(layer))
    x = torch.randn(2, 6, 5, 4, 3)
    with torch.no_grad():
        expected = layer(x)
        for given in (x, x.contiguous(memory_format=torch.channels_last_3d)):
            assert torch.allclose(routed(given), expected, rtol=1e-5, atol=1e-6 * expected.abs().max())


def test_training_still_gets_gradients_through_routed_layers():
    routed = for_inference(_network()).train()
    x = torch.randn(1, 3, 8, 8, 8)
    routed(x).square().mean().backward()
    grads = [p.grad for p in routed.parameters()]
    assert all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)
