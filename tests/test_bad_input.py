"""Issue 2, item 13: every bad input gives ONE clear error line, a non-zero exit, no traceback, and
leaves no partial file (no archive, no temporary file, no frame cache) behind."""

from __future__ import annotations

import dataclasses
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import (
    assert_clean_error,
    invoke,
    listing,
    make_audio_only,
    make_video,
    make_zero_frame_y4m,
    moving_frames,
    read_frames,
    said,
)

from dnerv_codec.archive.container import ContainerReader
from dnerv_codec.archive.format import MAGIC, READABLE_VERSIONS
from dnerv_codec.archive.read import ArchiveReader
from dnerv_codec.archive.write import write_archive
from dnerv_codec.clips import VideoEntry

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ("--preset", "tiny", "--epochs", "1")


@pytest.fixture(scope="module")
def good_video(tmp_path_factory) -> Path:
    """One usable 1-frame video, so that the option under test is the only thing wrong."""
    return make_video(tmp_path_factory.mktemp("good") / "good.mkv", moving_frames(1, 32, 32))


@pytest.fixture
def out_dir(tmp_path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def encode_fails(runner, out_dir: Path, *args, fragments=(), before: set[str] | None = None) -> str:
    """Run encode ARGS -o out_dir/a.dnv, expect a clean failure, and that out_dir is as before."""
    before = listing(out_dir) if before is None else before
    result = invoke(runner, "encode", *args, "-o", out_dir / "a.dnv", *TINY, ok=False)
    line = assert_clean_error(result, *fragments)
    assert listing(out_dir) == before, "a failed encode left files behind"
    return line


# ---------------------------------------------------------------- unusable inputs


def test_text_file_named_mp4(runner, tmp_path, out_dir):
    fake = tmp_path / "in" / "clip.mp4"
    fake.parent.mkdir()
    fake.write_text("hello, I am not a video\n" * 20)
    line = encode_fails(runner, out_dir, fake, fragments=("no usable video", "clip.mp4"))
    assert "clip.mp4" in line


def test_zero_frame_video(runner, tmp_path, out_dir):
    empty = make_zero_frame_y4m(tmp_path / "empty.y4m")
    result = invoke(runner, "encode", empty, "-o", out_dir / "a.dnv", *TINY, ok=False)
    assert_clean_error(result, "no usable video")
    assert said(result, "zero-frame")  # the warning says why the file was skipped
    assert listing(out_dir) == set()


def test_audio_only_file(runner, tmp_path, out_dir):
    wav = make_audio_only(tmp_path / "sound.wav")
    result = invoke(runner, "encode", wav, "-o", out_dir / "a.dnv", *TINY, ok=False)
    assert_clean_error(result, "no usable video")
    assert said(result, "audio only")
    assert listing(out_dir) == set()


def test_empty_folder(runner, tmp_path, out_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    encode_fails(runner, out_dir, empty, fragments=("no usable video",))


def test_folder_of_unusable_files(runner, tmp_path, out_dir):
    folder = tmp_path / "junk"
    folder.mkdir()
    (folder / "a.mp4").write_text("text")
    (folder / "b.mkv").write_bytes(b"")
    make_zero_frame_y4m(folder / "c.y4m")
    make_audio_only(folder / "d.wav")
    result = invoke(runner, "encode", folder, "-o", out_dir / "a.dnv", *TINY, ok=False)
    assert_clean_error(result, "no usable video")
    for name in ("a.mp4", "b.mkv", "c.y4m", "d.wav"):  # every skipped file is named
        assert said(result, name)
    assert listing(out_dir) == set()


def test_missing_input(runner, tmp_path, out_dir, good_video):
    encode_fails(runner, out_dir, good_video, tmp_path / "nope.mp4", fragments=("nope.mp4", "no such"))


def test_name_with_brackets_is_reported_verbatim(runner, tmp_path, out_dir):
    """Paths are not rich markup: `[bold]` in a file name must appear in the error as it is."""
    fake = tmp_path / "clip[bold][abc].mp4"
    fake.write_text("not a video")
    encode_fails(runner, out_dir, fake, fragments=("clip[bold][abc].mp4",))


# ---------------------------------------------------------------- outputs


def test_output_folder_missing(runner, tmp_path, good_video):
    out = tmp_path / "missing" / "deeper" / "a.dnv"
    result = invoke(runner, "encode", good_video, "-o", out, *TINY, ok=False)
    assert_clean_error(result, "does not exist")
    assert not (tmp_path / "missing").exists()


def test_output_not_writable(runner, unwritable_dir, good_video):
    result = invoke(runner, "encode", good_video, "-o", unwritable_dir / "a.dnv", *TINY, ok=False)
    assert_clean_error(result, "cannot")
    assert listing(unwritable_dir) == set()
    if Path("/proc/self").is_dir():  # a folder of another kind that refuses everyone
        result = invoke(runner, "encode", good_video, "-o", "/proc/dnerv-test.dnv", *TINY, ok=False)
        assert_clean_error(result, "cannot")


def test_output_under_a_file(runner, tmp_path, good_video):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = invoke(runner, "encode", good_video, "-o", blocker / "a.dnv", *TINY, ok=False)
    assert_clean_error(result)
    assert blocker.read_text() == "x"


def test_existing_output_kept_without_force(runner, out_dir, good_video):
    out = out_dir / "a.dnv"
    out.write_bytes(b"precious bytes")
    line = encode_fails(runner, out_dir, good_video, fragments=("exists", "--force"))
    assert str(out) in line
    assert out.read_bytes() == b"precious bytes"


def test_output_is_a_folder_or_an_input(runner, tmp_path, out_dir, good_video):
    (out_dir / "a.dnv").mkdir()
    encode_fails(runner, out_dir, good_video, fragments=("directory",))
    copy = tmp_path / "copy.mkv"
    shutil.copy(good_video, copy)
    result = invoke(runner, "encode", copy, "-o", copy, "--force", *TINY, ok=False)
    assert_clean_error(result, "input")
    assert read_frames(copy).shape[0] == 1


# ---------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("option", "fragments"),
    [
        (("--size", "abc"), ("size",)),
        (("--size", "0x10"), ("size", "positive")),
        (("--size", "16x"), ("size",)),
        (("--size", "16x16x16"), ("size",)),
        (("--size", "-5x10"), ("size",)),
        (("--preset", "bogus"), ("preset", "bogus")),
        (("--keyframe-codec", "jpeg"), ("jpeg",)),
        (("--keyframe-quality", "99"), ("quality",)),
        (("--epochs", "0"), ("epochs",)),
        (("--epochs", "-3"), ("epochs",)),
        (("--time-limit", "0"), ("time limit",)),
        (("--batch-size", "0"), ("batch size",)),
        (("--lr", "0"), ("lr",)),
        (("--fc-dim", "0"), ("width",)),
        (("--device", "tpu"), ("device",)),
    ],
    ids=lambda v: " ".join(v) if isinstance(v[0], str) and v[0].startswith("--") else None,
)
def test_bad_option(runner, out_dir, good_video, option, fragments):
    result = invoke(runner, "encode", good_video, "-o", out_dir / "a.dnv", *TINY, *option, ok=False)
    assert_clean_error(result, *fragments)
    assert listing(out_dir) == set()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_cuda_asked_without_cuda(runner, out_dir, good_video):
    encode_fails(runner, out_dir, good_video, "--device", "cuda", fragments=("cuda",))


def test_usage_errors_exit_2(runner, out_dir, good_video):
    """Errors typer itself catches (not an int, no output) exit with 2 and a usage message."""
    result = invoke(runner, "encode", good_video, "-o", out_dir / "a.dnv", "--epochs", "many", ok=False)
    assert result.exit_code == 2 and "Traceback" not in result.output
    result = invoke(runner, "encode", good_video, ok=False)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert listing(out_dir) == set()


# ---------------------------------------------------------------- damaged archives


def table(path: Path) -> tuple[int, dict[str, tuple[int, int, int]]]:
    reader = ContainerReader(path, MAGIC, READABLE_VERSIONS)
    return reader.header_bytes, reader.sections


def cut_points(path: Path) -> list[int]:
    """Interesting truncation lengths: inside the fixed header, the table, every section."""
    size = path.stat().st_size
    head, sections = table(path)
    cuts = {0, 1, 3, 4, 6, 7, 8, 9, head - 5, head - 4, head - 1, head, head + 1, size - 1}
    for offset, length, _ in sections.values():
        cuts |= {offset, offset + 1, offset + length // 2, offset + length - 1}
    return sorted(c for c in cuts if 0 <= c < size)


def flip_points(path: Path) -> list[int]:
    """Bytes to flip: magic, version, count, every third byte of the section table, its checksum,
    and a spread through every section."""
    head, sections = table(path)
    points = set(range(8)) | set(range(8, head - 4, 3)) | set(range(head - 4, head))
    for offset, length, _ in sections.values():
        points |= {offset + int(f * (length - 1)) for f in np.linspace(0, 1, 7)}
    return sorted(points)


def test_truncated_archive(runner, tiny_archive, tmp_path):
    data = tiny_archive.path.read_bytes()
    bad = tmp_path / "bad.dnv"
    out = tmp_path / "out"
    out.mkdir()
    for cut in cut_points(tiny_archive.path):
        bad.write_bytes(data[:cut])
        result = invoke(runner, "info", bad, ok=False)
        line = assert_clean_error(result)
        assert any(w in line for w in ("truncated", "not a dnerv archive", "corrupt")), (cut, line)
        result = invoke(runner, "decode", bad, "--clip", 0, "-o", out / "c.mkv", ok=False)
        assert_clean_error(result)
        assert listing(out) == set(), cut


def test_bit_flipped_archive(runner, tiny_archive, tmp_path):
    data = tiny_archive.path.read_bytes()
    bad = tmp_path / "bad.dnv"
    out = tmp_path / "out"
    out.mkdir()
    for pos in flip_points(tiny_archive.path):
        flipped = bytearray(data)
        flipped[pos] ^= 1 << (pos % 8)
        bad.write_bytes(bytes(flipped))
        line = assert_clean_error(invoke(runner, "info", bad, ok=False))
        assert any(w in line for w in ("corrupt", "unsupported", "not a dnerv", "truncated")), (pos, line)
        # --all reads everything, so it must fail, before writing anything
        result = invoke(runner, "decode", bad, "--all", "-o", out / "all", ok=False)
        assert_clean_error(result)
        assert listing(out) == set(), pos


def test_bit_flip_never_decodes_silently(runner, tiny_archive, tmp_path):
    """A clip reads only its own keyframes and the weights: a flip elsewhere may go unnoticed, but
    then the clip's frames are exactly the clean ones; anywhere else it is an error."""
    data = tiny_archive.path.read_bytes()
    clean = tmp_path / "clean.mkv"
    invoke(runner, "decode", tiny_archive.path, "--clip", 0, "-o", clean)
    expected = read_frames(clean)
    _, sections = table(tiny_archive.path)
    reader = ArchiveReader(tiny_archive.path)
    clip = reader.layout.clips[0]
    keys_offset = sections["KEYS"][0]
    own = set()
    for k in (clip.key_start, clip.key_end):
        start = keys_offset + int(reader._key_offset[k])
        own |= set(range(start, start + int(reader._key_length[k])))
    last = len(reader.layout.keyframes) - 1  # the last video's: clip 0 never reads it
    elsewhere = keys_offset + int(reader._key_offset[last]) + int(reader._key_length[last]) // 2
    bad = tmp_path / "bad.dnv"
    out = tmp_path / "c.mkv"
    points = [p for p in flip_points(tiny_archive.path) if p >= 8] + sorted(own)[::50] + [elsewhere]
    unnoticed = []
    for pos in points:
        flipped = bytearray(data)
        flipped[pos] ^= 0x10
        bad.write_bytes(bytes(flipped))
        result = invoke(runner, "decode", bad, "--clip", 0, "-o", out, "--force", ok=False)
        if result.exit_code == 0:
            inside_keys = keys_offset <= pos < keys_offset + sections["KEYS"][1]
            assert inside_keys and pos not in own, f"a flip at {pos} went unnoticed"
            np.testing.assert_array_equal(read_frames(out), expected)
            unnoticed.append(pos)
            out.unlink()
        else:
            assert_clean_error(result)
            assert not out.exists()
    assert elsewhere in unnoticed, "decoding clip 0 read a keyframe it does not need"


def test_not_an_archive(runner, tmp_path, good_video):
    text = tmp_path / "a.dnv"
    text.write_text("not an archive")
    for target, fragment in [
        (text, "not a dnerv archive"),
        (good_video, "not a dnerv archive"),
        (tmp_path / "missing.dnv", "missing.dnv"),
        (tmp_path, "no such archive"),
    ]:
        assert_clean_error(invoke(runner, "info", target, ok=False), fragment)
        result = invoke(runner, "decode", target, "--clip", 0, "-o", tmp_path / "x.mkv", ok=False)
        assert_clean_error(result, fragment)
    assert not (tmp_path / "x.mkv").exists()


# ---------------------------------------------------------------- decode options


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("--clip", "999"), ("clip 999", "does not exist")),
        (("--clip", "-1"), ("clip -1", "does not exist")),
        (("--video", "nope.mp4"), ("nope.mp4",)),
        (("--clip", "0", "--size", "abc"), ("size",)),
        (("--clip", "0", "--size", "0x5"), ("size",)),
        (("--video", "a/odd.mkv", "--size", "-1x5"), ("size",)),
        ((), ("exactly one",)),
        (("--clip", "0", "--video", "gray.mkv"), ("exactly one",)),
        (("--clip", "0", "--all"), ("exactly one",)),
        (("--clip", "0", "--device", "tpu"), ("device",)),
    ],
)
def test_decode_bad_options(runner, tiny_archive, tmp_path, args, fragments):
    out = tmp_path / "out"
    out.mkdir()
    result = invoke(runner, "decode", tiny_archive.path, *args, "-o", out / "c.mkv", ok=False)
    assert_clean_error(result, *fragments)
    assert listing(out) == set()


