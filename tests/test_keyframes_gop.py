"""Keyframes coded in groups (KeyframeConfig.gop): an intra frame, then P-frames, per video.

A keyframe decodes to the same picture whether its whole group is decoded or only the run from the
group's first keyframe up to it; groups start at every video's first keyframe; gop=1 is the
all-intra coding of before; an archive reads and decodes only the groups a clip needs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from conftest import moving_frames

from dnerv_codec import decode as decode_module
from dnerv_codec.archive.container import ContainerReader
from dnerv_codec.archive.format import MAGIC, READABLE_VERSIONS
from dnerv_codec.archive.read import ArchiveReader
from dnerv_codec.archive.write import write_archive
from dnerv_codec.clips import Layout, VideoEntry
from dnerv_codec.config import KeyframeConfig, from_dict
from dnerv_codec.decode import Archive
from dnerv_codec.errors import ArchiveError, ConfigError
from dnerv_codec.keyframes import (
    decode_keyframe_run,
    decode_keyframes,
    decode_spans,
    encode_keyframes,
    keyframe_groups,
)

FIXTURE = Path(__file__).resolve().parent / "data" / "fixture-v1.dnv"
MID = {"av1": 36, "hevc": 30, "h264": 30}
CODECS = tuple(MID)


def two_videos(h: int = 48, w: int = 64) -> tuple[np.ndarray, tuple[int, int]]:
    """10 keyframes: 6 of one moving scene, then 4 of another; (frames, video starts)."""
    frames = moving_frames(6, h, w, seed=1) + moving_frames(4, h, w, seed=2)
    return np.stack(frames), (0, 6)


def psnr(a, b) -> float:
    return float(10 * np.log10(255**2 / max(np.mean((np.asarray(a, float) - b) ** 2), 1e-12)))


def test_groups_follow_videos_and_gop():
    assert keyframe_groups((0, 6), 10, 4) == [range(0, 4), range(4, 6), range(6, 10)]
    assert keyframe_groups((0, 6), 10, 8) == [range(0, 6), range(6, 10)]
    assert keyframe_groups((0,), 5, 1) == [range(k, k + 1) for k in range(5)]
    assert keyframe_groups((0, 3, 3, 4), 6, 2) == [range(0, 2), range(2, 3), range(3, 4), range(4, 6)]
    assert keyframe_groups((0,), 0, 4) == []
    # runs to decode: from each needed group's first keyframe up to the last keyframe wanted
    assert decode_spans([5, 2, 7], (0, 6), 10, 4) == [range(0, 3), range(4, 6), range(6, 8)]
    assert decode_spans([1, 0, 1], (0, 6), 10, 4) == [range(0, 2)]
    assert decode_spans([7, 8], (0, 6), 10, 1) == [range(7, 8), range(8, 9)]
    assert decode_spans([], (0, 6), 10, 4) == []
    with pytest.raises(IndexError):
        decode_spans([10], (0, 6), 10, 4)


@pytest.mark.parametrize("gop", [0, 9, -1, 2.0, "4", True, None])
def test_bad_gop_rejected(gop):
    with pytest.raises(ConfigError, match="gop"):
        KeyframeConfig(gop=gop)
    with pytest.raises(ConfigError):
        from_dict(KeyframeConfig, {"codec": "hevc", "quality": 30, "gop": gop})


def test_old_headers_load_as_all_intra():
    assert from_dict(KeyframeConfig, {"codec": "hevc", "quality": 36}) == KeyframeConfig("hevc", 36, 1)
    assert ArchiveReader(FIXTURE).header.keyframes.gop == 1
    assert KeyframeConfig("h264", 51, 8).gop == 8
    with pytest.raises(ConfigError):
        KeyframeConfig("h264", 52)


@pytest.mark.parametrize("codec", CODECS)
def test_inter_groups_decode_the_same_from_any_keyframe(codec):
    frames, starts = two_videos()
    cfg = KeyframeConfig(codec, MID[codec], gop=4)
    blobs = encode_keyframes(frames, cfg, starts)
    assert len(blobs) == 10 and all(isinstance(b, bytes) and b for b in blobs)
    whole = decode_keyframes(blobs, codec, 48, 64, gop=4, video_starts=starts)
    assert min(psnr(d, f) for d, f in zip(whole, frames, strict=True)) > 30
    for group in keyframe_groups(starts, 10, 4):
        # the group's first keyframe is intra: it decodes alone (also at the second video's start)
        assert np.array_equal(decode_keyframe_run([blobs[group.start]], codec, 48, 64)[0], whole[group.start])
        for k in group:
            run = decode_keyframe_run(blobs[group.start : k + 1], codec, 48, 64)
            assert np.array_equal(run[-1], whole[k]), f"keyframe {k} differs when decoded up to it"
    # the others are predicted: cheaper than intra, and useless without their group's start
    inter = [k for k in range(10) if k not in (0, 4, 6)]
    assert np.mean([len(blobs[k]) for k in inter]) < 0.8 * np.mean([len(blobs[k]) for k in (0, 4, 6)])
    with pytest.raises(ArchiveError):
        decode_keyframe_run([blobs[7]], codec, 48, 64)
    assert encode_keyframes(frames, cfg, starts) == blobs  # deterministic


@pytest.mark.parametrize("codec", CODECS)
def test_gop_one_is_all_intra(codec):
    frames, starts = two_videos(40, 56)
    cfg = KeyframeConfig(codec, MID[codec])
    blobs = encode_keyframes(frames[:4], cfg, starts)
    # each blob is what coding its keyframe alone gives, so each decodes alone
    assert blobs == [encode_keyframes(f[None], cfg)[0] for f in frames[:4]]
    for k, blob in enumerate(blobs):
        assert np.array_equal(
            decode_keyframe_run([blob], codec, 40, 56)[0], decode_keyframes(blobs, codec, 40, 56)[k]
        )


def test_h264_drops_the_version_text():
    frames, _ = two_videos()
    blobs = encode_keyframes(frames[:2], KeyframeConfig("h264", 30, gop=2))
    assert all(b"x264" not in b for b in blobs)
    assert decode_keyframes(blobs, "h264", 48, 64, gop=2).shape == (2, 48, 64, 3)


@pytest.fixture(scope="module")
def grouped_archive(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """The fixture's network with two new videos whose 10 keyframes are coded with gop 4."""
    reader = ArchiveReader(FIXTURE)
    h, w = reader.header.height, reader.header.width
    videos = (VideoEntry("a.mkv", 25.0, 40, w, h), VideoEntry("b.mkv", 25.0, 20, w, h))
    header = dataclasses.replace(reader.header, videos=videos, keyframes=KeyframeConfig("hevc", 30, gop=4))
    layout = Layout.build(list(videos), header.model.clip_len)
    assert len(layout.keyframes) == 10 and layout.first_keyframe == (0, 6)
    frames = np.stack(moving_frames(6, h, w, seed=3) + moving_frames(4, h, w, seed=4))
    blobs = encode_keyframes(frames, header.keyframes, layout.first_keyframe)
    path = tmp_path_factory.mktemp("gop") / "gop4.dnv"
    with ContainerReader(FIXTURE, MAGIC, READABLE_VERSIONS) as container:
        write_archive(path, header, blobs, container.read("WGTS"))
    return path, decode_keyframes(blobs, "hevc", h, w, gop=4, video_starts=layout.first_keyframe)


