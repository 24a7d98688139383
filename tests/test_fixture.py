"""The committed fixture archive (tests/data, made by tests/data/make_fixture.py): every build must
keep reading it, to the same frames, or refuse it with a clear "unsupported ... version" error."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import assert_clean_error, invoke, invoke_json, listing

from dnerv_codec.archive.format import READABLE_VERSIONS
from dnerv_codec.decode import Archive
from dnerv_codec.errors import UnsupportedVersionError

pytestmark = pytest.mark.usefixtures("one_thread")

DATA = Path(__file__).resolve().parent / "data"
FIXTURES = sorted(DATA.glob("fixture-v*.dnv"))
TOLERANCE = 1  # levels of 255: float rounding may differ across CPUs and libraries


def golden(archive: Path) -> tuple[dict, np.ndarray]:
    info = json.loads(archive.with_suffix(".info.json").read_text())
    with av.open(str(archive.with_suffix(".frames.mkv"))) as c:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    return info, frames


def version_of(archive: Path) -> int:
    return struct.unpack_from("<H", archive.read_bytes(), 4)[0]


def test_fixture_is_committed_and_small():
    assert [p.name for p in FIXTURES][:1] == ["fixture-v1.dnv"]
    for archive in FIXTURES:
        assert archive.stat().st_size < 60_000
        assert archive.with_suffix(".info.json").is_file() and archive.with_suffix(".frames.mkv").is_file()


@pytest.mark.parametrize("archive", FIXTURES, ids=lambda p: p.name)
def test_fixture_still_reads(runner, archive):
    info, frames = golden(archive)
    if version_of(archive) not in READABLE_VERSIONS:  # dropped on purpose: then refused clearly
        assert_clean_error(invoke(runner, "info", archive, ok=False), "unsupported", "version")
        return
    doc = invoke_json(runner, "info", archive)
    changed = {k: (info[k], doc.get(k)) for k in info if doc.get(k) != info[k]}
    assert not changed, f"info of the committed fixture changed: {changed}"

    opened = Archive(archive, "cpu")
    decoded = np.concatenate([c.numpy() for c in opened.iter_clips(range(len(opened.clips)))])
    assert decoded.shape == frames.shape
    diff = np.abs(decoded.astype(int) - frames.astype(int))
    assert diff.max() <= TOLERANCE, f"fixture decodes differently: max difference {diff.max()}"
    # clip by clip, as decode --clip does (alone, not in a batch: a rare pixel may round otherwise)
    for clip in info["clips"]:
        one = opened.decode_clip(clip["index"]).numpy()
        start = sum(c["frames"] for c in info["clips"][: clip["index"]])
        assert np.abs(one.astype(int) - frames[start : start + clip["frames"]].astype(int)).max() <= TOLERANCE


@pytest.mark.parametrize("archive", FIXTURES[:1], ids=lambda p: p.name)
def test_fixture_decodes_through_the_cli(runner, archive, tmp_path):
    info, frames = golden(archive)
    if version_of(archive) not in READABLE_VERSIONS:
        pytest.skip("this build refuses the fixture's version (checked above)")
    out = tmp_path / "all"
    invoke(runner, "decode", archive, "--all", "--format", "mkv", "-o", out, "--device", "cpu")
    with av.open(str(out / "shepard1906-16f.mkv")) as c:
        video = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    assert np.abs(video.astype(int) - frames.astype(int)).max() <= TOLERANCE
    assert info["videos"][0]["frames"] == len(video)


@pytest.mark.parametrize("archive", FIXTURES, ids=lambda p: p.name)
def test_unknown_version_is_refused(runner, archive, tmp_path):
    data = bytearray(archive.read_bytes())
    struct.pack_into("<H", data, 4, 99)
    patched = tmp_path / "v99.dnv"
    patched.write_bytes(bytes(data))
    line = assert_clean_error(invoke(runner, "info", patched, ok=False), "unsupported", "version 99")
    assert "unsupported archive format version" in line
    result = invoke(runner, "decode", patched, "--clip", 0, "-o", tmp_path / "c.mkv", ok=False)
    assert_clean_error(result, "unsupported", "version")
    assert listing(tmp_path) == {"v99.dnv"}
    with pytest.raises(UnsupportedVersionError):
        Archive(patched, "cpu")
