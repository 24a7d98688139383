"""Clip and keyframe layout of a collection.

Each video of n frames is cut into clips of T frames starting at 0, T, 2T, ... Keyframes sit at
every clip start plus the video's last frame, so neighbouring clips share one: clip k of a video
is described by keyframes at frames kT and min((k+1)T, n-1). A last clip shorter than T is masked.

    frames   0 1 2 3 4 5 6 7 | 8 9
    keys     K . . . . . . . | K K      (n=10, T=8: keyframes 0, 8, 9)
    clips    [---- clip 0 ---] [c1]
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class VideoEntry:
    """One video of the collection as the archive describes it (width/height: original size)."""

    name: str
    fps: float
    frames: int
    width: int
    height: int


@dataclass(frozen=True)
class Clip:
    """One clip: `length` real frames of video `video` starting at frame `start`, described by the
    global keyframes `key_start` and `key_end` (equal only for a one-frame last clip)."""

    index: int
    video: int
    start: int
    length: int
    key_start: int
    key_end: int
    end_frame: int  # frame number of the end keyframe


def keyframe_positions(frames: int, clip_len: int) -> list[int]:
    """Frame numbers of a video's keyframes: 0, T, 2T, ... and the last frame."""
    positions = list(range(0, frames, clip_len))
    if positions[-1] != frames - 1:
        positions.append(frames - 1)
    return positions


@dataclass(frozen=True)
class Layout:
    """Videos, clips and keyframes of a collection, derived from frame counts and T alone."""

    clip_len: int
    videos: tuple[VideoEntry, ...]
    clips: tuple[Clip, ...]
    keyframes: tuple[tuple[int, int], ...]  # (video index, frame number) of each global keyframe
    first_clip: tuple[int, ...]  # per video, index of its first clip
    first_keyframe: tuple[int, ...]  # per video, index of its first keyframe
    first_frame: tuple[int, ...]  # per video, frames of all earlier videos

    @classmethod
    def build(cls, videos: list[VideoEntry], clip_len: int) -> Layout:
        clips: list[Clip] = []
        keyframes: list[tuple[int, int]] = []
        first_clip, first_key = [], []
        for v, video in enumerate(videos):
            positions = keyframe_positions(video.frames, clip_len)
            first_clip.append(len(clips))
            first_key.append(len(keyframes))
            base = len(keyframes)
            keyframes.extend((v, p) for p in positions)
            for k, start in enumerate(range(0, video.frames, clip_len)):
                end_k = k + 1 if k + 1 < len(positions) else k
                clips.append(
                    Clip(
                        index=len(clips),
                        video=v,
                        start=start,
                        length=min(clip_len, video.frames - start),
                        key_start=base + k,
                        key_end=base + end_k,
                        end_frame=positions[end_k],
                    )
                )
        first_frame = tuple(np.cumsum([0] + [v.frames for v in videos[:-1]]).tolist())
        return cls(
            clip_len,
            tuple(videos),
            tuple(clips),
            tuple(keyframes),
            tuple(first_clip),
            tuple(first_key),
            first_frame,
        )

    @functools.cached_property
    def total_frames(self) -> int:
        return sum(v.frames for v in self.videos)

    def video_clips(self, video: int) -> range:
        end = self.first_clip[video + 1] if video + 1 < len(self.videos) else len(self.clips)
        return range(self.first_clip[video], end)

    def video_index(self, name: str) -> int | None:
        return next((i for i, v in enumerate(self.videos) if v.name == name), None)

    def clip_inputs(self, clip: Clip, global_time: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(t, w, mask), each [T] float32/float32/bool, padded to T frames.

        t: frame number / (n - 1) in [0, 1] (D-NeRV); with global_time, the frame's position in the
        whole collection, (frames of earlier videos + frame number) / (total frames - 1) (NeRV);
        w: (i - start) / (end_frame - start) in [0, 1].
        """
        n = self.videos[clip.video].frames
        idx = clip.start + np.arange(self.clip_len, dtype=np.float64)
        mask = np.arange(self.clip_len) < clip.length
        idx = np.where(mask, idx, clip.start + clip.length - 1)
        if global_time:
            t = (self.first_frame[clip.video] + idx) / max(self.total_frames - 1, 1)
        else:
            t = idx / max(n - 1, 1)
        span = clip.end_frame - clip.start
        w = (idx - clip.start) / span if span > 0 else np.zeros_like(idx)
        return t.astype(np.float32), w.astype(np.float32), mask
