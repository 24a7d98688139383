"""Process-wide malloc tuning for dnerv's own CPU-heavy processes."""

from __future__ import annotations

import ctypes
import functools
import os
import sys


@functools.cache
def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse instead of handing it back to the kernel.

    By default glibc serves blocks above its mmap threshold with fresh mmaps and unmaps them on
    free, so every CPU step page-faults its activations in again; with mmap off for malloc and no
    trimming, freed blocks are reused (fit and decode faster, at the price of peak resident memory;
    measured: docs/performance.md#malloc). Process-wide, once, so only dnerv's own processes call
    it (the CLI, and fitting); a library user decoding inside their own program keeps their malloc
    settings. glibc (Linux) only, and skipped when the user tunes malloc through MALLOC_MMAP_MAX_ /
    MALLOC_TRIM_THRESHOLD_ or sets DNERV_MALLOC_DEFAULTS=1. Returns whether it applied the setting."""
    if not sys.platform.startswith("linux") or os.environ.get("DNERV_MALLOC_DEFAULTS") == "1":
        return False
    if any(k in os.environ for k in ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_")):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_max = -1, -4  # <malloc.h>
        return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**30))
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        return False
