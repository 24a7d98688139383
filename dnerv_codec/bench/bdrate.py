"""Bjontegaard deltas between two rate-distortion curves, with piecewise cubic (PCHIP) interpolation.

BD-rate (VCEG-M33, with the piecewise cubic Hermite interpolation of the later 'pchip' variant used
by the JVET/AOM common test conditions): interpolate log10(rate) as a function of quality for both
curves with a monotone PCHIP, integrate both over the quality range the curves share, and turn the
mean difference into a percentage: 100 x (10 ** mean(log10 r_test - log10 r_anchor) - 1).
Negative means the test curve needs fewer bits for the same quality. A delta is given only for
curves whose quality rises with rate and that overlap by at least 1 dB of PSNR (a factor 1.25 of
rate for BD-PSNR); otherwise bd_delta says why, and psnr_at_equal_rate is what is left to report.

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
from dataclasses import dataclass

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


def _monotone(rates: Sequence[float], quality: Sequence[float]) -> bool:
    """Quality rises strictly with rate (the only shape a Bjontegaard integral is meaningful for)."""
    curve = _curve(rates, quality, "rate")
    return curve is not None and bool(np.all(np.diff(curve[1]) > 0))


@dataclass(frozen=True)
class Delta:
    """A Bjontegaard delta, or why there is none (then value is None and reason says why)."""

    value: float | None
    reason: str | None = None


# Below these overlaps the delta extrapolates more than it measures (e.g. -74% over a 0.76 dB
# overlap on points committed before this rule).
MIN_PSNR_OVERLAP_DB = 1.0
MIN_MS_SSIM_OVERLAP = 0.01  # about 1 dB of -10 log10(1 - MS-SSIM) near MS-SSIM 0.95
MIN_LOG_RATE_OVERLAP = math.log10(1.25)  # BD-PSNR: the rates must share at least a factor 1.25


def bd_delta(
    anchor: tuple[Sequence[float], Sequence[float]],
    test: tuple[Sequence[float], Sequence[float]],
    by: str,
    min_overlap: float,
) -> Delta:
    """The mean gap test - anchor over the range both (rate, quality) curves cover: by='quality'
    integrates log10 rate over quality (BD-rate, as a percentage), by='rate' quality over log10 rate
    (BD-quality). Refused, with the reason, for a curve of fewer than two points, a curve whose
    quality does not rise with rate, or an overlap narrower than `min_overlap` (in x units)."""
    for name, curve in (("anchor", anchor), ("test", test)):
        if _curve(*curve, by) is None:
            return Delta(None, f"the {name} curve has fewer than two distinct points")
        if not _monotone(*curve):
            return Delta(None, f"the {name} curve's quality does not rise with its rate")
    a, t = _curve(*anchor, by), _curve(*test, by)
    lo, hi = max(a[0][0], t[0][0]), min(a[0][-1], t[0][-1])
    axis = "quality" if by == "quality" else "log10 rate"
    if not hi > lo:
        return Delta(None, f"the curves' {axis} ranges do not overlap")
    if hi - lo < min_overlap:
        return Delta(None, f"the curves' {axis} ranges overlap by {hi - lo:.2f} (< {min_overlap:.2f})")
    gap = (Pchip(*t).integrate(lo, hi) - Pchip(*a).integrate(lo, hi)) / (hi - lo)
    return Delta(100.0 * (10.0**gap - 1.0) if by == "quality" else gap)


def bd_rate(
    anchor_rate: Sequence[float],
    anchor_quality: Sequence[float],
    test_rate: Sequence[float],
    test_quality: Sequence[float],
    min_overlap: float = MIN_PSNR_OVERLAP_DB,
) -> float | None:
    """Bjontegaard delta rate of `test` against `anchor`, in percent (negative: test saves bits), over
    the quality range both curves cover; None where bd_delta refuses (see its reason there).
    min_overlap is in quality units: the default is for PSNR in dB."""
    return bd_delta((anchor_rate, anchor_quality), (test_rate, test_quality), "quality", min_overlap).value


def bd_quality(
    anchor_rate: Sequence[float],
    anchor_quality: Sequence[float],
    test_rate: Sequence[float],
    test_quality: Sequence[float],
) -> float | None:
    """Bjontegaard delta quality (BD-PSNR in dB for PSNR) of `test` against `anchor`: the mean
    quality difference over the log-rate range both cover; None where bd_delta refuses."""
    anchor, test = (anchor_rate, anchor_quality), (test_rate, test_quality)
    return bd_delta(anchor, test, "rate", MIN_LOG_RATE_OVERLAP).value


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
