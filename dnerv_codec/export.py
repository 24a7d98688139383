"""Write decoded clips and videos to standard files, optionally measuring them against a reference."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .decode import Archive
from .errors import InputError, OutputError
from .metrics import QualityMeter
from .report import Reporter
from .video.read import iter_frames, probe
from .video.write import write_png_folder, write_video

FORMATS = ("mkv", "mp4", "y4m", "png")


@dataclass
class DecodeReport:
    output: Path
    frames: int
    psnr: float | None = None
    ms_ssim: float | None = None

    def to_json(self) -> dict:
        out = {"output": str(self.output), "frames": self.frames}
        if self.psnr is not None:
            out.update(psnr=self.psnr, ms_ssim=self.ms_ssim)
        return out


def parse_size(text: str) -> tuple[int, int]:
    """'HxW' -> (H, W)."""
    try:
        h, w = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise InputError(f"size must look like HEIGHTxWIDTH (e.g. 256x320), got {text!r}") from None
    if h < 1 or w < 1:
        raise InputError(f"size must be positive, got {text!r}")
    return h, w


def _target_size(archive: Archive, video: int, size: str | None) -> tuple[int, int] | None:
    if size is None:
        return None
    if size == "original":
        v = archive.videos[video]
        return (v.height, v.width)
    return parse_size(size)


def _write(frames: Iterator[np.ndarray], out: Path, fmt: str, fps: float, size, force: bool) -> int:
    if out.exists() and not force:
        raise OutputError(f"output {out} exists; use --force to overwrite it")
    if fmt == "png":
        return write_png_folder(out, frames, size=size)
    return write_video(out, frames, fps, size=size)


def decode_to_file(
    archive: Archive,
    output: Path,
    clip: int | None = None,
    video: str | None = None,
    size: str | None = None,
    reference: Path | None = None,
    force: bool = False,
) -> DecodeReport:
    """Decode one clip (`clip`) or one video (`video`) to `output` (format by extension:
    .mkv lossless FFV1 RGB, .mp4 H.264, .y4m, or a folder for PNG frames when it has no suffix)."""
    if (clip is None) == (video is None):
        raise InputError("choose exactly one of a clip index or a video name")
    if clip is not None:
        c = archive.clip(clip)
        v, first, clips = c.video, c.start, [clip]
    else:
        v = archive.video_index(video)
        clips = list(archive.layout.video_clips(v))
        first = 0
    suffix = output.suffix.lower().lstrip(".")
    fmt = suffix if suffix in FORMATS else ("png" if suffix == "" else None)
    if fmt is None:
        raise OutputError(
            f"unknown output type {output.suffix!r}; use .mkv, .mp4, .y4m or a folder for PNG frames"
        )
    target = _target_size(archive, v, size)
    meter = QualityMeter() if reference is not None else None
    ref_frames = _reference_frames(reference, first, archive, target) if reference is not None else None

    def frames() -> Iterator[np.ndarray]:
        for decoded in archive.iter_clips(clips):
            yield from decoded.numpy()

    def measured() -> Iterator[np.ndarray]:
        from .video.read import resize_frames

        for frame in frames():
            if meter is not None:
                ref = next(ref_frames, None)
                if ref is None:
                    raise InputError(f"reference {reference} has fewer frames than the decoded output")
                out = frame if target is None else resize_frames(frame[None], target)[0]
                meter.add(out[None], ref[None])
            yield frame

    count = _write(measured(), output, fmt, archive.videos[v].fps, target, force)
    report = DecodeReport(output, count)
    if meter is not None:
        report.psnr, report.ms_ssim = meter.mean_psnr(), meter.mean_ms_ssim()
    return report


def _reference_frames(path: Path, first: int, archive: Archive, target) -> Iterator[np.ndarray]:
    probe(path)  # a clear error for a missing or unusable reference
    size = target or archive.size
    frames = iter_frames(path, size)
    for _ in range(first):
        if next(frames, None) is None:
            raise InputError(f"reference {path} is shorter than the decoded clip's position")
    return frames


def decode_all(
    archive: Archive,
    folder: Path,
    fmt: str = "mkv",
    size: str | None = None,
    force: bool = False,
    reporter: Reporter | None = None,
) -> list[DecodeReport]:
    """Every video of the archive into `folder`: one file (or PNG folder) per video, named after it."""
    reporter = reporter or Reporter()
    if fmt not in FORMATS:
        raise OutputError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder} exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {folder}: {exc.strerror}") from None
    reports = []
    with reporter.task("decoding", total=len(archive.videos), unit="video") as task:
        for video in archive.videos:
            stem = Path(video.name).with_suffix("")
            out = folder / (str(stem) if fmt == "png" else f"{stem}.{fmt}")
            out.parent.mkdir(parents=True, exist_ok=True)
            reports.append(decode_to_file(archive, out, video=video.name, size=size, force=force))
            task.advance(1)
    return reports
