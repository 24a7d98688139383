"""Finding, probing, decoding and writing videos, and the on-disk frame cache."""

from __future__ import annotations

import itertools
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from av.video.reformatter import ColorRange, Colorspace
from conftest import REAL_CLIPS, make_audio_only

from dnerv_codec.errors import InputError, OutputError
from dnerv_codec.video.cache import open_frames, write_frames
from dnerv_codec.video.read import find_videos, iter_frames, probe, resize_frames
from dnerv_codec.video.write import write_png_folder, write_video

# Flat 16x16 patches: chroma subsampling cannot blur them, so colour errors are the matrix's alone.
PALETTE = np.array(
    [
        [255, 0, 0],
        [0, 255, 0],
        [0, 0, 255],
        [255, 255, 0],
        [0, 255, 255],
        [255, 0, 255],
        [128, 128, 128],
        [200, 50, 100],
    ],
    np.uint8,
)


def patches(rows: int = 2, cols: int = 4, cell: int = 16) -> np.ndarray:
    """uint8 [rows*cell, cols*cell, 3] of PALETTE colours."""
    idx = np.arange(rows * cols).reshape(rows, cols) % len(PALETTE)
    return np.ascontiguousarray(np.repeat(np.repeat(PALETTE[idx], cell, 0), cell, 1))


