"""Write an archive: header, keyframe index, keyframes, weights; atomically (see container)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .container import write_container
from .format import FORMAT_VERSION, MAGIC, ArchiveHeader


@dataclass(frozen=True)
class ArchiveSize:
    """Bytes of a written archive: the whole file and each section's payload, by tag."""

    total: int
    sections: dict[str, int]

    @property
    def container(self) -> int:
        """The container's own bytes: magic, version and section table."""
        return self.total - sum(self.sections.values())


def keyframe_index(blobs: list[bytes]) -> bytes:
    """KIDX: (u32 length, u32 crc32) per keyframe, little-endian."""
    table = np.array([(len(b), zlib.crc32(b)) for b in blobs], dtype="<u4").reshape(-1, 2)
    return table.tobytes()


def write_archive(
    path: Path, header: ArchiveHeader, keyframes: list[bytes], weights: bytes, force: bool = False
) -> ArchiveSize:
    """Write the archive to `path`; returns its size, whole and by section."""
    sections = [
        ("HEAD", header.to_bytes()),
        ("KIDX", keyframe_index(keyframes)),
        ("KEYS", b"".join(keyframes)),
        ("WGTS", weights),
    ]
    total = write_container(path, MAGIC, FORMAT_VERSION, sections, force=force)
    return ArchiveSize(total, {tag: len(payload) for tag, payload in sections})
