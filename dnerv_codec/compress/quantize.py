"""Per-output-channel affine weight quantization with an integer zero point.

A tensor of shape (C, ...) is quantized channel by channel (dim 0); a 0-D or 1-D tensor is one
channel. Each channel c gets a step `scale[c] > 0` and an integer `zero_point[c]` in 0..L with
L = 2**bits - 1, and every element becomes a level q in 0..L:

    q = clamp(round(w / scale) + zero_point, 0, L)        w_hat = (q - zero_point) * scale

The range [min(w, 0), max(w, 0)] is split into L intervals, so 0.0 always lies on the grid and
pruned (exactly zero) weights stay exactly zero. Because the zero point is rounded, one end of the
range may lose up to half a step, so |w - w_hat| <= scale / 2 for every element.

The scale is rounded *up* to a bfloat16-representable float32 (8 significant bits): the entropy
coder then stores it in 2 bytes instead of 4 at the price of a step at most 0.8 % coarser, and a
larger step still covers the whole range, so the error bound above holds with the stored scale.

The rule is written once, in torch (_levels): quantize_tensor runs it on the CPU for the archive's
numpy levels, quantized_values and fake_quantize on the training device, so the fine-tune
optimises exactly the weights that decode will see.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError, DnervError

MIN_BITS = 2
MAX_BITS = 16


@dataclass
class QuantizedTensor:
    """A quantized tensor: levels plus the per-channel affine parameters.

    shape: the original tensor shape; channels = shape[0] for ndim >= 2, else 1.
    bits: levels are 0..2**bits - 1.
    symbols: int32 [prod(shape)], the levels in C order.
    scale: float32 [channels], positive and finite.
    zero_point: int32 [channels], in 0..2**bits - 1; the level that stands for 0.0.
    """

    shape: tuple[int, ...]
    bits: int
    symbols: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray

    @property
    def channels(self) -> int:
        return num_channels(self.shape)

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


def num_channels(shape: tuple[int, ...]) -> int:
    """Channels of a tensor of this shape: dim 0 for ndim >= 2, otherwise one."""
    return int(shape[0]) if len(shape) >= 2 else 1


def _per_channel(shape: tuple[int, ...]) -> int:
    """Elements per channel (reshape(C, -1) is ambiguous when C == 0)."""
    channels = num_channels(shape)
    return int(np.prod(shape, dtype=np.int64)) // channels if channels else 0


def check_bits(bits: int) -> None:
    if isinstance(bits, bool) or not isinstance(bits, int) or not MIN_BITS <= bits <= MAX_BITS:
        raise ConfigError(f"weight bits must be an integer in {MIN_BITS}..{MAX_BITS}, got {bits!r}")


def _round_up_bf16(x: torch.Tensor) -> torch.Tensor:
    """float32: the smallest values >= x (float64, positive, finite) with 16 low mantissa bits 0."""
    f = x.to(torch.float32)
    # float64 -> float32 rounds to nearest; step up where that went below the exact value
    f = torch.where(f.to(torch.float64) < x, torch.nextafter(f, torch.full_like(f, float("inf"))), f)
    u = f.view(torch.int32).to(torch.int64)  # positive floats: the sign bit is 0
    u = (u + 0xFFFF) & 0xFFFF0000
    return u.to(torch.int32).view(torch.float32)


def _levels(x: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The quantizer itself, on x float64 [channels, per] on any device: (levels q, int64;
    zero points, int64 [channels]; scales, float32 [channels]). Every other function here, numpy
    or torch, gets its numbers from this one."""
    levels = (1 << bits) - 1
    if x.numel() == 0:
        lo = hi = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
    else:
        lo = torch.clamp(x.amin(dim=1), max=0.0)
        hi = torch.clamp(x.amax(dim=1), min=0.0)
    span = hi - lo
    # an all-zero (or empty) channel has no range: any positive step works, 1.0 codes cheaply
    step = torch.where(span > 0, span / levels, torch.ones_like(span))
    scale = _round_up_bf16(step)  # > 0 even when step underflows float32
    s64 = scale.to(torch.float64)
    zero_point = torch.clamp(torch.round(-lo / s64), 0, levels)
    q = torch.clamp(torch.round(x / s64[:, None]) + zero_point[:, None], 0, levels)
    return q.to(torch.int64), zero_point.to(torch.int64), scale


def _dequantize(residual: torch.Tensor, scale: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """(q - zero_point) [channels, per] times the float32 scale of its channel: the integer
    difference is exact, then one float32 multiply per element."""
    return (residual.to(torch.float32) * scale[:, None]).reshape(shape)


def _as_channels(w: torch.Tensor) -> torch.Tensor:
    shape = tuple(int(s) for s in w.shape)
    return w.detach().to(torch.float64).reshape(num_channels(shape), _per_channel(shape))


def quantize_tensor(w: torch.Tensor, bits: int) -> QuantizedTensor:
    """Quantize a float tensor of any shape (empty included) to `bits` bits per channel.

    Raises ConfigError for bits outside 2..16 and DnervError for NaN or infinite weights.
    """
    check_bits(bits)
    if not isinstance(w, torch.Tensor) or not w.is_floating_point():
        raise TypeError(f"quantize_tensor needs a floating-point torch.Tensor, got {type(w).__name__}")
    # float64 keeps the rounding decisions exact enough for the scale/2 bound
    x = _as_channels(w.detach().cpu())
    if not bool(torch.isfinite(x).all()):
        raise DnervError("cannot quantize weights that contain NaN or infinity (did the fit diverge?)")
    q, zero_point, scale = _levels(x, bits)
    return QuantizedTensor(
        shape=tuple(int(s) for s in w.shape),
        bits=bits,
        symbols=q.reshape(-1).numpy().astype(np.int32),
        scale=scale.numpy(),
        zero_point=zero_point.numpy().astype(np.int32),
    )


def dequantize_tensor(q: QuantizedTensor) -> torch.Tensor:
    """float32 CPU tensor of shape q.shape: (symbols - zero_point) * scale per channel."""
    sym = torch.from_numpy(np.asarray(q.symbols, dtype=np.int64).reshape(q.channels, _per_channel(q.shape)))
    zp = torch.from_numpy(np.asarray(q.zero_point, dtype=np.int64))
    scale = torch.from_numpy(np.asarray(q.scale, dtype=np.float32))
    return _dequantize(sym - zp[:, None], scale, q.shape)


# ---- the same quantizer on the training device, for the fine-tune and the bit-depth choice ----


@torch.no_grad()
def quantized_parts(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(residuals q - zero_point, int64 [channels, per]; scales, float32 [channels]) of
    quantize_tensor(w, bits), on w's device."""
    check_bits(bits)
    q, zero_point, scale = _levels(_as_channels(w), bits)
    return q - zero_point[:, None], scale


@torch.no_grad()
def quantized_values(w: torch.Tensor, bits: int) -> torch.Tensor:
    """float32 tensor on w's device equal to dequantize_tensor(quantize_tensor(w, bits))."""
    residual, scale = quantized_parts(w, bits)
    return _dequantize(residual, scale, tuple(w.shape))


class _FakeQuantize(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w: torch.Tensor, bits: int) -> torch.Tensor:
        return quantized_values(w, bits).to(w.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


def fake_quantize(w: torch.Tensor, bits: int) -> torch.Tensor:
    """The quantized-dequantized tensor, value for value what the archive will hold (so the
    quantization-aware fine-tune optimises those very weights); gradient: straight through."""
    return _FakeQuantize.apply(w, bits)
