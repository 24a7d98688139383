"""8x8 orthonormal DCT-II on whole planes, and the zigzag scan of the coefficients.

A plane [H, W] (H, W multiples of 8) becomes coefficients [by, bx, 64] in zigzag order (index 0 is
the DC, which is 8 x the block mean). Everything is float64 matrix products, identical on the
encoder and the decoder.
"""

from __future__ import annotations

import numpy as np

N = 8
BLOCK = N * N


def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix C [n, n]: coefficients = C @ x."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    c = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    c[0] /= np.sqrt(2.0)
    return c


def _zigzag(n: int) -> np.ndarray:
    """Raster indices (u * n + v) in JPEG zigzag order."""
    cells = [(u, v) for u in range(n) for v in range(n)]
    order = sorted(cells, key=lambda p: (p[0] + p[1], p[0] if (p[0] + p[1]) % 2 else p[1]))
    return np.array([u * n + v for u, v in order], np.int64)


DCT = _dct_matrix(N)
ZIGZAG = _zigzag(N)  # zigzag position -> raster index
RASTER_TO_ZZ = np.argsort(ZIGZAG)
ZZ_U = ZIGZAG // N  # vertical frequency of each zigzag position
ZZ_V = ZIGZAG % N  # horizontal frequency


def _freq_neighbours() -> tuple[np.ndarray, np.ndarray]:
    """Zigzag indices of the (u-1, v) and (u, v-1) neighbours of each position (-1 if none);
    both come earlier in the scan, so a decoder always has them."""
    up = np.where(ZZ_U > 0, RASTER_TO_ZZ[np.maximum(ZIGZAG - N, 0)], -1)
    left = np.where(ZZ_V > 0, RASTER_TO_ZZ[np.maximum(ZIGZAG - 1, 0)], -1)
    return up, left


NEIGHBOUR_UP, NEIGHBOUR_LEFT = _freq_neighbours()


def forward(plane: np.ndarray) -> np.ndarray:
    """float plane [H, W] -> coefficients [H/8, W/8, 64] in zigzag order."""
    h, w = plane.shape
    blocks = plane.reshape(h // N, N, w // N, N).transpose(0, 2, 1, 3)
    coef = DCT @ blocks @ DCT.T
    return coef.reshape(h // N, w // N, BLOCK)[..., ZIGZAG]


def inverse(coef: np.ndarray) -> np.ndarray:
    """Coefficients [by, bx, 64] in zigzag order -> plane [by * 8, bx * 8]."""
    by, bx, _ = coef.shape
    raster = coef[..., RASTER_TO_ZZ].reshape(by, bx, N, N)
    blocks = DCT.T @ raster @ DCT
    return blocks.transpose(0, 2, 1, 3).reshape(by * N, bx * N)