def interior(a: np.ndarray, cell: int = 16) -> np.ndarray:
    """The central half of every patch: 4:2:0 chroma may blend colours across patch borders."""
    keep = (np.arange(cell) >= cell // 4) & (np.arange(cell) < 3 * cell // 4)
    rows, cols = np.tile(keep, a.shape[0] // cell), np.tile(keep, a.shape[1] // cell)
    return a[rows][:, cols]


def blob_frames(n: int, h: int, w: int) -> list[np.ndarray]:
    """A smooth bright blob moving over a gradient: n uint8 frames [h, w, 3]."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = []
    for t in range(n):
        cy, cx = h * (0.3 + 0.4 * t / max(n, 2)), w * (0.2 + 0.6 * t / max(n, 2))
        blob = 200 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (0.05 * h * w))
        rgb = np.stack([blob + 30, 0.5 * blob + 2 * xx, 255 - 3 * yy], -1)
        out.append(np.clip(rgb, 0, 255).astype(np.uint8))
    return out


def make_video(path, frames, codec="ffv1", pix_fmt="bgr0", rate=25, options=None, colorspace=None, rng=None):
    """Encode RGB frames (or grey [H, W] for pix_fmt gray) with PyAV; tags the stream if asked."""
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=rate)
        s.height, s.width = frames[0].shape[:2] if frames else (16, 16)
        s.pix_fmt = pix_fmt
        s.options = options or {}
        if colorspace is not None:
            s.codec_context.colorspace = {Colorspace.ITU709: 1, Colorspace.ITU601: 6}[colorspace]
            s.codec_context.color_range = rng
        c.start_encoding()
        for i, f in enumerate(frames):
            if f.ndim == 2:
                vf = av.VideoFrame.from_ndarray(f, format="gray")
            else:
                vf = av.VideoFrame.from_ndarray(f, format="rgb24").reformat(
                    format=pix_fmt, dst_colorspace=colorspace, dst_color_range=rng
                )
            vf.pts = i
            c.mux(s.encode(vf))
        c.mux(s.encode(None))
    return Path(path)


def psnr(a, b) -> float:
    return float(10 * np.log10(255**2 / max(np.mean((np.asarray(a, float) - b) ** 2), 1e-12)))


# ---------------------------------------------------------------- finding and probing


def test_find_videos_nested_and_skips(tmp_path):
    root = tmp_path / "in"
    (root / "class_a").mkdir(parents=True)
    (root / "class_b" / "sub").mkdir(parents=True)
    make_video(root / "class_a" / "v1.mkv", blob_frames(3, 33, 47))
    make_video(root / "class_b" / "sub" / "v2.mkv", blob_frames(2, 16, 16))
    make_video(root / ".hidden.mkv", blob_frames(1, 16, 16))
    (root / "fake.mp4").write_text("hello, not a video\n")
    (root / "notes.txt").write_text("some notes\n")
    (root / "empty.mp4").write_bytes(b"")
    make_audio_only(root / "sound.wav")
    make_video(root / "zero.y4m", [], codec="rawvideo", pix_fmt="yuv420p")
    os.symlink(root, root / "class_a" / "loop")  # a symlink loop must not hang the walk

    videos, skipped = find_videos([root])
    assert [v.name for v in videos] == ["class_a/v1.mkv", "class_b/sub/v2.mkv"]
    assert (videos[0].height, videos[0].width, videos[0].frames_estimate) == (33, 47, 3)
    reasons = {p.name: r for p, r in skipped}
    assert set(reasons) == {"fake.mp4", "notes.txt", "empty.mp4", "sound.wav", "zero.y4m"}
    assert "not a media file" in reasons["fake.mp4"]
    assert "audio only" in reasons["sound.wav"]
    assert "zero-frame" in reasons["zero.y4m"]
    assert "empty" in reasons["empty.mp4"]


def test_find_videos_names_unique_and_dedup(tmp_path):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        make_video(tmp_path / d / "v.mkv", blob_frames(1, 16, 16))
    f = tmp_path / "a" / "v.mkv"
    videos, skipped = find_videos([tmp_path / "a", tmp_path / "b", f, f])
    assert [v.name for v in videos] == ["v.mkv", "v~2.mkv"]  # the file given again is used once
    assert skipped == []


def test_find_videos_empty_and_missing(tmp_path):
    (tmp_path / "empty").mkdir()
    assert find_videos([tmp_path / "empty"]) == ([], [])
    with pytest.raises(InputError, match="no such file"):
        find_videos([tmp_path / "missing.mp4"])


def test_probe_errors(tmp_path):
    (tmp_path / "t.mp4").write_text("text")
    with pytest.raises(InputError, match="t.mp4: not a media file"):
        probe(tmp_path / "t.mp4")
    with pytest.raises(InputError, match="audio only"):
        probe(make_audio_only(tmp_path / "a.wav"))
    with pytest.raises(InputError, match="zero-frame"):
        probe(make_video(tmp_path / "z.y4m", [], codec="rawvideo", pix_fmt="yuv420p"))


def test_probe_fractional_fps_and_single_frame(tmp_path):
    info = probe(make_video(tmp_path / "one.mkv", blob_frames(1, 9, 17), rate=Fraction(30000, 1001)))
    assert (info.height, info.width, info.frames_estimate, info.codec, info.pix_fmt) == (
        9,
        17,
        1,
        "ffv1",
        "bgr0",
    )
    assert info.fps == pytest.approx(29.97, abs=1e-3) and not info.has_audio
    assert info.name == "one.mkv"
    assert len(list(iter_frames(info.path))) == 1


# ---------------------------------------------------------------- decoding


@pytest.mark.parametrize("cs", [Colorspace.ITU709, Colorspace.ITU601])
@pytest.mark.parametrize("rng", [ColorRange.MPEG, ColorRange.JPEG])
def test_iter_frames_uses_colour_tags(tmp_path, cs, rng):
    img = patches()
    path = make_video(
        tmp_path / "c.mp4", [img], "libx264", "yuv444p", options={"qp": "0"}, colorspace=cs, rng=rng
    )
    (out,) = list(iter_frames(path))
    assert out.dtype == np.uint8 and out.flags.c_contiguous
    assert np.abs(out.astype(int) - img).max() <= 2


def test_iter_frames_untagged_defaults(tmp_path):
    # Untagged SD is read as BT.601, untagged HD (wider than 1024) as BT.709.
    sd, hd = patches(), patches(2, 66)
    for img, cs in ((sd, Colorspace.ITU601), (hd, Colorspace.ITU709)):
        path = tmp_path / f"u{img.shape[1]}.mkv"
        with av.open(str(path), "w") as c:  # converted with the matrix, but not tagged
            s = c.add_stream("ffv1", rate=25)
            s.height, s.width, s.pix_fmt = *img.shape[:2], "yuv444p"
            vf = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(
                format="yuv444p", dst_colorspace=cs, dst_color_range=ColorRange.MPEG
            )
            vf.pts = 0
            c.mux(s.encode(vf))
            c.mux(s.encode(None))
        (out,) = list(iter_frames(path))
        assert np.abs(out.astype(int) - img).max() <= 2, cs


def test_iter_frames_pixel_formats(tmp_path):
    img = patches()
    grey = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (8, 1))
    (g,) = list(iter_frames(make_video(tmp_path / "g.mkv", [grey], "ffv1", "gray")))
    assert np.array_equal(g, np.repeat(grey[..., None], 3, 2))  # untagged grey is full range
    (r,) = list(iter_frames(make_video(tmp_path / "r.mkv", [img], "ffv1", "bgr0")))
    assert np.array_equal(r, img)
    for pix in ("yuv420p10le", "yuv420p", "yuv444p"):
        (y,) = list(iter_frames(make_video(tmp_path / f"{pix}.mkv", [img], "ffv1", pix)))
        assert np.abs(interior(y).astype(int) - interior(img)).max() <= 2, pix


def test_iter_frames_resize_and_resize_frames(tmp_path):
    frames = blob_frames(4, 48, 64)
    path = make_video(tmp_path / "b.mkv", frames)
    small = np.stack(list(iter_frames(path, size=(24, 32))))
    assert small.shape == (4, 24, 32, 3) and small.flags.c_contiguous
    ref = resize_frames(np.stack(frames), (24, 32))
    assert np.abs(small.astype(int) - ref).mean() < 2  # area (PyAV) vs antialiased bicubic (torch)
    up = resize_frames(small, (48, 64))
    assert up.shape == (4, 48, 64, 3) and up.dtype == np.uint8
    assert psnr(up, np.stack(frames)) > 30
    assert resize_frames(up, (48, 64)) is not None and np.array_equal(resize_frames(up, (48, 64)), up)


def test_iter_frames_decode_error_names_file(tmp_path):
    path = make_video(tmp_path / "v.y4m", blob_frames(3, 16, 16), codec="rawvideo", pix_fmt="yuv420p")
    data = path.read_bytes()
    second = data.index(b"FRAME", data.index(b"FRAME") + 1)
    path.write_bytes(data[:second] + b"GARBAGE" + data[second + 5 :])
    with pytest.raises(InputError, match="v.y4m"):
        list(iter_frames(path))


def test_real_clip():
    clip = REAL_CLIPS / "city.mp4"
    info = probe(clip)
    assert (info.height, info.width, info.fps, info.frames_estimate) == (256, 320, 25.0, 8)
    frames = list(itertools.islice(iter_frames(clip), 3))
    assert len(frames) == 3 and frames[0].shape == (256, 320, 3)


# ---------------------------------------------------------------- writing and cache


def test_write_video_round_trips(tmp_path):
    frames = blob_frames(5, 33, 47)  # odd sizes
    assert write_video(tmp_path / "o.mkv", frames, fps=29.97) == 5
    back = list(iter_frames(tmp_path / "o.mkv"))
    assert all(np.array_equal(a, b) for a, b in zip(frames, back, strict=True))
    assert probe(tmp_path / "o.mkv").fps == pytest.approx(29.97, abs=1e-3)
    assert write_video(tmp_path / "o.y4m", iter(frames), fps=25) == 5
    back = np.stack(list(iter_frames(tmp_path / "o.y4m")))
    assert back.shape == (5, 33, 47, 3) and psnr(back, np.stack(frames)) > 42
    # .mp4 is H.264 4:2:0, which plays everywhere: odd sides get one copied row / column
    assert write_video(tmp_path / "o.mp4", iter(frames), fps=25) == 5
    with av.open(str(tmp_path / "o.mp4")) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"
    back = np.stack(list(iter_frames(tmp_path / "o.mp4")))
    assert back.shape == (5, 34, 48, 3) and psnr(back[:, :33, :47], np.stack(frames)) > 38
    assert psnr(back[:, 33:, :47], back[:, 32:33, :47]) > 38  # the copied row
    assert write_video(tmp_path / "s.mkv", frames, fps=25, size=(20, 30)) == 5
    assert probe(tmp_path / "s.mkv").height == 20
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_write_png_folder(tmp_path):
    frames = blob_frames(3, 9, 17)
    assert write_png_folder(tmp_path / "png", frames) == 3
    names = sorted(p.name for p in (tmp_path / "png").iterdir())
    assert names == ["frame_000000.png", "frame_000001.png", "frame_000002.png"]
    with av.open(str(tmp_path / "png" / "frame_000002.png")) as c:
        assert np.array_equal(next(c.decode(video=0)).to_ndarray(format="rgb24"), frames[2])


def test_write_video_errors(tmp_path):
    frames = blob_frames(2, 16, 16)
    with pytest.raises(OutputError, match=r"\.mkv, \.mp4, \.y4m"):
        write_video(tmp_path / "o.avi", frames, fps=25)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="cannot create folder"):
        write_video(tmp_path / "file" / "o.mkv", frames, fps=25)
    with pytest.raises(OutputError, match="no frames"):
        write_video(tmp_path / "o.mkv", [], fps=25)

    def broken():
        yield frames[0]
        yield np.zeros((8, 8, 3), np.uint8)  # a size change mid-stream

    with pytest.raises(InputError, match="frame 1"):
        write_video(tmp_path / "o.mkv", broken(), fps=25)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # nothing partial left


def test_frame_cache(tmp_path):
    frames = blob_frames(4, 9, 17)
    assert write_frames(tmp_path / "c.u8", iter(frames), 9, 17) == 4
    mm = open_frames(tmp_path / "c.u8", 9, 17)
    assert mm.shape == (4, 9, 17, 3) and not mm.flags.writeable
    assert np.array_equal(mm, np.stack(frames))
    assert write_frames(tmp_path / "e.u8", [], 9, 17) == 0
    assert open_frames(tmp_path / "e.u8", 9, 17).shape == (0, 9, 17, 3)
    with pytest.raises(InputError, match="frame 1"):
        write_frames(tmp_path / "bad.u8", [frames[0], frames[0][:8]], 9, 17)
    assert not (tmp_path / "bad.u8").exists()
    (tmp_path / "short.u8").write_bytes(b"\0" * 100)
    with pytest.raises(InputError, match="not a whole number"):
        open_frames(tmp_path / "short.u8", 9, 17)
