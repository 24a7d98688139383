"""Differentiable fake quantization, value for value the quantizer of quantize.py.

fake_quantize(w, bits) returns exactly dequantize_tensor(quantize_tensor(w, bits)) (same per-channel
scale, rounded up to bfloat16, same integer zero point, same float32 product), computed with torch
in float64 on w's device, so quantization-aware fine-tuning optimises the very weights the archive
will hold. Its gradient is the straight-through estimator: the identity.
"""

from __future__ import annotations

import torch

from .quantize import check_bits, num_channels


def _round_up_bf16(x: torch.Tensor) -> torch.Tensor:
    """float32: the smallest values >= x (float64, positive, finite) with 16 low mantissa bits 0."""
    f = x.to(torch.float32)
    f = torch.where(f.to(torch.float64) < x, torch.nextafter(f, torch.full_like(f, float("inf"))), f)
    u = f.view(torch.int32).to(torch.int64)  # positive floats: the sign bit is 0
    u = (u + 0xFFFF) & 0xFFFF0000
    return u.to(torch.int32).view(torch.float32)


@torch.no_grad()
def quantized_parts(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(residuals q - zero_point, float64 [channels, per]; scales, float32 [channels]) of
    quantize_tensor(w, bits), on w's device (w not empty)."""
    check_bits(bits)
    levels = (1 << bits) - 1
    channels = num_channels(tuple(w.shape))
    x = w.detach().to(torch.float64).reshape(channels, -1)
    lo = torch.clamp(x.amin(dim=1), max=0.0)
    hi = torch.clamp(x.amax(dim=1), min=0.0)
    span = hi - lo
    step = torch.where(span > 0, span / levels, torch.ones_like(span))
    scale = _round_up_bf16(step)
    s64 = scale.to(torch.float64)[:, None]
    zero_point = torch.clamp(torch.round(-lo / scale.to(torch.float64)), 0, levels)
    q = torch.clamp(torch.round(x / s64) + zero_point[:, None], 0, levels)
    return q - zero_point[:, None], scale


@torch.no_grad()
def quantized_values(w: torch.Tensor, bits: int) -> torch.Tensor:
    """float32 tensor on w's device equal to dequantize_tensor(quantize_tensor(w, bits))."""
    if w.numel() == 0:
        return torch.zeros(w.shape, dtype=torch.float32, device=w.device)
    residual, scale = quantized_parts(w, bits)
    return (residual.to(torch.float32) * scale[:, None]).reshape(w.shape)


class _FakeQuantize(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w: torch.Tensor, bits: int) -> torch.Tensor:
        return quantized_values(w, bits).to(w.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


def fake_quantize(w: torch.Tensor, bits: int) -> torch.Tensor:
    """The quantized-dequantized tensor (see the module docstring); gradient: straight through."""
    return _FakeQuantize.apply(w, bits)
