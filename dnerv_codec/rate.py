"""Rate control: the keyframe quality and network width that put an archive at a target bpp.

    target bytes = bpp x pixels / 8
    weights   ──► width: the preset's weight budget, at most MAX_WEIGHT_SHARE of the target (the
                  measured bits per parameter of the weight compression turn it into parameters)
    keyframes ──► the rest: bisection over the codec's quality with the REAL keyframe coder, the best
                  quality whose bytes fit (the coded keyframes are kept: encode writes them as is);
                  what even the best quality leaves unused widens the network
    after the fit, the bit-depth choice of the weight compression gets the bytes left as a budget

The keyframe bytes are exact; the weights' are an estimate (about +-20 % of their share), so the
archive lands near the target. Where the split should be, and how it moves with the target and the
collection size: docs/rate-control.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .config import MAX_BPP, KeyframeConfig, ModelConfig, Preset, QuantConfig, keyframe_codec
from .errors import ConfigError
from .model.build import count_parameters


def overhead_bytes(keyframes: int) -> int:
    """Header and container (more with many videos; docs/decisions.md) + 8 index bytes a keyframe."""
    return 600 + 8 * keyframes


MAX_WEIGHT_SHARE = 0.1
"""Most of the target the weights get by default: at CPU fitting budgets a keyframe byte is worth
more (measured with benchmarks/split.py: docs/decisions.md)."""
LEFTOVER_SHARE = 0.05  # bytes the keyframes leave unused beyond this share of the target go to the network


def check_bpp(bpp: float) -> None:
    if not 0 < bpp <= MAX_BPP:
        raise ConfigError(
            f"target bpp must be in (0, {MAX_BPP:g}] ({MAX_BPP:g} = raw 8-bit RGB), got {bpp:g}"
        )


def check_weight_share(share: float | None) -> None:
    if share is not None and not 0 < share < 1:
        raise ConfigError(f"weight share must be in (0, 1), got {share:g}")


BITS_PER_PARAM_ESTIMATE = (
    8.0  # coded bits per 8-bit weight, measured on fitted D-NeRVs; sizes presets' networks
)


def choose_fc_dim(
    preset: Preset,
    model: ModelConfig,
    height: int,
    width: int,
    pixels: int,
    weight_bpp: float | None = None,
    bits_per_param: float = BITS_PER_PARAM_ESTIMATE,
) -> int:
    """The widest fc_dim whose estimated weight bits stay within weight_bpp (default: the preset's)
    x pixels, within the preset's [min_fc_dim, max_fc_dim]."""
    budget_params = (weight_bpp or preset.weight_bpp) * pixels / bits_per_param
    lo, hi = preset.min_fc_dim, preset.max_fc_dim
    while lo < hi:
        mid = (lo + hi + 1) // 2
        fits = count_parameters(dataclasses.replace(model, fc_dim=mid), height, width) <= budget_params
        lo, hi = (mid, hi) if fits else (lo, mid - 1)
    return lo


def bits_per_param(quant: QuantConfig) -> float:
    """Coded bits per parameter, an estimate from fitted networks (docs/decisions.md)."""
    return 4.5 if quant.bit_choices and min(quant.bit_choices) <= 4 else 8.2


@dataclass(frozen=True)
class Collection:
    """What an archive is sized for: `frames` frames of height x width, `keyframes` of them coded."""

    height: int
    width: int
    frames: int
    keyframes: int

    @property
    def pixels(self) -> int:
        return self.frames * self.height * self.width


@dataclass(frozen=True)
class RatePlan:
    keyframes: KeyframeConfig
    fc_dim: int
    blobs: list[bytes]  # the keyframes coded at keyframes.quality
    keyframe_bytes: int
    weight_bytes_estimate: int
    target_bytes: int


def plan_rate(
    bpp: float,
    collection: Collection,
    preset: Preset,
    model: ModelConfig,
    key_cfg: KeyframeConfig,
    quant: QuantConfig,
    code_keyframes: Callable[[KeyframeConfig], list[bytes]],
    weight_share: float | None = None,
) -> RatePlan:
    """Choose C0 and the keyframe quality for `bpp` over the collection; code_keyframes(cfg) codes
    all its keyframes. weight_share: the share of the target meant for the weights (default: the
    preset's weight bpp, at most MAX_WEIGHT_SHARE)."""
    check_bpp(bpp)
    check_weight_share(weight_share)
    pixels, height, width = collection.pixels, collection.height, collection.width
    target = int(bpp * pixels / 8)
    per_param = bits_per_param(quant)

    def network(weight_bits: float) -> tuple[int, int]:
        """The widest fc_dim within weight_bits, and its estimated weight bytes."""
        fc = choose_fc_dim(preset, model, height, width, pixels, weight_bits / pixels, per_param)
        return fc, int(count_parameters(dataclasses.replace(model, fc_dim=fc), height, width) * per_param / 8)

    if not model.uses_keyframes:  # NeRV: every byte goes to the network
        fc, weight_bytes = network(max(target - overhead_bytes(0), 0) * 8)
        return RatePlan(key_cfg, fc, [], 0, weight_bytes, target)
    share = weight_share if weight_share is not None else min(preset.weight_bpp / bpp, MAX_WEIGHT_SHARE)
    fc, weight_bytes = network(share * bpp * pixels)
    overhead = overhead_bytes(collection.keyframes)
    budget = target - weight_bytes - overhead

    scale = keyframe_codec(key_cfg.codec)
    qualities = scale.qualities_best_first()
    coded: dict[int, list[bytes]] = {}

    def size(q: int) -> int:
        coded[q] = code_keyframes(dataclasses.replace(key_cfg, quality=q))
        return sum(len(b) for b in coded[q])

    smallest = size(qualities[-1])
    if smallest > budget:
        need = (smallest + weight_bytes + overhead) * 8 / pixels
        raise ConfigError(
            f"target {bpp:g} bpp is too low: the keyframes at the lowest quality "
            f"({scale.quality_name} {qualities[-1]}) and the network need about {need:.4f} bpp"
        )
    quality = _best_fitting(size, budget, qualities)
    keyframe_bytes = sum(len(b) for b in coded[quality])
    leftover = budget - keyframe_bytes
    # what the keyframes cannot use (best quality reached), the network can
    if leftover > LEFTOVER_SHARE * target:
        fc, weight_bytes = network((weight_bytes + leftover) * 8)
    keyframes = dataclasses.replace(key_cfg, quality=quality)
    return RatePlan(keyframes, fc, coded[quality], keyframe_bytes, weight_bytes, target)


def _best_fitting(size: Callable[[int], int], budget: int, qualities: Sequence[int]) -> int:
    """The best quality whose size fits the budget, by bisection over `qualities` (best first);
    the last, lowest quality fits."""
    lo, hi = -1, len(qualities) - 1  # positions: size at hi fits, at lo not (-1: none tried)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if size(qualities[mid]) <= budget else (mid, hi)
    return qualities[hi]
