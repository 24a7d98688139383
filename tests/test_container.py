"""The sectioned container: round trip, validation of every header field, atomic writes."""

import os
import pickle
import struct
import zlib
from pathlib import Path

import pytest

from dnerv_codec.archive import container
from dnerv_codec.archive.container import ContainerReader, write_container
from dnerv_codec.errors import ArchiveError, OutputError, UnsupportedVersionError

MAGIC = b"TEST"
SECTIONS = [("HEAD", b'{"a": 1}'), ("EMPT", b""), ("DATA", bytes(range(256)) * 40), ("tail", b"xyz")]


@pytest.fixture
def written(tmp_path: Path) -> Path:
    path = tmp_path / "a.dnrv"
    size = write_container(path, MAGIC, 3, SECTIONS)
    assert size == path.stat().st_size
    return path


def _open(path: Path, versions=(3,)) -> ContainerReader:
    return ContainerReader(path, MAGIC, set(versions))


def test_roundtrip_and_layout(written: Path):
    reader = _open(written)
    assert reader.version == 3
    assert reader.file_size == written.stat().st_size
    assert reader.header_bytes == 8 + 24 * len(SECTIONS) + 4
    assert list(reader.sections) == [tag for tag, _ in SECTIONS]
    for tag, payload in SECTIONS:
        assert reader.read(tag) == payload
        offset, length, crc = reader.sections[tag]
        assert length == len(payload) and crc == zlib.crc32(payload)
    # the documented layout, byte for byte
    raw = written.read_bytes()
    assert raw[:4] == MAGIC and struct.unpack_from("<HH", raw, 4) == (3, len(SECTIONS))
    (head_crc,) = struct.unpack_from("<I", raw, reader.header_bytes - 4)
    assert head_crc == zlib.crc32(raw[: reader.header_bytes - 4])
    tag, offset, length, crc = struct.unpack_from("<4sQQI", raw, 8 + 24 * 2)
    assert (tag, raw[offset : offset + length]) == (b"DATA", SECTIONS[2][1])
    assert raw[reader.header_bytes :] == b"".join(p for _, p in SECTIONS)


def test_context_manager_and_pickling(written: Path):
    with _open(written) as reader:
        assert reader.read_range("DATA", 10, 5) == bytes(range(10, 15))
        assert reader.read("tail") == b"xyz"
        clone = pickle.loads(pickle.dumps(reader))  # what a DataLoader worker receives
    assert clone.read_range("DATA", 300, 3) == bytes([44, 45, 46])
    assert reader.read("HEAD") == SECTIONS[0][1]  # works again after the with block, reopening


def test_read_range_bounds(written: Path):
    reader = _open(written)
    size = len(SECTIONS[2][1])
    assert reader.read_range("DATA", 0, size) == SECTIONS[2][1]
    assert reader.read_range("DATA", size, 0) == b""
    assert reader.read_range("EMPT", 0, 0) == b""
    for start, length in [(-1, 2), (0, -1), (size - 1, 2), (size + 1, 0), (0, size + 1)]:
        with pytest.raises(ArchiveError, match="outside section"):
            reader.read_range("DATA", start, length)
    with pytest.raises(ArchiveError, match="NOPE"):
        reader.read_range("NOPE", 0, 1)
    with pytest.raises(ArchiveError, match="NOPE"):
        reader.read("NOPE")


def test_wrong_magic_and_not_an_archive(tmp_path: Path, written: Path):
    with pytest.raises(ArchiveError, match="not a dnerv archive"):
        ContainerReader(written, b"DNRV", {3})
    other = tmp_path / "video.mp4"
    other.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(100))
    with pytest.raises(ArchiveError, match="not a dnerv archive"):
        _open(other)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with pytest.raises(ArchiveError):
        _open(empty)
    with pytest.raises(ArchiveError, match="cannot read"):
        _open(tmp_path / "missing")


