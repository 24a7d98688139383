"""What `dnerv encode` and `dn.encode` take: EncodeOptions, read by the plan stage only
(dnerv_codec/encoding/plan.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .config import ModelConfig, QuantConfig


@dataclass(frozen=True)
class EncodeOptions:
    """Everything `dnerv encode` takes. None means: the preset's value."""

    inputs: tuple[Path, ...]
    output: Path
    preset: str = "default"
    size: tuple[int, int] | None = None
    epochs: int | None = None
    time_limit: float | None = None
    """Minutes of fitting (--time-limit)."""
    keyframe_codec: str | None = None
    keyframe_quality: int | None = None
    keyframe_gop: int | None = None
    fc_dim: int | None = None
    weight_bpp: float | None = None
    bpp: float | None = None
    model: ModelConfig | None = None
    """Replaces the preset's network shape (library use; fc_dim is still chosen unless given)."""
    quant: QuantConfig | None = None
    """Replaces the preset's weight compression (library use, e.g. plain 8 bits: QuantConfig())."""
    weight_share: float | None = None
    """With bpp: the share of the target meant for the weights (library use; default: the preset's
    rule, see rate.plan_rate)."""
    weight_bytes: int | None = None
    """Budget of the weight compression: its bit depths are fitted to at most about this many
    weight bytes (library use; --bpp sets it from the target)."""
    batch_size: int | None = None
    lr: float | None = None
    seed: int = 0
    device: str = "auto"
    cache_dir: Path | None = None
    resume: bool = False
    force: bool = False
