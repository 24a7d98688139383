import numpy as np
import pytest
import torch

from dnerv_codec.metrics import QualityMeter, frame_ms_ssim, frame_psnr


def _noisy(shape, sigma, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    b = np.clip(a + rng.normal(0, sigma, shape), 0, 255).round().astype(np.uint8)
    return a, b


def test_psnr_matches_definition():
    a, b = _noisy((3, 16, 20, 3), 4.0)
    mse = ((a.astype(float) - b) ** 2).reshape(3, -1).mean(1)
    np.testing.assert_allclose(frame_psnr(a, b), 10 * np.log10(255**2 / mse))
    assert frame_psnr(a, a).tolist() == [100.0] * 3


@pytest.mark.parametrize("side", [256, 128, 40, 12])
def test_ms_ssim_defined_for_small_frames_and_ordered(side):
    a, b = _noisy((2, side, side, 3), 3.0)
    _, c = _noisy((2, side, side, 3), 20.0)
    good, bad = frame_ms_ssim(a, b), frame_ms_ssim(a, c)
    assert good is not None and bad is not None
    assert (good > bad).all() and (good <= 1.0 + 1e-6).all()


def test_ms_ssim_undefined_below_three_pixels():
    a, b = _noisy((1, 2, 2, 3), 3.0)
    assert frame_ms_ssim(a, b) is None


def test_meter_averages_over_frames():
    a, b = _noisy((4, 32, 32, 3), 5.0)
    meter = QualityMeter()
    meter.add(a[:1], b[:1])
    meter.add(a[1:], b[1:])
    assert meter.frames == 4
    assert meter.mean_psnr() == pytest.approx(frame_psnr(a, b).mean())
    assert meter.mean_ms_ssim() == pytest.approx(frame_ms_ssim(a, b).mean())


@pytest.mark.parametrize("scales", [2, 3, 4, 5])
@pytest.mark.parametrize("win", [11, 7])
def test_few_scale_ms_ssim_is_pytorch_msssims_with_truncated_weights(scales, win):
    # on frames large enough for pytorch-msssim's own ms_ssim, which takes any weights; odd sides
    # check the padding of the downsampling
    from pytorch_msssim import ms_ssim

    from dnerv_codec.metrics import _MS_SSIM_WEIGHTS, _few_scale_ms_ssim

    a, b = (torch.from_numpy(f).permute(0, 3, 1, 2).float() for f in _noisy((2, 191, 201, 3), 12.0))
    weights = torch.tensor(_MS_SSIM_WEIGHTS[:scales])
    want = ms_ssim(
        a, b, data_range=255, size_average=False, win_size=win, weights=(weights / weights.sum()).tolist()
    )
    torch.testing.assert_close(_few_scale_ms_ssim(a, b, scales, win), want, rtol=0, atol=1e-6)
