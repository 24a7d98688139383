"""Standard codecs through PyAV, for rate-distortion ladders on the same frames dnerv fits.

Each codec takes a video's frames (uint8 RGB at the working size, from iter_frames), codes them at a
CRF into a real file (Matroska), decodes that file back, and returns a CodecPoint:

- rate: bits of the coded stream / (frames x height x width). The stream is the encoder's packets
  plus its extradata (parameter sets put out of band by the global-header flag); the container's
  own overhead is excluded. x264's informational version SEI (about 700 bytes per stream, which
  x264 cannot switch off) is not counted; x265's is switched off (info=0), as for the keyframes.
- quality: dnerv's one definition (metrics.QualityMeter: per-frame RGB PSNR, averaged; MS-SSIM) on
  the frames decoded back from the file, converted to RGB the way they were converted to YUV.
- frame count checked: decoding must give back exactly the frames coded.
- speed: encode and decode frames per second, including the RGB <-> YUV conversion, timed on this
  machine (other jobs on it slow them down); quality is measured after the decode timing.

Colour: BT.709 matrix, full range, tagged, both ways; chroma shrunk with an area filter and grown
bicubic with exact rounding (as keyframes.py). Pixel format: the one that gives each codec its
best RGB PSNR: yuv444p for x264 and x265 (no chroma subsampling), yuv420p for SVT-AV1 (the only
format it codes). Frames are padded (edges replicated) to a multiple of 8, at least 64, as the
keyframes are; the padding's bits count, its pixels do not. GOP, tuning and rate control are the
encoders' defaults apart from the CRF and the preset (x264/x265: keyint 250, no B-pyramid change,
no --tune), as in the NeRV literature's baselines.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.video.reformatter import ColorRange, VideoReformatter

from ..atomic import atomic_path
from ..errors import ConfigError, InputError, OutputError
from ..keyframes import padded_size, to_rgb, to_yuv  # importing sets SVT_LOG (SVT-AV1 quiet)
from ..metrics import QualityMeter
from ..video.colour import tag_bt709

_X264_SEI = re.compile(rb"x264 - core \d+[^\x00]*")


@dataclass(frozen=True)
class Codec:
    """One baseline codec configuration; `name` is what --codecs and the tables call it."""

    name: str
    family: str  # x264, x265 or av1 (what --codecs selects)
    encoder: str  # FFmpeg encoder name
    preset: str
    pix_fmt: str
    crfs: tuple[int, ...]  # the full ladder
    quick_crfs: tuple[int, ...]  # the --quick ladder
    options: dict[str, str] = field(default_factory=dict)

    def settings(self, crf: int) -> dict[str, Any]:
        """Everything that shapes this codec's output at `crf` (part of the cache key)."""
        return {
            "encoder": self.encoder,
            "preset": self.preset,
            "pix_fmt": self.pix_fmt,
            "crf": crf,
            "options": dict(self.options),
            "range": "full",
            "matrix": "bt709",
        }

    def ladder(self, quick: bool) -> tuple[int, ...]:
        return self.quick_crfs if quick else self.crfs


_X265_PARAMS = "log-level=error:info=0"
CODECS: dict[str, Codec] = {
    c.name: c
    for c in (
        Codec(
            "x264-veryslow", "x264", "libx264", "veryslow", "yuv444p", (18, 23, 28, 33, 38, 43), (26, 34, 42)
        ),
        Codec("x264-medium", "x264", "libx264", "medium", "yuv444p", (18, 23, 28, 33, 38, 43), (26, 34, 42)),
        Codec(
            "x265-veryslow",
            "x265",
            "libx265",
            "veryslow",
            "yuv444p",
            (20, 25, 30, 35, 40, 45),
            (28, 36, 44),
            {"x265-params": _X265_PARAMS},
        ),
        Codec(
            "x265-medium",
            "x265",
            "libx265",
            "medium",
            "yuv444p",
            (20, 25, 30, 35, 40, 45),
            (28, 36, 44),
            {"x265-params": _X265_PARAMS},
        ),
        Codec("av1-preset4", "av1", "libsvtav1", "4", "yuv420p", (24, 32, 40, 48, 56, 63), (36, 48, 60)),
    )
}
"""The standard codec ladders. They reach down to the low qualities where dnerv works (about
24-30 dB on the shared clips), so the BD-rate ranges overlap; SVT-AV1's CRF stops at 63."""


@dataclass
class CodecPoint:
    """One coded video at one setting: rate, quality and speed (see the module docstring)."""

    codec: str
    video: str
    settings: dict[str, Any]
    frames: int
    height: int
    width: int
    bytes: int  # coded stream bytes counted for the rate
    bpp: float
    psnr: float
    ms_ssim: float | None
    encode_seconds: float
    decode_seconds: float
    encode_fps: float
    decode_fps: float
    encoder_version: str
    decoder: str
    file: str
    file_bytes: int  # the whole file, container included (for reference)
    excluded_bytes: int = 0  # informational SEI not counted (x264's version string)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> CodecPoint:
        return cls(**doc)


def encoder_version(encoder: str, first_packet: bytes = b"") -> str:
    """A description of the encoder: its own version string when the stream carries one (x264),
    else the encoder's long name, plus the libavcodec version PyAV was built with."""
    lavc = ".".join(str(v) for v in av.library_versions["libavcodec"])
    match = _X264_SEI.search(first_packet)
    if match:
        # "x264 - core 164 r3108 31e19f9 - H.264/MPEG-4 AVC codec - Copyleft ..." -> up to the codec
        text = match.group(0).decode("latin-1").split(" - H.264")[0]
        return f"{text} (libavcodec {lavc})"
    try:
        long_name = av.codec.Codec(encoder, "w").long_name
    except av.FFmpegError:
        long_name = encoder
    return f"{long_name} (libavcodec {lavc})"


