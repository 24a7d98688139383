"""dnerv: one D-NeRV network for a whole video collection, written to one archive.

The Python API (the `dnerv` command is a thin layer over the same code):

    import dnerv_codec as dn

    report = dn.encode("videos/", "collection.dnv", preset="fast")  # EncodeReport (psnr, bytes, ...)
    a = dn.open("collection.dnv", device="auto")     # Archive; "auto": CUDA when present
    a.videos                     # VideoEntry(name, fps, frames, width, height) per video
    a.clips                      # Clip(index, video, start, length, ...) per clip
    a.decode_clip(3)             # uint8 [T, H, W, 3]; as_float=True: float [3, T, H, W] in [0, 1]
    a.decode_video("cats/a.mp4")  # uint8 [N, H, W, 3]
    ds = dn.ArchiveDataset("collection.dnv", labels="folder")  # a torch Dataset of clips/windows

Every error a caller can cause is a DnervError: InputError, ConfigError, OutputError, ArchiveError
(UnsupportedVersionError), ResumeError, ClipIndexError (also an IndexError) and Interrupted.

`import dnerv_codec` stays cheap (no torch, no PyAV): the names above import their modules on
first use. `dn.encode` gathers its keywords into an EncodeOptions (dnerv_codec/options.py, where
every option is declared once, with its help) and runs `dnerv_codec.encoding.pipeline.encode`.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .errors import (
    ArchiveError,
    ClipIndexError,
    ConfigError,
    DnervError,
    InputError,
    Interrupted,
    OutputError,
    ResumeError,
    UnsupportedVersionError,
)

if TYPE_CHECKING:
    import torch

    from .config import ModelConfig, QuantConfig
    from .dataset import ArchiveDataset
    from .decode import Archive
    from .encoding.report import EncodeReport
    from .options import EncodeOptions
    from .report import Reporter

__version__ = "0.1.0"

__all__ = [
    "Archive",
    "ArchiveDataset",
    "ArchiveError",
    "ClipIndexError",
    "ConfigError",
    "DnervError",
    "EncodeOptions",
    "EncodeReport",
    "InputError",
    "Interrupted",
    "OutputError",
    "ResumeError",
    "UnsupportedVersionError",
    "__version__",
    "encode",
    "open",
]

_LAZY = {
    "Archive": "decode",
    "ArchiveDataset": "dataset",
    "EncodeOptions": "options",
    "EncodeReport": "encoding.report",
}


def open(path: str | os.PathLike, device: str | torch.device = "auto") -> Archive:
    """Open an archive for decoding: Archive(path, device).

    device: "auto" (CUDA when present, else the CPU), "cpu", "cuda" or a torch.device. Opening reads
    the header and the keyframe index only; the network is built on the first decode. Raises
    InputError (no such file), ArchiveError (not a dnerv archive, corrupt), ConfigError (device).
    """
    from .decode import Archive

    return Archive(path, device)


def encode(
    inputs: str | os.PathLike | Iterable[str | os.PathLike],
    output: str | os.PathLike,
    *,
    preset: str = "default",
    size: str | tuple[int, int] | None = None,
    epochs: int | None = None,
    time_limit: float | None = None,
    keyframe_codec: str | None = None,
    keyframe_quality: int | None = None,
    keyframe_gop: int | None = None,
    fc_dim: int | None = None,
    bpp: float | None = None,
    weight_bpp: float | None = None,
    model: ModelConfig | None = None,
    quant: QuantConfig | None = None,
    weight_share: float | None = None,
    weight_bytes: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    seed: int = 0,
    device: str = "auto",
    cache_dir: str | os.PathLike | None = None,
    resume: bool = False,
    force: bool = False,
    reporter: Reporter | None = None,
) -> EncodeReport | None:
    """Encode videos into one archive, as `dnerv encode INPUTS -o OUTPUT` does; returns the
    EncodeReport (bytes, bpp, psnr, ms_ssim, ...), measured on frames decoded from the file
    (None in a torchrun worker other than rank 0).

    Every keyword but `reporter` is a field of EncodeOptions (dnerv_codec/options.py), which says
    what each means; None means the preset's value. inputs: a video file or folder (searched
    recursively; names are paths relative to it, so `folder/class/v.mp4` becomes `class/v.mp4`), or
    a list of them; size "HxW" or (height, width); time_limit in minutes. Library only: model,
    quant, weight_share and weight_bytes.
    reporter: a dnerv_codec.report.Reporter to receive progress (default: silent).
    Raises InputError, OutputError, ConfigError, ResumeError or Interrupted (Ctrl-C during the
    fit; a checkpoint is kept and resume=True continues it).
    """
    options = dict(locals())  # the keywords as passed, before any other name is bound here
    del options["reporter"]
    from .encoding.pipeline import encode as run_encode
    from .options import EncodeOptions

    return run_encode(EncodeOptions.from_call(options), reporter)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
