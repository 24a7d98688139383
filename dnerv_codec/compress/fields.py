"""Header fields described as data: a table of Field rows, written and read by one routine each.

A field is a scalar or, with `count`, an array; its format is "varint" (unsigned LEB128), "zigzag"
(a signed varint: 0, -1, 1, -2 .. as 0, 1, 2, 3 ..) or a numpy dtype ("u1", "<u2", "<f4"). Its
`limit`, `count` and `when` are functions of the values before it (and of the context the caller
puts in the same dict), so one field's legal range can follow from an earlier one. Reading checks
every limit and raises ArchiveError; writing trusts the encoder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from ..errors import ArchiveError

Values = dict  # field name (and context name) -> value


@dataclass(frozen=True)
class Field:
    name: str
    fmt: str
    limit: Callable[[Values], int] | None = None  # largest legal value (varints must have one)
    least: int | None = None  # smallest legal value of a scalar
    count: Callable[[Values], int] | None = None  # an array of this many values
    when: Callable[[Values], bool] | None = None  # present only where this holds


def corrupt(what: str) -> ArchiveError:
    return ArchiveError(f"weight data is corrupt ({what})")


def int_array_fields(
    prefix: str, min_fmt: str, limit: Callable[[Values], int], when=None
) -> tuple[Field, ...]:
    """An integer array coded in the ANS stream: its minimum, its span and, when the span is not 0,
    the center and code of the Laplace model of (values - minimum) over 0..span."""

    def spread(v: Values) -> bool:
        return (when is None or when(v)) and v[f"{prefix}_span"] > 0

    return (
        Field(f"{prefix}_min", min_fmt, limit=limit, when=when),
        Field(f"{prefix}_span", "varint", limit=lambda v: limit(v) - v[f"{prefix}_min"], when=when),
        Field(f"{prefix}_center", "varint", limit=lambda v: v[f"{prefix}_span"], when=spread),
        Field(f"{prefix}_code", "u1", when=spread),
    )


def write_fields(fields: Iterable[Field], values: Values) -> bytes:
    out = bytearray()
    for f in fields:
        if f.when is not None and not f.when(values):
            continue
        value = values[f.name]
        if f.count is not None:
            out += np.asarray(value).astype(f.fmt).tobytes()
        elif f.fmt == "varint":
            out += uvarint(value)
        elif f.fmt == "zigzag":
            out += zigzag(value)
        else:
            out += np.array(value, dtype=f.fmt).tobytes()
    return bytes(out)


def read_fields(rd: Reader, fields: Iterable[Field], values: Values) -> None:
    """Read the present fields into `values` (which holds the context), checking every limit."""
    for f in fields:
        if f.when is None or f.when(values):
            values[f.name] = (
                _read_array(rd, f, values) if f.count is not None else _read_scalar(rd, f, values)
            )


def _read_array(rd: Reader, f: Field, values: Values) -> np.ndarray:
    array = rd.array(f.fmt, f.count(values))
    if f.limit is not None and array.size and array.max() > f.limit(values):
        raise corrupt(f"{f.name} out of range")
    return array


def _read_scalar(rd: Reader, f: Field, values: Values) -> int:
    if f.fmt == "varint":
        value = rd.uvarint(f.limit(values))
    elif f.fmt == "zigzag":
        value = rd.zigzag(f.limit(values))
    else:
        value = int(rd.array(f.fmt, 1)[0])
        if f.limit is not None and value > f.limit(values):
            raise corrupt(f"field value {value} exceeds {f.limit(values)}")
    if f.least is not None and value < f.least:
        raise corrupt(f"{f.name} {value} is below {f.least}")
    return value


def uvarint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if not value:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def zigzag(value: int) -> bytes:
    return uvarint(2 * value if value >= 0 else -2 * value - 1)


class Reader:
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
                    raise corrupt(f"field value {value} exceeds {limit}")
                return value
        raise corrupt("overlong varint")

    def zigzag(self, limit: int) -> int:
        z = self.uvarint(2 * limit)
        return z // 2 if z % 2 == 0 else -(z + 1) // 2

    def array(self, dtype: str, count: int) -> np.ndarray:
        dt = np.dtype(dtype)
        return np.frombuffer(self.take(count * dt.itemsize), dtype=dt).copy()
