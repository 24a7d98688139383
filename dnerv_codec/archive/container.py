"""A versioned, self-describing file of named sections (used for archives and checkpoints).

Layout, all integers little-endian (see docs/format.md, "Container"):

    offset  size    field
    0       4       magic, chosen by the caller (e.g. b"DNRV")
    4       2       format version, u16
    6       2       section count N, u16
    8       24 * N  section table, one entry per section:
                        tag     4 bytes, ASCII letters/digits/space/underscore
                        offset  u64, from the start of the file
                        length  u64
                        crc32   u32 of the section payload (zlib.crc32)
    8+24N   4       crc32 of bytes 0 .. 8+24N (magic, version, count, table)
    12+24N  ...     section payloads, in table order, back to back

The reader checks magic, version, header CRC, that every section lies inside the file in table
order without overlap, and that the file ends with the last section; each section's CRC is checked
when it is read whole. Writing is atomic and durable (atomic.atomic_path: a temporary file in the
same folder, fsync, rename).
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Container
from pathlib import Path

from ..atomic import atomic_path
from ..errors import ArchiveError, OutputError, UnsupportedVersionError

_HEAD = struct.Struct("<4sHH")
_ENTRY = struct.Struct("<4sQQI")
_CRC = struct.Struct("<I")
_TAG_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_ ")


def _check_tag(tag: str) -> bytes:
    if not isinstance(tag, str) or len(tag) != 4 or not set(tag) <= _TAG_CHARS:
        raise ValueError(f"section tag must be 4 ASCII letters, digits, '_' or ' ', got {tag!r}")
    return tag.encode("ascii")


def _header(magic: bytes, version: int, sections: list[tuple[str, bytes]]) -> bytes:
    """Magic, version, count, table and header CRC for these payloads."""
    offset = _HEAD.size + _ENTRY.size * len(sections) + _CRC.size
    table = [_HEAD.pack(magic, version, len(sections))]
    for tag, payload in sections:
        table.append(_ENTRY.pack(_check_tag(tag), offset, len(payload), zlib.crc32(payload)))
        offset += len(payload)
    head = b"".join(table)
    return head + _CRC.pack(zlib.crc32(head))


def write_container(
    path: Path, magic: bytes, version: int, sections: list[tuple[str, bytes]], force: bool = False
) -> int:
    """Atomically write the sections to `path`; returns the file size in bytes.

    OutputError if the file exists and force is False, or if it cannot be written; no temporary
    file is left behind on any failure (KeyboardInterrupt included).
    """
    path = Path(path)
    if not isinstance(magic, bytes) or len(magic) != 4:
        raise ValueError("magic must be 4 bytes")
    if not 0 <= version <= 0xFFFF or len(sections) > 0xFFFF:
        raise ValueError("version and section count must fit in 16 bits")
    tags = [tag for tag, _ in sections]
    if len(set(tags)) != len(tags):
        raise ValueError(f"section tags must be unique, got {tags}")
    # zero-copy byte views: checkpoint payloads can be large
    payloads = [memoryview(payload).cast("B") for _, payload in sections]
    head = _header(magic, version, list(zip(tags, payloads, strict=True)))
    _check_target(path, force)
    _write_atomic(path, [head, *payloads])
    return len(head) + sum(len(p) for p in payloads)


def _check_target(path: Path, force: bool) -> None:
    if path.is_dir():
        raise OutputError(f"{path} is a directory")
    if path.exists() and not force:
        raise OutputError(f"{path} already exists; use --force to overwrite it")
    if not path.parent.is_dir():
        raise OutputError(f"cannot write {path}: folder {path.parent} does not exist")


def _write_atomic(path: Path, chunks: list[bytes | memoryview]) -> None:
    """The chunks, back to back, into `path` atomically and durably (dnerv_codec.atomic)."""
    try:
        with atomic_path(path, durable=True) as tmp, open(tmp, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


def _describe(versions: Container[int]) -> str:
    """'version 1' / 'versions 1, 2' for the error message."""
    try:
        known = sorted(versions)  # type: ignore[call-overload]
    except TypeError:  # a Container need not be iterable
        return "other versions"
    return ("version " if len(known) == 1 else "versions ") + ", ".join(str(v) for v in known)


class ContainerReader:
    """Reads a container's table on construction; sections are read on demand.

    Outside a `with` block every read opens and closes the file, so a reader can be pickled into
    DataLoader workers; inside one, the file stays open (per process) for fast random access.
    Attributes: version, file_size, header_bytes, sections {tag: (offset, length, crc32)}.
    """

    def __init__(self, path: Path, magic: bytes, supported_versions: Container[int]) -> None:
        self.path = Path(path)
        self._file = None
        self._pid = None
        try:
            with open(self.path, "rb") as f:
                self.file_size = os.fstat(f.fileno()).st_size
                self._parse(f, magic, supported_versions)
        except OSError as exc:
            raise ArchiveError(f"cannot read {self.path}: {exc.strerror or exc}") from None

    def _parse(self, f, magic: bytes, supported_versions: Container[int]) -> None:
        name = self.path.name
        head = f.read(_HEAD.size)
        if head[:4] != magic[: len(head[:4])]:
            raise ArchiveError(f"{name} is not a dnerv archive")
        if len(head) < _HEAD.size:
            raise ArchiveError(f"{name} is truncated")
        _, version, count = _HEAD.unpack(head)
        if version not in supported_versions:
            raise UnsupportedVersionError(
                f"unsupported archive format version {version} "
                f"(this dnerv reads {_describe(supported_versions)})"
            )
        table = f.read(_ENTRY.size * count + _CRC.size)
        if len(table) < _ENTRY.size * count + _CRC.size:
            raise ArchiveError(f"{name} is truncated")
        (crc,) = _CRC.unpack(table[-_CRC.size :])
        if zlib.crc32(head + table[: -_CRC.size]) != crc:
            raise ArchiveError(f"{name} is corrupt (header checksum mismatch)")
        self.version = version
        self.header_bytes = _HEAD.size + len(table)
        self.sections: dict[str, tuple[int, int, int]] = {}
        end = self.header_bytes
        for i in range(count):
            raw_tag, offset, length, sec_crc = _ENTRY.unpack_from(table, i * _ENTRY.size)
            tag = raw_tag.decode("ascii", errors="replace")
            if tag in self.sections or offset < end:
                raise ArchiveError(f"{name} is corrupt (bad section table)")
            if offset + length > self.file_size:
                raise ArchiveError(f"{name} is truncated (section {tag!r} runs past the end)")
            self.sections[tag] = (offset, length, sec_crc)
            end = offset + length
        if end != self.file_size:
            raise ArchiveError(f"{name} is corrupt ({self.file_size - end} unexpected trailing bytes)")

    # ---- reading ------------------------------------------------------------------------------

    def __enter__(self) -> ContainerReader:
        self._handle()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = self._pid = None

    def __getstate__(self) -> dict:
        # an open file cannot cross a process boundary: workers reopen it on first read
        state = self.__dict__.copy()
        state["_file"] = state["_pid"] = None
        return state

    def _handle(self):
        """The open file of this process, (re)opened if needed; ArchiveError if it changed size."""
        if self._file is None or self._pid != os.getpid():
            try:
                f = open(self.path, "rb")  # noqa: SIM115 - kept open until close()
            except OSError as exc:
                raise ArchiveError(f"cannot read {self.path}: {exc.strerror or exc}") from None
            if os.fstat(f.fileno()).st_size != self.file_size:
                f.close()
                raise ArchiveError(f"{self.path.name} changed while it was being read")
            self._file, self._pid = f, os.getpid()
        return self._file

    def _read_at(self, offset: int, length: int) -> bytes:
        held = self._file is not None and self._pid == os.getpid()
        f = self._handle()
        try:
            f.seek(offset)
            data = f.read(length)
        except OSError as exc:
            raise ArchiveError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        finally:
            if not held:
                self.close()
        if len(data) != length:
            raise ArchiveError(f"{self.path.name} is truncated")
        return data

    def _entry(self, tag: str) -> tuple[int, int, int]:
        try:
            return self.sections[tag]
        except KeyError:
            raise ArchiveError(f"{self.path.name} has no {tag!r} section") from None

    def read(self, tag: str) -> bytes:
        """The whole payload of a section, CRC-checked."""
        offset, length, crc = self._entry(tag)
        data = self._read_at(offset, length)
        if zlib.crc32(data) != crc:
            raise ArchiveError(f"{self.path.name} is corrupt (checksum mismatch in section {tag!r})")
        return data

    def read_range(self, tag: str, start: int, length: int) -> bytes:
        """Bytes start .. start+length of a section, without a CRC check (random access)."""
        offset, size, _ = self._entry(tag)
        if start < 0 or length < 0 or start + length > size:
            raise ArchiveError(
                f"{self.path.name}: range {start}+{length} is outside section {tag!r} of {size} bytes"
            )
        return self._read_at(offset + start, length)