def test_decode_unknown_extension(runner, tiny_archive, tmp_path):
    result = invoke(runner, "decode", tiny_archive.path, "--clip", 0, "-o", tmp_path / "c.avi", ok=False)
    assert_clean_error(result, ".avi")
    result = invoke(
        runner, "decode", tiny_archive.path, "--all", "--format", "gif", "-o", tmp_path / "d", ok=False
    )
    assert_clean_error(result, "gif")
    assert listing(tmp_path) == set()


def test_decode_existing_output_kept(runner, tiny_archive, tmp_path):
    out = tmp_path / "c.mkv"
    out.write_bytes(b"precious")
    result = invoke(runner, "decode", tiny_archive.path, "--clip", 0, "-o", out, ok=False)
    assert_clean_error(result, "exists", "--force")
    assert out.read_bytes() == b"precious"
    # --all: one existing output refuses the whole run before anything is written
    folder = tmp_path / "all"
    (folder / "real").mkdir(parents=True)
    (folder / "real" / "shepard1906.mkv").write_bytes(b"mine")
    result = invoke(runner, "decode", tiny_archive.path, "--all", "-o", folder, ok=False)
    assert_clean_error(result, "exists")
    assert listing(folder) == {"real", "real/shepard1906.mkv"}
    assert (folder / "real" / "shepard1906.mkv").read_bytes() == b"mine"
    # an --all output that is a file
    result = invoke(runner, "decode", tiny_archive.path, "--all", "-o", out, ok=False)
    assert_clean_error(result, "not a folder")
    assert out.read_bytes() == b"precious"


