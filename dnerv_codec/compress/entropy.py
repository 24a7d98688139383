"""Lossless entropy coding of quantized tensors (the only module that imports constriction).

Each tensor codes its residuals r = symbol - zero_point[channel] (= round(w / scale): small and
peaked at 0) with one i.i.d. model, picked per tensor by estimated size including its parameters
(the integer models are defined in entropy_models.py):

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
    per tensor, a header:
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
from . import entropy_models as em
from .quantize import QuantizedTensor, _per_channel, check_bits, num_channels

BLOB_VERSION = 2
READ_VERSIONS = (1, 2)
EMPTY, CONSTANT, LAPLACE, LAPLACE_RANGE, HISTOGRAM, LAPLACE_CHANNEL = range(6)
MODEL_NAMES = ("empty", "constant", "laplace", "laplace-range", "histogram", "laplace-channel")
SCALE_BF16, SCALE_F32, SCALE_CODED = range(3)
MAX_HIST_BINS = 1024  # the encoder's DP is O(bins * 64**2); wider ranges use Laplace models


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


def _categorical(weights: np.ndarray):
    # explicit perfect=False on both sides: the default changed between constriction versions
    return constriction.stream.model.Categorical(weights, perfect=False)


_DELTA_MODEL = _categorical(em.DELTA_WEIGHTS)


def _tensor_list_crc(shapes: list[tuple[int, ...]], bits: list[int]) -> int:
    """crc32 of the tensor list a blob was coded for: per tensor varint bits, ndim, dims."""
    desc = bytearray()
    for shape, b in zip(shapes, bits, strict=True):
        desc += _uvarint(b) + _uvarint(len(shape)) + b"".join(_uvarint(int(d)) for d in shape)
    return zlib.crc32(desc)


# ---- encoder ----------------------------------------------------------------------------------


@dataclass
class _Plan:
    """The encoder's decisions for one tensor; streams are (is_side, symbols, model) in decode order."""

    header: bytes
    model: int
    streams: list[tuple[bool, np.ndarray, object]]
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


def _plan_scales(scale: np.ndarray) -> tuple[int, bytes, list]:
    """(scale mode, header bytes, ANS streams) for the per-channel scales."""
    u = scale.view(np.uint32)
    if (u & 0xFFFF).any():
        return SCALE_F32, scale.astype("<f4").tobytes(), []
    hi = (u >> 16).astype(np.int64)
    raw = (SCALE_BF16, hi.astype("<u2").tobytes(), [])
    if hi.size < 4:  # coding cannot beat 2 bytes per channel
        return raw
    umin, span = int(hi.min()), int(hi.max() - hi.min())
    params = umin.to_bytes(2, "little") + _uvarint(span)
    if span == 0:
        return SCALE_CODED, params, []
    bits, center, code = em.fit_laplace(np.bincount(hi - umin).astype(np.float64), 0, span + 1)
    params += _uvarint(center) + bytes([code])
    if len(params) + bits / 8 >= len(raw[1]):
        return raw
    model = _categorical(em.laplace_weights(center, code, span + 1))
    return SCALE_CODED, params, [(True, (hi - umin).astype(np.int32), model)]


def _plan_ints(values: np.ndarray) -> tuple[bytes, list, float]:
    """(header bytes, ANS streams, estimated ANS bits) for small non-negative integers: varint vmin,
    varint span, and when span > 0 a Laplace (center, code) over vmin..vmax in the stream."""
    vmin, span = int(values.min()), int(values.max() - values.min())
    params = _uvarint(vmin) + _uvarint(span)
    if span == 0:
        return params, [], 0.0
    bits, center, code = em.fit_laplace(np.bincount(values - vmin).astype(np.float64), 0, span + 1)
    model = _categorical(em.laplace_weights(center, code, span + 1))
    return params + _uvarint(center) + bytes([code]), [(True, (values - vmin).astype(np.int32), model)], bits


def _plan_per_channel(r2: np.ndarray, rmin: int, bins: int) -> tuple[float, bytes, list]:
    """(estimated bits incl. coded parameters, parameter bytes, streams) of one Laplace per channel
    over rmin..rmax; the first streams code the centers and codes, then one stream per channel."""
    offsets = (r2 - rmin) + bins * np.arange(len(r2))[:, None]
    hist = np.bincount(offsets.reshape(-1), minlength=bins * len(r2)).reshape(len(r2), bins)
    row_bits, centers, codes = em.fit_laplace_rows(hist.astype(np.float64))
    bits = float(row_bits.sum())
    params = _zigzag(rmin) + _uvarint(bins - 1)
    streams = []
    for values in (centers, codes):
        head, sub, b = _plan_ints(values)
        params, streams, bits = params + head, streams + sub, bits + b
    for row, center, code in zip(r2, centers, codes, strict=True):
        model = _categorical(em.laplace_weights(int(center), int(code), bins))
        streams.append((False, (row - rmin).astype(np.int32), model))
    return bits, params, streams