def test_unsupported_version(written: Path):
    expected = r"unsupported archive format version 3 \(this dnerv reads versions 1, 2\)"
    with pytest.raises(UnsupportedVersionError, match=expected):
        _open(written, versions=(1, 2))
    assert issubclass(UnsupportedVersionError, ArchiveError)


def test_every_truncation_is_an_archive_error(written: Path, tmp_path: Path):
    raw = written.read_bytes()
    cut_path = tmp_path / "cut"
    for cut in list(range(0, 200)) + list(range(200, len(raw), 97)) + [len(raw) - 1]:
        cut_path.write_bytes(raw[:cut])
        with pytest.raises(ArchiveError), _open(cut_path) as reader:
            for tag, _ in SECTIONS:
                reader.read(tag)


def test_trailing_bytes_are_rejected(written: Path):
    with open(written, "ab") as f:
        f.write(b"junk")
    with pytest.raises(ArchiveError, match="trailing"):
        _open(written)


def test_bit_flips_are_archive_errors(written: Path, tmp_path: Path):
    raw = written.read_bytes()
    flipped_path = tmp_path / "flipped"
    header = 8 + 24 * len(SECTIONS) + 4
    positions = list(range(header)) + list(range(header, len(raw), 53))
    for pos in positions:
        for bit in (0, 5):
            data = bytearray(raw)
            data[pos] ^= 1 << bit
            flipped_path.write_bytes(bytes(data))
            with pytest.raises(ArchiveError), _open(flipped_path) as reader:
                for tag, _ in SECTIONS:
                    reader.read(tag)


def test_existing_output_is_kept_without_force(written: Path):
    before = written.read_bytes()
    with pytest.raises(OutputError, match="--force"):
        write_container(written, MAGIC, 3, [("HEAD", b"new")])
    assert written.read_bytes() == before
    write_container(written, MAGIC, 3, [("HEAD", b"new")], force=True)
    assert _open(written).read("HEAD") == b"new"
    assert sorted(os.listdir(written.parent)) == [written.name]


def test_unwritable_destinations(tmp_path: Path, unwritable_dir: Path):
    with pytest.raises(OutputError, match="does not exist"):
        write_container(tmp_path / "no" / "such" / "x", MAGIC, 1, [])
    with pytest.raises(OutputError, match="directory"):
        write_container(tmp_path, MAGIC, 1, [], force=True)
    with pytest.raises(OutputError, match="cannot write"):
        write_container(unwritable_dir / "x", MAGIC, 1, [])
    assert os.listdir(unwritable_dir) == []


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_failed_write_leaves_nothing_behind(tmp_path: Path, monkeypatch, failure):
    target = tmp_path / "out.dnrv"
    target.write_bytes(b"old")

    def failing_fsync(fd):
        raise failure

    monkeypatch.setattr(container.os, "fsync", failing_fsync)
    expected = OutputError if isinstance(failure, OSError) else KeyboardInterrupt
    with pytest.raises(expected):
        write_container(target, MAGIC, 1, [("DATA", b"x" * 10_000)], force=True)
    assert os.listdir(tmp_path) == ["out.dnrv"]
    assert target.read_bytes() == b"old"


def test_bad_sections_are_programming_errors(tmp_path: Path):
    for sections in ([("AB", b"")], [("ABCDE", b"")], [("AB\xe9C", b"")], [("DATA", b""), ("DATA", b"")]):
        with pytest.raises(ValueError):
            write_container(tmp_path / "x", MAGIC, 1, sections)
    with pytest.raises(ValueError):
        write_container(tmp_path / "x", b"TOOLONG", 1, [])
    with pytest.raises(ValueError):
        write_container(tmp_path / "x", MAGIC, 70000, [])
    assert os.listdir(tmp_path) == []


def test_empty_container(tmp_path: Path):
    path = tmp_path / "e"
    assert write_container(path, MAGIC, 0, []) == 12
    reader = ContainerReader(path, MAGIC, range(0, 2))
    assert reader.sections == {} and reader.version == 0
