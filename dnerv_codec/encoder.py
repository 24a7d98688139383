"""Encode a collection of videos into one archive.

inputs ──► find_videos ──► frame cache (uint8, working size) ──► Layout (clips, keyframes)
    keyframes ──► keyframe codec ──► DECODED keyframes ──► fit DNeRV (checkpoints, resume)
    ──► quantize + entropy-code weights ──► write archive ──► decode it back and measure
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .archive.format import SECTION_NAMES, ArchiveHeader
from .archive.write import write_archive
from .clips import Layout, VideoEntry
from .compress.stage import compress_weights, fit_share, stage_active
from .compress.weights import pack_state
from .config import FitConfig, KeyframeConfig, ModelConfig, Preset, QuantConfig, get_preset, to_dict
from .decode import Archive
from .errors import ConfigError, InputError, Interrupted, OutputError, ResumeError
from .fit import distributed
from .fit.checkpoint import Checkpoint
from .fit.data import ClipData
from .fit.distributed import Dist
from .fit.trainer import Trainer
from .keyframes import decode_keyframe_run, encode_keyframes, keyframe_groups
from .metrics import QualityMeter
from .model.build import build_model
from .rate import check_bpp, check_weight_share, choose_fc_dim, overhead_bytes, plan_rate
from .report import Reporter
from .video.cache import open_frames, write_frames
from .video.read import VideoInfo, find_videos, iter_frames


@dataclass(frozen=True)
class EncodeOptions:
    """Everything `dnerv encode` takes. None means: the preset's value."""

    inputs: tuple[Path, ...]
    output: Path
    preset: str = "default"
    size: tuple[int, int] | None = None
    epochs: int | None = None
    time_limit_min: float | None = None
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


@dataclass
class EncodeReport:
    """What an encode produced and measured (quality on frames decoded from the written file)."""

    output: Path
    bytes: int
    bpp: float
    psnr: float
    ms_ssim: float | None
    blend_psnr: float | None  # None for a model without keyframes (NeRV)
    gain_db: float | None
    params: int
    frames: int
    width: int
    height: int
    seconds: float
    fit_seconds: float
    fit_steps: int
    fit_epochs: float
    device: str
    sections: dict[str, int] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "bpp": self.bpp,
            "psnr": self.psnr,
            "ms_ssim": self.ms_ssim,
            "blend_psnr": self.blend_psnr,
            "gain_db": self.gain_db,
            "bytes": self.bytes,
            "seconds": self.seconds,
            "params": self.params,
            "frames": self.frames,
            "width": self.width,
            "height": self.height,
            "fit_seconds": self.fit_seconds,
            "fit_epochs": self.fit_epochs,
            "device": self.device,
            "sections": self.sections,
            "output": str(self.output),
        }


def working_size(
    videos: list[VideoInfo], asked: tuple[int, int] | None, default: tuple[int, int], multiple: int
):
    """The size every frame is fitted at: the one asked for, else the inputs' own size when they all
    share it, else `default`; then each side rounded to the nearest multiple of the network's
    stride product (at least one multiple), so every decoder stage has whole pixels."""
    if asked is None:
        sizes = {(v.height, v.width) for v in videos}
        asked = sizes.pop() if len(sizes) == 1 else default
    return tuple(max(multiple, int(math.floor(s / multiple + 0.5)) * multiple) for s in asked)


