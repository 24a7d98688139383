"""Per-channel affine quantization: error bound, exact zeros, degenerate shapes and channels."""

import numpy as np
import pytest
import torch

from dnerv_codec.compress.quantize import QuantizedTensor, dequantize_tensor, quantize_tensor
from dnerv_codec.errors import ConfigError, DnervError

SHAPES = [(), (1,), (7,), (5, 3), (8, 4, 3, 3), (3, 1, 1, 1), (1, 100)]


def _bound_ok(w: torch.Tensor, q: QuantizedTensor) -> None:
    """|w - w_hat| <= scale / 2 per element, up to float32 rounding of the product."""
    w_hat = dequantize_tensor(q)
    assert w_hat.dtype == torch.float32 and tuple(w_hat.shape) == tuple(w.shape)
    channels = q.scale.size
    err = (w_hat.double() - w.double()).reshape(channels, -1).abs().numpy()
    half = q.scale.astype(np.float64)[:, None] / 2
    slack = 2.0**-22 * (np.abs(w.double().reshape(channels, -1).numpy()) + half)
    assert (err <= half + slack).all(), float((err / half).max())


@pytest.mark.parametrize("bits", list(range(2, 17)))
@pytest.mark.parametrize("shape", SHAPES)
def test_error_bound_and_layout(bits, shape):
    gen = torch.Generator().manual_seed(bits * 100 + len(shape))
    w = torch.randn(shape, generator=gen) * 0.1 + 0.02
    q = quantize_tensor(w, bits)
    channels = shape[0] if len(shape) >= 2 else 1
    assert q.shape == shape and q.bits == bits
    assert q.symbols.dtype == np.int32 and q.symbols.shape == (w.numel(),)
    assert q.scale.dtype == np.float32 and q.scale.shape == (channels,)
    assert q.zero_point.dtype == np.int32 and q.zero_point.shape == (channels,)
    assert q.symbols.min() >= 0 and q.symbols.max() <= 2**bits - 1
    assert (q.zero_point >= 0).all() and (q.zero_point <= 2**bits - 1).all()
    assert (q.scale > 0).all() and np.isfinite(q.scale).all()
    # scales are bfloat16-representable: the entropy coder stores them in 2 bytes
    assert not (q.scale.view(np.uint32) & 0xFFFF).any()
    _bound_ok(w, q)


@pytest.mark.parametrize("bits", [2, 4, 8, 16])
def test_pruned_weights_stay_exactly_zero(bits):
    w = torch.randn(16, 8, 3, 3)
    w[w.abs() < 0.5] = 0.0
    w[3] = 0.0  # a fully pruned channel
    w_hat = dequantize_tensor(quantize_tensor(w, bits))
    assert (w_hat[w == 0] == 0).all()
    assert (w_hat[3] == 0).all()


@pytest.mark.parametrize("value", [0.0, 3.0, -2.5, 1e-30, -7e5])
def test_constant_channels(value):
    w = torch.full((4, 6), value)
    w[1] = torch.linspace(-1, 1, 6)  # other channels unaffected
    for bits in (2, 8):
        q = quantize_tensor(w, bits)
        assert np.isfinite(q.scale).all() and (q.scale > 0).all()
        _bound_ok(w, q)
        w_hat = dequantize_tensor(q)
        assert torch.isfinite(w_hat).all()
        if value == 0.0:
            assert (w_hat[0] == 0).all()


def test_one_channel_for_0d_and_1d():
    q0 = quantize_tensor(torch.tensor(0.75), 8)
    assert q0.scale.shape == (1,) and q0.symbols.shape == (1,)
    assert dequantize_tensor(q0).shape == ()
    bias = torch.tensor([-1.0, 0.0, 0.5, 2.0])
    q1 = quantize_tensor(bias, 8)
    assert q1.scale.shape == (1,)
    assert dequantize_tensor(q1)[1] == 0.0
    _bound_ok(bias, q1)


@pytest.mark.parametrize("shape", [(0,), (0, 3), (3, 0), (2, 0, 4)])
def test_empty_tensors(shape):
    q = quantize_tensor(torch.zeros(shape), 8)
    assert q.symbols.size == 0
    assert dequantize_tensor(q).shape == shape
    assert (q.scale > 0).all()


def test_other_float_dtypes_and_devices_are_accepted():
    w = torch.randn(4, 5)
    for dtype in (torch.float16, torch.bfloat16, torch.float64):
        q = quantize_tensor(w.to(dtype), 8)
        _bound_ok(w.to(dtype).float(), q)


def test_rejects_bad_input():
    with pytest.raises(DnervError, match="NaN"):
        quantize_tensor(torch.tensor([1.0, float("nan")]), 8)
    with pytest.raises(DnervError):
        quantize_tensor(torch.tensor([1.0, float("inf")]), 8)
    for bits in (1, 17, 0, True):
        with pytest.raises(ConfigError):
            quantize_tensor(torch.ones(3), bits)
    with pytest.raises(TypeError):
        quantize_tensor(torch.ones(3, dtype=torch.int64), 8)


def test_more_bits_means_smaller_error():
    w = torch.randn(8, 64)
    errs = [(dequantize_tensor(quantize_tensor(w, b)) - w).abs().max().item() for b in (2, 4, 8, 12)]
    assert errs == sorted(errs, reverse=True)
