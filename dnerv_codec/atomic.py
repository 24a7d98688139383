"""Atomic file writes: the data goes to a hidden temporary file next to the target and is renamed onto
it only when complete, so no reader and no crash ever sees a half-written file."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: Path, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path in `path`'s folder (so the rename stays on one filesystem); rename it
    onto `path` when the block ends cleanly, remove it on any failure (KeyboardInterrupt included).

    durable: fsync the file before the rename and the folder after it, so the new file survives a
    power cut (archives and checkpoints). OSError propagates: each caller names what it was writing.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.part")
    try:
        yield tmp
        if durable:
            _fsync(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if durable:
        with contextlib.suppress(OSError):  # best effort: not every platform can fsync a folder
            _fsync(path.parent)


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write `data` (bytes, or text) to `path` atomically."""
    with atomic_path(path) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
