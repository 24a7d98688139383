"""Write an archive: header, keyframe index, keyframes, weights; atomically (see container)."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from .container import write_container
from .format import FORMAT_VERSION, MAGIC, ArchiveHeader


def keyframe_index(blobs: list[bytes]) -> bytes:
    """KIDX: (u32 length, u32 crc32) per keyframe, little-endian."""
    table = np.array([(len(b), zlib.crc32(b)) for b in blobs], dtype="<u4").reshape(-1, 2)
    return table.tobytes()


def write_archive(
    path: Path, header: ArchiveHeader, keyframes: list[bytes], weights: bytes, force: bool = False
) -> int:
    """Write the archive to `path`; returns its size in bytes."""
    sections = [
        ("HEAD", header.to_bytes()),
        ("KIDX", keyframe_index(keyframes)),
        ("KEYS", b"".join(keyframes)),
        ("WGTS", weights),
    ]
    return write_container(path, MAGIC, FORMAT_VERSION, sections, force=force)
