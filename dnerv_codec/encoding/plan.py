"""Plan stage, the only reader of the user's EncodeOptions, in two steps.

read_options, before any input is read: the output is checked and the preset's configs resolved.
decide, once the frames are cached: the network width (and, for a target bpp, the keyframe
quality: rate.plan_rate) and the fingerprint that ties a checkpoint to its inputs and settings."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ..config import (
    MAX_BPP,
    FitConfig,
    KeyframeConfig,
    ModelConfig,
    Preset,
    QuantConfig,
    get_preset,
    keyframe_settings,
    to_dict,
)
from ..errors import ConfigError, OutputError
from ..fit.distributed import Dist
from ..keyframes import encode_keyframes
from ..options import EncodeOptions
from ..rate import (
    Collection,
    RatePlan,
    check_bpp,
    check_weight_share,
    choose_fc_dim,
    overhead_bytes,
    plan_rate,
)
from ..report import Reporter
from ..video.read import VideoInfo
from .frames import Frames


@dataclass(frozen=True)
class Files:
    """What the encode reads and writes."""

    inputs: tuple[Path, ...]
    output: Path
    cache_root: Path | None  # --cache-dir
    resume: bool
    force: bool

    @property
    def checkpoint(self) -> Path:
        return self.output.with_name(self.output.name + ".ckpt")

    @property
    def overwrite(self) -> bool:
        """A resumed run replaces the archive its first run may have left."""
        return self.force or self.resume


@dataclass(frozen=True)
class Configs:
    """The preset's settings with the user's changes."""

    preset: Preset
    model: ModelConfig
    keyframes: KeyframeConfig
    fit: FitConfig
    quant: QuantConfig


@dataclass(frozen=True)
class Sizing:
    """What the user asked about sizes; None: the preset's rule."""

    frame_size: tuple[int, int] | None
    bpp: float | None
    weight_share: float | None
    fc_dim: int | None
    weight_bpp: float | None
    weight_bytes: int | None


@dataclass(frozen=True)
class Plan:
    """Everything decided before the keyframes are coded."""

    configs: Configs  # with the network width and, for a target bpp, the keyframe quality
    coded: list[bytes] | None  # the keyframes rate control coded at configs.keyframes
    target_bytes: int | None  # for a target bpp
    weight_bytes: int | None  # the user's budget for the weights
    recorded: dict  # the settings every checkpoint records (and the fingerprint covers)
    fingerprint: str

    def weight_budget(self, keyframes: list[bytes]) -> int | None:
        """Bytes the weight compression may use: what the target leaves after the keyframes and
        the overhead, else the user's budget."""
        if self.target_bytes is None:
            return self.weight_bytes
        return self.target_bytes - sum(len(b) for b in keyframes) - overhead_bytes(len(keyframes))


def read_options(opts: EncodeOptions) -> tuple[Files, Configs, Sizing]:
    _check_output(opts)
    configs = resolve_configs(opts)
    files = Files(opts.inputs, opts.output, opts.cache_dir, opts.resume, opts.force)
    sizing = Sizing(opts.size, opts.bpp, opts.weight_share, opts.fc_dim, opts.weight_bpp, opts.weight_bytes)
    return files, configs, sizing


def _check_output(opts: EncodeOptions) -> None:
    out = opts.output
    if out.is_dir():
        raise OutputError(f"output {out} is a directory; give a file name such as {out / 'archive.dnv'}")
    if out.exists() and not opts.force:
        raise OutputError(f"output {out} exists; use --force to overwrite it")
    if not out.parent.is_dir():
        raise OutputError(f"output folder {out.parent} does not exist")
    if any(out.resolve() == p.resolve() for p in opts.inputs if p.exists()):
        raise OutputError(f"output {out} is one of the inputs; choose another name")


def resolve_configs(opts: EncodeOptions) -> Configs:
    preset = get_preset(opts.preset)
    _check_sizing(opts)
    keyframes, fit = _keyframes(opts, preset), _fit(opts, preset)
    quant = opts.quant or preset.quant
    if opts.weight_bytes is not None and (opts.weight_bytes < 1 or not quant.bit_choices):
        raise ConfigError(
            f"a weight byte budget needs a positive size and bit depths to choose from, got "
            f"{opts.weight_bytes} bytes with bit choices {list(quant.bit_choices)}"
        )
    return Configs(preset, opts.model or preset.model, keyframes, fit, quant)


