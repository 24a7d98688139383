"""Lossless entropy coding of quantized tensors (the only module that imports constriction).

Each tensor codes its residuals r = symbol - zero_point[channel] (= round(w / scale): small and
peaked at 0) with one i.i.d. model, picked per tensor by estimated size including its parameters
(one class each in residual_models.py, registered by id; their integer probability models are in
entropy_models.py):

    0 empty      no elements
    1 constant   every residual equal; no payload
    2 laplace    Laplace over the full residual range -L..L (L = 2**bits - 1): 2-4 parameter bytes
    3 laplace    Laplace over the used range rmin..rmax (better for flat distributions)
    4 histogram  64-level log histogram over rmin..rmax, levels coded in the ANS stream
    5 laplace    one Laplace per output channel over the used range rmin..rmax (blob version 2):
      per channel each channel's center and decay code, coded in the ANS stream as integer arrays

Per-channel scales are bfloat16 values (see quantize.py) stored in 2 bytes each, or coded in the
ANS stream with a Laplace model over their 15-bit patterns when that is smaller; float32 scales
from elsewhere are stored whole. Zero points are implied (max(0, -min residual) per channel, what
quantize_tensor produces) unless the encoder finds otherwise. All tensors share one ANS stream:
constriction's AnsCoder, 32-bit words, 24-bit probabilities, Categorical(perfect=False) models
built from integers on both sides.

Byte layout (little-endian; varint = unsigned LEB128; zigzag maps 0, -1, 1, -2 .. to 0, 1, 2, 3 ..):

    u8      blob version (2; version 1 is read too: the same layout without model 5)
    u32     crc32 of the tensor list: per tensor varint bits, varint ndim, varint dims
    per tensor, a header (as data: TENSOR_HEADER below, then the model's EntropyModel.fields):
      u8    model (bits 0-2) | scale mode (bits 3-4: 0 bf16, 1 f32, 2 coded) | explicit zp (bit 5)
      scales   bf16: channels x u16 (the float32's high half); f32: channels x f32;
               coded: u16 umin, varint (umax - umin), and if that is > 0: varint (center - umin), u8 code
      zero points, if explicit: channels x u8 (bits <= 8) or u16
      model 1: varint zigzag(value)
      model 2: varint zigzag(center), u8 code
      model 3: varint zigzag(rmin), varint (rmax - rmin), varint (center - rmin), u8 code
      model 4: varint zigzag(rmin), varint (rmax - rmin)
      model 5: varint zigzag(rmin), varint (rmax - rmin), then two integer arrays (channels values
               each: the centers - rmin, then the codes), each as varint vmin, varint (vmax - vmin),
               and if that is > 0: varint (center - vmin), u8 code of a Laplace over vmin..vmax
    varint  number of ANS words W
    W x u32 the ANS stream; decoded per tensor in order: coded scales (u - umin), histogram level
            deltas (+63, first from level 0), model 5's centers and codes (- vmin), residuals
            (- rmin, or + L for model 2; model 5: channel by channel, each under its own Laplace)

Guarantee: decode_tensors returns tensors of the requested shapes and bits whose symbols are in
range and whose scales are positive and finite, or raises ArchiveError (truncation, trailing bytes,
impossible header fields, a different tensor list, decoded values out of range, ANS stream not
exhausted). Most flipped bits are caught, but not all (e.g. one inside a raw scale): the
container's CRC32 is what guarantees integrity.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import constriction
import numpy as np

from ..errors import ArchiveError
from .fields import Field, Reader, Values, corrupt, int_array_fields, read_fields, uvarint, write_fields
from .quantize import QuantizedTensor, _per_channel, check_bits, num_channels
from .residual_models import (
    EMPTY,
    MODELS,
    EntropyModel,
    Residuals,
    Stream,
    decode_int_array,
    plan_int_array,
    top_of,
)

BLOB_VERSION = 2
READ_VERSIONS = (1, 2)
SCALE_BF16, SCALE_F32, SCALE_CODED = range(3)


def _channels(v: Values) -> int:
    return v["channels"]


def _scale_is(mode: int):
    return lambda v: v["scale_mode"] == mode


def _explicit_zp(wide: bool):
    return lambda v: v["explicit"] and (v["bits"] > 8) == wide


# The tensor header after its flags byte, as data (the layout in the module docstring); the
# residual model's own fields follow (EntropyModel.fields). The values hold the flags and the
# tensor's channels, bits and top = 2**bits - 1 as context.
SCALE_CODED_FIELDS = int_array_fields("scale", "<u2", limit=lambda v: 0xFFFF, when=_scale_is(SCALE_CODED))
TENSOR_HEADER: tuple[Field, ...] = (
    Field("scale_hi", "<u2", count=_channels, when=_scale_is(SCALE_BF16)),
    Field("scale_f32", "<f4", count=_channels, when=_scale_is(SCALE_F32)),
    *SCALE_CODED_FIELDS,
    Field("zero_points", "u1", limit=top_of, count=_channels, when=_explicit_zp(wide=False)),
    Field("zero_points", "<u2", limit=top_of, count=_channels, when=_explicit_zp(wide=True)),
)


@dataclass
class TensorCodingReport:
    """Where one tensor's bytes went; ANS bits are measured on the stream (fractional)."""

    shape: tuple[int, ...]
    bits: int
    model: str
    header_bytes: int  # flags, raw scales, zero points, model parameters
    side_bits: float  # coded scales and histogram levels in the ANS stream
    payload_bits: float  # the residuals in the ANS stream
    entropy_bits: float  # numel x empirical order-0 entropy of the residuals
    name: str = ""

    @property
    def side_bytes(self) -> float:
        return self.header_bytes + self.side_bits / 8


