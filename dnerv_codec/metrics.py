"""Quality figures, one definition everywhere.

PSNR: mean over frames of the per-frame RGB PSNR of 8-bit frames (peak 255).
MS-SSIM: pytorch-msssim on the same frames (five scales, 11-pixel window when the frames are over
160 pixels). Smaller frames use a smaller window, then fewer scales (weights truncated and
renormalised); frames of 2 pixels or fewer have none (None).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_msssim import ms_ssim
from pytorch_msssim.ssim import _fspecial_gauss_1d, _ssim  # private (few-scale variant): see pyproject

_MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def frame_psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-frame PSNR in dB of uint8 frames [N, H, W, 3]; identical frames count as 100 dB."""
    diff = a.astype(np.float64) - b.astype(np.float64)
    mse = (diff * diff).reshape(len(a), -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        psnr = 10 * np.log10(255.0**2 / mse)
    return np.minimum(psnr, 100.0)


def _to_tensor(frames: np.ndarray) -> torch.Tensor:
    frames = frames if frames.flags.writeable else np.array(frames)  # memmaps are read-only
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()


def _ms_ssim_settings(side: int) -> tuple[int, int] | None:
    """(scales, window) for frames whose smaller side is `side`: five scales and an 11-pixel
    window when the frames are large enough (the standard definition), else a smaller window, then
    fewer scales, so that the window still fits the coarsest scale."""
    for scales in range(5, 0, -1):
        for win in range(11, 1, -2):
            if side > (win - 1) * 2 ** (scales - 1):
                return scales, win
    return None


def _few_scale_ms_ssim(x: torch.Tensor, y: torch.Tensor, scales: int, win: int) -> torch.Tensor:
    """MS-SSIM with fewer than five scales (pytorch-msssim's ms_ssim insists on five)."""
    weights = torch.tensor(_MS_SSIM_WEIGHTS[:scales], dtype=x.dtype)
    weights = weights / weights.sum()
    window = _fspecial_gauss_1d(win, 1.5).repeat([x.shape[1], 1, 1, 1])
    factors = []
    for level in range(scales):
        ssim_c, cs = _ssim(x, y, data_range=255, win=window, size_average=False)
        if level < scales - 1:
            factors.append(torch.relu(cs))
            pad = [s % 2 for s in x.shape[2:]]
            x, y = F.avg_pool2d(x, 2, padding=pad), F.avg_pool2d(y, 2, padding=pad)
    factors.append(torch.relu(ssim_c))
    return torch.prod(torch.stack(factors) ** weights.view(-1, 1, 1), dim=0).mean(dim=1)


def frame_ms_ssim(a: np.ndarray, b: np.ndarray, batch: int = 16) -> np.ndarray | None:
    """Per-frame MS-SSIM of uint8 frames [N, H, W, 3], or None when the frames are too small."""
    settings = _ms_ssim_settings(min(a.shape[1], a.shape[2]))
    if settings is None:
        return None
    scales, win = settings
    out = []
    with torch.no_grad():
        for i in range(0, len(a), batch):
            x, y = _to_tensor(a[i : i + batch]), _to_tensor(b[i : i + batch])
            if scales == 5:
                val = ms_ssim(x, y, data_range=255, size_average=False, win_size=win)
            else:
                val = _few_scale_ms_ssim(x, y, scales, win)
            out.append(val.numpy())
    return np.concatenate(out).astype(np.float64)


class QualityMeter:
    """Accumulates per-frame PSNR and MS-SSIM over many batches of frames."""

    def __init__(self, with_ms_ssim: bool = True) -> None:
        self.psnr: list[np.ndarray] = []
        self.ms_ssim: list[np.ndarray] = []
        self.with_ms_ssim = with_ms_ssim
        self._ms_ssim_defined = True

    def add(self, decoded: np.ndarray, reference: np.ndarray) -> None:
        if decoded.shape != reference.shape:
            raise ValueError(f"frame shapes differ: {decoded.shape} vs {reference.shape}")
        self.psnr.append(frame_psnr(decoded, reference))
        if self.with_ms_ssim and self._ms_ssim_defined:
            m = frame_ms_ssim(decoded, reference)
            if m is None:
                self._ms_ssim_defined = False
            else:
                self.ms_ssim.append(m)

    @property
    def frames(self) -> int:
        return sum(len(p) for p in self.psnr)

    def mean_psnr(self) -> float:
        return float(np.concatenate(self.psnr).mean()) if self.psnr else math.nan

    def mean_ms_ssim(self) -> float | None:
        if not self.with_ms_ssim or not self._ms_ssim_defined or not self.ms_ssim:
            return None
        return float(np.concatenate(self.ms_ssim).mean())