def _check_sizing(opts: EncodeOptions) -> None:
    if opts.weight_bpp is not None and not 0 < opts.weight_bpp <= MAX_BPP:
        raise ConfigError(
            f"weight bpp must be in (0, {MAX_BPP:g}] ({MAX_BPP:g} = raw 8-bit RGB), got {opts.weight_bpp}"
        )
    if opts.weight_share is not None and opts.bpp is None:
        raise ConfigError("a weight share needs a target bpp")
    if opts.bpp is None:
        return
    check_bpp(opts.bpp)
    check_weight_share(opts.weight_share)
    fixed = [
        name
        for name, value in (
            ("--keyframe-quality", opts.keyframe_quality),
            ("--fc-dim", opts.fc_dim),
            ("--weight-bpp", opts.weight_bpp),
            ("weight_bytes", opts.weight_bytes),
        )
        if value is not None
    ]
    if fixed:
        raise ConfigError(
            f"--bpp chooses the keyframe quality and the network width; drop {', '.join(fixed)}"
        )


def _keyframes(opts: EncodeOptions, preset: Preset) -> KeyframeConfig:
    return keyframe_settings(preset.keyframes, opts.keyframe_codec, opts.keyframe_quality, opts.keyframe_gop)


def _fit(opts: EncodeOptions, preset: Preset) -> FitConfig:
    changes: dict = {"seed": opts.seed}
    if opts.epochs is not None or opts.time_limit is not None:
        # An explicit schedule replaces the preset's: --epochs alone gives a reproducible fit.
        changes.update(epochs=opts.epochs, time_limit=opts.time_limit)
    if opts.batch_size is not None:
        changes["batch_size"] = opts.batch_size
    if opts.lr is not None:
        changes["lr"] = opts.lr
    return dataclasses.replace(preset.fit, **changes)


def decide(
    sizing: Sizing,
    configs: Configs,
    frames: Frames,
    videos: list[VideoInfo],
    device_type: str,
    ctx: Dist,
    reporter: Reporter,
) -> Plan:
    """The network width and keyframe settings for these frames; for a target bpp, rank 0 plans
    (it codes the keyframes) and every rank follows."""
    rate = _rate_plan(sizing, configs, frames, ctx, reporter) if sizing.bpp is not None else None
    if rate is not None:
        keyframes, fc_dim = rate.keyframes, rate.fc_dim
    else:
        keyframes, fc_dim = configs.keyframes, sizing.fc_dim
        if fc_dim is None:
            fc_dim = choose_fc_dim(
                configs.preset, configs.model, *frames.shape, frames.pixels, sizing.weight_bpp
            )
    model = dataclasses.replace(configs.model, fc_dim=fc_dim)
    configs = dataclasses.replace(configs, model=model, keyframes=keyframes)
    recorded = {
        "model": to_dict(configs.model),
        "keyframes": to_dict(configs.keyframes),
        "fit": to_dict(configs.fit),
        "quant": to_dict(configs.quant),
        "device": device_type,
    }
    return Plan(
        configs,
        coded=None if rate is None else rate.blobs,
        target_bytes=None if rate is None else rate.target_bytes,
        weight_bytes=sizing.weight_bytes,
        recorded=recorded,
        fingerprint=_fingerprint(videos, frames.shape, recorded),
    )


def _rate_plan(sizing: Sizing, configs: Configs, frames: Frames, ctx: Dist, reporter: Reporter) -> RatePlan:
    plan = None
    if ctx.is_main:
        layout = frames.layout
        collection = Collection(*frames.shape, layout.total_frames, len(layout.keyframes))
        with reporter.task(f"rate control for {sizing.bpp:g} bpp", total=1.0):
            plan = plan_rate(
                sizing.bpp,
                collection,
                configs.preset,
                configs.model,
                configs.keyframes,
                configs.quant,
                lambda cfg: encode_keyframes(frames.keyframe_images(), cfg, layout.first_keyframe),
                sizing.weight_share,
            )
    plan = ctx.broadcast(plan)
    reporter.info(
        f"rate control: keyframe quality {plan.keyframes.quality} ({plan.keyframe_bytes:,} bytes), "
        f"fc_dim {plan.fc_dim} (weights about {plan.weight_bytes_estimate:,} bytes), "
        f"target {plan.target_bytes:,} bytes"
    )
    return plan


def _fingerprint(videos: list[VideoInfo], size: tuple[int, int], configs: dict) -> str:
    items = [
        [v.name, str(v.path.resolve()), v.path.stat().st_size, v.path.stat().st_mtime_ns] for v in videos
    ]
    doc = json.dumps({"videos": items, "size": size, "configs": configs}, sort_keys=True, default=str)
    return hashlib.sha256(doc.encode()).hexdigest()
