"""The machine, library versions and provenance (commit, command line) that every benchmark records
beside its figures (`dnerv bench` and benchmarks/*.py), described once."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
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


def provenance() -> dict[str, Any]:
    """What produced a result: the command line, and the git commit of the dnerv checkout with
    whether its tracked files differed from it (None where dnerv is not run from a checkout)."""
    checkout = Path(__file__).resolve().parent.parent.parent

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", "-C", str(checkout), *args], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "commit": commit.strip() if commit else None,
        "dirty": bool(status.strip()) if status is not None else None,
    }
