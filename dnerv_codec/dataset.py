"""A torch Dataset over an archive: its clips, or fixed-length windows of its videos, with labels.

    ds = ArchiveDataset("collection.dnv", labels="folder")
    loader = DataLoader(ds, batch_size=8, shuffle=True, num_workers=2)
    for batch in loader:
        batch["frames"]   # uint8 [B, T, H, W, 3] (float [B, 3, T, H, W] in [0, 1] with as_float)
        batch["label"]    # int64 [B]: class index in ds.classes, -1 for a video outside any folder

Every item has the same shape, so DataLoader's default collate works: a clip shorter than T (the
last one of a video) or a window running past a video's end is padded with zero frames, and
`mask` / `length` say which frames are real.

Process safety: the dataset holds the archive's path, its layout (small frozen dataclasses) and
plain values; the open Archive (and its network) is created lazily in each process and re-created
when os.getpid() changes, so fork and spawn workers each open their own and nothing unpicklable is
ever pickled. DataLoader batches are decoded together, via __getitems__ and Archive.decode_clips,
on CUDA when the dataset's device is CUDA.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from .clips import Clip, VideoEntry
from .decode import Archive
from .device import resolve_device
from .errors import ClipIndexError, ConfigError

MODES = ("clips", "windows")
LABELS = ("folder", None)


def folder_class(name: str) -> str | None:
    """The class of a video named `class_name/.../video.mp4`: its first path component (None for
    a video given as a file, or at the top of the input folder)."""
    head, sep, _ = name.partition("/")
    return head if sep else None


class ArchiveDataset(Dataset):
    """Items of an archive for training: one item per clip, or per window of a video.

    path: the archive. mode: "clips" (one item = one clip of T frames, the archive's clip length)
    or "windows" (one item = `window` consecutive frames of a video; windows start at 0, stride,
    2 stride, ... while they fit, and decode every clip they touch, so they span clip boundaries;
    a video shorter than `window` gives one padded window). stride defaults to window.
    transform: applied to each item's frames (after padding and as_float; on the decode device)
    in the process that decodes; it must return a tensor (or array) of one shape for every item,
    and be picklable for spawned workers (a module-level function, not a lambda).
    labels: "folder" (class = first path component of the video name, as `dnerv encode FOLDER`
    names videos: FOLDER/cats/a.mp4 is `cats/a.mp4`, class `cats`; indices follow the sorted
    class names in `classes`; a video outside any folder, or given to encode as a file, gets -1)
    or None (every label -1).
    device: where the network runs ("cpu", "cuda", "auto"); items come back on the CPU.
    as_float: frames float [3, L, H, W] in [0, 1] (exactly the uint8 values / 255) instead of
    uint8 [L, H, W, 3]. decode_batch_size: most clips per forward pass.

    An item is a dict: frames, mask (bool [L], True on real frames), length (real frames),
    label (int, -1 when none), video (index into `videos`), start (first frame number in the
    video), index (the item's index; in clips mode also the archive's clip index). L is T in
    clips mode and `window` in windows mode.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        mode: str = "clips",
        window: int | None = None,
        stride: int | None = None,
        transform: Callable[[torch.Tensor], Any] | None = None,
        labels: str | None = "folder",
        device: str | torch.device = "cpu",
        as_float: bool = False,
        decode_batch_size: int = 16,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"mode must be 'clips' or 'windows', got {mode!r}")
        if labels not in LABELS:
            raise ConfigError(f"labels must be 'folder' or None, got {labels!r}")
        if mode == "clips" and (window is not None or stride is not None):
            raise ConfigError("window and stride go with mode='windows'; clips have the archive's length")
        if mode == "windows":
            if window is None:
                raise ConfigError("mode='windows' needs a window length (frames), e.g. window=16")
            window = _frames("window", window)
            stride = window if stride is None else _frames("stride", stride)
        if transform is not None and not callable(transform):
            raise ConfigError(f"transform must be callable, got {type(transform).__name__}")
        if not isinstance(decode_batch_size, int) or decode_batch_size < 1:
            raise ConfigError(f"decode_batch_size must be a positive integer, got {decode_batch_size!r}")
        self.device = str(resolve_device(device))  # ConfigError now, not in a worker
        self.path = os.path.abspath(path)  # workers may start elsewhere; str: cheap to pickle
        self.mode, self.window, self.stride = mode, window, stride
        self.transform, self.as_float, self.labels = transform, as_float, labels
        self.decode_batch_size = decode_batch_size

        archive = Archive(self.path, self.device)  # InputError / ArchiveError now; no network yet
        self._archive: Archive | None = archive
        self._pid: int | None = os.getpid()
        layout = archive.layout
        self.videos: tuple[VideoEntry, ...] = layout.videos
        self.clips: tuple[Clip, ...] = layout.clips
        self.first_clip: tuple[int, ...] = layout.first_clip
        self.clip_len: int = layout.clip_len
        self.size: tuple[int, int] = archive.size
        self.frames_per_item: int = self.clip_len if mode == "clips" else window

        names = [folder_class(v.name) if labels == "folder" else None for v in self.videos]
        self.classes: list[str] = sorted({n for n in names if n is not None})
        self.class_to_idx: dict[str, int] = {c: i for i, c in enumerate(self.classes)}
        self.video_labels: tuple[int, ...] = tuple(-1 if n is None else self.class_to_idx[n] for n in names)

        if mode == "clips":
            self.items: tuple[tuple[int, int], ...] = tuple((c.video, c.start) for c in self.clips)
        else:
            items = []
            for v, video in enumerate(self.videos):
                last = max(video.frames - window, 0)
                items += [(v, s) for s in range(0, last + 1, stride)]
            self.items = tuple(items)
        self.targets: list[int] = [self.video_labels[v] for v, _ in self.items]

    # -- the archive, opened once per process ----------------------------------------------
    @property
    def archive(self) -> Archive:
        """The open archive of this process (re-opened after fork or in a spawned worker)."""
        if self._archive is None or self._pid != os.getpid():
            self._archive = Archive(self.path, self.device)
            self._pid = os.getpid()
        return self._archive

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_archive"] = state["_pid"] = None  # the file, the network: each process opens its own
        return state

    # -- indexing ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.items)

    def _index(self, index: Any) -> int:
        try:
            i = operator.index(index)
        except TypeError:
            raise TypeError(f"dataset indices must be integers, got {type(index).__name__}") from None
        n = len(self.items)
        if not -n <= i < n:
            unit = "clips" if self.mode == "clips" else "windows"
            raise ClipIndexError(f"item {i} does not exist; this dataset has {n} {unit} (0..{n - 1})")
        return i % n

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """Several items decoded together (DataLoader calls this with each batch's indices)."""
        batch = self.decode_batch(indices)
        frames, mask = batch.pop("frames").cpu(), batch.pop("mask").cpu()  # one copy per batch
        numbers = {k: v.tolist() for k, v in batch.items()}
        return [
            {"frames": frames[b], "mask": mask[b], **{k: v[b] for k, v in numbers.items()}}
            for b in range(len(frames))
        ]

    # -- decoding ---------------------------------------------------------------------------
    def decode_batch(self, indices: Sequence[int]) -> dict[str, Any]:
        """Items `indices` decoded in as few forward passes as possible (decode_batch_size clips
        each), already collated: frames [B, L, H, W, 3] uint8 (or [B, 3, L, H, W] float) and mask
        [B, L] on the dataset's device (the GPU when it decodes there); length, label, video,
        start and index int64 [B] on the CPU. With a transform, its outputs are stacked."""
        idx = [self._index(i) for i in indices]
        pairs = [self.items[i] for i in idx]
        length = self.frames_per_item
        if self.mode == "clips":
            clip_ids = [self.first_clip[v] + s // self.clip_len for v, s in pairs]
            frames, mask = self._decode_clips(clip_ids)
            lengths = [self.clips[c].length for c in clip_ids]
        else:
            lengths = [min(length, self.videos[v].frames - s) for v, s in pairs]
            frames, mask = self._decode_windows(pairs, lengths)
        if self.as_float:
            frames = frames.permute(0, 4, 1, 2, 3).contiguous().float().div_(255)
        if self.transform is not None:
            frames = torch.stack([_as_tensor(self.transform(f)) for f in frames]) if len(idx) else frames
        return {
            "frames": frames,
            "mask": mask,
            "length": torch.tensor(lengths, dtype=torch.int64),
            "label": torch.tensor([self.video_labels[v] for v, _ in pairs], dtype=torch.int64),
            "video": torch.tensor([v for v, _ in pairs], dtype=torch.int64),
            "start": torch.tensor([s for _, s in pairs], dtype=torch.int64),
            "index": torch.tensor(idx, dtype=torch.int64),
        }

    def _decode_clips(self, clip_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 [B, T, H, W, 3] and mask [B, T] of these clips, decode_batch_size per pass."""
        archive, step = self.archive, self.decode_batch_size
        if not clip_ids:
            return archive.decode_clips([])
        parts = [archive.decode_clips(clip_ids[i : i + step]) for i in range(0, len(clip_ids), step)]
        if len(parts) == 1:
            return parts[0]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def _decode_windows(
        self, pairs: list[tuple[int, int]], lengths: list[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 [B, window, H, W, 3] and mask [B, window]: each window assembled from the decoded
        clips it touches (every clip decoded once per call)."""
        t = self.clip_len
        h, w = self.size
        needed = sorted(
            {
                self.first_clip[v] + k
                for (v, s), n in zip(pairs, lengths, strict=True)
                for k in range(s // t, (s + n - 1) // t + 1)
            }
        )
        decoded, _ = self._decode_clips(needed)
        row = {c: r for r, c in enumerate(needed)}
        device = decoded.device
        frames = torch.zeros((len(pairs), self.window, h, w, 3), dtype=torch.uint8, device=device)
        mask = torch.zeros((len(pairs), self.window), dtype=torch.bool, device=device)
        for b, ((v, s), n) in enumerate(zip(pairs, lengths, strict=True)):
            mask[b, :n] = True
            for k in range(s // t, (s + n - 1) // t + 1):
                clip = self.clips[self.first_clip[v] + k]
                lo, hi = max(s, clip.start), min(s + n, clip.start + clip.length)
                frames[b, lo - s : hi - s] = decoded[row[clip.index], lo - clip.start : hi - clip.start]
        return frames, mask

    def __repr__(self) -> str:
        extra = f", window={self.window}, stride={self.stride}" if self.mode == "windows" else ""
        return (
            f"ArchiveDataset({self.path!r}, mode={self.mode!r}{extra}: {len(self)} items of "
            f"{self.frames_per_item} frames at {self.size[0]}x{self.size[1]}, "
            f"{len(self.videos)} videos, {len(self.classes)} classes)"
        )


def _frames(what: str, value: Any) -> int:
    """A positive whole number of frames (ints, numpy and 0-d torch integers; not bools)."""
    try:
        n = operator.index(value) if not isinstance(value, bool) else 0
    except TypeError:
        n = 0
    if n < 1:
        raise ConfigError(f"{what} must be a positive number of frames, got {value!r}")
    return n


def _as_tensor(value: Any) -> torch.Tensor:
    return value if isinstance(value, torch.Tensor) else torch.as_tensor(value)
