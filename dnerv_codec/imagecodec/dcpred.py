"""DC prediction: each block's quantised DC from its left, upper and upper-left neighbours with the
median edge detector of LOCO-I / JPEG-LS (integers, so the decoder repeats it exactly).

First block: predicted 0; first row: from the left; first column: from above.
"""

from __future__ import annotations

import numpy as np


def _med(left, up, corner):
    lo, hi = min(left, up), max(left, up)
    if corner >= hi:
        return lo
    if corner <= lo:
        return hi
    return left + up - corner


def residuals(dc: np.ndarray) -> np.ndarray:
    """Quantised DC [by, bx] (int64) -> prediction residuals of the same shape (vectorised)."""
    pred = np.zeros_like(dc)
    pred[0, 1:] = dc[0, :-1]
    pred[1:, 0] = dc[:-1, 0]
    left, up, corner = dc[1:, :-1], dc[:-1, 1:], dc[:-1, :-1]
    lo, hi = np.minimum(left, up), np.maximum(left, up)
    pred[1:, 1:] = np.where(corner >= hi, lo, np.where(corner <= lo, hi, left + up - corner))
    return dc - pred


def reconstruct(res: np.ndarray) -> np.ndarray:
    """Inverse of residuals: a raster loop over the blocks (Python ints: each prediction needs the last)."""
    by, bx = res.shape
    r = res.tolist()
    dc = [[0] * bx for _ in range(by)]
    for i in range(by):
        row, rr = dc[i], r[i]
        if i == 0:
            acc = 0
            for j in range(bx):
                acc += rr[j]
                row[j] = acc
            continue
        up = dc[i - 1]
        row[0] = up[0] + rr[0]
        for j in range(1, bx):
            row[j] = _med(row[j - 1], up[j], up[j - 1]) + rr[j]
    return np.array(dc, np.int64)