@dataclass
class CodingReport:
    """Per-tensor reports and the blob size; overhead = version, crc, word count, ANS flush."""

    tensors: list[TensorCodingReport] = field(default_factory=list)
    total_bytes: int = 0

    @property
    def payload_bytes(self) -> float:
        return sum(t.payload_bits for t in self.tensors) / 8

    @property
    def side_bytes(self) -> float:
        return sum(t.side_bytes for t in self.tensors)

    @property
    def entropy_bytes(self) -> float:
        return sum(t.entropy_bits for t in self.tensors) / 8

    @property
    def overhead_bytes(self) -> float:
        return self.total_bytes - self.payload_bytes - self.side_bytes


def _tensor_list_crc(shapes: list[tuple[int, ...]], bits: list[int]) -> int:
    """crc32 of the tensor list a blob was coded for: per tensor varint bits, ndim, dims."""
    desc = bytearray()
    for shape, b in zip(shapes, bits, strict=True):
        desc += uvarint(b) + uvarint(len(shape)) + b"".join(uvarint(int(d)) for d in shape)
    return zlib.crc32(desc)


def _context(shape: tuple[int, ...], bits: int) -> Values:
    return {"channels": num_channels(shape), "bits": bits, "top": (1 << bits) - 1}


# ---- encoder ----------------------------------------------------------------------------------


@dataclass
class _Plan:
    """The encoder's decisions for one tensor; streams in decode order."""

    header: bytes
    model: EntropyModel
    streams: list[Stream]
    entropy_bits: float


def _check(q: QuantizedTensor) -> None:
    """Reject malformed inputs early (a programming error, not a user error)."""
    check_bits(q.bits)
    channels, top = num_channels(q.shape), (1 << q.bits) - 1
    sym, scale, zp = np.asarray(q.symbols), np.asarray(q.scale), np.asarray(q.zero_point)
    if sym.shape != (q.numel,) or scale.shape != (channels,) or zp.shape != (channels,):
        raise ValueError(f"QuantizedTensor arrays do not match its shape {q.shape}")
    if sym.size and (sym.min() < 0 or sym.max() > top):
        raise ValueError(f"symbols out of range 0..{top}")
    if zp.size and (zp.min() < 0 or zp.max() > top):
        raise ValueError(f"zero points out of range 0..{top}")
    if scale.dtype != np.float32 or not (np.isfinite(scale) & (scale > 0)).all():
        raise ValueError("scales must be positive finite float32")


def _implied_zero_point(r: np.ndarray) -> np.ndarray:
    """max(0, -min residual) per channel of r [channels, per] (0 for empty channels)."""
    if r.shape[1] == 0:
        return np.zeros(r.shape[0], np.int64)
    return np.maximum(0, -r.min(axis=1))


def _plan_scales(scale: np.ndarray) -> tuple[int, Values, list[Stream]]:
    """(scale mode, header values, ANS streams) for the per-channel scales."""
    u = scale.view(np.uint32)
    if (u & 0xFFFF).any():
        return SCALE_F32, {"scale_f32": scale}, []
    hi = (u >> 16).astype(np.int64)
    raw = (SCALE_BF16, {"scale_hi": hi}, [])
    if hi.size < 4:  # coding cannot beat 2 bytes per channel
        return raw
    values, streams, bits = plan_int_array("scale", hi)
    values["scale_mode"] = SCALE_CODED
    if streams and len(write_fields(SCALE_CODED_FIELDS, values)) + bits / 8 >= 2 * hi.size:
        return raw
    return SCALE_CODED, values, streams


