"""SSIM for the training loss: pytorch_msssim.ssim's values and gradients, with fewer passes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pytorch_msssim.ssim import _fspecial_gauss_1d  # its window, as metrics.py uses it
from torch import Tensor

K1, K2 = 0.01, 0.03  # pytorch_msssim's (and Wang et al.'s) constants


def _blur(x: Tensor, g: Tensor) -> Tensor:
    """Separable 'valid' Gaussian filter of every channel of x [N, C, H, W]."""
    c, k = x.shape[1], g.numel()
    x = F.conv2d(x, g.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)
    return F.conv2d(x, g.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)


def ssim(pred: Tensor, target: Tensor, win_size: int = 11, data_range: float = 1.0) -> Tensor:
    """Mean SSIM of each image of pred and target [N, C, H, W] -> [N].

    The same quantity as pytorch_msssim.ssim(size_average=False) (Gaussian window of win_size taps,
    sigma 1.5, valid filtering, mean over pixels then channels), equal to float rounding. Faster: the
    five local statistics are filtered as two stacked depthwise convolutions (the three that carry
    gradients to pred, then, without autograd, the two of the target alone) instead of ten separate
    ones (measured: docs/performance.md#ssim). The target is made contiguous first: frames arrive
    channels-last from the frame cache, and mixing layouts in the elementwise steps is slower.

    Computed in float32 with autocast off: sigma^2 = E[x^2] - mu^2 cancels catastrophically in bf16.
    """
    side = min(pred.shape[-2:])
    if not 1 <= win_size <= side or win_size % 2 == 0:
        raise ValueError(
            f"win_size must be odd and at most the frame's smaller side ({side}), got {win_size}"
        )
    with torch.autocast(pred.device.type, enabled=False):
        x, y = pred.float(), target.float().contiguous()
        g = _fspecial_gauss_1d(win_size, 1.5).flatten().to(x.device)
        c = x.shape[1]
        mu_x, xx, xy = _blur(torch.cat([x, x * x, x * y], dim=1), g).split(c, dim=1)
        with torch.no_grad():
            mu_y, yy = _blur(torch.cat([y, y * y], dim=1), g).split(c, dim=1)
        c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
        mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
        contrast_structure = (2 * (xy - mu_xy) + c2) / ((xx - mu_xx) + (yy - mu_yy) + c2)
        luminance = (2 * mu_xy + c1) / (mu_xx + mu_yy + c1)
        return (luminance * contrast_structure).flatten(2).mean(-1).mean(1)
