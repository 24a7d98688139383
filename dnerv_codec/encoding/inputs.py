"""Inputs stage: the usable videos among the given files and folders."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..report import Reporter
from ..video.read import VideoInfo, find_videos


@dataclass(frozen=True)
class Inputs:
    videos: list[VideoInfo]
    skipped: list[tuple[Path, str]]  # (path, why it is not used)


def find_inputs(paths: tuple[Path, ...], reporter: Reporter) -> Inputs:
    """The videos among `paths` (folders searched recursively); InputError when there is none."""
    videos, skipped = find_videos(list(paths))
    _tell_skipped(skipped, reporter, every_one=not videos)  # with no video, the skips are the story
    if not videos:
        raise InputError("no usable video among the inputs: " + ", ".join(str(p) for p in paths))
    with_audio = [v.name for v in videos if v.has_audio]
    if with_audio:
        reporter.warn(f"audio is not kept ({len(with_audio)} input(s) have audio, e.g. {with_audio[0]})")
    return Inputs(videos, skipped)


LISTED_SKIPS = 3  # more skipped files than this make one summary line (each one is a detail line)


def _tell_skipped(skipped: list[tuple[Path, str]], reporter: Reporter, every_one: bool) -> None:
    lines = [f"skipped {path}: {reason}" for path, reason in skipped]
    if every_one or len(skipped) <= LISTED_SKIPS:
        for line in lines:
            reporter.warn(line)
        return
    kinds = Counter(path.suffix.lower() or "no extension" for path, _ in skipped)
    counts = ", ".join(f"{n} {kind}" for kind, n in kinds.most_common())
    reporter.warn(f"skipped {len(skipped)} files that are not usable video ({counts}); -v lists them")
    for line in lines:
        reporter.detail(line)
