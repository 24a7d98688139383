"""The residual models of the weight coder, one class each, registered by their id in MODELS.

Each model says what it costs on a tensor's residuals (fit: estimated bits, its header values, or
None where it does not apply), which header fields carry its parameters (fields, written and read
by fields.py), which ANS streams code the residuals (streams) and how to decode them (decode_side,
then decode). entropy.py holds the blob around them and its byte layout.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import constriction
import numpy as np

from . import entropy_models as em
from .fields import Field, Values, corrupt, int_array_fields

EMPTY, CONSTANT, LAPLACE, LAPLACE_RANGE, HISTOGRAM, LAPLACE_CHANNEL = range(6)
MAX_HIST_BINS = 1024  # the encoder's DP is O(bins * 64**2); wider ranges use Laplace models

Stream = tuple[bool, np.ndarray, object]  # (is side information, symbols, constriction model)


def categorical(weights: np.ndarray):
    # explicit perfect=False on both sides: the default changed between constriction versions
    return constriction.stream.model.Categorical(weights, perfect=False)


def laplace_model(center: int, code: int, size: int):
    return categorical(em.laplace_weights(int(center), int(code), size))


DELTA_MODEL = categorical(em.DELTA_WEIGHTS)


class Residuals:
    """A tensor's residuals r = symbol - zero point, r2 [channels, per], as the models see them."""

    def __init__(self, r2: np.ndarray, top: int) -> None:
        self.r2, self.top = r2, top  # top = L = 2**bits - 1
        self.flat = r2.reshape(-1)
        self.size = self.flat.size
        self.rmin = int(self.flat.min()) if self.size else 0
        self.rmax = int(self.flat.max()) if self.size else 0
        self.bins = self.rmax - self.rmin + 1
        self.hist = np.bincount(self.flat - self.rmin).astype(np.float64) if self.size else np.zeros(0)

    def entropy_bits(self) -> float:
        """numel x the empirical order-0 entropy."""
        used = self.hist[self.hist > 0]
        return float(-(used * np.log2(used / self.size)).sum()) if self.bins > 1 else 0.0

    def spread(self) -> bool:
        """More than one distinct value: something for a probability model to code."""
        return self.size > 0 and self.bins > 1


@dataclass
class Fit:
    """A model's cost on one tensor: estimated ANS bits, its header values, what its streams need."""

    bits: float
    values: Values
    extra: object = None


def decode_int_array(coder, prefix: str, v: Values, count: int) -> np.ndarray:
    """The integer array of fields.int_array_fields(prefix), decoded from the ANS stream."""
    out = np.full(count, v[f"{prefix}_min"], np.int64)
    if v[f"{prefix}_span"]:
        model = laplace_model(v[f"{prefix}_center"], v[f"{prefix}_code"], v[f"{prefix}_span"] + 1)
        out += coder.decode(model, count)
    return out


def plan_int_array(prefix: str, values: np.ndarray) -> tuple[Values, list[Stream], float]:
    """(header values, ANS streams, estimated bits) of fields.int_array_fields(prefix) for
    non-negative integers."""
    vmin, span = int(values.min()), int(values.max() - values.min())
    out = {f"{prefix}_min": vmin, f"{prefix}_span": span}
    if span == 0:
        return out, [], 0.0
    bits, center, code = em.fit_laplace(np.bincount(values - vmin).astype(np.float64), 0, span + 1)
    out.update({f"{prefix}_center": center, f"{prefix}_code": code})
    return out, [(True, (values - vmin).astype(np.int32), laplace_model(center, code, span + 1))], bits


