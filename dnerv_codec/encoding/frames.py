"""Frames stage: every video decoded once, at the working size, into an on-disk frame cache
(rank 0; multi-machine runs need the cache on shared storage), and cut into clips (Layout)."""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..clips import Layout, VideoEntry
from ..errors import InputError, OutputError
from ..fit.distributed import Dist
from ..report import Reporter
from ..video.cache import open_frames, write_frames
from ..video.read import VideoInfo, iter_frames


@dataclass(frozen=True)
class Frames:
    """The cached frames of every video and their clip layout."""

    folder: Path  # the cache folder (rank 0's, on every rank)
    videos: list[np.ndarray]  # per video: read-only uint8 [N, height, width, 3] memory map
    layout: Layout
    shape: tuple[int, int]  # height, width

    @property
    def pixels(self) -> int:
        return self.layout.total_frames * self.shape[0] * self.shape[1]

    def keyframe_images(self) -> np.ndarray:
        return np.stack([self.videos[v][f] for v, f in self.layout.keyframes])


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


@contextmanager
def frame_cache(output: Path, root: Path | None, is_main: bool) -> Iterator[Path | None]:
    """A fresh folder for this run's frame cache (rank 0; None on the other ranks), removed on
    leaving, also after Ctrl-C: --resume reads the videos again, the cache is not reused.

    With a root (--cache-dir), a new subfolder of it: the folder the user named may hold other
    files and is never removed (only when this run created it). Without, OUTPUT.cache next to the
    output."""
    folder, remove_after = _make_folder(output, root) if is_main else (None, [])
    try:
        yield folder
    finally:
        for path in remove_after:
            shutil.rmtree(path, ignore_errors=True)


def _make_folder(output: Path, root: Path | None) -> tuple[Path, list[Path]]:
    """The cache folder and the folders to remove afterwards."""
    if root is None:
        folder = output.with_name(output.name + ".cache")
        try:
            folder.mkdir(exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the frame cache {folder}: {exc.strerror}") from None
        return folder, [folder]
    made_root = not root.exists()
    try:
        root.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=f"dnerv-{output.name}-", dir=root))
    except OSError as exc:
        raise OutputError(f"cannot create the frame cache in {root}: {exc.strerror or exc}") from None
    return folder, [root] if made_root else [folder]


def load_frames(
    videos: list[VideoInfo],
    shape: tuple[int, int],
    folder: Path | None,
    clip_len: int,
    ctx: Dist,
    reporter: Reporter,
) -> Frames:
    """Rank 0 fills the cache in `folder`; every rank maps it and builds the same layout."""
    entries = _fill_cache(videos, folder, shape, reporter) if ctx.is_main else None
    folder, entries = ctx.broadcast((folder, entries) if ctx.is_main else None)
    frames = [open_frames(_cache_file(folder, i), *shape) for i in range(len(entries))]
    return Frames(folder, frames, Layout.build(entries, clip_len), shape)


def _cache_file(folder: Path, video: int) -> Path:
    return folder / f"{video:06d}.u8"


def _fill_cache(
    videos: list[VideoInfo], folder: Path, shape: tuple[int, int], reporter: Reporter
) -> list[VideoEntry]:
    """Stream every video's frames at the working size into the on-disk cache."""
    entries = []
    with reporter.task("reading videos", total=len(videos), unit="video") as task:
        for i, video in enumerate(videos):
            count = write_frames(_cache_file(folder, i), iter_frames(video.path, shape), *shape)
            if count == 0:
                raise InputError(f"{video.path} has no frames")
            entries.append(VideoEntry(video.name, video.fps, count, video.width, video.height))
            task.advance(1)
    return entries