def _plan_residuals(r2: np.ndarray, top: int, force: int | None = None) -> tuple[int, bytes, list, float]:
    """(model, parameter bytes, ANS streams, empirical entropy bits) for residuals r2 [channels, per]:
    the model of fewest estimated bits including its parameters (or model `force` where it applies)."""
    r = r2.reshape(-1)
    if r.size == 0:
        return EMPTY, b"", [], 0.0
    rmin, rmax = int(r.min()), int(r.max())
    if rmin == rmax:
        return CONSTANT, _zigzag(rmin), [], 0.0
    hist = np.bincount(r - rmin).astype(np.float64)
    used = hist[hist > 0]
    entropy = float(-(used * np.log2(used / r.size)).sum())
    bins = rmax - rmin + 1
    options = []
    bits, center, code = em.fit_laplace(hist, rmin + top, 2 * top + 1)
    options.append((bits, LAPLACE, _zigzag(center - top) + bytes([code]), (center, code)))
    bits, center, code = em.fit_laplace(hist, 0, bins)
    params = _zigzag(rmin) + _uvarint(bins - 1) + _uvarint(center) + bytes([code])
    options.append((bits, LAPLACE_RANGE, params, (center, code)))
    if bins <= min(MAX_HIST_BINS, r.size) or force == HISTOGRAM:  # a sparse one cannot pay for its levels
        bits, levels = em.fit_histogram(hist)
        options.append((bits, HISTOGRAM, _zigzag(rmin) + _uvarint(bins - 1), levels))
    if len(r2) > 1 and (bins <= MAX_HIST_BINS or force == LAPLACE_CHANNEL):  # 2 parameters per channel
        bits, params, streams = _plan_per_channel(r2, rmin, bins)
        options.append((bits, LAPLACE_CHANNEL, params, streams))
    forced = [o for o in options if o[1] == force]
    _, model, params, extra = min(forced or options, key=lambda o: o[0] + 8 * len(o[2]))
    if model == LAPLACE_CHANNEL:
        streams = extra
    elif model == LAPLACE:
        streams = [(False, (r + top).astype(np.int32), _categorical(em.laplace_weights(*extra, 2 * top + 1)))]
    elif model == LAPLACE_RANGE:
        streams = [(False, (r - rmin).astype(np.int32), _categorical(em.laplace_weights(*extra, bins)))]
    else:
        deltas = np.diff(extra, prepend=0) + em.DELTA_CENTER
        streams = [
            (True, deltas.astype(np.int32), _DELTA_MODEL),
            (False, (r - rmin).astype(np.int32), _categorical(em.HIST_WEIGHTS[extra])),
        ]
    return model, params, streams, entropy


def _plan(q: QuantizedTensor, force: int | None = None) -> _Plan:
    _check(q)
    zp = np.asarray(q.zero_point, np.int64)
    r = np.asarray(q.symbols, np.int64).reshape(q.channels, _per_channel(q.shape)) - zp[:, None]
    scale_mode, scale_bytes, scale_streams = _plan_scales(np.asarray(q.scale))
    explicit = not np.array_equal(_implied_zero_point(r), zp)
    zp_bytes = zp.astype("u1" if q.bits <= 8 else "<u2").tobytes() if explicit else b""
    model, params, streams, entropy = _plan_residuals(r, (1 << q.bits) - 1, force)
    flags = bytes([model | scale_mode << 3 | explicit << 5])
    return _Plan(flags + scale_bytes + zp_bytes + params, model, scale_streams + streams, entropy)


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
    parts += [plan.header for plan in plans] + [_uvarint(len(words)), words.tobytes()]
    blob = b"".join(parts)
    names = names if names is not None else [""] * len(tensors)
    reports = [
        TensorCodingReport(
            tuple(q.shape), q.bits, MODEL_NAMES[p.model], len(p.header), side, pay, p.entropy_bits, n
        )
        for q, p, (side, pay), n in zip(tensors, plans, spent, names, strict=True)
    ]
    return blob, CodingReport(reports, len(blob))


def encode_tensors(tensors: list[QuantizedTensor]) -> bytes:
    """Code the tensors into one blob (see the module docstring for its layout)."""
    return encode_tensors_with_report(tensors)[0]


# ---- decoder ----------------------------------------------------------------------------------


