"""The byte format of one coded image.

    u8      version (1)
    u8      flags: bit 0 = chroma 4:2:0 (else 4:4:4); other bits 0
    u16     height - 1, u16 width - 1 (so 1..65536 each; little-endian)
    u8      quality 0..100
    6 x i8  AC reconstruction offsets in 1/64 step: Y (|l| = 1, |l| >= 2), Cb (...), Cr (...)
    u16     deblocking strengths 0..15 (deblock.py): Y in bits 0-3, Cb in 4-7, Cr in 8-11
    ...     the range coder's u32 words, little-endian (constriction queue.RangeEncoder), to the end
    u32     crc32 of every byte before it

The coded symbols, in stream order: for Y, Cb, Cr in turn the nonzero counts, AC tokens and DC
residual tokens (coder.py), then the signs and raw bits of the whole image. Everything else is
implied by the version: the colour matrix (BT.709 full range), padding (to multiples of 8, or 16
for 4:2:0, by edge replication), steps (quantize.py), contexts and priors (coder.py, models.py).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from ..errors import ArchiveError, UnsupportedVersionError

VERSION = 1
FLAG_420 = 1
_HEAD = struct.Struct("<BBHHB6bH")
MAX_PIXELS = 1 << 26  # a decoder refuses larger pictures (memory bound on hostile headers)


@dataclass(frozen=True)
class Header:
    height: int
    width: int
    quality: int
    subsampled: bool  # 4:2:0 chroma
    offsets: tuple[tuple[int, int], ...]  # per plane (|l| = 1, |l| >= 2)
    deblock: tuple[int, int, int]  # per plane strength 0..15


def pack(header: Header, words: np.ndarray) -> bytes:
    flat = [int(v) for pair in header.offsets for v in pair]
    head = _HEAD.pack(
        VERSION,
        FLAG_420 if header.subsampled else 0,
        header.height - 1,
        header.width - 1,
        header.quality,
        *flat,
        header.deblock[0] | header.deblock[1] << 4 | header.deblock[2] << 8,
    )
    body = head + np.asarray(words, "<u4").tobytes()
    return body + struct.pack("<I", zlib.crc32(body))


def unpack(data: bytes) -> tuple[Header, np.ndarray]:
    """Header and range-coder words of a coded image; ArchiveError on anything malformed."""
    data = bytes(data)
    if len(data) < _HEAD.size + 4:
        raise ArchiveError(f"coded image truncated ({len(data)} bytes)")
    if data[0] != VERSION:
        raise UnsupportedVersionError(f"coded image version {data[0]}, this build reads {VERSION}")
    body, (crc,) = data[:-4], struct.unpack("<I", data[-4:])
    if zlib.crc32(body) != crc:
        raise ArchiveError("coded image corrupt (checksum mismatch)")
    version, flags, h1, w1, quality, *off, strengths = _HEAD.unpack_from(body)
    if flags & ~FLAG_420 or quality > 100 or strengths >> 12 or (len(body) - _HEAD.size) % 4:
        raise ArchiveError("coded image header is invalid")
    if (h1 + 1) * (w1 + 1) > MAX_PIXELS:
        raise ArchiveError(f"coded image too large ({h1 + 1}x{w1 + 1})")
    offsets = tuple((off[2 * i], off[2 * i + 1]) for i in range(3))
    words = np.frombuffer(body, "<u4", offset=_HEAD.size).astype(np.uint32)
    if not len(words):  # every coded image has at least one word; an empty one decoded to a picture
        raise ArchiveError("coded image truncated (no payload after the header)")
    deblock = (strengths & 15, strengths >> 4 & 15, strengths >> 8)
    return Header(h1 + 1, w1 + 1, quality, bool(flags & FLAG_420), offsets, deblock), words
