"""Quantisation: quality -> step sizes, rate-distortion optimised levels, reconstruction offsets.

Steps. quality q in 0..100 gives the base step D = 2 ** ((100 - q) / 12.5) / 2 (0.5 at q = 100,
8 at q = 50, 128 at q = 0) in units of orthonormal-DCT coefficients of 8-bit samples. A plane's
step is D x its plane factor (PLANE_FACTOR, chosen so that a unit of coefficient error costs about
the same RGB squared error in every plane), and the step of the coefficient at frequency (u, v) is
the plane step x (1 + FREQ_SLOPE (u + v)).

Levels. DC levels are rounded. AC levels are chosen per block by rate-distortion optimisation
(RDOQ): each coefficient takes the level among {0, floor, ceil} of |x| / step that minimises
D + lambda R (R from a per-frequency-band token bit table measured on the image itself, + sign
and raw bits), then the block's last coded position is chosen by the same cost (everything after
it zeroed, which costs no bits). Two rounds, the table re-measured between them.

Reconstruction. A level l != 0 of an AC coefficient is rebuilt as sign(l) (|l| + offset) step,
with one offset for |l| = 1 and one for |l| >= 2 per plane, measured by the encoder (the mean of
|x| / step - |l| over those coefficients) and sent in 1/64 of a step.
"""

from __future__ import annotations

import numpy as np

from . import tokens
from .transform import ZZ_U, ZZ_V

FREQ_SLOPE = 0.0
LAMBDA = 0.07  # lambda = LAMBDA x D**2 per bit
DEADZONE_ROUNDING = 1 / 3  # the first round's plain quantiser (before a rate table exists)
OFFSET_UNIT = 64
RDO_ROUNDS = 2
# AC frequency bands for contexts and rate tables: zigzag position k -> band (k = 0 is DC)
BAND_EDGES = (2, 3, 4, 5, 7, 9, 12, 16, 21, 28, 38)
BANDS = len(BAND_EDGES) + 1
BAND = np.searchsorted(np.asarray(BAND_EDGES), np.arange(64), side="right")


def base_step(quality: int) -> float:
    return 2.0 ** ((100 - quality) / 12.5) / 2.0


def position_weights() -> np.ndarray:
    """float64 [64]: step multiplier of each zigzag position."""
    return 1.0 + FREQ_SLOPE * (ZZ_U + ZZ_V)


def _token_bits(levels: np.ndarray) -> np.ndarray:
    """Estimated bits [BANDS, ALPHABET] of each AC token per band, from levels [nb, 64]: counts of
    the tokens a decoder would read (positions up to each block's last nonzero), plus 1/2."""
    ac = np.abs(levels[:, 1:])
    nonzero = ac > 0
    last = np.where(nonzero.any(axis=1), 63 - np.argmax(nonzero[:, ::-1], axis=1), 0)
    coded = np.arange(1, 64)[None, :] <= last[:, None]
    tok, _, _ = tokens.split(np.minimum(ac, tokens.MAX_MAGNITUDE))
    band = np.broadcast_to(BAND[1:], ac.shape)
    hist = np.zeros((BANDS, tokens.ALPHABET))
    np.add.at(hist, (band[coded], tok[coded]), 1.0)
    hist += 0.5
    return -np.log2(hist / hist.sum(axis=1, keepdims=True))


def rdoq(y: np.ndarray, weight2: np.ndarray, lam: float, bits: np.ndarray) -> np.ndarray:
    """AC levels [nb, 63] (signed) for normalised coefficients y [nb, 63] (x / step), where
    weight2 [63] is (step / D)**2 (distortion in D**2 units) and bits [BANDS, ALPHABET] the table."""
    a = np.abs(y)
    floor = np.floor(a)
    cand = np.stack([np.zeros_like(a), floor, floor + 1.0])  # [3, nb, 63]
    lev = np.minimum(cand, tokens.MAX_MAGNITUDE).astype(np.int64)
    tok, _, nbits = tokens.split(lev)
    rate = bits[BAND[1:][None, None, :], tok] + nbits + (lev > 0)
    cost = (a - cand) ** 2 * weight2 + lam * rate
    pick = np.argmin(cost, axis=0)
    best = np.take_along_axis(cost, pick[None], axis=0)[0]
    level = np.take_along_axis(lev, pick[None], axis=0)[0]
    # last coded position L (0: no AC): cost = best costs up to L + distortion of zeroing the rest
    zero = a**2 * weight2
    kept = np.concatenate([np.zeros((len(a), 1)), np.cumsum(best, axis=1)], axis=1)  # [nb, 64]
    dropped = np.concatenate([np.cumsum(zero[:, ::-1], axis=1)[:, ::-1], np.zeros((len(a), 1))], axis=1)
    last = np.argmin(kept + dropped, axis=1)
    level[np.arange(63)[None, :] >= last[:, None]] = 0
    return np.where(y < 0, -level, level)


def quantize(coef: np.ndarray, step: float, rdo: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients [nb, 64] (zigzag) and the plane step -> (levels int64 [nb, 64], offsets int64 [2])."""
    w = position_weights()
    y = coef / (step * w)
    levels = np.zeros(coef.shape, np.int64)
    levels[:, 0] = np.rint(y[:, 0])
    a = np.abs(y[:, 1:])
    levels[:, 1:] = np.sign(y[:, 1:]) * np.floor(a + DEADZONE_ROUNDING)
    if rdo:
        for _ in range(RDO_ROUNDS):
            levels[:, 1:] = rdoq(y[:, 1:], w[1:] ** 2, LAMBDA, _token_bits(levels))
    return levels, _offsets(y[:, 1:], levels[:, 1:])


def _offsets(y: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Reconstruction offsets (|l| = 1, |l| >= 2) in 1/OFFSET_UNIT of a step, clipped to int8."""
    a, m = np.abs(y), np.abs(levels)
    out = np.zeros(2, np.int64)
    for i, sel in enumerate((m == 1, m >= 2)):
        if sel.any():
            out[i] = np.clip(np.rint(OFFSET_UNIT * (a[sel] - m[sel]).mean()), -128, 127)
    return out


def dequantize(levels: np.ndarray, step: float, offsets: np.ndarray) -> np.ndarray:
    """Levels [..., 64] -> coefficients (float64)."""
    m = np.abs(levels).astype(np.float64)
    ac = m[..., 1:]
    ac += np.where(ac == 1, offsets[0], np.where(ac >= 2, offsets[1], 0)) / OFFSET_UNIT
    return np.sign(levels) * m * (step * position_weights())
