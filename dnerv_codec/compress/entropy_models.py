"""The integer probability models of the weight coder, and the encoder's fitting of them.

A model is an array of positive integer weights over an alphabet 0..size-1 (float64, exact below
2**53); entropy.py hands it to constriction's Categorical(perfect=False). The weights come from
integer arithmetic on a few stored parameters only (numpy int64 and Python ints, no libm call such
as exp or log), so encoder and decoder build the very same model on any platform.

- Laplace (two-sided geometric) with a one-byte code: at distance d from the center the weight is
  2**30 * 2**(-d * lam) in fixed point, where lam = lambda_q(code) / 2**24 octaves per step and
  lambda_q(code) = LAMBDA_MANTISSA[code % 12] >> (code // 12), i.e. lam = 2**(4 - code / 12):
  log-spaced, 5.9 % apart. Exactly: e = d * lambda_q, w = max(1, POW2_FRAC[(e >> 16) & 255] >>
  (e >> 24)), with POW2_FRAC[f] ~ 2**30 * 2**(-f / 256) (integer square roots, below). Code 255 is
  the uniform model.
- Histogram: bin weight M[v % 4] << (v // 4) for a level v in 0..63 (quarter-octave steps).

The fitting functions run on the encoder only, so they may use floats freely.
"""

from __future__ import annotations

from math import isqrt

import numpy as np

LAPLACE_CODES = 256
UNIFORM_CODE = LAPLACE_CODES - 1
# round(2**28 * 2**(-j/12)) for j in 0..11
LAMBDA_MANTISSA = (268435456, 253369332, 239148804, 225726413, 213057363, 201099372,
                   189812531, 179159172, 169103741, 159612677, 150654306, 142198729)  # fmt: skip
