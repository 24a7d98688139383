"""Magnitudes as tokens plus raw bits (a hybrid integer code, as in JPEG XL).

A magnitude m < 16 is the token m itself. A larger one with top bit n (2**n <= m < 2**(n+1),
n = 4..MAX_EXP) is the token 16 + 2 (n - 4) + (bit n-1 of m), followed by its n - 1 low bits, which
are coded raw (uniform). Tokens are what the adaptive context models see.
"""

from __future__ import annotations

import numpy as np

DIRECT = 16
MAX_EXP = 17  # magnitudes below 2**18
ALPHABET = DIRECT + 2 * (MAX_EXP - 3)  # 44
MAX_MAGNITUDE = (1 << (MAX_EXP + 1)) - 1


def _exponent(m: np.ndarray) -> np.ndarray:
    """floor(log2(m)) for integers m >= 1 (exact: frexp of an integer-valued float)."""
    return np.frexp(m.astype(np.float64))[1].astype(np.int64) - 1


def split(mag: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Magnitudes (int, >= 0) -> (tokens, raw values, raw bit counts), all int64 and of mag's shape;
    raw bit count 0 for direct tokens."""
    mag = np.asarray(mag, np.int64)
    if mag.size and mag.max() > MAX_MAGNITUDE:
        raise ValueError(f"magnitude {mag.max()} exceeds {MAX_MAGNITUDE}")
    tok = mag.copy()
    raw = np.zeros_like(mag)
    nbits = np.zeros_like(mag)
    big = mag >= DIRECT
    if big.any():
        m = mag[big]
        n = _exponent(m)
        tok[big] = DIRECT + 2 * (n - 4) + ((m >> (n - 1)) & 1)
        nbits[big] = n - 1
        raw[big] = m & ((1 << (n - 1)) - 1)
    return tok, raw, nbits


def raw_bits(tok: np.ndarray) -> np.ndarray:
    """Raw bit count that follows each token."""
    tok = np.asarray(tok, np.int64)
    return np.where(tok >= DIRECT, (tok - DIRECT) // 2 + 3, 0)


def join(tok: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """Inverse of split: tokens and their raw values -> magnitudes."""
    tok = np.asarray(tok, np.int64)
    n = np.maximum((tok - DIRECT) // 2 + 4, 4)
    big = ((1 << n) | (((tok - DIRECT) & 1) << (n - 1)) | raw) if tok.size else tok
    return np.where(tok >= DIRECT, big, tok)
