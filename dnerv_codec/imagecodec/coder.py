"""The symbol layer: quantised planes <-> one constriction range-coder stream.

Encoder and decoder run the same functions (`code_plane`, `code_raw`) on a `Channel` that either
writes the symbols it is given or reads them, so contexts and model updates are computed by the
very same code on both sides.

Per plane (block grid by x bx, levels [by, bx, 64] in zigzag order, DC as a prediction residual):

1. nonzero counts: n = number of nonzero AC levels of each block (0..63), block row by block row,
   even columns then odd ones; context = the count predicted from already coded neighbours (even
   columns: the row above; odd columns: also the left and right blocks), in 13 buckets.
2. AC tokens, zigzag position k = 1..63 in turn, for the blocks that still have nonzeros left:
   context = frequency band of k (12) x nonzeros left (6 buckets) x the tokens already coded at
   the (u-1, v) and (u, v-1) frequencies of the same block (6 buckets).
3. DC residual tokens: context = activity 2 n + (n of the 4 neighbouring blocks), 9 buckets.

Luma and chroma have separate model sets (Cb and Cr share one). After all planes, one uniform-model
call codes the signs of all nonzero values and the raw low bits of the large ones (tokens.py).
"""

from __future__ import annotations

import constriction
import numpy as np

from . import tokens
from .models import CHUNK, AdaptiveModel, bucket, geometric_prior
from .quantize import BAND, BANDS
from .transform import NEIGHBOUR_LEFT, NEIGHBOUR_UP

_CATEGORICAL = constriction.stream.model.Categorical(perfect=False)
_UNIFORM = constriction.stream.model.Uniform()

NZ_EDGES = (1, 2, 3, 4, 5, 7, 9, 12, 16, 21, 28, 37)
NZ_CONTEXTS = 2 * (len(NZ_EDGES) + 2)  # 2 phases x (buckets + "no neighbour")
REM_EDGES = (2, 3, 5, 8, 13)
MAG_EDGES = (1, 2, 3, 5, 8)
AC_CONTEXTS = BANDS * (len(REM_EDGES) + 1) * (len(MAG_EDGES) + 1)
DC_EDGES = (1, 2, 4, 8, 16, 32, 64, 128)
DC_CONTEXTS = len(DC_EDGES) + 1


class Channel:
    """One range-coder stream: writes symbols (words=None) or reads them from `words`."""

    def __init__(self, words: np.ndarray | None = None) -> None:
        self.decoding = words is not None
        if self.decoding:
            self._coder = constriction.stream.queue.RangeDecoder(words)
        else:
            self._coder = constriction.stream.queue.RangeEncoder()

    def categorical(self, model: AdaptiveModel, ctx: np.ndarray, symbols: np.ndarray | None) -> np.ndarray:
        """Code symbols (int64 [n], encoder) or read n = len(ctx) of them, chunk by chunk, each with
        its context's adaptive counts; the model is updated after every chunk."""
        ctx = np.asarray(ctx, np.int64)
        out = np.empty(len(ctx), np.int64) if self.decoding else np.asarray(symbols, np.int64)
        for s in range(0, len(ctx), CHUNK):
            c = ctx[s : s + CHUNK]
            probs = model.probabilities(c)
            if self.decoding:
                out[s : s + CHUNK] = self._coder.decode(_CATEGORICAL, probs)
            else:
                self._coder.encode(out[s : s + CHUNK].astype(np.int32), _CATEGORICAL, probs)
            model.update(c, out[s : s + CHUNK])
        return out

    def uniform(self, sizes: np.ndarray, values: np.ndarray | None) -> np.ndarray:
        """Code values (encoder) or read them, value i uniform over 0..sizes[i]-1 (sizes >= 2)."""
        sizes = np.asarray(sizes, np.int32)
        if not sizes.size:
            return np.zeros(0, np.int64)
        if self.decoding:
            return self._coder.decode(_UNIFORM, sizes).astype(np.int64)
        self._coder.encode(np.asarray(values, np.int32), _UNIFORM, sizes)
        return np.asarray(values, np.int64)

    def words(self) -> np.ndarray:
        """The encoder's compressed stream (uint32 words)."""
        return self._coder.get_compressed()

    def exhausted(self) -> bool:
        """Decoder: whether the stream may have been read to its end (no data left over)."""
        return self._coder.maybe_exhausted()


class Models:
    """Every adaptive model of one image: per plane class (0 luma, 1 chroma)."""

    def __init__(self) -> None:
        tok_prior = geometric_prior(tokens.ALPHABET, 64, 0.5)
        self.nz = AdaptiveModel(2 * NZ_CONTEXTS, geometric_prior(64, 32, 0.85))
        self.ac = AdaptiveModel(2 * AC_CONTEXTS, tok_prior)
        self.dc = AdaptiveModel(2 * DC_CONTEXTS, tok_prior)


