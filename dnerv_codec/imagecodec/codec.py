"""encode_image / decode_image: colour, padding, transform, quantisation and the symbol layer."""

from __future__ import annotations

import numpy as np

from ..errors import ArchiveError, ConfigError, InputError
from . import bitstream, coder, color, dcpred, deblock, quantize, tokens, transform
from .bitstream import Header

# step factor per plane for the RGB error a unit of it causes (color.RGB_WEIGHT), times a chroma
# factor per mode (4:2:0 chroma samples each cover 4 pixels)
CHROMA_FACTOR = {False: 1.0, True: 0.5}
# below this quality 4:2:0 chroma gives more RGB PSNR per byte, above it 4:4:4
# (measured: docs/keyframe-codecs.md#chroma-subsampling)
SUBSAMPLE_BELOW = 28


def plane_steps(quality: int, subsampled: bool) -> list[float]:
    d = quantize.base_step(quality)
    w = color.RGB_WEIGHT
    return [d] + [d * CHROMA_FACTOR[subsampled] * float(np.sqrt(w[0] / w[i])) for i in (1, 2)]


def _check_image(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or 0 in rgb.shape[:2]:
        raise InputError(f"image must be uint8 [H, W, 3], got {rgb.dtype} {rgb.shape}")
    if max(rgb.shape[:2]) > 65536 or rgb.shape[0] * rgb.shape[1] > bitstream.MAX_PIXELS:
        raise InputError(f"image too large: {rgb.shape[0]}x{rgb.shape[1]}")
    return rgb


def _padded(h: int, w: int, subsampled: bool) -> tuple[int, int]:
    m = 16 if subsampled else 8
    return -(-h // m) * m, -(-w // m) * m


def _grids(header: Header) -> list[tuple[int, int]]:
    ph, pw = _padded(header.height, header.width, header.subsampled)
    c = 16 if header.subsampled else 8
    return [(ph // 8, pw // 8)] + [(ph // c, pw // c)] * 2


def _decoded_plane(levels: np.ndarray, step: float, offsets) -> np.ndarray:
    return transform.inverse(quantize.dequantize(levels, step, np.asarray(offsets)))


def _reconstruct(header: Header, levels: list[np.ndarray]) -> np.ndarray:
    """Levels [by, bx, 64] per plane (DC absolute) -> uint8 RGB; the decoder's only output path."""
    steps = plane_steps(header.quality, header.subsampled)
    planes = [
        deblock.deblock(_decoded_plane(lev, s, off), s, strength)
        for lev, s, off, strength in zip(levels, steps, header.offsets, header.deblock, strict=True)
    ]
    if header.subsampled:
        planes[1:] = [color.upsample(p) for p in planes[1:]]
    return color.ycbcr_to_rgb(*planes)[: header.height, : header.width]


def encode(rgb: np.ndarray, quality: int, subsampled: bool | None = None) -> tuple[bytes, np.ndarray]:
    """(coded bytes, the decoder's exact output) for uint8 RGB [H, W, 3] at quality 0..100;
    subsampled: 4:2:0 chroma (default: when quality < SUBSAMPLE_BELOW, else 4:4:4).
    InputError for a bad image, ConfigError for a quality out of range."""
    rgb = _check_image(rgb)
    if not 0 <= int(quality) <= 100:
        raise ConfigError(f"image quality must be 0..100, got {quality}")
    quality = int(quality)
    subsampled = quality < SUBSAMPLE_BELOW if subsampled is None else bool(subsampled)
    h, w, _ = rgb.shape
    ph, pw = _padded(h, w, subsampled)
    planes = list(color.rgb_to_ycbcr(np.pad(rgb, ((0, ph - h), (0, pw - w), (0, 0)), mode="edge")))
    if subsampled:
        planes[1:] = [color.downsample(p) for p in planes[1:]]
    levels, offsets, strengths = [], [], []
    for plane, step in zip(planes, plane_steps(quality, subsampled), strict=True):
        coef = transform.forward(plane)
        lev, off = quantize.quantize(coef.reshape(-1, 64), step)
        levels.append(lev.reshape(coef.shape))
        offsets.append((int(off[0]), int(off[1])))
        strengths.append(deblock.best_strength(_decoded_plane(levels[-1], step, off), plane, step))
    header = Header(h, w, quality, subsampled, tuple(offsets), tuple(strengths))

    ch = coder.Channel()
    models = coder.Models()
    values = []
    for i, lev in enumerate(levels):
        v = lev.copy()
        v[..., 0] = dcpred.residuals(lev[..., 0])
        tok, _, _ = tokens.split(np.abs(v))
        coder.code_plane(ch, models, min(i, 1), tok)
        values.append(v.reshape(-1))
    v = np.concatenate(values)
    tok, raw, _ = tokens.split(np.abs(v))
    coder.code_raw(ch, tok, raw, v < 0)
    return bitstream.pack(header, ch.words()), _reconstruct(header, levels)


def encode_image(rgb: np.ndarray, quality: int) -> bytes:
    """Code uint8 RGB [H, W, 3] (1..65536 a side) at quality 0 (smallest) .. 100 (best)."""
    return encode(rgb, quality)[0]


def decode_image(data: bytes) -> np.ndarray:
    """Decode bytes from encode_image into uint8 RGB [H, W, 3]; ArchiveError when they are not a
    valid coded image (truncated, corrupt, unknown version)."""
    header, words = bitstream.unpack(data)
    try:
        ch = coder.Channel(words)
        models = coder.Models()
        toks = []
        for i, (by, bx) in enumerate(_grids(header)):
            toks.append(coder.code_plane(ch, models, min(i, 1), np.zeros((by, bx, 64), np.int64)))
        tok = np.concatenate([t.reshape(-1) for t in toks])
        raw, negative = coder.code_raw(ch, tok, None, None)
        if not ch.exhausted():
            raise ValueError("data left over after the last symbol")
    except (ValueError, RuntimeError, OverflowError, AssertionError) as exc:
        raise ArchiveError(f"coded image corrupt: {exc}") from None
    mag = tokens.join(tok, raw)
    v = np.where(negative, -mag, mag)
    levels, start = [], 0
    for t in toks:
        lev = v[start : start + t.size].reshape(t.shape)
        start += t.size
        lev[..., 0] = dcpred.reconstruct(lev[..., 0])
        levels.append(lev)
    return _reconstruct(header, levels)