def _choose_model(res: Residuals, force: int | None) -> tuple[EntropyModel, object]:
    """The model of fewest estimated bits including its header bytes (or model `force` where it
    applies), with its fit."""
    fits = [(m, f) for m in MODELS.values() if (f := m.fit(res, m.id == force)) is not None]
    forced = [(m, f) for m, f in fits if m.id == force]
    return min(forced or fits, key=lambda mf: mf[1].bits + 8 * len(write_fields(mf[0].fields, mf[1].values)))


def _plan(q: QuantizedTensor, force: int | None = None) -> _Plan:
    _check(q)
    zp = np.asarray(q.zero_point, np.int64)
    r = np.asarray(q.symbols, np.int64).reshape(q.channels, _per_channel(q.shape)) - zp[:, None]
    scale_mode, values, scale_streams = _plan_scales(np.asarray(q.scale))
    explicit = not np.array_equal(_implied_zero_point(r), zp)
    res = Residuals(r, (1 << q.bits) - 1)
    model, fit = _choose_model(res, force)
    values |= _context(q.shape, q.bits) | fit.values
    values |= {"scale_mode": scale_mode, "explicit": explicit, "zero_points": zp}
    flags = bytes([model.id | scale_mode << 3 | explicit << 5])
    header = flags + write_fields(TENSOR_HEADER + model.fields, values)
    return _Plan(header, model, scale_streams + model.streams(fit, res), res.entropy_bits())


def encode_tensors_with_report(
    tensors: list[QuantizedTensor], names: list[str] | None = None, force_model: int | None = None
) -> tuple[bytes, CodingReport]:
    """Code the tensors into one blob; the report says where its bytes went (names label it).
    force_model (tests): use that residual model wherever it applies instead of the smallest."""
    plans = [_plan(q, force_model) for q in tensors]
    coder = constriction.stream.stack.AnsCoder()
    spent: list[list[float]] = [[0.0, 0.0] for _ in plans]  # [side bits, payload bits]
    # a stack: push everything in the reverse of the order the decoder pops it
    for plan, acc in zip(reversed(plans), reversed(spent), strict=True):
        for is_side, symbols, model in reversed(plan.streams):
            before = coder.num_valid_bits()
            coder.encode_reverse(symbols, model)
            acc[0 if is_side else 1] += coder.num_valid_bits() - before
    words = np.asarray(coder.get_compressed(), dtype=np.uint32).astype("<u4")
    crc = _tensor_list_crc([q.shape for q in tensors], [q.bits for q in tensors])
    parts = [bytes([BLOB_VERSION]), crc.to_bytes(4, "little")]
    parts += [plan.header for plan in plans] + [uvarint(len(words)), words.tobytes()]
    blob = b"".join(parts)
    names = names if names is not None else [""] * len(tensors)
    reports = [
        TensorCodingReport(tuple(q.shape), q.bits, p.model.name, len(p.header), side, pay, p.entropy_bits, n)
        for q, p, (side, pay), n in zip(tensors, plans, spent, names, strict=True)
    ]
    return blob, CodingReport(reports, len(blob))


def encode_tensors(tensors: list[QuantizedTensor]) -> bytes:
    """Code the tensors into one blob (see the module docstring for its layout)."""
    return encode_tensors_with_report(tensors)[0]


# ---- decoder ----------------------------------------------------------------------------------


@dataclass
class _Header:
    model: EntropyModel
    values: Values = field(default_factory=dict)  # the header's fields and the tensor's context
    header_bytes: int = 0


def _read_flags(rd: Reader, shape: tuple[int, ...], version: int) -> tuple[EntropyModel, int, int]:
    flags = rd.u8()
    model_id, scale_mode, explicit = flags & 7, flags >> 3 & 3, flags >> 5 & 1
    model = MODELS.get(model_id)
    if flags >> 6 or model is None or model.since_version > version or scale_mode > SCALE_CODED:
        raise corrupt("unknown tensor flags")
    if (model_id == EMPTY) != (int(np.prod(shape, dtype=np.int64)) == 0):
        raise corrupt(f"model does not fit a tensor of shape {shape}")
    return model, scale_mode, explicit


def _read_header(rd: Reader, shape: tuple[int, ...], bits: int, version: int) -> _Header:
    start = rd.pos
    model, scale_mode, explicit = _read_flags(rd, shape, version)
    values = _context(shape, bits) | {"scale_mode": scale_mode, "explicit": explicit}
    read_fields(rd, TENSOR_HEADER + model.fields, values)
    if scale_mode == SCALE_BF16:
        _check_scales(_bf16(values["scale_hi"]))
    elif scale_mode == SCALE_F32:
        _check_scales(values["scale_f32"])
    return _Header(model, values, rd.pos - start)


def _check_scales(scale: np.ndarray) -> np.ndarray:
    if not (np.isfinite(scale) & (scale > 0)).all():
        raise corrupt("a scale is not a positive finite number")
    return scale


