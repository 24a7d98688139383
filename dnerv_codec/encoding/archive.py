"""Archive stage: the header, keyframes and weights written to one file (archive/write.py)."""

from __future__ import annotations

from pathlib import Path

from .. import __version__
from ..archive.format import ArchiveHeader
from ..archive.write import ArchiveSize, write_archive
from .frames import Frames
from .keyframes import Normalisation
from .plan import Configs
from .weights import Weights


def write(
    path: Path,
    overwrite: bool,
    frames: Frames,
    configs: Configs,
    colours: Normalisation,
    keyframes: list[bytes],
    weights: Weights,
) -> ArchiveSize:
    """Write the archive (atomically); returns its size, whole and by section."""
    height, width = frames.shape
    header = ArchiveHeader(
        height,
        width,
        colours.mean,
        colours.std,
        configs.model,
        configs.keyframes,
        weights.quant,
        tuple(frames.layout.videos),
        writer=f"dnerv {__version__}",
    )
    return write_archive(path, header, keyframes, weights.blob, force=overwrite)
