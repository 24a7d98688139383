"""Keyframes coded in short groups, so that any clip decodes without the others.

The keyframes of each video form groups of `gop` consecutive keyframes, starting at the video's first
keyframe (keyframe_groups). Each group is ONE encoder session: an intra frame, then P-frames only
(no B-frames, no reordering), so every blob is the raw bitstream of ONE frame, blobs come out in
keyframe order, and a blob decodes with a fresh decoder fed its group's blobs from the first one up
to it (at most `gop` blobs). gop=1 is all-intra: every blob decodes alone.

The codecs (config.KEYFRAME_CODECS holds each one's quality range; docs/keyframe-codecs.md how
they compare), each behind the same two calls, encode_group and decode_run:

  'av1'  libsvtav1 preset 5, yuv420p, CRF = quality (0 means "unset" to FFmpeg, so it becomes 1);
         groups: low-delay prediction structure (pred-struct=1)
  'hevc' libx265 preset slow, tune psnr, yuv444p, CRF = quality, x265's info SEI off, no worker
         pool (reproducible bytes); groups: bframes=0, frame-threads=1
  'h264' libx264 preset slow, tune psnr, yuv444p (High 4:4:4), CRF = quality, bframes=0, threads=1
  'imagecodec'  dnerv_codec.imagecodec, quality 0..100 (higher is better); intra only, so
         KeyframeConfig holds its gop at 1; a blob is one coded image (docs/format.md)

The PyAV codecs' headers (AV1 sequence header, HEVC VPS/SPS/PPS, H.264 SPS/PPS) are in-band in a
group's first blob because no global-header flag is set. AV1 blobs drop the 2-byte temporal
delimiter that SVT-AV1 puts first; decode puts it back. H.264 blobs drop x264's version SEI (text).
Colour: BT.709 matrix, full range, on both sides, explicit (and tagged in the bitstream).
Chroma is shrunk with an area filter and grown with bicubic + exact rounding (better than the
swscale defaults: docs/keyframe-codecs.md). Padding: each side is replicated at the bottom/right up
to max(64, ceil8(side)) (the safe minimum of SVT-AV1 and x265 across versions), and cropped after
decoding.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

# SVT-AV1 writes a banner and warnings straight to stderr; keep only its errors (library never prints).
os.environ.setdefault("SVT_LOG", "1")

import av  # noqa: E402  (after SVT_LOG, which SVT-AV1 reads once)
import numpy as np  # noqa: E402
from av.video.reformatter import ColorRange, Colorspace, Interpolation, VideoReformatter  # noqa: E402

from . import imagecodec  # noqa: E402
from .config import KeyframeConfig  # noqa: E402
from .errors import ArchiveError, ConfigError, InputError  # noqa: E402
from .video.colour import tag_bt709  # noqa: E402

_TEMPORAL_DELIMITER = b"\x12\x00"  # AV1 OBU type 2, has_size_field, payload size 0
_X264_SEI = b"x264 - core "  # the start of x264's version SEI text
_TO_YUV = Interpolation.AREA | Interpolation.ACCURATE_RND
_TO_RGB = Interpolation.BICUBIC | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT


def to_yuv(
    image: np.ndarray, padded: tuple[int, int], pix_fmt: str, reformatter: VideoReformatter
) -> av.VideoFrame:
    """uint8 RGB [h, w, 3] -> a BT.709 full-range frame of `pix_fmt`, edges replicated up to
    `padded` (height, width): edges code cheaply."""
    h, w = image.shape[:2]
    if (h, w) != padded:
        image = np.pad(image, ((0, padded[0] - h), (0, padded[1] - w), (0, 0)), mode="edge")
    return reformatter.reformat(
        av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24"),
        format=pix_fmt,
        dst_colorspace=Colorspace.ITU709,
        dst_color_range=ColorRange.JPEG,
        interpolation=_TO_YUV,
    )


def to_rgb(frame: av.VideoFrame, height: int, width: int, reformatter: VideoReformatter) -> np.ndarray:
    """A decoded BT.709 full-range frame -> uint8 RGB, cropped to height x width (the padding off)."""
    rgb = reformatter.reformat(
        frame,
        format="rgb24",
        src_colorspace=Colorspace.ITU709,
        src_color_range=ColorRange.JPEG,
        interpolation=_TO_RGB,
    )
    return rgb.to_ndarray()[:height, :width]


def padded_size(height: int, width: int) -> tuple[int, int]:
    """The (height, width) a keyframe is coded at: each side rounded up to a multiple of 8, >= 64."""
    return max(64, -(-height // 8) * 8), max(64, -(-width // 8) * 8)


def keyframe_groups(video_starts: Sequence[int], count: int, gop: int) -> list[range]:
    """The coding groups of `count` global keyframes: each video's keyframes (video v starts at
    global keyframe video_starts[v], as Layout.first_keyframe) cut into runs of `gop` from its first."""
    if gop < 1:
        raise ConfigError(f"keyframe gop must be at least 1, got {gop}")
    starts = sorted({0, *(int(s) for s in video_starts if 0 <= s < count)}) if count else []
    groups = []
    for v, start in enumerate(starts):
        end = starts[v + 1] if v + 1 < len(starts) else count
        groups.extend(range(g, min(g + gop, end)) for g in range(start, end, gop))
    return groups


def decode_spans(indices: Iterable[int], video_starts: Sequence[int], count: int, gop: int) -> list[range]:
    """What decoding the keyframes `indices` takes: per group holding one of them, the run of
    keyframes from the group's first (intra) one up to the last one wanted, in keyframe order."""
    wanted = sorted(set(indices))
    if wanted and (wanted[0] < 0 or wanted[-1] >= count):
        raise IndexError(f"keyframe index out of range 0..{count - 1}")
    spans = []
    groups = iter(keyframe_groups(video_starts, count, gop))
    group = None
    for k in wanted:
        while group is None or k >= group.stop:
            group = next(groups)
        if spans and spans[-1].start == group.start:
            spans[-1] = range(group.start, k + 1)
        else:
            spans.append(range(group.start, k + 1))
    return spans