@dataclass
class EntropyModel(ABC):
    """One residual model: its id in the tensor header's flags, its name in reports, the header
    fields of its parameters and the first blob version that has it. The defaults of streams and
    decode_side are those of a model without ANS streams or side information."""

    id: int
    name: str
    fields: tuple[Field, ...] = ()
    since_version: int = 1

    @abstractmethod
    def fit(self, res: Residuals, forced: bool) -> Fit | None:
        """The cost on these residuals, None where the model does not apply (forced: a test asks
        for this model; some limits of the automatic choice are then lifted)."""

    def streams(self, fit: Fit, res: Residuals) -> list[Stream]:
        """The ANS streams of the residuals (side information first), in decode order."""
        return []

    def decode_side(self, coder, v: Values, channels: int) -> object:
        """The side information the model keeps in the ANS stream, before the residuals."""
        return None

    @abstractmethod
    def decode(self, coder, v: Values, side: object, channels: int, per: int) -> np.ndarray:
        """The residuals, int64 [channels * per], in channel order."""


def top_of(v: Values) -> int:
    """The largest level L = 2**bits - 1 of the tensor the header values belong to."""
    return v["top"]


# the used residual range rmin..rmax (models 3, 4, 5): at least two values, within -L..L
RANGE_FIELDS = (
    Field("lo", "zigzag", limit=top_of),
    Field("span", "varint", limit=lambda v: v["top"] - v["lo"], least=1),
)


def _range_values(res: Residuals) -> Values:
    return {"lo": res.rmin, "span": res.bins - 1}


class Empty(EntropyModel):
    def fit(self, res: Residuals, forced: bool) -> Fit | None:
        return Fit(0.0, {}) if res.size == 0 else None

    def decode(self, coder, v: Values, side: object, channels: int, per: int) -> np.ndarray:
        return np.zeros(channels * per, np.int64)


class Constant(EntropyModel):
    def fit(self, res: Residuals, forced: bool) -> Fit | None:
        return Fit(0.0, {"lo": res.rmin}) if res.size and res.bins == 1 else None

    def decode(self, coder, v: Values, side: object, channels: int, per: int) -> np.ndarray:
        return np.full(channels * per, v["lo"], np.int64)


class Laplace(EntropyModel):
    """Over the full residual range -L..L; the stored center is relative to 0."""

    def fit(self, res: Residuals, forced: bool) -> Fit | None:
        if not res.spread():
            return None
        bits, center, code = em.fit_laplace(res.hist, res.rmin + res.top, 2 * res.top + 1)
        return Fit(bits, {"center": center - res.top, "code": code})

    def streams(self, fit: Fit, res: Residuals) -> list[Stream]:
        model = laplace_model(fit.values["center"] + res.top, fit.values["code"], 2 * res.top + 1)
        return [(False, (res.flat + res.top).astype(np.int32), model)]

    def decode(self, coder, v: Values, side: object, channels: int, per: int) -> np.ndarray:
        top = v["top"]
        model = laplace_model(v["center"] + top, v["code"], 2 * top + 1)
        return coder.decode(model, channels * per).astype(np.int64) - top


class LaplaceRange(EntropyModel):
    """Over the used range rmin..rmax (better for flat distributions)."""

    def fit(self, res: Residuals, forced: bool) -> Fit | None:
        if not res.spread():
            return None
        bits, center, code = em.fit_laplace(res.hist, 0, res.bins)
        return Fit(bits, _range_values(res) | {"center": center, "code": code})

    def streams(self, fit: Fit, res: Residuals) -> list[Stream]:
        model = laplace_model(fit.values["center"], fit.values["code"], res.bins)
        return [(False, (res.flat - res.rmin).astype(np.int32), model)]

    def decode(self, coder, v: Values, side: object, channels: int, per: int) -> np.ndarray:
        model = laplace_model(v["center"], v["code"], v["span"] + 1)
        return coder.decode(model, channels * per).astype(np.int64) + v["lo"]