@dataclass
class _Header:
    model: int
    scale_mode: int
    scale: np.ndarray | None  # raw scales; None when coded
    umin: int = 0
    uspan: int = 0
    ucenter: int = 0
    ucode: int = 0
    zero_point: np.ndarray | None = None
    lo: int = 0  # the residual of coded symbol 0
    size: int = 1  # alphabet size of the residual model
    center: int = 0
    code: int = 0
    ints: list[tuple[int, int, int, int]] = field(default_factory=list)  # model 5: vmin, span, center, code
    header_bytes: int = 0


def _corrupt(what: str) -> ArchiveError:
    return ArchiveError(f"weight data is corrupt ({what})")


def _read_header(rd: _Reader, shape: tuple[int, ...], bits: int, version: int) -> _Header:
    start = rd.pos
    flags = rd.u8()
    model, scale_mode, explicit = flags & 7, flags >> 3 & 3, flags >> 5 & 1
    last = HISTOGRAM if version == 1 else LAPLACE_CHANNEL
    if flags >> 6 or model > last or scale_mode > SCALE_CODED:
        raise _corrupt("unknown tensor flags")
    channels, top = num_channels(shape), (1 << bits) - 1
    if (model == EMPTY) != (int(np.prod(shape, dtype=np.int64)) == 0):
        raise _corrupt(f"model does not fit a tensor of shape {shape}")
    head = _Header(model, scale_mode, None)
    if scale_mode == SCALE_F32:
        head.scale = rd.array("<f4", channels).astype(np.float32)
    elif scale_mode == SCALE_BF16:
        head.scale = _bf16(rd.array("<u2", channels))
    else:
        head.umin = int.from_bytes(rd.take(2), "little")
        head.uspan = rd.uvarint(0xFFFF - head.umin)
        if head.uspan:
            head.ucenter, head.ucode = rd.uvarint(head.uspan), rd.u8()
    if head.scale is not None and not (np.isfinite(head.scale) & (head.scale > 0)).all():
        raise _corrupt("a scale is not a positive finite number")
    if explicit:
        head.zero_point = rd.array("u1" if bits <= 8 else "<u2", channels).astype(np.int64)
        if head.zero_point.size and head.zero_point.max() > top:
            raise _corrupt("zero point out of range")
    if model == CONSTANT:
        head.lo = rd.zigzag(top)
    elif model == LAPLACE:
        head.lo, head.size = -top, 2 * top + 1
        head.center, head.code = rd.zigzag(top) + top, rd.u8()
    elif model in (LAPLACE_RANGE, HISTOGRAM, LAPLACE_CHANNEL):
        head.lo = rd.zigzag(top)
        head.size = rd.uvarint(top - head.lo) + 1
        if head.size < 2:
            raise _corrupt("empty residual range")
        if model == LAPLACE_RANGE:
            head.center, head.code = rd.uvarint(head.size - 1), rd.u8()
        if model == LAPLACE_CHANNEL:
            for limit in (head.size - 1, em.LAPLACE_CODES - 1):  # centers, then codes
                vmin = rd.uvarint(limit)
                span = rd.uvarint(limit - vmin)
                center, code = (rd.uvarint(span), rd.u8()) if span else (0, 0)
                head.ints.append((vmin, span, center, code))
    head.header_bytes = rd.pos - start
    return head


def _decode_ints(coder, spec: tuple[int, int, int, int], count: int) -> np.ndarray:
    vmin, span, center, code = spec
    out = np.full(count, vmin, np.int64)
    if span:
        out += coder.decode(_categorical(em.laplace_weights(center, code, span + 1)), count)
    return out


def _bf16(hi: np.ndarray) -> np.ndarray:
    return (hi.astype(np.uint32) << 16).view(np.float32)