def _drop_x264_sei(packet: bytes) -> bytes:
    """The Annex B packet without x264's version SEI NAL unit (informational text only)."""
    at = packet.find(_X264_SEI)
    start = packet.rfind(b"\x00\x00\x01", 0, at) if at >= 0 else -1
    end = packet.find(b"\x00\x00\x01", at)
    if start < 0 or end < 0:
        return packet
    return packet[:start] + packet[end:]  # a 4-byte start code's leading 0 may stay: still valid


def _what(codec: str, blobs: Sequence[bytes]) -> str:
    return f"{codec} keyframe" if len(blobs) == 1 else f"run of {len(blobs)} {codec} keyframes"


@dataclass(frozen=True)
class _AvCodec:
    """A PyAV (FFmpeg) video codec: each group one encoder session, each run one decoder."""

    name: str
    encoder: str
    decoders: tuple[str, ...]
    pix_fmt: str
    options: dict[str, str]
    min_crf: int
    group_options: dict[str, str] = field(default_factory=dict)  # replace options in groups of > 1

    def encode_group(self, images: np.ndarray, quality: int) -> list[bytes]:
        """One encoder session: the first image intra, the others predicted; one blob per image."""
        _, h, w, _ = images.shape
        ph, pw = padded_size(h, w)
        try:
            cc = av.CodecContext.create(self.encoder, "w")
        except av.FFmpegError:  # UnknownCodecError and friends
            raise ConfigError(f"this PyAV build has no {self.encoder} encoder") from None
        cc.width, cc.height, cc.pix_fmt = pw, ph, self.pix_fmt
        cc.time_base, cc.framerate = Fraction(1, 25), Fraction(25)
        tag_bt709(cc, ColorRange.JPEG)
        options = {**self.options, **(self.group_options if len(images) > 1 else {})}
        cc.options = {**options, "crf": str(max(self.min_crf, quality))}
        packets = []
        reformatter = VideoReformatter()
        for i, image in enumerate(images):
            frame = to_yuv(image, (ph, pw), self.pix_fmt, reformatter)
            frame.pts = i
            packets.extend(bytes(p) for p in cc.encode(frame))
        packets.extend(bytes(p) for p in cc.encode(None))
        if len(images) == 1:
            packets = [b"".join(packets)]
        if len(packets) != len(images):
            raise ConfigError(f"{self.encoder} gave {len(packets)} packets for {len(images)} keyframes")
        if self.encoder == "libsvtav1":
            packets = [
                p[len(_TEMPORAL_DELIMITER) :] if p.startswith(_TEMPORAL_DELIMITER) else p for p in packets
            ]
        elif self.encoder == "libx264":
            packets[0] = _drop_x264_sei(packets[0])
        return packets

    def decode_run(self, blobs: Sequence[bytes], height: int, width: int) -> np.ndarray:
        """A group's blobs from its first on -> uint8 RGB [len(blobs), height, width, 3]."""
        if self.encoder == "libsvtav1":
            blobs = [_TEMPORAL_DELIMITER + bytes(b) for b in blobs]
        frames = self._decode_packets(blobs)
        if len(frames) != len(blobs):
            size = sum(len(b) for b in blobs)
            raise ArchiveError(
                f"corrupt {_what(self.name, blobs)} ({size} bytes): {len(frames)} pictures decoded"
            )
        out = np.empty((len(blobs), height, width, 3), np.uint8)
        reformatter = VideoReformatter()
        for i, frame in enumerate(frames):
            pix_fmt = frame.format.name.replace("yuvj", "yuv")  # FFmpeg's h264 tags full range so
            if pix_fmt != self.pix_fmt or frame.height < height or frame.width < width:
                raise ArchiveError(
                    f"{self.name} keyframe decodes to {frame.format.name} {frame.height}x{frame.width}, "
                    f"expected {self.pix_fmt} of at least {height}x{width}"
                )
            out[i] = to_rgb(frame, height, width, reformatter)
        return out

    def _decode_packets(self, blobs: Sequence[bytes]) -> list[av.VideoFrame]:
        """The pictures of the blobs, fed in order to one decoder (the first of self.decoders there is)."""
        for name in self.decoders:
            try:
                cc = av.CodecContext.create(name, "r")
            except av.FFmpegError:
                continue
            try:
                frames = [frame for blob in blobs for frame in cc.decode(av.Packet(bytes(blob)))]
                frames.extend(cc.decode(None))
            except (av.FFmpegError, ValueError) as exc:
                size = sum(len(b) for b in blobs)
                raise ArchiveError(f"corrupt {_what(self.name, blobs)} ({size} bytes): {exc}") from None
            return frames
        raise ConfigError(f"this PyAV build has none of the {self.name} decoders {', '.join(self.decoders)}")