class Histogram(EntropyModel):
    """64-level log histogram over rmin..rmax; the levels' deltas go in the ANS stream."""

    def fit(self, res: Residuals, forced: bool) -> Fit | None:
        # a sparse histogram cannot pay for its levels
        if not res.spread() or not (res.bins <= min(MAX_HIST_BINS, res.size) or forced):
            return None
        bits, levels = em.fit_histogram(res.hist)
        return Fit(bits, _range_values(res), levels)

    def streams(self, fit: Fit, res: Residuals) -> list[Stream]:
        deltas = np.diff(fit.extra, prepend=0) + em.DELTA_CENTER
        return [
            (True, deltas.astype(np.int32), DELTA_MODEL),
            (False, (res.flat - res.rmin).astype(np.int32), categorical(em.HIST_WEIGHTS[fit.extra])),
        ]

    def decode_side(self, coder, v: Values, channels: int) -> np.ndarray:
        levels = np.cumsum(coder.decode(DELTA_MODEL, v["span"] + 1).astype(np.int64) - em.DELTA_CENTER)
        if levels.min() < 0 or levels.max() >= em.HIST_LEVELS:
            raise corrupt("histogram level out of range")
        return levels

    def decode(self, coder, v: Values, side: np.ndarray, channels: int, per: int) -> np.ndarray:
        return coder.decode(categorical(em.HIST_WEIGHTS[side]), channels * per).astype(np.int64) + v["lo"]


class LaplaceChannel(EntropyModel):
    """One Laplace per output channel over rmin..rmax; the centers and codes are two integer arrays
    in the ANS stream (2 parameters per channel)."""

    def fit(self, res: Residuals, forced: bool) -> Fit | None:
        channels = len(res.r2)
        if not res.spread() or channels < 2 or not (res.bins <= MAX_HIST_BINS or forced):
            return None
        offsets = (res.r2 - res.rmin) + res.bins * np.arange(channels)[:, None]
        hist = np.bincount(offsets.reshape(-1), minlength=res.bins * channels).reshape(channels, res.bins)
        row_bits, centers, codes = em.fit_laplace_rows(hist.astype(np.float64))
        bits, values, side = float(row_bits.sum()), _range_values(res), []
        for prefix, array in (("centers", centers), ("codes", codes)):
            head, streams, array_bits = plan_int_array(prefix, array)
            values, side, bits = values | head, side + streams, bits + array_bits
        return Fit(bits, values, (centers, codes, side))

    def streams(self, fit: Fit, res: Residuals) -> list[Stream]:
        centers, codes, side = fit.extra
        rows = zip(res.r2, centers, codes, strict=True)
        return side + [
            (False, (row - res.rmin).astype(np.int32), laplace_model(c, k, res.bins)) for row, c, k in rows
        ]

    def decode_side(self, coder, v: Values, channels: int) -> tuple[np.ndarray, np.ndarray]:
        centers, codes = (decode_int_array(coder, prefix, v, channels) for prefix in ("centers", "codes"))
        if centers.max() > v["span"] or codes.max() >= em.LAPLACE_CODES:
            raise corrupt("channel model parameter out of range")
        return centers, codes

    def decode(self, coder, v: Values, side: tuple, channels: int, per: int) -> np.ndarray:
        size = v["span"] + 1
        rows = [coder.decode(laplace_model(c, k, size), per) for c, k in zip(*side, strict=True)]
        return (np.concatenate(rows).astype(np.int64) if rows else np.zeros(0, np.int64)) + v["lo"]


MODELS: dict[int, EntropyModel] = {
    m.id: m
    for m in (
        Empty(EMPTY, "empty"),
        Constant(CONSTANT, "constant", (Field("lo", "zigzag", limit=top_of),)),
        Laplace(LAPLACE, "laplace", (Field("center", "zigzag", limit=top_of), Field("code", "u1"))),
        LaplaceRange(
            LAPLACE_RANGE,
            "laplace-range",
            RANGE_FIELDS + (Field("center", "varint", limit=lambda v: v["span"]), Field("code", "u1")),
        ),
        Histogram(HISTOGRAM, "histogram", RANGE_FIELDS),
        LaplaceChannel(
            LAPLACE_CHANNEL,
            "laplace-channel",
            RANGE_FIELDS
            + int_array_fields("centers", "varint", limit=lambda v: v["span"])
            + int_array_fields("codes", "varint", limit=lambda v: em.LAPLACE_CODES - 1),
            since_version=2,
        ),
    )
}
MODEL_NAMES = tuple(m.name for m in MODELS.values())
