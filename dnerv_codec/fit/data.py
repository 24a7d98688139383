"""Clip samples for fitting, read from the on-disk frame cache (memory stays flat as the collection
grows: frames are memory-mapped, only the clips of one batch are ever materialised)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..clips import Layout


class ClipData:
    """Clips of a collection as uint8 tensors, batched.

    frames[v]: memory-mapped uint8 [n_v, H, W, 3] of video v at the working size.
    keyframes: uint8 [K, H, W, 3], the DECODED keyframes (what the decoder will see); None for a
    model without keyframes (NeRV), whose batches then have none.
    global_time: t is the frame's position in the whole collection (NeRV), not in its video.
    """

    def __init__(
        self,
        layout: Layout,
        frames: Sequence[np.ndarray],
        keyframes: np.ndarray | None,
        global_time: bool = False,
    ) -> None:
        self.layout = layout
        self.frames = frames
        self.keyframes = keyframes
        inputs = [layout.clip_inputs(c, global_time) for c in layout.clips]
        self.t = torch.from_numpy(np.stack([i[0] for i in inputs]))
        self.w = torch.from_numpy(np.stack([i[1] for i in inputs]))
        self.mask = torch.from_numpy(np.stack([i[2] for i in inputs]))

    def __len__(self) -> int:
        return len(self.layout.clips)

    def batch(
        self, indices: Sequence[int], with_frames: bool = True, pin_memory: bool = False
    ) -> dict[str, torch.Tensor]:
        """A batch of clips: keyframes uint8 [B, 2, 3, H, W] (when there are keyframes), frames uint8 [B, T, 3, H, W] (short clips
        padded by repeating their last frame; `mask` [B, T] marks real ones), t and w [B, T].

        Frames are read straight into the batch's own memory (page-locked with pin_memory, so that
        a CUDA copy from it is asynchronous), laid out [B, T, H, W, 3] as the cache stores them;
        the [B, T, 3, H, W] tensors are views of it."""
        clips = [self.layout.clips[i] for i in indices]
        out = {
            "t": self.t[list(indices)],
            "w": self.w[list(indices)],
            "mask": self.mask[list(indices)],
        }
        if self.keyframes is not None:
            keys = torch.empty(
                (len(clips), 2, *self.keyframes.shape[1:]), dtype=torch.uint8, pin_memory=pin_memory
            )
            for c, dst in zip(clips, keys.numpy(), strict=True):
                if c.key_end == c.key_start + 1:  # adjacent, as consecutive clips' are: one read
                    read_frames_into(self.keyframes, c.key_start, dst)
                else:
                    read_frames_into(self.keyframes, c.key_start, dst[:1])
                    read_frames_into(self.keyframes, c.key_end, dst[1:])
            out["keyframes"] = keys.permute(0, 1, 4, 2, 3)
        if with_frames:
            T = self.layout.clip_len
            shape = (len(clips), T, *self.frames[0].shape[1:])  # every video is at the working size
            frames = torch.empty(shape, dtype=torch.uint8, pin_memory=pin_memory)
            for c, dst in zip(clips, frames.numpy(), strict=True):
                read_frames_into(self.frames[c.video], c.start, dst[: c.length])
                dst[c.length :] = dst[c.length - 1]  # a short clip repeats its last frame
            out["frames"] = frames.permute(0, 1, 4, 2, 3)
        return out


def read_frames(frames: np.ndarray, start: int, count: int) -> np.ndarray:
    """A copy of frames[start : start + count] (see read_frames_into)."""
    count = max(0, min(count, len(frames) - start))
    out = np.empty((count, *frames.shape[1:]), frames.dtype)
    read_frames_into(frames, start, out)
    return out


def read_frames_into(frames: np.ndarray, start: int, out: np.ndarray) -> None:
    """Copy frames[start : start + len(out)] into out. From a memory-mapped cache file (video.cache)
    the bytes are read with a plain file read, not through the map: pages touched through a map
    count in this process's resident memory, which would then grow with the collection over an epoch."""
    if not isinstance(frames, np.memmap) or frames.filename is None or frames.ndim != 4:
        out[...] = frames[start : start + len(out)]
        return
    frame_bytes = out.itemsize * int(np.prod(frames.shape[1:]))
    with open(frames.filename, "rb", buffering=0) as f:
        f.seek(frames.offset + start * frame_bytes)
        if f.readinto(memoryview(out).cast("B")) != out.nbytes:
            raise OSError(f"short read from the frame cache {frames.filename}")


def epoch_order(num_clips: int, seed: int, epoch: int) -> torch.Tensor:
    """The clip order of one epoch: a permutation that depends only on (seed, epoch), so a resumed
    or multi-process fit sees exactly the data order of a single uninterrupted one."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(num_clips, generator=gen)
