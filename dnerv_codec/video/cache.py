"""On-disk uint8 frame cache: one raw file of [N, H, W, 3] bytes per video, so that a collection
larger than RAM can be decoded once and then read back frame by frame through a memory map."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..errors import InputError, OutputError


def write_frames(path: Path, frames: Iterable[np.ndarray], height: int, width: int) -> int:
    """Stream uint8 frames [height, width, 3] to `path` one at a time; returns how many.

    Written to a temporary file and renamed, so an interrupted run never leaves a short cache.
    """
    count = 0
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            for frame in frames:
                if frame.shape != (height, width, 3) or frame.dtype != np.uint8:
                    raise InputError(
                        f"frame {count} is {frame.dtype} {frame.shape}, expected uint8 ({height}, {width}, 3)"
                    )
                f.write(np.ascontiguousarray(frame).data)
                count += 1
    except OSError as exc:
        raise OutputError(f"cannot write frame cache {path}: {exc.strerror or exc}") from None
    return count


def open_frames(path: Path, height: int, width: int) -> np.ndarray:
    """Read-only memory map [N, height, width, 3] uint8 of a cache file (empty array if N == 0)."""
    path = Path(path)
    frame_bytes = height * width * 3
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(f"cannot read frame cache {path}: {exc.strerror or exc}") from None
    if size % frame_bytes:
        raise InputError(f"frame cache {path} is {size} bytes, not a whole number of {height}x{width} frames")
    if size == 0:  # mmap refuses empty files
        return np.empty((0, height, width, 3), np.uint8)
    return np.memmap(path, dtype=np.uint8, mode="r", shape=(size // frame_bytes, height, width, 3))
