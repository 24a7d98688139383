"""State-dict level weight compression: quantize every tensor, then entropy-code them together.

The blob from pack_state holds no names or shapes: the caller stores the ordered names and shapes
(e.g. in the archive's JSON) and hands them back to unpack_state in the same order.
"""

from __future__ import annotations

import torch

from .entropy import CodingReport, decode_tensors, encode_tensors_with_report
from .quantize import check_bits, dequantize_tensor, quantize_tensor


def _check_state(state: dict[str, torch.Tensor]) -> None:
    for name, tensor in state.items():
        if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
            raise TypeError(f"state entry {name!r} is not a floating-point tensor")


def quantize_state(state: dict[str, torch.Tensor], bits: int) -> dict[str, torch.Tensor]:
    """The tensors decode will see: quantized and dequantized, float32 on the CPU, same order."""
    check_bits(bits)
    _check_state(state)
    return {name: dequantize_tensor(quantize_tensor(t, bits)) for name, t in state.items()}


def pack_state(state: dict[str, torch.Tensor], bits: int) -> tuple[bytes, CodingReport]:
    """Quantize and code a state dict (in its iteration order); the report is labelled by name."""
    check_bits(bits)
    _check_state(state)
    quantized = [quantize_tensor(t, bits) for t in state.values()]
    return encode_tensors_with_report(quantized, names=list(state))


def unpack_state(data: bytes, shapes: dict[str, tuple[int, ...]], bits: int) -> dict[str, torch.Tensor]:
    """Inverse of pack_state: float32 CPU tensors in the order of `shapes` (ArchiveError if corrupt)."""
    check_bits(bits)
    names = list(shapes)
    decoded = decode_tensors(data, [tuple(shapes[n]) for n in names], [bits] * len(names))
    return {name: dequantize_tensor(q) for name, q in zip(names, decoded, strict=True)}