def _decode_one(coder, head: _Header, shape: tuple[int, ...], bits: int, spent=None) -> QuantizedTensor:
    """Decode one tensor; `spent`, a list, receives [side bits, payload bits] read from the stream."""
    channels, top = num_channels(shape), (1 << bits) - 1
    numel = int(np.prod(shape, dtype=np.int64))
    before = coder.num_valid_bits()
    scale = head.scale
    if scale is None:
        u = np.full(channels, head.umin, np.int64)
        if head.uspan:
            model = _categorical(em.laplace_weights(head.ucenter, head.ucode, head.uspan + 1))
            u += coder.decode(model, channels)
        scale = _bf16(u)
        if not (np.isfinite(scale) & (scale > 0)).all():
            raise _corrupt("a scale is not a positive finite number")
    per = _per_channel(shape)
    if head.model == HISTOGRAM:
        levels = np.cumsum(coder.decode(_DELTA_MODEL, head.size).astype(np.int64) - em.DELTA_CENTER)
        if levels.min() < 0 or levels.max() >= em.HIST_LEVELS:
            raise _corrupt("histogram level out of range")
        middle = coder.num_valid_bits()
        r = coder.decode(_categorical(em.HIST_WEIGHTS[levels]), numel)
    elif head.model == LAPLACE_CHANNEL:
        centers, codes = (_decode_ints(coder, spec, channels) for spec in head.ints)
        if centers.max() >= head.size or codes.max() >= em.LAPLACE_CODES:
            raise _corrupt("channel model parameter out of range")
        middle = coder.num_valid_bits()
        rows = [
            coder.decode(_categorical(em.laplace_weights(int(c), int(k), head.size)), per)
            for c, k in zip(centers, codes, strict=True)
        ]
        r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    elif head.model in (LAPLACE, LAPLACE_RANGE):
        middle = coder.num_valid_bits()
        r = coder.decode(_categorical(em.laplace_weights(head.center, head.code, head.size)), numel)
    else:
        middle = coder.num_valid_bits()
        r = np.zeros(numel, np.int64)
    if spent is not None:
        spent[:] = [before - middle, middle - coder.num_valid_bits()]
    r = (r.astype(np.int64) + head.lo).reshape(channels, per)
    zp = head.zero_point if head.zero_point is not None else _implied_zero_point(r)
    q = r + zp[:, None]
    if q.size and (q.min() < 0 or q.max() > top):
        raise _corrupt("decoded level out of range")
    return QuantizedTensor(shape, bits, q.reshape(-1).astype(np.int32), scale, zp.astype(np.int32))


def decode_tensors(data: bytes, shapes: list[tuple[int, ...]], bits: list[int]) -> list[QuantizedTensor]:
    """Inverse of encode_tensors, given each tensor's shape and bits; ArchiveError if corrupt."""
    return decode_tensors_with_report(data, shapes, bits)[0]


def decode_tensors_with_report(
    data: bytes, shapes: list[tuple[int, ...]], bits: list[int], names: list[str] | None = None
) -> tuple[list[QuantizedTensor], CodingReport]:
    """decode_tensors, plus where the blob's bytes went as measured while decoding it."""
    if len(shapes) != len(bits):
        raise ValueError("shapes and bits must have the same length")
    for b in bits:
        check_bits(b)
    shapes = [tuple(int(d) for d in shape) for shape in shapes]
    rd = _Reader(data)
    version = rd.u8()
    if version not in READ_VERSIONS:
        raise _corrupt("unknown coder version")
    if int.from_bytes(rd.take(4), "little") != _tensor_list_crc(shapes, list(bits)):
        raise ArchiveError("weight data was coded for different tensor shapes or bits")
    heads = [_read_header(rd, shape, b, version) for shape, b in zip(shapes, bits, strict=True)]
    nwords = rd.uvarint((len(rd.data) - rd.pos) // 4)
    words = rd.array("<u4", nwords).astype(np.uint32)
    if rd.pos != len(rd.data):
        raise ArchiveError(f"weight data has {len(rd.data) - rd.pos} unexpected trailing bytes")
    try:
        coder = constriction.stream.stack.AnsCoder(words)
        spent = [[0.0, 0.0] for _ in heads]
        out = [
            _decode_one(coder, h, s, b, acc) for h, s, b, acc in zip(heads, shapes, bits, spent, strict=True)
        ]
        exhausted = coder.is_empty()
    except ArchiveError:
        raise
    except Exception as exc:  # constriction reports bad streams as ValueError, KeyError, ...
        raise _corrupt(str(exc)) from None
    if not exhausted:
        raise _corrupt("entropy decoder not exhausted")
    names = names if names is not None else [""] * len(out)
    reports = [
        TensorCodingReport(
            q.shape, q.bits, MODEL_NAMES[h.model], h.header_bytes, side, pay, _entropy_bits(q), n
        )
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


# ---- plain-byte helpers ---------------------------------------------------------------------


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _zigzag(value: int) -> bytes:
    return _uvarint(2 * value if value >= 0 else -2 * value - 1)


class _Reader:
    """Bounds-checked cursor over the blob; every failure is an ArchiveError."""

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise ArchiveError("weight data is truncated")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def uvarint(self, limit: int) -> int:
        value = shift = 0
        for _ in range(10):
            byte = self.u8()
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                if value > limit:
                    raise ArchiveError(f"weight data is corrupt (field value {value} exceeds {limit})")
                return value
        raise ArchiveError("weight data is corrupt (overlong varint)")

    def zigzag(self, limit: int) -> int:
        z = self.uvarint(2 * limit)
        return z // 2 if z % 2 == 0 else -(z + 1) // 2

    def array(self, dtype: str, count: int) -> np.ndarray:
        dt = np.dtype(dtype)
        return np.frombuffer(self.take(count * dt.itemsize), dtype=dt).copy()
