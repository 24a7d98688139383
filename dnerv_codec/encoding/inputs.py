"""Inputs stage: the usable videos among the given files and folders."""

from __future__ import annotations

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
    for path, reason in skipped:
        reporter.warn(f"skipped {path}: {reason}")
    if not videos:
        raise InputError("no usable video among the inputs: " + ", ".join(str(p) for p in paths))
    with_audio = [v.name for v in videos if v.has_audio]
    if with_audio:
        reporter.warn(f"audio is not kept ({len(with_audio)} input(s) have audio, e.g. {with_audio[0]})")
    return Inputs(videos, skipped)
