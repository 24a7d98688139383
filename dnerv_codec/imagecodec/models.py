"""Adaptive context models: integer symbol counts per context that grow as symbols are coded.

A model holds counts [contexts, alphabet] (int64, all >= 1), starting from a fixed prior. A batch
of symbols is coded in chunks of CHUNK: every symbol of a chunk is coded with its context's counts
as they stood before the chunk (handed to constriction's Categorical, which normalises them), then
the chunk's symbols are added (INCREMENT each) and any context whose total passed LIMIT is halved
(rounding up, so no count reaches 0). Encoder and decoder run exactly these integer updates, in
the same order, so they see the same probabilities. Chunking is what lets a whole batch go through
constriction in a few vectorised calls; within a chunk the model does not change.
"""

from __future__ import annotations

import numpy as np

CHUNK = 16  # longer chunks cost bytes, shorter ones decode time: docs/keyframe-codecs.md#imagecodec-notes
INCREMENT = 32
LIMIT = 1 << 16


def geometric_prior(alphabet: int, first: int, ratio: float) -> np.ndarray:
    """Prior counts: `first` * ratio**s for symbol s, at least 1 (a fixed table; floats only here,
    on constants, so both sides build the same integers)."""
    return np.maximum(1, np.floor(first * ratio ** np.arange(alphabet))).astype(np.int64)


class AdaptiveModel:
    """Counts of `contexts` adaptive categorical distributions over 0..alphabet-1."""

    def __init__(self, contexts: int, prior: np.ndarray) -> None:
        self.alphabet = len(prior)
        self.counts = np.tile(np.asarray(prior, np.int64), (contexts, 1))

    def probabilities(self, ctx: np.ndarray) -> np.ndarray:
        """float64 [len(ctx), alphabet]: the counts of each symbol's context (integers, exact)."""
        return self.counts[ctx].astype(np.float64)

    def update(self, ctx: np.ndarray, symbols: np.ndarray) -> None:
        """Add a coded chunk's symbols to their contexts' counts; halve contexts grown past LIMIT."""
        flat = ctx.astype(np.int64) * self.alphabet + symbols
        cells, times = np.unique(flat, return_counts=True)
        self.counts.reshape(-1)[cells] += INCREMENT * times
        touched = np.unique(ctx)
        full = touched[self.counts[touched].sum(axis=1) > LIMIT]
        if full.size:
            self.counts[full] = (self.counts[full] + 1) >> 1


def bucket(values: np.ndarray, edges: tuple[int, ...]) -> np.ndarray:
    """Index of the bucket of each value: 0 below edges[0], i for edges[i-1] <= v < edges[i], ..."""
    return np.searchsorted(np.asarray(edges), values, side="right")
