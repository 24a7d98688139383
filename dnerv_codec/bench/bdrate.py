"""Bjontegaard deltas between two rate-distortion curves, with piecewise cubic (PCHIP) interpolation.

BD-rate (VCEG-M33, with the piecewise cubic Hermite interpolation of the later 'pchip' variant used
by the JVET/AOM common test conditions): interpolate log10(rate) as a function of quality for both
curves with a monotone PCHIP, integrate both over the quality range the curves share, and turn the
mean difference into a percentage: 100 x (10 ** mean(log10 r_test - log10 r_anchor) - 1).
Negative means the test curve needs fewer bits for the same quality.

BD-PSNR (delta quality): the same with the axes swapped (quality as a function of log10 rate, over
the shared log-rate range). `psnr_at_equal_rate` is the fallback for curves whose quality ranges
do not overlap or that have a single point: the test's quality minus the anchor's interpolated
quality at each test rate inside the anchor's rate range, averaged.

PCHIP is implemented here with numpy (Fritsch-Carlson derivatives with scipy's end conditions), so
no scipy is needed; integrals are exact (Simpson's rule is exact on each cubic piece).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Derivatives at the knots of the monotone piecewise cubic Hermite interpolant (as scipy's
    PchipInterpolator: weighted harmonic mean inside, a three-point shape-preserving end rule)."""
    h = np.diff(x)
    m = np.diff(y) / h
    n = len(x)
    d = np.zeros(n)
    if n == 2:
        d[:] = m[0]
        return d
    for k in range(1, n - 1):
        if m[k - 1] * m[k] > 0:
            w1, w2 = 2 * h[k] + h[k - 1], h[k] + 2 * h[k - 1]
            d[k] = (w1 + w2) / (w1 / m[k - 1] + w2 / m[k])

    def edge(h0: float, h1: float, m0: float, m1: float) -> float:
        e = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
        if np.sign(e) != np.sign(m0):
            return 0.0
        if np.sign(m0) != np.sign(m1) and abs(e) > abs(3 * m0):
            return 3 * m0
        return e

    d[0] = edge(h[0], h[1], m[0], m[1])
    d[-1] = edge(h[-1], h[-2], m[-1], m[-2])
    return d


class Pchip:
    """Monotone piecewise cubic interpolant through (x, y), x strictly increasing, >= 2 points."""

    def __init__(self, x: Sequence[float], y: Sequence[float]) -> None:
        self.x = np.asarray(x, np.float64)
        self.y = np.asarray(y, np.float64)
        if len(self.x) < 2 or len(self.x) != len(self.y) or np.any(np.diff(self.x) <= 0):
            raise ValueError("PCHIP needs at least two points with strictly increasing x")
        self.d = _pchip_slopes(self.x, self.y)

    def __call__(self, t: float | np.ndarray) -> np.ndarray:
        t = np.asarray(t, np.float64)
        k = np.clip(np.searchsorted(self.x, t, side="right") - 1, 0, len(self.x) - 2)
        x0, h = self.x[k], self.x[k + 1] - self.x[k]
        s = (t - x0) / h
        h00 = (1 + 2 * s) * (1 - s) ** 2
        h10 = s * (1 - s) ** 2
        h01 = s * s * (3 - 2 * s)
        h11 = s * s * (s - 1)
        return h00 * self.y[k] + h10 * h * self.d[k] + h01 * self.y[k + 1] + h11 * h * self.d[k + 1]

    def integrate(self, lo: float, hi: float) -> float:
        """Exact integral over [lo, hi] (inside the knots): Simpson's rule on every cubic piece."""
        cuts = np.concatenate([[lo], self.x[(self.x > lo) & (self.x < hi)], [hi]])
        a, b = cuts[:-1], cuts[1:]
        return float(np.sum((b - a) / 6 * (self(a) + 4 * self((a + b) / 2) + self(b))))


def _curve(rates: Sequence[float], quality: Sequence[float], by: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(x, y) sorted by x, strictly increasing, for interpolating y(x); by='quality' gives
    x=quality, y=log10 rate; by='rate' gives x=log10 rate, y=quality. Points whose x repeats are
    averaged; points with a non-finite or non-positive rate are dropped. None below two points."""
    r = np.asarray(rates, np.float64)
    q = np.asarray(quality, np.float64)
    keep = np.isfinite(r) & np.isfinite(q) & (r > 0)
    lr, q = np.log10(r[keep]), q[keep]
    x, y = (q, lr) if by == "quality" else (lr, q)
    if len(x) < 2:
        return None
    xs = np.unique(x)
    if len(xs) < 2:
        return None
    ys = np.array([y[x == v].mean() for v in xs])
    return xs, ys


def _mean_gap(a, t) -> float | None:
    """Mean vertical distance test - anchor of two (x, y) curves over the x range both cover."""
    if a is None or t is None:
        return None
    lo, hi = max(a[0][0], t[0][0]), min(a[0][-1], t[0][-1])
    if not hi > lo:
        return None
    return (Pchip(*t).integrate(lo, hi) - Pchip(*a).integrate(lo, hi)) / (hi - lo)


def bd_rate(
    anchor_rate: Sequence[float],
    anchor_quality: Sequence[float],
    test_rate: Sequence[float],
    test_quality: Sequence[float],
) -> float | None:
    """Bjontegaard delta rate of `test` against `anchor`, in percent (negative: test saves bits), over
    the quality range both curves cover; None when they do not overlap or a curve has < 2 points."""
    mean_diff = _mean_gap(
        _curve(anchor_rate, anchor_quality, "quality"), _curve(test_rate, test_quality, "quality")
    )
    return None if mean_diff is None else 100.0 * (10.0**mean_diff - 1.0)


def bd_quality(
    anchor_rate: Sequence[float],
    anchor_quality: Sequence[float],
    test_rate: Sequence[float],
    test_quality: Sequence[float],
) -> float | None:
    """Bjontegaard delta quality (BD-PSNR in dB for PSNR) of `test` against `anchor`: the mean
    quality difference over the log-rate range both cover; None when they do not overlap."""
    return _mean_gap(_curve(anchor_rate, anchor_quality, "rate"), _curve(test_rate, test_quality, "rate"))


def psnr_at_equal_rate(
    anchor_rate: Sequence[float],
    anchor_quality: Sequence[float],
    test_rate: Sequence[float],
    test_quality: Sequence[float],
) -> float | None:
    """Mean of (test quality - anchor quality at the same rate) over the test points whose rate lies
    inside the anchor's rate range (the anchor PCHIP-interpolated in log rate); works for a single
    test point. None when no test point lies inside the anchor's range."""
    a = _curve(anchor_rate, anchor_quality, "rate")
    if a is None:
        return None
    fa = Pchip(*a)
    diffs = []
    for r, q in zip(test_rate, test_quality, strict=True):
        if r is None or q is None or not (r > 0 and math.isfinite(q)):
            continue
        lr = math.log10(r)
        if a[0][0] <= lr <= a[0][-1]:
            diffs.append(q - float(fa(lr)))
    return float(np.mean(diffs)) if diffs else None
