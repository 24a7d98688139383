"""State-dict level weight compression: quantize every tensor, then entropy-code them together.

The blob from pack_state holds no names or shapes: the caller stores the ordered names and shapes
(e.g. in the archive's JSON) and hands them back to unpack_state in the same order. `bits` is one
bit depth for every tensor or a sequence of one per tensor.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from .entropy import CodingReport, decode_tensors, decode_tensors_with_report, encode_tensors_with_report
from .quantize import check_bits, dequantize_tensor, quantize_tensor


def _bits_list(bits: int | Sequence[int], count: int) -> list[int]:
    out = [bits] * count if isinstance(bits, int) else list(bits)
    if len(out) != count:
        raise ValueError(f"{len(out)} bit depths for {count} tensors")
    for b in out:
        check_bits(b)
    return out


def _check_state(state: dict[str, torch.Tensor]) -> None:
    for name, tensor in state.items():
        if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
            raise TypeError(f"state entry {name!r} is not a floating-point tensor")


def quantize_state(state: dict[str, torch.Tensor], bits: int | Sequence[int]) -> dict[str, torch.Tensor]:
    """The tensors decode will see: quantized and dequantized, float32 on the CPU, same order."""
    bits = _bits_list(bits, len(state))
    _check_state(state)
    return {
        name: dequantize_tensor(quantize_tensor(t, b))
        for (name, t), b in zip(state.items(), bits, strict=True)
    }


def pack_state(state: dict[str, torch.Tensor], bits: int | Sequence[int]) -> tuple[bytes, CodingReport]:
    """Quantize and code a state dict (in its iteration order); the report is labelled by name."""
    bits = _bits_list(bits, len(state))
    _check_state(state)
    quantized = [quantize_tensor(t, b) for t, b in zip(state.values(), bits, strict=True)]
    return encode_tensors_with_report(quantized, names=list(state))


def unpack_state(
    data: bytes, shapes: dict[str, tuple[int, ...]], bits: int | Sequence[int]
) -> dict[str, torch.Tensor]:
    """Inverse of pack_state: float32 CPU tensors in the order of `shapes` (ArchiveError if corrupt)."""
    names = list(shapes)
    bits = _bits_list(bits, len(names))
    decoded = decode_tensors(data, [tuple(shapes[n]) for n in names], bits)
    return {name: dequantize_tensor(q) for name, q in zip(names, decoded, strict=True)}


def blob_report(data: bytes, shapes: dict[str, tuple[int, ...]], bits: int | Sequence[int]) -> CodingReport:
    """Where the bytes of a packed blob went, per tensor (labelled by name), measured by decoding it."""
    names = list(shapes)
    return decode_tensors_with_report(
        data, [tuple(shapes[n]) for n in names], _bits_list(bits, len(names)), names
    )[1]


def class_table(report: CodingReport, groups: Mapping[str, Sequence[str]]) -> list[dict]:
    """Per tensor class and a final 'total' row: tensors, parameters, coded bytes (residuals + side
    information), payload bytes, empirical-entropy bytes, side bytes and mean bits per parameter.
    groups: class -> tensor names, in the order of the rows (the model's tensor_groups()). The blob
    overhead (version, crc, word count) is in 'total' only."""
    keys = ("tensors", "params", "payload", "entropy", "side")
    by_name = {t.name: t for t in report.tensors}
    out = []
    for label, names in groups.items():
        row = {"class": label, **dict.fromkeys(keys, 0)}
        for t in (by_name[n] for n in names):
            row["tensors"] += 1
            row["params"] += math.prod(t.shape)
            row["payload"] += t.payload_bits / 8
            row["entropy"] += t.entropy_bits / 8
            row["side"] += t.side_bytes
        row["bytes"] = row["payload"] + row["side"]
        out.append(row)
    total = {k: sum(r[k] for r in out) for k in keys}
    out.append({"class": "total", **total, "bytes": float(report.total_bytes)})
    for row in out:
        row["bits_per_param"] = 8 * row["bytes"] / row["params"] if row["params"] else 0.0
        for k in ("payload", "entropy", "side", "bytes"):
            row[k] = round(row[k], 1)
    return out