def resolve_configs(
    opts: EncodeOptions,
) -> tuple[Preset, ModelConfig, KeyframeConfig, FitConfig, QuantConfig]:
    preset = get_preset(opts.preset)
    if opts.weight_bpp is not None and not 0 < opts.weight_bpp <= 24:
        raise ConfigError(f"weight bpp must be in (0, 24] (24 = raw 8-bit RGB), got {opts.weight_bpp}")
    if opts.weight_share is not None and opts.bpp is None:
        raise ConfigError("a weight share needs a target bpp")
    if opts.bpp is not None:
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
    keyframes = preset.keyframes
    if opts.keyframe_codec is not None or opts.keyframe_quality is not None or opts.keyframe_gop is not None:
        codec = opts.keyframe_codec or keyframes.codec
        quality = opts.keyframe_quality
        if quality is None:
            quality = keyframes.quality if codec == keyframes.codec else KeyframeConfig(codec=codec).quality
        gop = keyframes.gop if opts.keyframe_gop is None else opts.keyframe_gop
        keyframes = KeyframeConfig(codec=codec, quality=quality, gop=gop)
    fit = preset.fit
    changes: dict = {"seed": opts.seed}
    if opts.epochs is not None or opts.time_limit_min is not None:
        # An explicit schedule replaces the preset's: --epochs alone gives a reproducible fit.
        changes.update(epochs=opts.epochs, time_limit_min=opts.time_limit_min)
    if opts.batch_size is not None:
        changes["batch_size"] = opts.batch_size
    if opts.lr is not None:
        changes["lr"] = opts.lr
    fit = dataclasses.replace(fit, **changes)
    quant = opts.quant or preset.quant
    if opts.weight_bytes is not None and (opts.weight_bytes < 1 or not quant.bit_choices):
        raise ConfigError(
            f"a weight byte budget needs a positive size and bit depths to choose from, got "
            f"{opts.weight_bytes} bytes with bit choices {list(quant.bit_choices)}"
        )
    return preset, opts.model or preset.model, keyframes, fit, quant


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


def _fingerprint(videos: list[VideoInfo], size, configs: dict) -> str:
    items = [
        [v.name, str(v.path.resolve()), v.path.stat().st_size, v.path.stat().st_mtime_ns] for v in videos
    ]
    doc = json.dumps({"videos": items, "size": size, "configs": configs}, sort_keys=True, default=str)
    return hashlib.sha256(doc.encode()).hexdigest()


def encode(opts: EncodeOptions, reporter: Reporter | None = None) -> EncodeReport | None:
    """Encode `opts.inputs` into the archive `opts.output`; see EncodeOptions.

    Under torchrun every process calls this: rank 0 builds the frame cache and codes the keyframes
    once, all ranks fit together, rank 0 writes checkpoints and the archive and returns the
    report; the other ranks return None."""
    ctx = distributed.from_environment()
    device = distributed.start(ctx, opts.device)
    try:
        return _encode(opts, (reporter or Reporter()) if ctx.is_main else Reporter(), ctx, device)
    finally:
        distributed.stop(ctx)


