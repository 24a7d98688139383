"""dnerv_codec.imagecodec: exact round trips, rate-quality behaviour, odd sizes, corrupt data."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from dnerv_codec.errors import ArchiveError, ConfigError, InputError, UnsupportedVersionError
from dnerv_codec.imagecodec import dcpred, decode_image, encode, encode_image, tokens


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = ((a.astype(np.float64) - b) ** 2).mean()
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _natural(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A synthetic picture: smooth colour gradients, a few hard-edged shapes, mild noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([120 + 90 * np.sin(3 * x + 1), 100 + 80 * y, 140 + 60 * np.cos(4 * x * y)], axis=-1)
    for _ in range(4):
        cy, cx, r = rng.uniform(0, 1, 3) * [h, w, min(h, w) / 3]
        disk = (np.mgrid[0:h, 0:w][0] - cy) ** 2 + (np.mgrid[0:h, 0:w][1] - cx) ** 2 < r**2
        img[disk] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 4, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def picture() -> np.ndarray:
    return _natural(64, 80)


@pytest.mark.parametrize("subsampled", [False, True])
@pytest.mark.parametrize("quality", [0, 25, 60, 100])
def test_decode_equals_encoder_reconstruction(picture, quality, subsampled):
    data, recon = encode(picture, quality, subsampled=subsampled)
    out = decode_image(data)
    assert out.dtype == np.uint8 and out.shape == picture.shape
    np.testing.assert_array_equal(out, recon)


def test_psnr_increases_and_bytes_grow_with_quality(picture):
    results = [encode(picture, q) for q in (5, 25, 45, 65, 85)]
    sizes = [len(d) for d, _ in results]
    psnrs = [_psnr(r, picture) for _, r in results]
    assert all(b > a for a, b in zip(psnrs[:-1], psnrs[1:], strict=True)), psnrs
    assert all(b > a for a, b in zip(sizes[:-1], sizes[1:], strict=True)), sizes
    assert psnrs[-1] > 40


def test_high_quality_is_close_to_lossless(picture):
    assert _psnr(decode_image(encode_image(picture, 100)), picture) > 48


@pytest.mark.parametrize("shape", [(33, 47), (1, 1), (1, 70), (17, 9), (8, 8), (16, 24)])
@pytest.mark.parametrize("subsampled", [False, True])
def test_odd_sizes(shape, subsampled):
    img = _natural(*shape, seed=shape[0] * 100 + shape[1])
    data, recon = encode(img, 70, subsampled=subsampled)
    out = decode_image(data)
    assert out.shape == (*shape, 3)
    np.testing.assert_array_equal(out, recon)
    assert _psnr(out, img) > (20 if subsampled else 30)  # 4:2:0 blurs the hard colour edges


def test_grey_image_stays_grey():
    ramp = np.tile(np.linspace(0, 255, 48)[None, :, None], (40, 1, 3)).astype(np.uint8)
    data, recon = encode(ramp, 50)
    np.testing.assert_array_equal(decode_image(data), recon)
    assert np.abs(recon.astype(int) - ramp).max() <= 3
    assert np.abs(recon.astype(int)[..., 0] - recon[..., 2]).max() <= 1  # no colour cast


def test_random_noise_round_trips():
    noise = np.random.default_rng(1).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    for quality in (10, 90):
        data, recon = encode(noise, quality)
        np.testing.assert_array_equal(decode_image(data), recon)
    assert _psnr(decode_image(encode_image(noise, 100)), noise) > 45


def test_constant_image_is_tiny():
    flat = np.full((256, 320, 3), (40, 160, 90), np.uint8)
    data = encode_image(flat, 50)
    assert len(data) < 128, len(data)  # 0.0125 bit per pixel; a 256x320 picture takes kilobytes
    assert np.abs(decode_image(data).astype(int) - flat).max() <= 1


def test_truncated_data_raises_archive_error(picture):
    data = encode_image(picture, 40)
    for n in [0, 1, 5, 10, 17, 20, len(data) // 2, len(data) - 4, len(data) - 1]:
        with pytest.raises(ArchiveError):
            decode_image(data[:n])
    with pytest.raises(ArchiveError):
        decode_image(data + b"\x00")


def test_flipped_bits_raise_archive_error(picture):
    data = bytearray(encode_image(picture, 40))
    rng = np.random.default_rng(2)
    for pos in [0, 1, 3, 7, 13, *rng.integers(0, len(data), 20).tolist()]:
        bad = bytearray(data)
        bad[pos] ^= 1 << int(rng.integers(0, 8))
        with pytest.raises(ArchiveError):
            decode_image(bytes(bad))


def _reseal(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def test_corrupt_payload_with_valid_checksum_raises_only_archive_error(picture):
    """Past the checksum, a damaged range-coder stream must fail cleanly or decode to some picture of
    the right shape, never with another exception type; a stream cut short must fail."""
    body = encode_image(picture, 40)[:-4]
    rng = np.random.default_rng(3)
    garbage = rng.integers(0, 256, 400, dtype=np.uint8).tobytes()
    for _ in range(40):
        bad = bytearray(body)
        bad[int(rng.integers(15, len(bad)))] ^= int(rng.integers(1, 256))
        _decodes_or_refuses(_reseal(bytes(bad)), picture.shape)
    _decodes_or_refuses(_reseal(body[:15] + garbage), picture.shape)
    for cut in (body[:15], body[: len(body) // 2]):
        with pytest.raises(ArchiveError):
            decode_image(_reseal(cut))


def _decodes_or_refuses(data: bytes, shape: tuple[int, ...]) -> None:
    try:
        out = decode_image(data)
    except ArchiveError:
        return
    assert out.shape == shape


def test_header_checks():
    data = bytearray(encode_image(_natural(16, 16), 50))
    data[0] = 99
    with pytest.raises(UnsupportedVersionError):
        decode_image(_reseal(bytes(data[:-4])))
    data[0] = 1
    data[6] = 101  # quality out of range
    with pytest.raises(ArchiveError):
        decode_image(_reseal(bytes(data[:-4])))


def test_bad_inputs():
    with pytest.raises(InputError):
        encode_image(np.zeros((4, 4), np.uint8), 50)
    with pytest.raises(InputError):
        encode_image(np.zeros((4, 4, 3), np.float32), 50)
    with pytest.raises(InputError):
        encode_image(np.zeros((0, 4, 3), np.uint8), 50)
    with pytest.raises(ConfigError):
        encode_image(np.zeros((4, 4, 3), np.uint8), 101)


def test_tokens_round_trip():
    mag = np.concatenate([np.arange(0, 5000), [tokens.MAX_MAGNITUDE, 65535, 65536, 1 << 17]])
    tok, raw, nbits = tokens.split(mag)
    assert tok.max() < tokens.ALPHABET
    np.testing.assert_array_equal(tokens.raw_bits(tok), nbits)
    assert (raw < (1 << nbits)).all()
    np.testing.assert_array_equal(tokens.join(tok, raw), mag)


def test_dc_prediction_round_trip():
    dc = np.random.default_rng(4).integers(-300, 300, (7, 9))
    np.testing.assert_array_equal(dcpred.reconstruct(dcpred.residuals(dc)), dc)


def test_chroma_mode_follows_quality(picture):
    assert encode_image(picture, 10)[1] & 1 == 1  # flags byte: 4:2:0 at low quality
    assert encode_image(picture, 60)[1] & 1 == 0
    assert encode(picture, 10, subsampled=False)[0][1] & 1 == 0