def _neighbour_sum(nz: np.ndarray) -> np.ndarray:
    """Sum of the counts of the 4 neighbouring blocks (edges replicated)."""
    p = np.pad(nz, 1, mode="edge")
    return p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:]


def _nz_context(nz: np.ndarray, i: int, cols: np.ndarray, phase: int) -> np.ndarray:
    bx = nz.shape[1]
    group = phase * (len(NZ_EDGES) + 2)
    right = np.minimum(cols + 1, bx - 1)
    if i == 0:
        if phase == 0:
            return np.full(len(cols), group + len(NZ_EDGES) + 1)
        pred = (nz[0, cols - 1] + nz[0, np.where(cols + 1 < bx, cols + 1, cols - 1)] + 1) // 2
        return group + bucket(pred, NZ_EDGES)
    above = nz[i - 1]
    a = above[cols]
    if phase == 0:
        pred = (2 * a + above[np.maximum(cols - 1, 0)] + above[right] + 2) // 4
    else:
        left = nz[i, cols - 1]
        pred = (2 * a + left + nz[i, np.where(cols + 1 < bx, cols + 1, cols - 1)] + 2) // 4
    return group + bucket(pred, NZ_EDGES)


def _frequency_neighbours(flat: np.ndarray, idx: np.ndarray, k: int) -> np.ndarray:
    """Sum of the AC tokens at the (u-1, v) and (u, v-1) frequencies of position k (one counted
    twice where the other is missing or the DC, which is coded later; 0 for k = 1, 2)."""
    up, lf = (int(n) if n > 0 else -1 for n in (NEIGHBOUR_UP[k], NEIGHBOUR_LEFT[k]))
    if up < 0 and lf < 0:
        return np.zeros(len(idx), np.int64)
    return flat[idx, up if up >= 0 else lf] + flat[idx, lf if lf >= 0 else up]


def code_plane(ch: Channel, models: Models, cls: int, tok: np.ndarray) -> np.ndarray:
    """Code the tokens [by, bx, 64] of one plane (position 0: the DC residual's token) or, when
    decoding, fill `tok` (zeros of that shape) in place; returns it. Decoding raises ValueError
    when the nonzero counts and the tokens disagree (corrupt stream)."""
    by, bx, _ = tok.shape
    flat = tok.reshape(by * bx, 64)
    # 1. nonzero counts
    nz = np.zeros((by, bx), np.int64) if ch.decoding else (tok[..., 1:] > 0).sum(axis=2)
    even, odd = np.arange(0, bx, 2), np.arange(1, bx, 2)
    for i in range(by):
        for phase, cols in ((0, even), (1, odd)):
            if cols.size:
                ctx = _nz_context(nz, i, cols, phase) + cls * NZ_CONTEXTS
                nz[i, cols] = ch.categorical(models.nz, ctx, None if ch.decoding else nz[i, cols])
    # 2. AC tokens
    left = nz.reshape(-1).copy()  # nonzeros not yet coded, per block
    for k in range(1, 64):
        idx = np.flatnonzero(left > 0)
        if not idx.size:
            break
        m = _frequency_neighbours(flat, idx, k)
        ctx = (BAND[k] * (len(REM_EDGES) + 1) + bucket(left[idx], REM_EDGES)) * (len(MAG_EDGES) + 1)
        ctx += bucket(m, MAG_EDGES) + cls * AC_CONTEXTS
        sym = ch.categorical(models.ac, ctx, None if ch.decoding else flat[idx, k])
        flat[idx, k] = sym
        left[idx] -= sym > 0
    if left.any():
        raise ValueError("nonzero counts do not match the coefficients")
    # 3. DC residual tokens
    act = bucket(2 * nz + _neighbour_sum(nz), DC_EDGES).reshape(-1) + cls * DC_CONTEXTS
    flat[:, 0] = ch.categorical(models.dc, act, None if ch.decoding else flat[:, 0])
    return tok


def code_raw(ch: Channel, tok: np.ndarray, raw: np.ndarray | None, negative: np.ndarray | None):
    """Code (or read) the signs of all nonzero tokens, then the raw low bits of the large ones.
    tok: all tokens (flat); returns (raw values, negative flags), both of tok's shape."""
    nonzero = tok > 0
    nbits = tokens.raw_bits(tok)
    big = nbits > 0
    sizes = np.concatenate([np.full(int(nonzero.sum()), 2), 1 << nbits[big]])
    values = None if ch.decoding else np.concatenate([negative[nonzero], raw[big]]).astype(np.int64)
    values = ch.uniform(sizes, values)
    neg = np.zeros(tok.shape, bool)
    neg[nonzero] = values[: int(nonzero.sum())] == 1
    out = np.zeros(tok.shape, np.int64)
    out[big] = values[int(nonzero.sum()) :]
    return out, neg