def _x264_sei_bytes(packet: bytes) -> int:
    """Bytes of the x264 version SEI NAL unit in an Annex B packet (0 when there is none)."""
    match = _X264_SEI.search(packet)
    if not match:
        return 0
    start = packet.rfind(b"\x00\x00\x01", 0, match.start())
    if start < 0:
        return 0
    if start > 0 and packet[start - 1] == 0:
        start -= 1  # a 4-byte start code
    end = packet.find(b"\x00\x00\x01", match.end())
    if end < 0:
        end = len(packet)
    elif packet[end - 1] == 0:
        end -= 1
    return end - start


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8 or 0 in frames.shape[:3]:
        raise InputError(f"frames must be uint8 [N, H, W, 3] with N >= 1, got {frames.dtype} {frames.shape}")
    return frames


def code_video(
    codec: Codec, frames: np.ndarray, crf: int, path: Path, video: str = "", fps: float = 25.0
) -> CodecPoint:
    """Code uint8 RGB frames [N, H, W, 3] with `codec` at `crf` into the file `path` (.mkv), decode
    it back and measure it against `frames`. Raises ConfigError when PyAV lacks the encoder,
    OutputError when the file cannot be written, InputError for bad frames."""
    frames = _check_frames(frames)
    n, h, w, _ = frames.shape
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {path.parent}: {exc.strerror or exc}") from None
    with atomic_path(path) as tmp:  # a failed encode leaves no partial file
        coded = _encode(codec, frames, crf, tmp, fps)
    out, decoded, decoder, decode_seconds = _decode(path, frames)
    if decoded != n:
        raise InputError(f"{codec.name} at CRF {crf}: {path} decodes to {decoded} frames, {n} were coded")
    meter = QualityMeter()
    for i in range(0, n, 16):
        meter.add(out[i : i + 16], frames[i : i + 16])

    counted = coded.stream_bytes + coded.extradata - coded.excluded
    return CodecPoint(
        codec=codec.name,
        video=video,
        settings=codec.settings(crf),
        frames=n,
        height=h,
        width=w,
        bytes=counted,
        bpp=counted * 8 / (n * h * w),
        psnr=meter.mean_psnr(),
        ms_ssim=meter.mean_ms_ssim(),
        encode_seconds=coded.seconds,
        decode_seconds=decode_seconds,
        encode_fps=n / coded.seconds,
        decode_fps=n / decode_seconds,
        encoder_version=encoder_version(codec.encoder, coded.first_packet),
        decoder=decoder,
        file=str(path),
        file_bytes=path.stat().st_size,
        excluded_bytes=coded.excluded,
    )


@dataclass
class _Coded:
    """What encoding one stream gave: the bytes the rate counts and the encode time."""

    stream_bytes: int = 0  # the encoder's packets
    extradata: int = 0  # parameter sets put out of band by the global-header flag
    excluded: int = 0  # x264's version SEI (not counted)
    first_packet: bytes = b""
    seconds: float = 0.0


def _encode(codec: Codec, frames: np.ndarray, crf: int, tmp: Path, fps: float) -> _Coded:
    """Code `frames` into the Matroska file `tmp`, timed (the YUV conversion included)."""
    ph, pw = padded_size(*frames.shape[1:3])
    rate = Fraction(fps).limit_denominator(1001) if fps > 0 else Fraction(25)
    coded = _Coded()
    started = time.perf_counter()
    try:
        container = av.open(str(tmp), "w", format="matroska")
    except (av.FFmpegError, OSError) as exc:
        raise OutputError(f"cannot write {tmp}: {exc}") from None
    with container:
        try:
            stream = container.add_stream(codec.encoder, rate=rate)
        except (av.FFmpegError, ValueError):
            raise ConfigError(f"this PyAV build has no {codec.encoder} encoder") from None
        stream.width, stream.height, stream.pix_fmt = pw, ph, codec.pix_fmt
        cc = stream.codec_context
        tag_bt709(cc, ColorRange.JPEG)
        stream.options = {**codec.options, "preset": codec.preset, "crf": str(crf)}
        reformatter = VideoReformatter()

        def mux(packets) -> None:
            for packet in packets:
                if not coded.first_packet:
                    coded.first_packet = bytes(packet)
                coded.stream_bytes += packet.size
                container.mux(packet)

        for i, frame in enumerate(frames):
            vf = to_yuv(frame, (ph, pw), codec.pix_fmt, reformatter)
            vf.pts = i
            mux(stream.encode(vf))
        mux(stream.encode(None))
        coded.extradata = len(cc.extradata or b"")
    coded.seconds = time.perf_counter() - started
    if codec.encoder == "libx264":
        coded.excluded = _x264_sei_bytes(coded.first_packet)
    return coded


def _decode(path: Path, like: np.ndarray) -> tuple[np.ndarray, int, str, float]:
    """The file's frames back in RGB, into an array like `like` (at most len(like) kept); the
    number of frames it decodes to (all counted), the decoder's name and the decode time."""
    n, h, w, _ = like.shape
    started = time.perf_counter()
    out = np.empty_like(like)
    count = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        decoder = stream.codec_context.name
        reformatter = VideoReformatter()
        for frame in container.decode(stream):
            if count < n:
                out[count] = to_rgb(frame, h, w, reformatter)
            count += 1
    return out, count, decoder, time.perf_counter() - started