def test_archive_reads_and_decodes_only_the_needed_groups(grouped_archive, monkeypatch):
    path, whole = grouped_archive
    archive = Archive(path, "cpu")
    assert archive.header.keyframes.gop == 4
    read, runs = [], []
    blobs_of = archive.reader.keyframe_blobs
    monkeypatch.setattr(archive.reader, "keyframe_blobs", lambda idx: read.append(list(idx)) or blobs_of(idx))
    run_of = decode_module.decode_keyframe_run
    monkeypatch.setattr(
        decode_module, "decode_keyframe_run", lambda b, *a: runs.append(len(b)) or run_of(b, *a)
    )

    for k in range(10):  # alone, each keyframe is its group's run up to it
        read.clear()
        assert np.array_equal(archive.keyframes([k]), whole[k : k + 1])
        start = 0 if k < 4 else 4 if k < 6 else 6
        assert read == [list(range(start, k + 1))]
    # clip 2 (keyframes 2, 3) reads 0..3; clip 4 (keyframes 4, 5) reads 4, 5; the second video's
    # first clip (keyframes 6, 7) starts a group of its own
    clips = archive.clips
    assert [(clips[i].key_start, clips[i].key_end) for i in (2, 4, 5)] == [(2, 3), (4, 5), (6, 7)]
    read.clear()
    runs.clear()
    keys = archive.keyframes([3, 2, 7, 5, 6, 3])
    assert np.array_equal(keys, whole[[3, 2, 7, 5, 6, 3]])
    assert read == [[0, 1, 2, 3, 4, 5, 6, 7]] and runs == [4, 2, 2]  # each group decoded once
    assert archive.keyframes([]).shape == (0, *archive.size, 3)


def test_archive_clip_alone_matches_all_clips(grouped_archive):
    path, _ = grouped_archive
    every = Archive(path, "cpu")
    everything = list(every.iter_clips(range(len(every.clips)), batch_size=1, blend=True))
    for index in (2, 3, 5):  # clips in the middle and at the end of groups, and after a video start
        alone = Archive(path, "cpu").decode_clips([index], blend=True)[0][0, : every.clips[index].length]
        assert np.array_equal(alone.numpy(), everything[index].numpy())
    network = Archive(path, "cpu").decode_clip(3)
    assert network.shape == (8, *every.size, 3)