HIST_LEVELS = 64
_HIST_MANTISSA = (16384, 19484, 23170, 27554)  # round(2**14 * 2**(j/4))
HIST_WEIGHTS = np.array([_HIST_MANTISSA[v % 4] << (v // 4) for v in range(HIST_LEVELS)], np.float64)
DELTA_CENTER = HIST_LEVELS - 1  # histogram level deltas -63..63 are coded as 0..126
DELTA_CODE = 48  # lam = 1 octave: P(delta) ~ 2**-|delta|


def _pow2_frac() -> np.ndarray:
    """int64 [256]: floor-exact fixed point 2**30 * 2**(-f/256), from integer square roots only."""
    one = 1 << 62
    roots = [isqrt(1 << 123)]  # 2**62 * 2**(-1/2)
    for _ in range(7):  # 2**(-1/4), 2**(-1/8), ..., 2**(-1/256)
        roots.append(isqrt(roots[-1] << 62))
    table = []
    for f in range(256):
        value = one
        for k in range(8):  # bit k of f stands for 2**(-2**k / 256) = roots[7 - k]
            if f >> k & 1:
                value = value * roots[7 - k] >> 62
        table.append(value >> 32)
    return np.array(table, np.int64)


POW2_FRAC = _pow2_frac()


def lambda_q(code: int) -> int:
    """Decay of Laplace code `code` (< 255) in 2**-24 octaves per step."""
    return LAMBDA_MANTISSA[code % 12] >> (code // 12)


def laplace_weights(center: int, code: int, size: int) -> np.ndarray:
    """float64 [size]: integer weights 2**30 * 2**(-lam * |k - center|) (at least 1)."""
    if code == UNIFORM_CODE:
        return np.full(size, float(1 << 30))
    e = np.abs(np.arange(size, dtype=np.int64) - center) * lambda_q(code)
    w = POW2_FRAC[(e >> 16) & 255] >> np.minimum(e >> 24, 62)
    return np.maximum(w, 1).astype(np.float64)


DELTA_WEIGHTS = laplace_weights(DELTA_CENTER, DELTA_CODE, 2 * HIST_LEVELS - 1)
# per code, the decay ratio t = 2**-lam (0 < t < 1; 1.0 for the uniform code): for estimates
_RATIOS = np.array([2.0 ** (-lambda_q(c) / 2**24) for c in range(UNIFORM_CODE)] + [1.0])


def cost_bits(hist: np.ndarray, weights: np.ndarray) -> float:
    """Estimated bits to code `hist` counts under a model with these weights (same length)."""
    p = np.maximum(weights / weights.sum(), 2.0**-24)  # constriction's 24-bit probability floor
    return float(-(hist * np.log2(p)).sum())


def _laplace_cost(pos: np.ndarray, count: np.ndarray, size: int, center: int, code: int) -> float:
    """Estimated bits for `count` symbols at positions `pos` under a Laplace model over 0..size-1."""
    t = _RATIOS[code]
    if t >= 1.0:
        return float(count.sum() * np.log2(size))
    # Z = sum over the support of t**|k - center|: two geometric series sharing the center
    z = (2 - t ** (center + 1) - t ** (size - center)) / (1 - t) - 1
    # 2**-30 is the floor of the integer weights, 2**-24 constriction's smallest probability
    logp = np.maximum(np.abs(pos - center) * np.log2(t), -30.0) - np.log2(z)
    return float(-(count * np.maximum(logp, -24.0)).sum())


def fit_laplace(hist: np.ndarray, offset: int, size: int) -> tuple[float, int, int]:
    """(estimated bits, center, code) of the best Laplace model over 0..size-1 for the counts
    `hist` (not all zero) of the symbols offset..offset+len(hist)-1."""
    nz = np.flatnonzero(hist)
    pos, count = nz + offset, hist[nz]  # sparse: 16-bit ranges are mostly empty
    cum = np.cumsum(hist)
    centers = {int(np.searchsorted(cum, cum[-1] / 2)), int(np.argmax(hist))}
    best = (np.inf, 0, 0)
    for c in sorted(centers):
        center = c + offset
        costs = {k: _laplace_cost(pos, count, size, center, k) for k in range(0, UNIFORM_CODE, 6)}
        costs[UNIFORM_CODE] = _laplace_cost(pos, count, size, center, UNIFORM_CODE)
        coarse = min(costs, key=costs.get)
        for k in range(max(coarse - 5, 0), min(coarse + 6, LAPLACE_CODES)):
            costs.setdefault(k, _laplace_cost(pos, count, size, center, k))
        code = min(costs, key=costs.get)
        if costs[code] < best[0]:
            best = (costs[code], center, code)
    return best


def _delta_bits() -> np.ndarray:
    """[prev, v]: bits to code histogram level v after level prev."""
    p = DELTA_WEIGHTS / DELTA_WEIGHTS.sum()
    v = np.arange(HIST_LEVELS)
    return -np.log2(p[v[None, :] - v[:, None] + DELTA_CENTER])


_TRANS = _delta_bits()
_LOGW = np.log2(HIST_WEIGHTS)


def fit_histogram(hist: np.ndarray) -> tuple[float, np.ndarray]:
    """(estimated bits incl. the coded levels, levels int64 [bins]) for counts `hist`.

    Dynamic programming over the levels minimises level bits + payload bits. The payload
    -sum h log2(W / Z) is not separable in Z = sum W, so log2 Z is linearised around the previous
    solution's Z; three rounds, keeping the best exact total. O(bins * 64**2) per round.
    """
    n = float(hist.sum())
    ideal = np.log2(np.maximum(hist, 0.5) / hist.max()) * 4 + HIST_LEVELS - 1
    levels = np.clip(np.rint(ideal), 0, HIST_LEVELS - 1).astype(np.int64)
    best = (np.inf, levels)
    for _ in range(3):
        z = HIST_WEIGHTS[levels].sum()
        unit = -hist[:, None] * _LOGW[None, :] + n * HIST_WEIGHTS[None, :] / (z * np.log(2))
        back = np.zeros((len(hist), HIST_LEVELS), np.int64)
        acc = _TRANS[0] + unit[0]
        for k in range(1, len(hist)):
            tot = acc[:, None] + _TRANS
            back[k] = np.argmin(tot, axis=0)
            acc = tot.min(axis=0) + unit[k]
        levels = np.empty(len(hist), np.int64)
        levels[-1] = int(np.argmin(acc))
        for k in range(len(hist) - 1, 0, -1):
            levels[k - 1] = back[k, levels[k]]
        prev = np.concatenate([[0], levels[:-1]])
        bits = _TRANS[prev, levels].sum() + cost_bits(hist, HIST_WEIGHTS[levels])
        if bits < best[0]:
            best = (float(bits), levels)
    return best


def _laplace_cost_rows(hist: np.ndarray, centers: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """[rows, k] estimated bits of each row of counts `hist` [rows, size] under the Laplace model
    (center of that row, each code) over 0..size-1, the estimate of _laplace_cost; codes [k] for
    every row, or [rows, k]."""
    size = hist.shape[1]
    t = _RATIOS[codes][None, :, None] if codes.ndim == 1 else _RATIOS[codes][:, :, None]
    c = centers[:, None, None].astype(np.float64)
    dist = np.abs(np.arange(size)[None, None, :] - c)  # [rows, 1, size]
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(t < 1.0, (2 - t ** (c + 1) - t ** (size - c)) / (1 - t) - 1, float(size))
        logt = np.log2(np.minimum(t, 1.0))
    logp = np.maximum(np.maximum(dist * logt, -30.0) - np.log2(z), -24.0)  # [rows, codes, size]
    return -(hist[:, None, :] * logp).sum(axis=2)


def fit_laplace_rows(hist: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(estimated bits, centers, codes), one per row of counts `hist` [rows, size]: the center at
    each row's mode and the best code of a coarse-then-fine search (vectorised over the rows)."""
    centers = np.argmax(hist, axis=1)
    coarse = np.array(list(range(0, UNIFORM_CODE, 6)) + [UNIFORM_CODE])
    costs = _laplace_cost_rows(hist, centers, coarse)
    best = coarse[np.argmin(costs, axis=1)]
    fine = np.clip(best[:, None] + np.arange(-5, 6)[None, :], 0, UNIFORM_CODE)  # [rows, 11]
    rows = np.arange(len(hist))
    fine_costs = _laplace_cost_rows(hist, centers, fine)
    pick = np.argmin(fine_costs, axis=1)
    return fine_costs[rows, pick], centers, fine[rows, pick]
