"""Write uint8 RGB frames [H, W, 3] as a video file or a folder of PNGs, atomically.

Containers by extension: .mkv is lossless FFV1 (bgr0, bit-exact RGB), .mp4 is H.264 4:2:0 (High
profile, yuv420p: what browsers, QuickTime and phones play) at CRF 12 tagged BT.709 limited range,
.y4m is raw 4:4:4 limited range with the matrix read.py assumes for untagged video (y4m cannot carry
a matrix tag). 4:2:0 needs even sides: an odd side of an .mp4 gets one more row or column, a copy of
its last one (a 33x47 picture is stored as 34x48); .mkv keeps every size and every value.
Every file is written under a temporary name in the same folder and renamed when complete.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, Interpolation, VideoReformatter

from ..atomic import atomic_path, write_atomic
from ..errors import InputError, OutputError
from .colour import default_matrix, tag_bt709
from .read import resize_frames


@dataclass(frozen=True)
class _Spec:
    format: str
    codec: str
    pix_fmt: str
    options: dict[str, str]
    tagged: bool
    """YUV tagged BT.709 limited range; y4m cannot carry a matrix, so it gets the reader's default."""
    even: bool = False  # chroma subsampled 2x2: sides padded to even


_SPECS = {
    ".mkv": _Spec("matroska", "ffv1", "bgr0", {"level": "3", "slicecrc": "1"}, False),
    ".mp4": _Spec("mp4", "libx264", "yuv420p", {"crf": "12", "preset": "medium"}, True, even=True),
    ".y4m": _Spec("yuv4mpegpipe", "rawvideo", "yuv444p", {}, False),
}


def _sized(frames: Iterable[np.ndarray], size: tuple[int, int] | None) -> Iterator[np.ndarray]:
    """Check every frame is uint8 [H, W, 3] of one size; resize to `size` if given."""
    shape = None
    for i, frame in enumerate(frames):
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise InputError(f"frame {i} is {frame.dtype} {frame.shape}, expected uint8 [H, W, 3]")
        if size is not None:
            frame = resize_frames(frame[None], size)[0]
        if shape is None:
            shape = frame.shape
        elif frame.shape != shape:
            raise InputError(f"frame {i} is {frame.shape[:2]}, earlier frames are {shape[:2]}")
        yield np.ascontiguousarray(frame)


def _prepare(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create folder {path.parent}: {exc.strerror or exc}") from None
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder")


def _add_stream(container, spec: _Spec, rate: Fraction, height: int, width: int):
    stream = container.add_stream(spec.codec, rate=rate)
    stream.height, stream.width, stream.pix_fmt = height, width, spec.pix_fmt
    stream.options = dict(spec.options)
    cc = stream.codec_context
    if spec.tagged:
        tag_bt709(cc, ColorRange.MPEG)
    elif spec.pix_fmt != "bgr0":
        cc.color_range = ColorRange.MPEG
    return stream


def _to_frame(frame: np.ndarray, spec: _Spec, reformatter: VideoReformatter) -> av.VideoFrame:
    """uint8 RGB [H, W, 3] -> a frame in the stream's pixel format."""
    vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
    if spec.pix_fmt == "bgr0":
        return reformatter.reformat(vf, format="bgr0")  # a byte shuffle, exact
    h, w = frame.shape[:2]
    matrix = Colorspace.ITU709 if spec.tagged else default_matrix(h, w)
    return reformatter.reformat(
        vf,
        format=spec.pix_fmt,
        dst_colorspace=matrix,
        dst_color_range=ColorRange.MPEG,
        interpolation=Interpolation.BICUBIC | Interpolation.ACCURATE_RND,
    )


def write_video(
    path: Path, frames: Iterable[np.ndarray], fps: float, size: tuple[int, int] | None = None
) -> int:
    """Write frames (uint8 RGB [H, W, 3], resized to size=(height, width) if given); returns the count.

    Raises OutputError for an unsupported extension, a bad fps, no frames or an unwritable path.
    """
    path = Path(path)
    spec = _SPECS.get(path.suffix.lower())
    if spec is None:
        raise OutputError(f"{path}: unsupported video extension; use one of {', '.join(_SPECS)}")
    if not (math.isfinite(fps) and fps > 0):
        raise OutputError(f"{path}: frame rate must be positive, got {fps}")
    rate = Fraction(fps).limit_denominator(1001 * 1000)  # 29.97002997 -> 30000/1001
    _prepare(path)
    count = 0
    try:
        with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format=spec.format) as container:
            stream = None
            reformatter = VideoReformatter()
            for frame in _sized(frames, size):
                if spec.even:
                    frame = _even_sides(frame)
                if stream is None:
                    stream = _add_stream(container, spec, rate, *frame.shape[:2])
                vf = _to_frame(frame, spec, reformatter)
                vf.pts = count
                container.mux(stream.encode(vf))
                count += 1
            if stream is None:
                raise OutputError(f"{path}: no frames to write")
            container.mux(stream.encode(None))  # flush the encoder's delayed frames
    except (av.FFmpegError, OSError) as exc:
        raise OutputError(f"cannot write {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return count


def _even_sides(frame: np.ndarray) -> np.ndarray:
    """The frame with its last row / column repeated where a side is odd."""
    h, w = frame.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frame
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def write_png_folder(folder: Path, frames: Iterable[np.ndarray], size: tuple[int, int] | None = None) -> int:
    """Write frames as folder/frame_000000.png, ... (RGB, 8 bit); returns the count."""
    folder = Path(folder)
    _prepare(folder / "frame_000000.png")
    codec = av.CodecContext.create("png", "w")
    count = 0
    for frame in _sized(frames, size):
        if count == 0:
            codec.height, codec.width = frame.shape[:2]
            codec.pix_fmt = "rgb24"
            codec.time_base = Fraction(1, 25)
        vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
        vf.pts = count
        data = b"".join(bytes(p) for p in codec.encode(vf))
        path = folder / f"frame_{count:06d}.png"
        try:
            write_atomic(path, data)
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
        count += 1
    return count