class _ImageCodec:
    """dnerv_codec.imagecodec: every keyframe one coded image, decoded alone (intra only)."""

    name = "imagecodec"

    def encode_group(self, images: np.ndarray, quality: int) -> list[bytes]:
        return [imagecodec.encode_image(image, quality) for image in images]

    def decode_run(self, blobs: Sequence[bytes], height: int, width: int) -> np.ndarray:
        out = np.empty((len(blobs), height, width, 3), np.uint8)
        for i, blob in enumerate(blobs):
            try:
                image = imagecodec.decode_image(blob)
            except ArchiveError as exc:  # its own kind kept: UnsupportedVersionError stays one
                raise type(exc)(f"imagecodec keyframe ({len(blob)} bytes): {exc}") from None
            if image.shape[:2] != (height, width):
                raise ArchiveError(
                    f"imagecodec keyframe is {image.shape[0]}x{image.shape[1]}, expected {height}x{width}"
                )
            out[i] = image
        return out


# pools=none: with its worker pool, x265 gave different bytes for the same pictures now and then in a
# long-running process (caught by tests/test_golden.py); keyframes are small and few, so one thread
_X265 = "log-level=none:info=0"
_CODECS: dict[str, _AvCodec | _ImageCodec] = {
    "av1": _AvCodec(
        "av1",
        "libsvtav1",
        ("libdav1d", "libaom-av1"),
        "yuv420p",
        {"preset": "5"},
        1,
        {"svtav1-params": "pred-struct=1"},
    ),
    "hevc": _AvCodec(
        "hevc",
        "libx265",
        ("hevc",),
        "yuv444p",
        {"preset": "slow", "tune": "psnr", "x265-params": _X265},
        0,
        {"x265-params": f"{_X265}:bframes=0:frame-threads=1"},
    ),
    "h264": _AvCodec(
        "h264",
        "libx264",
        ("h264",),
        "yuv444p",
        {"preset": "slow", "tune": "psnr", "x264-params": "bframes=0:threads=1"},
        0,
    ),
    "imagecodec": _ImageCodec(),
}


def _spec(codec: str, error: type[Exception]) -> _AvCodec | _ImageCodec:
    try:
        return _CODECS[codec]
    except KeyError:
        raise error(f"unknown keyframe codec {codec!r}; known: {', '.join(_CODECS)}") from None


def encode_keyframes(
    frames: np.ndarray, cfg: KeyframeConfig, video_starts: Sequence[int] = (0,)
) -> list[bytes]:
    """Code uint8 RGB keyframes [K, H, W, 3] (any H, W >= 1): one blob per keyframe, in groups of
    cfg.gop within each video (video_starts: global index of each video's first keyframe)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8 or 0 in frames.shape[1:3]:
        raise InputError(f"keyframes must be uint8 [K, H, W, 3], got {frames.dtype} {frames.shape}")
    spec = _spec(cfg.codec, ConfigError)
    blobs: list[bytes] = []
    for group in keyframe_groups(video_starts, len(frames), cfg.gop):
        blobs.extend(spec.encode_group(frames[group.start : group.stop], cfg.quality))
    return blobs


def decode_keyframe_run(blobs: Sequence[bytes], codec: str, height: int, width: int) -> np.ndarray:
    """Decode consecutive blobs of ONE group, from its first (intra) blob on, with one decoder,
    into uint8 RGB [len(blobs), height, width, 3].

    Raises ArchiveError when the blobs do not decode to one picture each of at least that size
    (imagecodec: of exactly that size).
    """
    spec = _spec(codec, ArchiveError)
    if any(not b for b in blobs):
        raise ArchiveError(f"empty {codec} keyframe")
    return spec.decode_run(blobs, height, width)


def decode_keyframes(
    blobs: Sequence[bytes],
    codec: str,
    height: int,
    width: int,
    gop: int = 1,
    video_starts: Sequence[int] = (0,),
) -> np.ndarray:
    """Decode ALL the blobs of encode_keyframes(frames, cfg, video_starts) (gop = cfg.gop) into
    uint8 RGB [K, height, width, 3], each group with one decoder."""
    out = np.empty((len(blobs), height, width, 3), np.uint8)
    for group in keyframe_groups(video_starts, len(blobs), gop):
        out[group.start : group.stop] = decode_keyframe_run(
            blobs[group.start : group.stop], codec, height, width
        )
    return out
