"""Report stage: the written archive decoded back and measured against the cached frames, and
what the encode produced (EncodeReport)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..archive.format import SECTION_NAMES
from ..archive.write import ArchiveSize
from ..decode import Archive
from ..metrics import QualityMeter
from ..report import Reporter
from .fit import Fitted
from .frames import Frames
from .inputs import Inputs


@dataclass
class EncodeReport:
    """What an encode produced and measured (quality on frames decoded from the written file)."""

    output: Path
    bytes: int
    bpp: float
    psnr: float
    ms_ssim: float | None
    blend_psnr: float | None  # None for a model without keyframes (NeRV)
    gain_db: float | None
    params: int
    frames: int
    width: int
    height: int
    seconds: float
    fit_seconds: float
    fit_steps: int
    fit_epochs: float
    device: str
    processes: int = 1  # that fitted together (torchrun)
    input_bytes: int = 0  # the input video files' total size
    sections: dict[str, int] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "bpp": self.bpp,
            "psnr": self.psnr,
            "ms_ssim": self.ms_ssim,
            "blend_psnr": self.blend_psnr,
            "gain_db": self.gain_db,
            "bytes": self.bytes,
            "seconds": self.seconds,
            "params": self.params,
            "frames": self.frames,
            "width": self.width,
            "height": self.height,
            "fit_seconds": self.fit_seconds,
            "fit_epochs": self.fit_epochs,
            "device": self.device,
            "processes": self.processes,
            "input_bytes": self.input_bytes,
            "sections": self.sections,
            "output": str(self.output),
        }


@dataclass(frozen=True)
class Measured:
    """The quality of a written archive, on frames decoded from it."""

    path: Path
    psnr: float
    ms_ssim: float | None
    blend_psnr: float | None  # of the keyframe blend alone; None without keyframes


def measure(path: Path, frames: Frames, device: torch.device, reporter: Reporter) -> Measured:
    """PSNR / MS-SSIM of the network and PSNR of the keyframe blend, against the cached frames."""
    archive = Archive(path, device)
    with_blend = archive.header.model.uses_keyframes
    quality, blend = QualityMeter(), QualityMeter(with_ms_ssim=False) if with_blend else None
    clips = archive.clips
    indices = range(len(clips))
    # one pass: each batch's keyframes are read and decoded once for the network and the blend
    decoded = (
        archive.iter_clips_with_blend(indices)
        if with_blend
        else ((c, None) for c in archive.iter_clips(indices))
    )
    with reporter.task("measuring", total=len(clips), unit="clip") as task:
        for clip, (out, base) in zip(clips, decoded, strict=True):
            reference = np.asarray(frames.videos[clip.video][clip.start : clip.start + clip.length])
            quality.add(out.numpy(), reference)
            if blend is not None:
                blend.add(base.numpy(), reference)
            task.advance(1)
    blend_psnr = None if blend is None else blend.mean_psnr()
    return Measured(path, quality.mean_psnr(), quality.mean_ms_ssim(), blend_psnr)


def make_report(
    measured: Measured,
    size: ArchiveSize,
    fitted: Fitted,
    frames: Frames,
    inputs: Inputs,
    device: torch.device,
    seconds: float,
) -> EncodeReport:
    height, width = frames.shape
    blend = measured.blend_psnr
    return EncodeReport(
        output=measured.path,
        bytes=size.total,
        bpp=size.total * 8 / frames.pixels,
        psnr=measured.psnr,
        ms_ssim=measured.ms_ssim,
        blend_psnr=blend,
        gain_db=None if blend is None else measured.psnr - blend,
        params=fitted.params,
        frames=frames.layout.total_frames,
        width=width,
        height=height,
        seconds=seconds,
        fit_seconds=fitted.result.seconds,
        fit_steps=fitted.result.steps,
        fit_epochs=fitted.result.epochs,
        device=str(device),
        processes=fitted.trainer.world,
        input_bytes=sum(v.path.stat().st_size for v in inputs.videos),
        sections={SECTION_NAMES[tag]: size.sections[tag] for tag in SECTION_NAMES}
        | {"container": size.container},
        skipped=[(str(p), r) for p, r in inputs.skipped],
    )
