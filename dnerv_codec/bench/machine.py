"""The machine and library versions that every benchmark records beside its figures (`dnerv bench`
and benchmarks/*.py), described once."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__


def machine_description() -> dict[str, Any]:
    """The machine a measurement ran on: OS, CPU model and cores, memory, GPU, torch threads."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = None
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_bytes": memory,
        "gpu": gpu,
        "torch_threads": torch.get_num_threads(),
    }


def library_versions() -> dict[str, Any]:
    """The versions of every library that shapes a measurement (FFmpeg's libraries included)."""
    import av
    import torch

    versions: dict[str, Any] = {
        "dnerv": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "av": av.__version__,
        "ffmpeg": {k: ".".join(map(str, v)) for k, v in av.library_versions.items()},
        "numpy": np.__version__,
    }
    for name in ("pytorch_msssim", "constriction", "matplotlib"):
        try:
            from importlib.metadata import version

            versions[name] = version(name.replace("_", "-"))
        except Exception:
            versions[name] = None
    return versions
