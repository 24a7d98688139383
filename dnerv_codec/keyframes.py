"""Keyframes coded one by one with a real image codec, so that any clip decodes without the others.

Each blob is the raw bitstream of ONE intra frame from its own encoder session; the headers
(AV1 sequence header, HEVC VPS/SPS/PPS) are in-band because no global-header flag is set, so a
fresh decoder decodes every blob alone. AV1 blobs drop the 2-byte temporal delimiter that
SVT-AV1 puts first; decode puts it back.

  'av1'  libsvtav1 preset 5, yuv420p, CRF = quality (0 means "unset" to FFmpeg, so it becomes 1)
  'hevc' libx265 preset slow, tune psnr, yuv444p, CRF = quality (x265 info SEI off: -2.3 kB)

Colour: BT.709 matrix, full range, on both sides, explicit (and tagged in the bitstream).
Chroma is shrunk with an area filter and grown with bicubic + exact rounding (+0.5 dB vs the
swscale defaults). Padding: each side is replicated at the bottom/right up to max(64, ceil8(side))
(the safe minimum of SVT-AV1 and x265 across versions), and cropped after decoding.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction

# SVT-AV1 writes a banner and warnings straight to stderr; keep only its errors (library never prints).
os.environ.setdefault("SVT_LOG", "1")

import av  # noqa: E402  (after SVT_LOG, which SVT-AV1 reads once)
import numpy as np  # noqa: E402
from av.video.reformatter import ColorRange, Colorspace, Interpolation, VideoReformatter  # noqa: E402

from .config import KeyframeConfig  # noqa: E402
from .errors import ArchiveError, ConfigError, InputError  # noqa: E402

_BT709 = 1  # AVColorSpace / AVColorPrimaries / AVColorTransferCharacteristic value for BT.709
_TEMPORAL_DELIMITER = b"\x12\x00"  # AV1 OBU type 2, has_size_field, payload size 0
_TO_YUV = Interpolation.AREA | Interpolation.ACCURATE_RND
_TO_RGB = Interpolation.BICUBIC | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT


@dataclass(frozen=True)
class _Codec:
    encoder: str
    decoders: tuple[str, ...]
    pix_fmt: str
    options: dict[str, str]
    min_crf: int


_CODECS = {
    "av1": _Codec("libsvtav1", ("libdav1d", "libaom-av1"), "yuv420p", {"preset": "5"}, 1),
    "hevc": _Codec(
        "libx265",
        ("hevc",),
        "yuv444p",
        {"preset": "slow", "tune": "psnr", "x265-params": "log-level=none:info=0"},
        0,
    ),
}


def padded_size(height: int, width: int) -> tuple[int, int]:
    """The (height, width) a keyframe is coded at: each side rounded up to a multiple of 8, >= 64."""
    return max(64, -(-height // 8) * 8), max(64, -(-width // 8) * 8)


def _spec(codec: str, error: type[Exception]) -> _Codec:
    try:
        return _CODECS[codec]
    except KeyError:
        raise error(f"unknown keyframe codec {codec!r}; known: {', '.join(_CODECS)}") from None


def _encode_one(image: np.ndarray, spec: _Codec, quality: int) -> bytes:
    h, w, _ = image.shape
    ph, pw = padded_size(h, w)
    padded = np.pad(image, ((0, ph - h), (0, pw - w), (0, 0)), mode="edge")  # edges code cheaply
    try:
        cc = av.CodecContext.create(spec.encoder, "w")
    except av.FFmpegError:  # UnknownCodecError and friends
        raise ConfigError(f"this PyAV build has no {spec.encoder} encoder") from None
    cc.width, cc.height, cc.pix_fmt = pw, ph, spec.pix_fmt
    cc.time_base, cc.framerate = Fraction(1, 25), Fraction(25)
    cc.colorspace = cc.color_primaries = cc.color_trc = _BT709
    cc.color_range = ColorRange.JPEG
    cc.options = {**spec.options, "crf": str(max(spec.min_crf, quality))}
    frame = VideoReformatter().reformat(
        av.VideoFrame.from_ndarray(np.ascontiguousarray(padded), format="rgb24"),
        format=spec.pix_fmt,
        dst_colorspace=Colorspace.ITU709,
        dst_color_range=ColorRange.JPEG,
        interpolation=_TO_YUV,
    )
    frame.pts = 0
    data = b"".join(bytes(p) for p in [*cc.encode(frame), *cc.encode(None)])
    if spec.encoder == "libsvtav1" and data.startswith(_TEMPORAL_DELIMITER):
        data = data[len(_TEMPORAL_DELIMITER) :]
    return data


def encode_keyframes(frames: np.ndarray, cfg: KeyframeConfig) -> list[bytes]:
    """Code uint8 RGB keyframes [K, H, W, 3] (any H, W >= 1), each as its own decodable blob."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8 or 0 in frames.shape[1:3]:
        raise InputError(f"keyframes must be uint8 [K, H, W, 3], got {frames.dtype} {frames.shape}")
    spec = _spec(cfg.codec, ConfigError)
    return [_encode_one(image, spec, cfg.quality) for image in frames]


def decode_keyframe(data: bytes, codec: str, height: int, width: int) -> np.ndarray:
    """Decode one blob from encode_keyframes into uint8 RGB [height, width, 3].

    Raises ArchiveError when the blob does not decode to a picture of at least that size.
    """
    spec = _spec(codec, ArchiveError)
    if not data:
        raise ArchiveError(f"empty {codec} keyframe")
    if spec.encoder == "libsvtav1":
        data = _TEMPORAL_DELIMITER + bytes(data)
    frames = []
    for name in spec.decoders:
        try:
            cc = av.CodecContext.create(name, "r")
        except av.FFmpegError:
            continue
        try:
            frames = [*cc.decode(av.Packet(bytes(data))), *cc.decode(None)]
        except (av.FFmpegError, ValueError) as exc:
            raise ArchiveError(f"corrupt {codec} keyframe ({len(data)} bytes): {exc}") from None
        break
    else:
        raise ConfigError(f"this PyAV build has none of the {codec} decoders {', '.join(spec.decoders)}")
    if not frames:
        raise ArchiveError(f"corrupt {codec} keyframe ({len(data)} bytes): no picture decoded")
    frame = frames[0]
    if frame.format.name != spec.pix_fmt or frame.height < height or frame.width < width:
        raise ArchiveError(
            f"{codec} keyframe decodes to {frame.format.name} {frame.height}x{frame.width}, "
            f"expected {spec.pix_fmt} of at least {height}x{width}"
        )
    rgb = VideoReformatter().reformat(
        frame,
        format="rgb24",
        src_colorspace=Colorspace.ITU709,
        src_color_range=ColorRange.JPEG,
        interpolation=_TO_RGB,
    )
    return np.ascontiguousarray(rgb.to_ndarray()[:height, :width])


def decode_keyframes(blobs: list[bytes], codec: str, height: int, width: int) -> np.ndarray:
    """Decode several blobs into uint8 RGB [K, height, width, 3]."""
    out = np.empty((len(blobs), height, width, 3), np.uint8)
    for i, blob in enumerate(blobs):
        out[i] = decode_keyframe(blob, codec, height, width)
    return out
