"""Read an archive with random access: the header, the keyframe index and the weights are small;
a keyframe's bytes are read only when a clip needs it, and checked against its own crc32."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from ..errors import ArchiveError, InputError
from .container import ContainerReader
from .format import MAGIC, READABLE_VERSIONS, SECTION_NAMES, ArchiveHeader


class ArchiveReader:
    """An open archive file. Cheap to create; re-create it in each worker process."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"no such archive: {self.path}")
        with self._open() as reader:
            missing = [tag for tag in SECTION_NAMES if tag not in reader.sections]
            if missing:
                raise ArchiveError(f"{self.path} lacks the {SECTION_NAMES[missing[0]]} section")
            self.version = reader.version
            self.file_size = reader.file_size
            self.section_bytes = {tag: reader.sections[tag][1] for tag in SECTION_NAMES}
            self.container_bytes = reader.file_size - sum(self.section_bytes.values())
            self.header = ArchiveHeader.from_bytes(reader.read("HEAD"))
            index = reader.read("KIDX")
        self.layout = self.header.layout()
        table = np.frombuffer(index, dtype="<u4")
        coded = len(self.layout.keyframes) if self.header.model.uses_keyframes else 0  # NeRV: none
        if table.size != 2 * coded:
            raise ArchiveError("keyframe index does not match the videos in the header")
        table = table.reshape(-1, 2).astype(np.int64)
        self._key_length, self._key_crc = table[:, 0], table[:, 1]
        self._key_offset = np.concatenate([[0], np.cumsum(self._key_length)[:-1]])
        if self._key_length.sum() != self.section_bytes["KEYS"]:
            raise ArchiveError("keyframe index does not match the keyframe section")

    def _open(self) -> ContainerReader:
        return ContainerReader(self.path, MAGIC, READABLE_VERSIONS)

    def keyframe_blobs(self, indices: list[int]) -> list[bytes]:
        """The coded bytes of the given global keyframes, each checked against its crc32."""
        out = []
        with self._open() as reader:
            for i in indices:
                blob = reader.read_range("KEYS", int(self._key_offset[i]), int(self._key_length[i]))
                if zlib.crc32(blob) != self._key_crc[i]:
                    raise ArchiveError(f"keyframe {i} is corrupt (checksum mismatch)")
                out.append(blob)
        return out

    def weights_blob(self) -> bytes:
        with self._open() as reader:
            return reader.read("WGTS")

    def verify(self) -> None:
        """Check every section's checksum (reads the whole file)."""
        with self._open() as reader:
            for tag in SECTION_NAMES:
                reader.read(tag)
