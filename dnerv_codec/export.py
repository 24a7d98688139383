"""Write decoded clips and videos to standard files, optionally measuring them against a reference."""

from __future__ import annotations

import itertools
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from .decode import Archive
from .errors import ArchiveError, InputError, OutputError
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
    warnings: list[str] = field(default_factory=list)  # e.g. a reference that seems another video

    def to_json(self) -> dict:
        out = {"output": str(self.output), "frames": self.frames}
        if self.psnr is not None:
            out.update(psnr=self.psnr, ms_ssim=self.ms_ssim)
        if self.warnings:
            out["warnings"] = self.warnings
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
    if fmt != "png":
        return write_video(out, frames, fps, size=size)  # atomic: nothing is left if it fails
    made = not out.exists()
    try:
        return write_png_folder(out, frames, size=size)
    except BaseException:
        if made:  # no half-written folder of frames
            shutil.rmtree(out, ignore_errors=True)
        raise


def decode_to_file(
    archive: Archive,
    output: Path,
    clip: int | None = None,
    video: str | None = None,
    size: str | None = None,
    reference: Path | None = None,
    force: bool = False,
    fmt: str | None = None,
) -> DecodeReport:
    """Decode one clip (`clip`) or one video (`video`) to `output` (format `fmt`, by default by
    extension: .mkv lossless FFV1 RGB, .mp4 H.264, .y4m, or a folder for PNG frames without one)."""
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
    if fmt is None:
        fmt = suffix if suffix in FORMATS else ("png" if suffix == "" else None)
    if fmt not in FORMATS:
        raise OutputError(
            f"unknown output type {output.suffix!r}; use .mkv, .mp4, .y4m or a folder for PNG frames"
        )
    target = _target_size(archive, v, size)
    meter = QualityMeter() if reference is not None else None
    ref_frames = _reference_frames(reference, first, archive, target) if reference is not None else None

    def measured() -> Iterator[np.ndarray]:
        from .video.read import resize_frames

        for decoded in archive.iter_clips(clips):
            batch = decoded.numpy()
            if meter is not None:  # a clip at a time: MS-SSIM per frame would be several times slower
                refs = list(itertools.islice(ref_frames, len(batch)))
                if len(refs) < len(batch):
                    raise InputError(f"reference {reference} has fewer frames than the decoded output")
                meter.add(batch if target is None else resize_frames(batch, target), np.stack(refs))
            yield from batch

    count = _write(measured(), output, fmt, archive.videos[v].fps, target, force)
    report = DecodeReport(output, count)
    if meter is not None:
        report.psnr, report.ms_ssim = meter.mean_psnr(), meter.mean_ms_ssim()
        longer = clip is None and next(ref_frames, None) is not None
        report.warnings = _reference_doubts(reference, report.psnr, longer, archive.videos[v].name)
    return report


UNLIKE_PSNR_DB = 12.0  # below this the reference is hardly the same picture (noise against noise ~ 8 dB)


def _reference_doubts(reference: Path, psnr: float, longer: bool, name: str) -> list[str]:
    """Why the reference may be another video than the one decoded."""
    doubts = []
    if longer:
        doubts.append(
            f"reference {reference} has more frames than {name} in the archive: is it the same video?"
        )
    if psnr < UNLIKE_PSNR_DB:
        doubts.append(f"PSNR against reference {reference} is only {psnr:.1f} dB: is it the same video?")
    return doubts


def _reference_frames(path: Path, first: int, archive: Archive, target) -> Iterator[np.ndarray]:
    probe(path)  # a clear error for a missing or unusable reference
    size = target or archive.size
    frames = iter_frames(path, size)
    for _ in range(first):
        if next(frames, None) is None:
            raise InputError(f"reference {path} is shorter than the decoded clip's position")
    return frames


def _targets(archive: Archive, folder: Path, fmt: str) -> list[Path]:
    """One output per video, named after it inside `folder`: the name with the format's extension
    (a PNG folder: without one). Names that would clash (a.mp4 and a.mkv) keep their extension
    (a.mp4.mkv, a.mkv.mkv). A name that is not a plain relative path is refused: the archive may
    come from anywhere, and decoding must never write outside `folder`."""
    names = []
    for video in archive.videos:
        rel = PurePosixPath(video.name)
        if not rel.name or rel.is_absolute() or ".." in rel.parts or "\\" in video.name:
            raise ArchiveError(f"video name {video.name!r} in the archive is not a safe relative path")
        names.append(rel)
    stems = Counter(n.with_suffix("").as_posix() for n in names)
    out, taken = [], set()
    for rel in names:
        stem = rel.with_suffix("").as_posix()
        base = stem if stems[stem] == 1 else rel.as_posix()
        candidate, k = base, 2
        while candidate in taken:
            candidate, k = f"{base}~{k}", k + 1
        taken.add(candidate)
        out.append(folder / (candidate if fmt == "png" else f"{candidate}.{fmt}"))
    return out


def decode_all(
    archive: Archive,
    folder: Path,
    fmt: str = "mkv",
    size: str | None = None,
    force: bool = False,
    reporter: Reporter | None = None,
) -> list[DecodeReport]:
    """Every video of the archive into `folder`: one file (or PNG folder) per video, named after it.

    All or nothing: the archive is verified and every output checked before anything is written,
    and the outputs of this call are removed again if it fails part way."""
    reporter = reporter or Reporter()
    targets = _checked_targets(archive, folder, fmt, size, force)
    archive.reader.verify()  # a corrupt archive fails here, not after half the videos
    made_folder = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {folder}: {exc.strerror}") from None
    reports, written = [], []
    try:
        with reporter.task("decoding", total=len(archive.videos), unit="video") as task:
            for video, out in zip(archive.videos, targets, strict=True):
                if not out.exists():
                    written.append(out)
                reports.append(
                    decode_to_file(archive, out, video=video.name, size=size, force=force, fmt=fmt)
                )
                task.advance(1)
    except BaseException:
        _remove(written, folder if made_folder else None)
        raise
    return reports


def _checked_targets(archive: Archive, folder: Path, fmt: str, size: str | None, force: bool) -> list[Path]:
    """The outputs of decode_all, once the format, the folder, the size and (without force) that
    none of them exists are checked."""
    if fmt not in FORMATS:
        raise OutputError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder} exists and is not a folder")
    if folder.suffix.lower().lstrip(".") in FORMATS[:3] and not folder.exists():  # a video file's name
        raise OutputError(
            f"--all writes one file per video into a folder; {folder} names a file (try -o {folder.with_suffix('')}/)"
        )
    if size is not None and size != "original":
        parse_size(size)
    targets = _targets(archive, folder, fmt)
    existing = [t for t in targets if t.exists()]
    if existing and not force:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise OutputError(f"output {existing[0]} exists{more}; use --force to overwrite")
    return targets


def _remove(written: list[Path], made_folder: Path | None) -> None:
    """Undo a failed decode_all: the outputs it wrote, and the folder if it made it."""
    for out in written:
        if out.is_dir():
            shutil.rmtree(out, ignore_errors=True)
        else:
            out.unlink(missing_ok=True)
    if made_folder is not None:
        shutil.rmtree(made_folder, ignore_errors=True)
