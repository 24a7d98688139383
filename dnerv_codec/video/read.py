"""Find, probe and decode input videos into uint8 RGB frames [H, W, 3].

Colour: a YUV frame is converted with the matrix and range it is tagged with. Untagged frames use
BT.709 when they are HD (wider than 1024 or taller than 576, mpv's rule) and BT.601 otherwise,
limited range for YUV and full range for grey (swscale's defaults).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F
from av.video.reformatter import Interpolation, VideoReformatter

from ..errors import ConfigError, InputError
from .colour import UNSPECIFIED, default_matrix

# Demuxers that open text files as pictures (ANSI art); FFmpeg picks them for .txt and the like.
_TEXT_FORMATS = {"tty", "bin", "xbin", "idf", "adf"}
# Full-resolution chroma and exact rounding: without them 4:2:0 -> RGB loses ~0.5 dB.
_QUALITY_FLAGS = Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT


@dataclass(frozen=True)
class VideoInfo:
    """What probe() learned about one input video (width/height of its decoded frames)."""

    path: Path
    name: str
    width: int
    height: int
    fps: float
    frames_estimate: int | None
    codec: str
    pix_fmt: str
    has_audio: bool


class _Unusable(Exception):
    """Internal: the reason a file is not a usable video (without the path)."""


def _open(path: Path) -> av.container.InputContainer:
    try:
        if path.stat().st_size == 0:
            raise _Unusable("empty file")
        return av.open(str(path), mode="r")
    except av.error.EOFError:
        raise _Unusable("truncated or empty media file") from None
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise _Unusable(f"not a media file PyAV can open ({_why(exc)})") from None


def _why(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _probe(path: Path, name: str) -> VideoInfo:
    with _open(path) as container:
        fmt = container.format.name
        if fmt in _TEXT_FORMATS:
            raise _Unusable("a text file, not a video")
        if fmt == "image2" or fmt.endswith("_pipe"):
            raise _Unusable("a still image, not a video")
        if not container.streams.video:
            kind = " (audio only)" if container.streams.audio else ""
            raise _Unusable(f"no video stream{kind}")
        stream = container.streams.video[0]
        try:
            first = next(container.decode(stream), None)
        except (av.FFmpegError, ValueError) as exc:
            raise _Unusable(f"first frame cannot be decoded ({_why(exc)})") from None
        if first is None:
            raise _Unusable("no decodable frames (zero-frame video)")
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate and rate > 0 else 25.0
        frames = stream.frames or None
        if frames is None and stream.duration and stream.time_base:
            frames = round(float(stream.duration * stream.time_base) * fps) or None
        elif frames is None and container.duration:
            frames = round(container.duration / av.time_base * fps) or None
        return VideoInfo(
            path=path,
            name=name,
            width=first.width,
            height=first.height,
            fps=fps,
            frames_estimate=frames,
            codec=stream.codec_context.name,
            pix_fmt=first.format.name,
            has_audio=bool(container.streams.audio),
        )


def probe(path: Path, name: str | None = None) -> VideoInfo:
    """Open `path`, decode its first frame and describe it; InputError if it is not a usable video."""
    path = Path(path)
    try:
        return _probe(path, name if name is not None else path.name)
    except _Unusable as exc:
        raise InputError(f"{path}: {exc}") from None


def _walk(folder: Path) -> Iterator[Path]:
    """Non-hidden files under `folder`, sorted, following links but never a directory twice."""
    seen: set[tuple[int, int]] = set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        st = os.stat(root)
        if (st.st_dev, st.st_ino) in seen:  # a symlink loop or a second link to a visited dir
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in sorted(files):
            if not f.startswith("."):
                yield Path(root) / f


def _unique(name: str, taken: set[str]) -> str:
    """`name`, or `stem~k.ext` with the smallest k >= 2 not yet taken."""
    if name not in taken:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or "/" in ext:
        stem, ext = name, ""
    k = 2
    while (candidate := f"{stem}~{k}{'.' + ext if ext else ''}") in taken:
        k += 1
    return candidate


def find_videos(inputs: Sequence[Path]) -> tuple[list[VideoInfo], list[tuple[Path, str]]]:
    """Expand files and folders (recursively, sorted) and probe every file.

    Returns (usable videos in input order, skipped (path, reason)). Names are paths relative to
    the folder argument (POSIX), or the file name for a file argument, made unique with `~k`.
    Raises InputError for an input path that does not exist.
    """
    candidates: list[tuple[Path, str]] = []
    for raw in inputs:
        p = Path(raw)
        if not p.exists():
            raise InputError(f"{p}: no such file or folder")
        if p.is_dir():
            candidates += [(f, f.relative_to(p).as_posix()) for f in _walk(p)]
        else:
            candidates.append((p, p.name))

    videos: list[VideoInfo] = []
    skipped: list[tuple[Path, str]] = []
    seen: set[tuple[int, int]] = set()
    taken: set[str] = set()
    for path, name in candidates:
        try:
            st = path.stat()
        except OSError as exc:
            skipped.append((path, f"cannot be read ({_why(exc)})"))
            continue
        if not stat.S_ISREG(st.st_mode):  # never open fifos or devices: reading could block
            skipped.append((path, "not a regular file"))
            continue
        if (st.st_dev, st.st_ino) in seen:  # the same file given twice is used once
            continue
        seen.add((st.st_dev, st.st_ino))
        try:
            info = _probe(path, _unique(name, taken))
        except _Unusable as exc:
            skipped.append((path, str(exc)))
            continue
        taken.add(info.name)
        videos.append(info)
    return videos, skipped


def _to_rgb(frame: av.VideoFrame, reformatter: VideoReformatter, height: int, width: int) -> np.ndarray:
    src_cs = None  # None: the frame's own tag
    if frame.colorspace == UNSPECIFIED:
        src_cs = default_matrix(frame.height, frame.width)  # swscale alone would assume BT.601
    shrink = height < frame.height and width < frame.width
    interp = (Interpolation.AREA if shrink else Interpolation.BICUBIC) | _QUALITY_FLAGS
    rgb = reformatter.reformat(
        frame, width=width, height=height, format="rgb24", src_colorspace=src_cs, interpolation=interp
    )
    return np.ascontiguousarray(rgb.to_ndarray())


def iter_frames(path: Path, size: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
    """Yield every frame of the first video stream as uint8 RGB [H, W, 3], C-contiguous.

    size=(height, width) resizes (area filter when shrinking, bicubic otherwise); without it all
    frames take the first frame's size (a mid-stream resolution change is resized to it).
    Raises InputError naming the file when it cannot be opened or decoding fails.
    """
    path = Path(path)
    if size is not None and min(size) < 1:
        raise ConfigError(f"frame size must be positive, got {size}")
    try:
        container = _open(path)
    except _Unusable as exc:
        raise InputError(f"{path}: {exc}") from None
    with container:
        if not container.streams.video:
            raise InputError(f"{path}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame threads: same pixels, faster on several cores
        reformatter = VideoReformatter()
        index = 0
        try:
            for frame in container.decode(stream):
                if size is None:
                    size = (frame.height, frame.width)
                yield _to_rgb(frame, reformatter, size[0], size[1])
                index += 1
        except (av.FFmpegError, ValueError) as exc:
            raise InputError(f"{path}: decoding failed at frame {index} ({_why(exc)})") from None


def resize_frames(frames: np.ndarray, size: tuple[int, int], chunk: int = 16) -> np.ndarray:
    """Resample uint8 frames [N, H, W, 3] to [N, height, width, 3] (bicubic, antialiased)."""
    n, h, w, _ = frames.shape
    if (h, w) == tuple(size):
        return np.ascontiguousarray(frames)
    out = np.empty((n, size[0], size[1], 3), np.uint8)
    for i in range(0, n, chunk):  # chunks bound the float32 copy for long videos
        x = torch.from_numpy(np.ascontiguousarray(frames[i : i + chunk])).permute(0, 3, 1, 2).float()
        y = F.interpolate(x, size=tuple(size), mode="bicubic", antialias=True, align_corners=False)
        out[i : i + chunk] = y.round_().clamp_(0, 255).permute(0, 2, 3, 1).to(torch.uint8).numpy()
    return out
