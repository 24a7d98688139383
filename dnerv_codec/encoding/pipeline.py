"""encode(): the stages of encoding/, one after the other (the walk is in __init__'s docstring)."""

from __future__ import annotations

import time

import torch

from ..fit import distributed
from ..fit.distributed import Dist
from ..options import EncodeOptions
from ..report import Reporter
from . import archive
from .fit import check_resumable, fit_network, resume_point
from .frames import frame_cache, load_frames, working_size
from .inputs import find_inputs
from .keyframes import code_keyframes
from .plan import decide, read_options
from .report import EncodeReport, make_report, measure
from .weights import compress


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
    files, configs, sizing = read_options(opts)
    found = find_inputs(files.inputs, reporter)
    shape = working_size(
        found.videos, sizing.frame_size, configs.preset.default_size, configs.model.size_multiple
    )
    where = f"{ctx.world} processes on {device.type}" if ctx.enabled else f"device {device}"
    reporter.info(
        f"{len(found.videos)} video(s), working size {shape[0]}x{shape[1]}, preset {configs.preset.name}, {where}"
    )
    check_resumable(files.checkpoint, files.resume)
    with frame_cache(files.output, files.cache_root, ctx.is_main) as folder:
        frames = load_frames(found.videos, shape, folder, configs.model.clip_len, ctx, reporter)
        plan = decide(sizing, configs, frames, found.videos, device.type, ctx, reporter)
        resume = resume_point(files.checkpoint, files.resume, plan)
        given = plan.coded if resume.loaded is None else resume.keyframes()
        keys = code_keyframes(frames, plan.configs, given, ctx, reporter)
        fitted = fit_network(plan.configs, frames, keys, resume, device, ctx, reporter)
        weights = compress(fitted, plan, keys, files.checkpoint, ctx, reporter)
        if weights is None:  # not rank 0
            return None
        size = archive.write(
            files.output, files.overwrite, frames, plan.configs, fitted.colours, keys.blobs, weights
        )
        measured = measure(files.output, frames, device, reporter)
    files.checkpoint.unlink(missing_ok=True)
    return make_report(measured, size, fitted, frames, found, device, time.monotonic() - started)
