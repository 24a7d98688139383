"""Colour: RGB <-> Y'CbCr with the BT.709 matrix in full range, and 2x2 chroma resampling.

Planes are float64 and centred: Y in -128..127 (Y' - 128), Cb and Cr in -128..128. Chroma for
4:2:0 is shrunk with a 2x2 box average (the sample sits at the centre of its 2x2 pixels) and grown
with the matching 3/4-1/4 bilinear filter ("fancy upsampling"), edges replicated.
"""

from __future__ import annotations

import numpy as np

KR, KB = 0.2126, 0.0722
KG = 1.0 - KR - KB
CB_SCALE = 2.0 * (1.0 - KB)  # 1.8556
CR_SCALE = 2.0 * (1.0 - KR)  # 1.5748
# RGB squared error caused by a unit error in each of Y, Cb, Cr (summed over R, G, B)
RGB_WEIGHT = (
    3.0,
    (KB * CB_SCALE / KG) ** 2 + CB_SCALE**2,
    (KR * CR_SCALE / KG) ** 2 + CR_SCALE**2,
)


def rgb_to_ycbcr(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 [H, W, 3] -> centred float64 planes Y, Cb, Cr."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = KR * r + KG * g + KB * b
    return y - 128.0, (b - y) / CB_SCALE, (r - y) / CR_SCALE


def ycbcr_to_rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> np.ndarray:
    """Centred float planes (same shape) -> uint8 [H, W, 3], rounded and clipped."""
    y = y + 128.0
    r = y + CR_SCALE * cr
    b = y + CB_SCALE * cb
    g = (y - KR * r - KB * b) / KG
    rgb = np.stack([r, g, b], axis=-1)
    return np.clip(np.floor(rgb + 0.5), 0, 255).astype(np.uint8)


def downsample(plane: np.ndarray) -> np.ndarray:
    """[H, W] (even sides) -> [H/2, W/2] by 2x2 averages."""
    h, w = plane.shape
    return plane.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))


def _grow(x: np.ndarray, axis: int) -> np.ndarray:
    """Double one axis: each sample becomes 3/4 of itself + 1/4 of its neighbour on that side."""
    x = np.moveaxis(x, axis, 0)
    prev = np.concatenate([x[:1], x[:-1]])
    nxt = np.concatenate([x[1:], x[-1:]])
    out = np.empty((2 * x.shape[0], *x.shape[1:]))
    out[0::2] = 0.75 * x + 0.25 * prev
    out[1::2] = 0.75 * x + 0.25 * nxt
    return np.moveaxis(out, 0, axis)


def upsample(plane: np.ndarray) -> np.ndarray:
    """[h, w] -> [2h, 2w], bilinear at the sample positions that downsample uses."""
    return _grow(_grow(plane, 0), 1)
