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


def _round_up_bf16(x: np.ndarray) -> np.ndarray:
    """Smallest float32 values >= x (float64, positive, finite) whose low 16 mantissa bits are 0."""
    f = x.astype(np.float32)
    # float64 -> float32 rounds to nearest; step up where that went below the exact value
    f = np.where(f.astype(np.float64) < x, np.nextafter(f, np.float32(np.inf)), f)
    u = f.view(np.uint32).astype(np.uint64)
    u = ((u + 0xFFFF) & 0xFFFF0000).astype(np.uint32)
    return u.view(np.float32)


def quantize_tensor(w: torch.Tensor, bits: int) -> QuantizedTensor:
    """Quantize a float tensor of any shape (empty included) to `bits` bits per channel.

    Raises ConfigError for bits outside 2..16 and DnervError for NaN or infinite weights.
    """
    check_bits(bits)
    if not isinstance(w, torch.Tensor) or not w.is_floating_point():
        raise TypeError(f"quantize_tensor needs a floating-point torch.Tensor, got {type(w).__name__}")
    shape = tuple(int(s) for s in w.shape)
    channels = num_channels(shape)
    levels = (1 << bits) - 1
    # float64 keeps the rounding decisions exact enough for the scale/2 bound
    x = w.detach().to(device="cpu", dtype=torch.float64).numpy().reshape(channels, _per_channel(shape))
    if not np.isfinite(x).all():
        raise DnervError("cannot quantize weights that contain NaN or infinity (did the fit diverge?)")
    if x.size == 0:
        lo = hi = np.zeros(channels)
    else:
        lo = np.minimum(x.min(axis=1), 0.0)
        hi = np.maximum(x.max(axis=1), 0.0)
    span = hi - lo
    # an all-zero (or empty) channel has no range: any positive step works, 1.0 codes cheaply
    step = np.where(span > 0, span / levels, 1.0)
    scale = _round_up_bf16(step)  # > 0 even when step underflows float32
    s64 = scale.astype(np.float64)[:, None]
    zero_point = np.clip(np.rint(-lo / scale.astype(np.float64)), 0, levels).astype(np.int64)
    q = np.clip(np.rint(x / s64) + zero_point[:, None], 0, levels).astype(np.int32)
    return QuantizedTensor(
        shape=shape,
        bits=bits,
        symbols=q.reshape(-1),
        scale=scale.astype(np.float32),
        zero_point=zero_point.astype(np.int32),
    )


def dequantize_tensor(q: QuantizedTensor) -> torch.Tensor:
    """float32 CPU tensor of shape q.shape: (symbols - zero_point) * scale per channel."""
    channels = q.channels
    sym = np.asarray(q.symbols, dtype=np.int64).reshape(channels, _per_channel(q.shape))
    zp = np.asarray(q.zero_point, dtype=np.int64).reshape(channels, 1)
    # the integer difference is exact; one float32 multiply per element
    out = (sym - zp).astype(np.float32) * np.asarray(q.scale, dtype=np.float32).reshape(channels, 1)
    return torch.from_numpy(out.reshape(q.shape))  # out is fresh and C-contiguous
