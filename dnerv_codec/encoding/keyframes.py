"""Keyframes stage: the keyframes coded (rank 0), then DECODED into the frame cache, since the
network is fitted on what the decoder will see; memory stays flat however large the collection.
Also the colour statistics the network normalises its inputs with."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ..config import KeyframeConfig
from ..fit.distributed import Dist
from ..keyframes import decode_keyframe_run, encode_keyframes, keyframe_groups
from ..report import Reporter
from ..video.cache import open_frames, write_frames
from .frames import Frames
from .plan import Configs

DECODED = "keyframes.u8"  # the decoded keyframes' file in the frame cache


@dataclass(frozen=True)
class Normalisation:
    """Per-channel mean and std in [0, 1] of the network's input colours."""

    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class Keyframes:
    blobs: list[bytes]  # coded, in global keyframe order; none for a model without keyframes
    decoded: np.ndarray | None  # uint8 [K, H, W, 3] memory map of the decoded ones
    colours: Normalisation


def code_keyframes(
    frames: Frames, configs: Configs, given: list[bytes] | None, ctx: Dist, reporter: Reporter
) -> Keyframes:
    """`given`: keyframes already coded with configs.keyframes (by rate control, or in the checkpoint
    resumed from). A model without keyframes (NeRV) takes its colour statistics from the frames at
    the keyframe positions."""
    if not configs.model.uses_keyframes:
        return Keyframes([], None, _statistics(frames.videos[v][f] for v, f in frames.layout.keyframes))
    cfg = configs.keyframes
    blobs = given
    if blobs is None and ctx.is_main:
        with reporter.task("coding keyframes", total=len(frames.layout.keyframes)) as task:
            blobs = encode_keyframes(frames.keyframe_images(), cfg, frames.layout.first_keyframe)
            task.advance(len(blobs))
    blobs = ctx.broadcast(blobs if ctx.is_main else None)
    colours = ctx.broadcast(_cache_decoded(blobs, cfg, frames) if ctx.is_main else None)
    return Keyframes(blobs, open_frames(frames.folder / DECODED, *frames.shape), colours)


def _cache_decoded(blobs: list[bytes], cfg: KeyframeConfig, frames: Frames) -> Normalisation:
    """Decode the keyframes group by group into the cache; returns their colour statistics."""
    stats = _ColourStats()
    groups = keyframe_groups(frames.layout.first_keyframe, len(blobs), cfg.gop)
    runs = (decode_keyframe_run(blobs[g.start : g.stop], cfg.codec, *frames.shape) for g in groups)
    decoded = (stats.add(frame) for run in runs for frame in run)
    write_frames(frames.folder / DECODED, decoded, *frames.shape)
    return stats.result()


class _ColourStats:
    """Per-channel mean and std in [0, 1] of uint8 RGB frames."""

    def __init__(self) -> None:
        self.total, self.squares, self.count = np.zeros(3), np.zeros(3), 0

    def add(self, frame: np.ndarray) -> np.ndarray:
        pixels = frame.reshape(-1, 3).astype(np.float64)
        self.total += pixels.sum(axis=0)
        self.squares += np.square(pixels).sum(axis=0)
        self.count += len(pixels)
        return frame

    def result(self) -> Normalisation:
        mean = self.total / self.count
        std = np.sqrt(np.maximum(self.squares / self.count - mean**2, 0.0))
        return Normalisation(tuple((mean / 255).tolist()), tuple(np.maximum(std / 255, 1e-3).tolist()))


def _statistics(frames: Iterable[np.ndarray]) -> Normalisation:
    stats = _ColourStats()
    for frame in frames:
        stats.add(frame)
    return stats.result()