def _encode(opts: EncodeOptions, reporter: Reporter, ctx: Dist, device: torch.device) -> EncodeReport | None:
    started = time.monotonic()
    _check_output(opts)
    preset, model_cfg, key_cfg, fit_cfg, quant_cfg = resolve_configs(opts)

    videos, skipped = find_videos(list(opts.inputs))
    for path, reason in skipped:
        reporter.warn(f"skipped {path}: {reason}")
    if not videos:
        raise InputError("no usable video among the inputs: " + ", ".join(str(p) for p in opts.inputs))
    with_audio = [v.name for v in videos if v.has_audio]
    if with_audio:
        reporter.warn(f"audio is not kept ({len(with_audio)} input(s) have audio, e.g. {with_audio[0]})")

    height, width = working_size(videos, opts.size, preset.default_size, model_cfg.size_multiple)
    where = f"{ctx.world} processes on {device.type}" if ctx.enabled else f"device {device}"
    reporter.info(f"{len(videos)} video(s), working size {height}x{width}, preset {preset.name}, {where}")
    ckpt_path = opts.output.with_name(opts.output.name + ".ckpt")
    if opts.resume and not ckpt_path.exists():  # before decoding every video into the cache
        raise ResumeError(f"no checkpoint to resume at {ckpt_path}")
    cache_dir, remove_after = _cache_folder(opts) if ctx.is_main else (None, [])
    try:
        # the frame cache is built once, by rank 0 (multi-machine runs need it on shared storage)
        if ctx.is_main:
            entries = _fill_cache(videos, cache_dir, height, width, reporter)
        cache_dir, entries = ctx.broadcast((cache_dir, entries) if ctx.is_main else None)
        frames = [open_frames(_cache_file(cache_dir, i), height, width) for i in range(len(entries))]
        layout = Layout.build(entries, model_cfg.clip_len)
        plan = None
        if opts.bpp is not None:  # rank 0 plans (it codes the keyframes), every rank follows
            pixels = layout.total_frames * height * width
            if ctx.is_main:
                with reporter.task(f"rate control for {opts.bpp:g} bpp", total=1.0):
                    plan = plan_rate(
                        opts.bpp,
                        pixels,
                        preset,
                        model_cfg,
                        key_cfg,
                        quant_cfg,
                        height,
                        width,
                        len(layout.keyframes),
                        lambda cfg: encode_keyframes(
                            _keyframe_images(layout, frames), cfg, layout.first_keyframe
                        ),
                        opts.weight_share,
                    )
            plan = ctx.broadcast(plan)
            key_cfg = plan.keyframes
            model_cfg = dataclasses.replace(model_cfg, fc_dim=plan.fc_dim)
            reporter.info(
                f"rate control: keyframe quality {key_cfg.quality} ({plan.keyframe_bytes:,} bytes), "
                f"fc_dim {plan.fc_dim} (weights about {plan.weight_bytes_estimate:,} bytes), "
                f"target {plan.target_bytes:,} bytes"
            )
        elif opts.fc_dim is not None:
            model_cfg = dataclasses.replace(model_cfg, fc_dim=opts.fc_dim)
        else:
            pixels = layout.total_frames * height * width
            fc = choose_fc_dim(preset, model_cfg, height, width, pixels, opts.weight_bpp)
            model_cfg = dataclasses.replace(model_cfg, fc_dim=fc)
        configs = {
            "model": to_dict(model_cfg),
            "keyframes": to_dict(key_cfg),
            "fit": to_dict(fit_cfg),
            "quant": to_dict(quant_cfg),
            "device": device.type,
        }
        fingerprint = _fingerprint(videos, (height, width), configs)

        checkpoint = Checkpoint.load(ckpt_path) if opts.resume else None
        if checkpoint is not None and checkpoint.meta.get("fingerprint") != fingerprint:
            raise ResumeError(
                f"the inputs or settings differ from those of the checkpoint {ckpt_path}; "
                "run again with the same inputs and options, or without --resume to start over"
            )
        if model_cfg.uses_keyframes:
            coded = plan.blobs if plan is not None else None
            blobs, mean, std = _code_keyframes(
                layout, frames, key_cfg, checkpoint, coded, cache_dir, ctx, reporter
            )
            decoded = open_frames(cache_dir / "keyframes.u8", height, width)
        else:  # NeRV: no keyframes; the colour normalisation comes from frames at keyframe positions
            blobs, decoded = [], None
            mean, std = _statistics(frames[v][f] for v, f in layout.keyframes)
        if checkpoint is not None:
            mean, std = np.array(checkpoint.meta["mean"]), np.array(checkpoint.meta["std"])

        torch.manual_seed(fit_cfg.seed)
        model = build_model(model_cfg, height, width)
        model.set_normalization(mean.tolist(), std.tolist())
        model.to(device)
        data = ClipData(layout, frames, decoded, global_time=not model_cfg.uses_keyframes)
        trainer = Trainer(model, data, fit_cfg, device, ctx)
        if checkpoint is not None:
            trainer.load_state(checkpoint.tensors, checkpoint.meta["step"], checkpoint.meta["elapsed"])
            reporter.info(f"resuming from step {trainer.step} ({trainer.elapsed:.0f} s fitted)")

        def save_checkpoint() -> None:
            meta = {
                "fingerprint": fingerprint,
                "step": trainer.step,
                "elapsed": trainer.elapsed,
                "mean": mean.tolist(),
                "std": std.tolist(),
                "configs": configs,
            }
            blob_map = {f"key{i}": b for i, b in enumerate(blobs)}
            Checkpoint(meta, trainer.state_tensors(), blob_map).save(ckpt_path)

        params = sum(p.numel() for p in model.parameters())
        reporter.info(f"network: {params:,} parameters (fc_dim {model_cfg.fc_dim})")
        trainer.budget_share = fit_share(quant_cfg)  # the compression fine-tune takes the rest
        total = fit_cfg.epochs * trainer.steps_per_epoch if fit_cfg.time_limit_min is None else None
        total = round(total * trainer.budget_share) if total else None
        with reporter.task("fitting", total=total if total else 1.0, unit="step") as task:

            def on_progress(p):
                fields = {"loss": p.loss, "psnr": p.psnr, "epoch": p.epoch}
                task.update(p.step if total else p.fraction, **fields)

            try:
                fit = trainer.run(on_progress, save_checkpoint if ctx.is_main else None)
            except KeyboardInterrupt:
                raise Interrupted(
                    f"interrupted; fit saved to {ckpt_path}; run the same command with --resume to continue"
                ) from None

        stage = None
        if stage_active(quant_cfg):  # prune, choose bit depths, quantization-aware fine-tune
            with reporter.task("compressing weights", total=1.0) as task:
                try:
                    keyframe_bytes = sum(len(b) for b in blobs)
                    budget = (
                        opts.weight_bytes
                        if plan is None
                        else plan.target_bytes - keyframe_bytes - overhead_bytes(len(blobs))
                    )
                    stage = compress_weights(trainer, quant_cfg, keyframe_bytes, task.update, budget)
                except KeyboardInterrupt:
                    raise Interrupted(
                        f"interrupted while compressing the weights; the last checkpoint is {ckpt_path}; "
                        "run the same command with --resume to continue"
                    ) from None
            quant_cfg = stage.quant
        if not ctx.is_main:
            return None
        if stage is not None:
            weights = stage.blob
            depths = sorted(set(stage.bits.values()))
            reporter.info(
                f"weights: {len(weights):,} bytes, {stage.sparsity:.0%} pruned, bit depths {depths}, "
                f"{stage.steps} fine-tune steps"
            )
        else:
            weights, _ = pack_state({k: v.cpu() for k, v in model.learned_state().items()}, quant_cfg.bits)
        header = ArchiveHeader(
            height,
            width,
            tuple(mean.tolist()),
            tuple(std.tolist()),
            model_cfg,
            key_cfg,
            quant_cfg,
            tuple(layout.videos),
            writer=f"dnerv {__version__}",
        )
        size = write_archive(opts.output, header, blobs, weights, force=opts.force or opts.resume)
        quality, blend = _measure(opts.output, frames, device, reporter)
    finally:  # also after Ctrl-C: --resume reads the videos again, the cache is not reused
        for folder in remove_after:
            shutil.rmtree(folder, ignore_errors=True)
    ckpt_path.unlink(missing_ok=True)

    pixels = layout.total_frames * height * width
    archive = Archive(opts.output, "cpu")
    psnr = quality.mean_psnr()
    return EncodeReport(
        output=opts.output,
        bytes=size,
        bpp=size * 8 / pixels,
        psnr=psnr,
        ms_ssim=quality.mean_ms_ssim(),
        blend_psnr=None if blend is None else blend.mean_psnr(),
        gain_db=None if blend is None else psnr - blend.mean_psnr(),
        params=params,
        frames=layout.total_frames,
        width=width,
        height=height,
        seconds=time.monotonic() - started,
        fit_seconds=fit.seconds,
        fit_steps=fit.steps,
        fit_epochs=fit.epochs,
        device=str(device),
        sections={SECTION_NAMES[k]: v for k, v in archive.reader.section_bytes.items()}
        | {"container": archive.reader.container_bytes},
        skipped=[(str(p), r) for p, r in skipped],
    )