def test_decode_unwritable_output(runner, tiny_archive, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    outputs = [blocker / "c.mkv", blocker / "frames"]
    if Path("/proc/self").is_dir():
        outputs.append(Path("/proc/dnerv-test.mkv"))
    for out in outputs:
        result = invoke(runner, "decode", tiny_archive.path, "--clip", 0, "-o", out, ok=False)
        assert_clean_error(result, "cannot")
    result = invoke(runner, "decode", tiny_archive.path, "--all", "-o", blocker / "all", ok=False)
    assert_clean_error(result, "cannot")
    assert listing(tmp_path) == {"file"}


def test_decode_bad_reference(runner, tiny_archive, tmp_path):
    text = tmp_path / "ref.mp4"
    text.write_text("not a video")
    short = make_video(tmp_path / "short.mkv", moving_frames(2, 32, 64))
    for ref, fragment in [(text, "ref.mp4"), (tmp_path / "missing.mp4", "missing.mp4")]:
        result = invoke(
            runner,
            "decode",
            tiny_archive.path,
            "--clip",
            0,
            "--reference",
            ref,
            "-o",
            tmp_path / "c.mkv",
            ok=False,
        )
        assert_clean_error(result, fragment)
    # a reference shorter than the clip fails while writing: the partial output is removed
    for out in (tmp_path / "c.mkv", tmp_path / "frames"):
        result = invoke(
            runner,
            "decode",
            tiny_archive.path,
            "--video",
            "ten_bit.mkv",
            "--reference",
            short,
            "-o",
            out,
            ok=False,
        )
        assert_clean_error(result, "fewer frames")
    result = invoke(
        runner, "decode", tiny_archive.path, "--all", "--reference", short, "-o", tmp_path / "d", ok=False
    )
    assert_clean_error(result, "--reference")
    assert listing(tmp_path) == {"ref.mp4", "short.mkv"}


def test_decode_all_refuses_unsafe_names(runner, tiny_archive, tmp_path):
    """An archive is untrusted input: a video named ../x must not make decode --all write outside
    the output folder."""
    reader = ArchiveReader(tiny_archive.path)
    container = ContainerReader(tiny_archive.path, MAGIC, READABLE_VERSIONS)
    header = reader.header
    for name in ("../escape.mkv", "/tmp/abs.mkv"):
        v0 = header.videos[0]
        renamed = (VideoEntry(name, v0.fps, v0.frames, v0.width, v0.height), *header.videos[1:])
        evil_header = dataclasses.replace(header, videos=renamed)
        blobs = reader.keyframe_blobs(list(range(len(reader.layout.keyframes))))
        evil = tmp_path / "evil.dnv"
        write_archive(evil, evil_header, blobs, container.read("WGTS"), force=True)
        folder = tmp_path / "out" / "inner"
        result = invoke(runner, "decode", evil, "--all", "-o", folder, ok=False)
        assert_clean_error(result, "safe")
        assert not (tmp_path / "out").exists()
        assert not Path("/tmp/abs.mkv").exists()


def test_version_field_is_checked(tiny_archive, tmp_path):
    data = bytearray(tiny_archive.path.read_bytes())
    struct.pack_into("<H", data, 4, 99)
    bad = tmp_path / "v99.dnv"
    bad.write_bytes(bytes(data))
    from dnerv_codec.errors import UnsupportedVersionError

    with pytest.raises(UnsupportedVersionError, match="unsupported archive format version 99"):
        ArchiveReader(bad)
