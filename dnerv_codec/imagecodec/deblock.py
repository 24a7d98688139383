"""Deblocking: a decoder-side filter across the 8x8 block edges, its strength chosen by the encoder.

At every block edge (horizontal edges first, then vertical), with p2 p1 p0 | q0 q1 q2 the samples
across it, as in HEVC's normal filter: delta = (9 (q0 - p0) - 3 (q1 - p1)) / 16; where |delta| <
10 tc (a smaller jump than that is a coding artefact, a larger one a real edge) and the sides are
smooth (|p2 - 2 p1 + p0| + |q2 - 2 q1 + q0| < beta), p0 += d and q0 -= d with d = clip(delta, tc),
and p1, q1 move by clip(((p2 + p0) / 2 - p1 + d) / 2, tc / 2) and its mirror.
tc = strength x step / 64 and beta = 1.5 x step (step: the plane's quantiser step), strength 0..15
per plane (0: off). The encoder tries every strength and keeps the one with the least error.
"""

from __future__ import annotations

import numpy as np

from .transform import N

STRENGTHS = 16


def _filter_rows(x: np.ndarray, tc: float, beta: float) -> None:
    """Filter the edges between rows 8m - 1 and 8m of x [H, W] in place."""
    if x.shape[0] <= N:
        return
    e = np.arange(N, x.shape[0], N)
    p2, p1, p0, q0, q1, q2 = (x[e + o] for o in (-3, -2, -1, 0, 1, 2))
    delta = (9 * (q0 - p0) - 3 * (q1 - p1)) / 16
    on = (np.abs(delta) < 10 * tc) & (np.abs(p2 - 2 * p1 + p0) + np.abs(q2 - 2 * q1 + q0) < beta)
    d = np.clip(delta, -tc, tc) * on
    dp = np.clip(((p2 + p0) / 2 - p1 + d) / 2, -tc / 2, tc / 2) * on
    dq = np.clip(((q2 + q0) / 2 - q1 - d) / 2, -tc / 2, tc / 2) * on
    x[e - 1] = p0 + d
    x[e] = q0 - d
    x[e - 2] = p1 + dp
    x[e + 1] = q1 + dq


def deblock(plane: np.ndarray, step: float, strength: int) -> np.ndarray:
    """The filtered plane (a copy; the plane itself when strength is 0)."""
    if strength == 0:
        return plane
    tc, beta = strength * step / 64, 1.5 * step
    x = plane.copy()
    _filter_rows(x, tc, beta)
    xt = np.ascontiguousarray(x.T)
    _filter_rows(xt, tc, beta)
    return xt.T


def best_strength(decoded: np.ndarray, original: np.ndarray, step: float) -> int:
    """The strength whose filtered plane is closest to the original (squared error)."""
    errors = [((deblock(decoded, step, s) - original) ** 2).sum() for s in range(STRENGTHS)]
    return int(np.argmin(errors))
