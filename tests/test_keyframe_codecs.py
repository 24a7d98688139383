"""Keyframe codecs: one quality scale per codec, and dnerv's own imagecodec as a keyframe codec,
through the keyframe paths and end to end (encode, info, decode --clip, --resume, --bpp, bench)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import (
    assert_clean_error,
    ctrl_c_at,
    invoke,
    invoke_json,
    make_video,
    moving_frames,
    read_frames,
)

import dnerv_codec as dn
from dnerv_codec import imagecodec
from dnerv_codec.archive.read import ArchiveReader
from dnerv_codec.bench.run import DnervSetting, run_bench
from dnerv_codec.cli import app
from dnerv_codec.config import KEYFRAME_CODECS, KeyframeConfig, get_preset, keyframe_settings
from dnerv_codec.decode import Archive
from dnerv_codec.errors import ArchiveError, ConfigError, UnsupportedVersionError
from dnerv_codec.keyframes import _CODECS, decode_keyframe_run, decode_keyframes, encode_keyframes

# ---------------------------------------------------------------- the table of codecs


def test_every_codec_has_one_quality_scale():
    assert set(KEYFRAME_CODECS) == set(_CODECS)  # the settings and the coders know the same codecs
    for name, codec in KEYFRAME_CODECS.items():
        qualities = codec.qualities_best_first()
        assert sorted(qualities) == list(range(codec.min_quality, codec.max_quality + 1))
        for quality in (codec.min_quality, codec.default_quality, codec.max_quality):
            assert KeyframeConfig(name, quality).quality == quality
        for quality in (codec.min_quality - 1, codec.max_quality + 1):
            with pytest.raises(ConfigError, match=f"{name} keyframe quality must be in"):
                KeyframeConfig(name, quality)
    assert KEYFRAME_CODECS["hevc"].qualities_best_first()[0] == 0  # a CRF: lower is better
    assert KEYFRAME_CODECS["imagecodec"].qualities_best_first()[0] == 100


def test_imagecodec_is_intra_only():
    assert KeyframeConfig("imagecodec", 50).gop == 1
    with pytest.raises(ConfigError, match="imagecodec codes every keyframe alone"):
        KeyframeConfig("imagecodec", 50, gop=2)


def test_keyframe_settings_from_a_preset():
    hevc = get_preset("default").keyframes
    assert (hevc.codec, hevc.gop) == ("hevc", 8)
    assert keyframe_settings(hevc) == hevc
    assert keyframe_settings(hevc, quality=20) == KeyframeConfig("hevc", 20, 8)
    assert keyframe_settings(hevc, codec="av1") == KeyframeConfig("av1", 30, 8)
    # the codec's own default quality, and gop 1 for an intra-only codec
    assert keyframe_settings(hevc, codec="imagecodec") == KeyframeConfig("imagecodec", 24, 1)
    assert keyframe_settings(hevc, codec="imagecodec", quality=60) == KeyframeConfig("imagecodec", 60, 1)
    with pytest.raises(ConfigError, match="gop must be 1"):
        keyframe_settings(hevc, codec="imagecodec", gop=4)  # asked for: refused, not changed
    with pytest.raises(ConfigError, match="keyframe codec must be one of"):
        keyframe_settings(hevc, codec="vp9")


# ---------------------------------------------------------------- the keyframe paths


def test_imagecodec_keyframes_decode_alone():
    frames = np.stack(moving_frames(3, 40, 56, seed=7))
    blobs = encode_keyframes(frames, KeyframeConfig("imagecodec", 60), video_starts=(0, 2))
    assert blobs == [imagecodec.encode_image(f, 60) for f in frames]  # each keyframe one coded image
    decoded = decode_keyframes(blobs, "imagecodec", 40, 56)
    for k, blob in enumerate(blobs):
        np.testing.assert_array_equal(decoded[k], imagecodec.encode(frames[k], 60)[1])
        np.testing.assert_array_equal(decode_keyframe_run([blob], "imagecodec", 40, 56)[0], decoded[k])
    with pytest.raises(ArchiveError, match="expected 48x56"):
        decode_keyframe_run(blobs[:1], "imagecodec", 48, 56)
    with pytest.raises(ArchiveError, match="imagecodec keyframe"):
        decode_keyframe_run([blobs[0][:-1]], "imagecodec", 40, 56)
    with pytest.raises(UnsupportedVersionError, match="imagecodec keyframe"):
        decode_keyframe_run([b"\x09" + blobs[0][1:]], "imagecodec", 40, 56)
    with pytest.raises(ArchiveError, match="empty"):
        decode_keyframe_run([b""], "imagecodec", 40, 56)


# ---------------------------------------------------------------- end to end

# no --keyframe-gop: the tiny preset groups by 8, and an intra-only codec takes gop 1 by itself
FIT = (
    *("--preset", "tiny", "--epochs", "2", "--seed", "3", "--device", "cpu"),
    *("--keyframe-codec", "imagecodec", "--keyframe-quality", "40"),
)
CLIP_LEN = 8  # the tiny preset's


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    """17 frames at 64x64: 3 clips, keyframes 0, 8 and 16; 2 steps per epoch."""
    return make_video(tmp_path_factory.mktemp("ic") / "v.mkv", moving_frames(17, 64, 64, seed=21))


@pytest.fixture(scope="module")
def archive(runner, video, tmp_path_factory, one_thread) -> Path:
    out = tmp_path_factory.mktemp("ic_out") / "ic.dnv"
    invoke_json(runner, "encode", video, "-o", out, *FIT)
    return out


def test_info_and_decode_clip(runner, archive, tmp_path):
    info = invoke_json(runner, "info", archive)
    assert (info["keyframe_codec"], info["keyframe_quality"], info["keyframe_gop"]) == ("imagecodec", 40, 1)
    assert "imagecodec q40 gop 1" in invoke(runner, "info", archive).output
    reader = ArchiveReader(archive)
    keys = range(len(reader.layout.keyframes))
    blobs = reader.keyframe_blobs(list(keys))
    assert info["bytes"]["keyframes"] == sum(len(b) for b in blobs)
    own = np.stack([imagecodec.decode_image(b) for b in blobs])  # the KEYS section: coded images
    np.testing.assert_array_equal(Archive(archive, "cpu").keyframes(list(keys)), own)

    out = tmp_path / "clip.mkv"
    doc = invoke_json(runner, "decode", archive, "--clip", 1, "-o", out)
    assert doc["frames"] == CLIP_LEN
    expected = Archive(archive, "cpu").decode_clip(1).numpy()
    assert np.abs(read_frames(out).astype(int) - expected).max() <= 1  # FFV1 RGB: lossless


def test_gop_above_one_is_a_clean_error(runner, video, tmp_path):
    args = ("encode", video, "-o", tmp_path / "a.dnv", "--preset", "tiny", "--keyframe-codec", "imagecodec")
    result = invoke(runner, *args, "--keyframe-gop", "4", ok=False)
    assert_clean_error(result, "imagecodec", "gop must be 1")
    result = invoke(runner, *args, "--keyframe-gop", "1", "--keyframe-quality", "101", ok=False)
    assert_clean_error(result, "imagecodec keyframe quality must be in 0..100")
    assert not (tmp_path / "a.dnv").exists()


def test_resume_gives_the_uninterrupted_archive(runner, video, archive, tmp_path, monkeypatch):
    out = tmp_path / "r.dnv"
    with monkeypatch.context() as m:
        ctrl_c_at(m, 1)
        result = runner.invoke(app, [*map(str, ["encode", video, "-o", out, *FIT])])
    assert result.exit_code == 130, result.output
    assert (tmp_path / "r.dnv.ckpt").exists() and not out.exists()
    invoke(runner, "encode", video, "-o", out, *FIT, "--resume")
    assert out.read_bytes() == archive.read_bytes()


def test_bpp_searches_the_imagecodec_quality(video, tmp_path, one_thread):
    out = tmp_path / "b.dnv"
    report = dn.encode(
        video,
        out,
        preset="tiny",
        epochs=1,
        bpp=2.0,
        keyframe_codec="imagecodec",
        keyframe_gop=1,
        device="cpu",
    )
    keyframes = ArchiveReader(out).header.keyframes
    assert keyframes.codec == "imagecodec" and 0 < keyframes.quality < 100
    assert report.bpp == pytest.approx(2.0, rel=0.15)


def test_bench_point_with_imagecodec(video, tmp_path, one_thread):
    setting = DnervSetting("tiny", 40, epochs=1, keyframe_codec="imagecodec", keyframe_gop=1)
    result = run_bench(
        [video], tmp_path / "out", codecs="dnerv", anchor="dnerv", dnerv_ladder=(setting,), plots=False
    )
    (point,) = result.points
    assert "imagecodec" in point["label"]
    (path,) = (tmp_path / "out" / "archives").glob("*.dnv")
    assert ArchiveReader(path).header.keyframes == KeyframeConfig("imagecodec", 40, 1)