def _cache_folder(opts: EncodeOptions) -> tuple[Path, list[Path]]:
    """A fresh folder for this run's frame cache, and the folders to remove afterwards.

    With --cache-dir, a new subfolder of it: the folder the user named may hold other files and is
    never removed (only when this run created it). Without, OUTPUT.cache next to the output."""
    if opts.cache_dir is None:
        cache_dir = opts.output.with_name(opts.output.name + ".cache")
        try:
            cache_dir.mkdir(exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the frame cache {cache_dir}: {exc.strerror}") from None
        return cache_dir, [cache_dir]
    root = opts.cache_dir
    made_root = not root.exists()
    try:
        root.mkdir(parents=True, exist_ok=True)
        cache_dir = Path(tempfile.mkdtemp(prefix=f"dnerv-{opts.output.name}-", dir=root))
    except OSError as exc:
        raise OutputError(f"cannot create the frame cache in {root}: {exc.strerror or exc}") from None
    return cache_dir, [root] if made_root else [cache_dir]


def _cache_file(cache_dir: Path, video: int) -> Path:
    return cache_dir / f"{video:06d}.u8"


def _fill_cache(
    videos: list[VideoInfo], cache_dir: Path, height: int, width: int, reporter: Reporter
) -> list[VideoEntry]:
    """Stream every video's frames at the working size into the on-disk cache."""
    entries = []
    with reporter.task("reading videos", total=len(videos), unit="video") as task:
        for i, video in enumerate(videos):
            frames = iter_frames(video.path, (height, width))
            count = write_frames(_cache_file(cache_dir, i), frames, height, width)
            if count == 0:
                raise InputError(f"{video.path} has no frames")
            entries.append(VideoEntry(video.name, video.fps, count, video.width, video.height))
            task.advance(1)
    return entries


def _code_keyframes(
    layout: Layout,
    frames,
    key_cfg: KeyframeConfig,
    checkpoint,
    coded: list[bytes] | None,
    cache_dir: Path,
    ctx: Dist,
    reporter: Reporter,
) -> tuple[list[bytes], np.ndarray, np.ndarray]:
    """Code the keyframes (rank 0; or take them from the checkpoint) and cache the DECODED ones
    (what the decoder will see) on disk, so memory stays flat however large the collection;
    returns the coded keyframes and their per-channel mean and std. `coded`: keyframes already
    coded with key_cfg (by rate control)."""
    height, width = frames[0].shape[1:3]
    if checkpoint is not None:
        blobs = [checkpoint.blobs[f"key{i}"] for i in range(len(layout.keyframes))]
    elif coded is not None:
        blobs = coded
    elif ctx.is_main:
        with reporter.task("coding keyframes", total=len(layout.keyframes)) as task:
            blobs = encode_keyframes(_keyframe_images(layout, frames), key_cfg, layout.first_keyframe)
            task.advance(len(blobs))
    blobs = ctx.broadcast(blobs if ctx.is_main else None)
    stats = _cache_keyframes(blobs, key_cfg, layout, cache_dir, height, width) if ctx.is_main else None
    mean, std = ctx.broadcast(stats)
    return blobs, mean, std


def _keyframe_images(layout: Layout, frames) -> np.ndarray:
    return np.stack([frames[v][f] for v, f in layout.keyframes])


class _ColourStats:
    """Per-channel mean and std in [0, 1] of uint8 RGB frames (the network's normalisation)."""

    def __init__(self) -> None:
        self.total, self.squares, self.count = np.zeros(3), np.zeros(3), 0

    def add(self, frame: np.ndarray) -> np.ndarray:
        pixels = frame.reshape(-1, 3).astype(np.float64)
        self.total += pixels.sum(axis=0)
        self.squares += np.square(pixels).sum(axis=0)
        self.count += len(pixels)
        return frame

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        mean = self.total / self.count
        std = np.sqrt(np.maximum(self.squares / self.count - mean**2, 0.0))
        return mean / 255, np.maximum(std / 255, 1e-3)


def _statistics(frames: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    stats = _ColourStats()
    for frame in frames:
        stats.add(frame)
    return stats.result()


def _cache_keyframes(
    blobs: list[bytes], cfg: KeyframeConfig, layout: Layout, cache_dir: Path, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Decode the keyframes group by group into the cache; returns their per-channel mean and std."""
    stats = _ColourStats()
    groups = keyframe_groups(layout.first_keyframe, len(blobs), cfg.gop)
    runs = (decode_keyframe_run(blobs[g.start : g.stop], cfg.codec, height, width) for g in groups)
    decoded = (stats.add(frame) for run in runs for frame in run)
    write_frames(cache_dir / "keyframes.u8", decoded, height, width)
    return stats.result()


def _measure(path: Path, frames, device, reporter: Reporter) -> tuple[QualityMeter, QualityMeter | None]:
    """PSNR / MS-SSIM of the network and PSNR of the keyframe blend (None without keyframes), on
    frames decoded from the file."""
    archive = Archive(path, device)
    with_blend = archive.header.model.uses_keyframes
    quality, blend = QualityMeter(), QualityMeter(with_ms_ssim=False) if with_blend else None
    clips = archive.clips
    indices = range(len(clips))
    # one pass: each batch's keyframes are read and decoded once for the network and the blend
    decoded = (
        archive.iter_clips_with_blend(indices)
        if with_blend
        else ((c, None) for c in archive.iter_clips(indices))
    )
    with reporter.task("measuring", total=len(clips), unit="clip") as task:
        for clip, (out, base) in zip(clips, decoded, strict=True):
            reference = np.asarray(frames[clip.video][clip.start : clip.start + clip.length])
            quality.add(out.numpy(), reference)
            if blend is not None:
                blend.add(base.numpy(), reference)
            task.advance(1)
    return quality, blend