def _bf16(hi: np.ndarray) -> np.ndarray:
    return (hi.astype(np.uint32) << 16).view(np.float32)


def _decode_scales(coder, v: Values) -> np.ndarray:
    if v["scale_mode"] == SCALE_F32:
        return v["scale_f32"].astype(np.float32)
    if v["scale_mode"] == SCALE_BF16:
        return _bf16(v["scale_hi"])
    return _check_scales(_bf16(decode_int_array(coder, "scale", v, v["channels"])))


def _decode_one(coder, head: _Header, shape: tuple[int, ...], spent: list[float]) -> QuantizedTensor:
    """Decode one tensor; `spent` receives [side bits, payload bits] read from the stream."""
    v, model = head.values, head.model
    channels, per = v["channels"], _per_channel(shape)
    before = coder.num_valid_bits()
    scale = _decode_scales(coder, v)
    side = model.decode_side(coder, v, channels)
    middle = coder.num_valid_bits()
    r = model.decode(coder, v, side, channels, per).reshape(channels, per)
    spent[:] = [before - middle, middle - coder.num_valid_bits()]
    zp = v["zero_points"].astype(np.int64) if v["explicit"] else _implied_zero_point(r)
    q = r + zp[:, None]
    if q.size and (q.min() < 0 or q.max() > v["top"]):
        raise corrupt("decoded level out of range")
    return QuantizedTensor(shape, v["bits"], q.reshape(-1).astype(np.int32), scale, zp.astype(np.int32))


def decode_tensors(data: bytes, shapes: list[tuple[int, ...]], bits: list[int]) -> list[QuantizedTensor]:
    """Inverse of encode_tensors, given each tensor's shape and bits; ArchiveError if corrupt."""
    return decode_tensors_with_report(data, shapes, bits)[0]


def _read_headers(rd: Reader, shapes: list[tuple[int, ...]], bits: list[int]) -> list[_Header]:
    version = rd.u8()
    if version not in READ_VERSIONS:
        raise corrupt("unknown coder version")
    if int.from_bytes(rd.take(4), "little") != _tensor_list_crc(shapes, list(bits)):
        raise ArchiveError("weight data was coded for different tensor shapes or bits")
    return [_read_header(rd, shape, b, version) for shape, b in zip(shapes, bits, strict=True)]


def _decode_stream(words: np.ndarray, heads: list[_Header], shapes) -> tuple[list[QuantizedTensor], list]:
    """The tensors from the ANS stream, and per tensor [side bits, payload bits]."""
    spent = [[0.0, 0.0] for _ in heads]
    try:
        coder = constriction.stream.stack.AnsCoder(words)
        out = [_decode_one(coder, h, s, acc) for h, s, acc in zip(heads, shapes, spent, strict=True)]
        exhausted = coder.is_empty()
    except ArchiveError:
        raise
    except Exception as exc:  # constriction reports bad streams as ValueError, KeyError, ...
        raise corrupt(str(exc)) from None
    if not exhausted:
        raise corrupt("entropy decoder not exhausted")
    return out, spent


def decode_tensors_with_report(
    data: bytes, shapes: list[tuple[int, ...]], bits: list[int], names: list[str] | None = None
) -> tuple[list[QuantizedTensor], CodingReport]:
    """decode_tensors, plus where the blob's bytes went as measured while decoding it."""
    if len(shapes) != len(bits):
        raise ValueError("shapes and bits must have the same length")
    for b in bits:
        check_bits(b)
    shapes = [tuple(int(d) for d in shape) for shape in shapes]
    rd = Reader(data)
    heads = _read_headers(rd, shapes, bits)
    nwords = rd.uvarint((len(rd.data) - rd.pos) // 4)
    words = rd.array("<u4", nwords).astype(np.uint32)
    if rd.pos != len(rd.data):
        raise ArchiveError(f"weight data has {len(rd.data) - rd.pos} unexpected trailing bytes")
    out, spent = _decode_stream(words, heads, shapes)
    names = names if names is not None else [""] * len(out)
    reports = [
        TensorCodingReport(q.shape, q.bits, h.model.name, h.header_bytes, side, pay, _entropy_bits(q), n)
        for q, h, (side, pay), n in zip(out, heads, spent, names, strict=True)
    ]
    return out, CodingReport(reports, len(data))


def _entropy_bits(q: QuantizedTensor) -> float:
    """numel x the empirical order-0 entropy of the residuals (symbol - zero point)."""
    if q.numel == 0:
        return 0.0
    zp = np.asarray(q.zero_point, np.int64)
    r = np.asarray(q.symbols, np.int64).reshape(q.channels, -1) - zp[:, None]
    used = np.unique(r, return_counts=True)[1].astype(np.float64)
    return float(-(used * np.log2(used / r.size)).sum())
