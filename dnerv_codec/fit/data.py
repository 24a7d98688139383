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

    def batch(self, indices: Sequence[int], with_frames: bool = True) -> dict[str, torch.Tensor]:
        """A batch of clips: keyframes uint8 [B, 2, 3, H, W] (when there are keyframes), frames uint8 [B, T, 3, H, W] (short clips
        padded by repeating their last frame; `mask` [B, T] marks real ones), t and w [B, T]."""
        clips = [self.layout.clips[i] for i in indices]
        out = {
            "t": self.t[list(indices)],
            "w": self.w[list(indices)],
            "mask": self.mask[list(indices)],
        }
        if self.keyframes is not None:
            # one read of the keyframes start..end (adjacent, or the same one), then those two
            spans = (read_frames(self.keyframes, c.key_start, c.key_end - c.key_start + 1) for c in clips)
            keys = np.stack([span[[0, -1]] for span in spans])
            out["keyframes"] = torch.from_numpy(keys).permute(0, 1, 4, 2, 3)
        if with_frames:
            T = self.layout.clip_len
            frames = []
            for c in clips:
                clip = read_frames(self.frames[c.video], c.start, c.length)
                if c.length < T:
                    clip = np.concatenate([clip, np.repeat(clip[-1:], T - c.length, axis=0)])
                frames.append(clip)
            out["frames"] = torch.from_numpy(np.stack(frames)).permute(0, 1, 4, 2, 3)
        return out


def read_frames(frames: np.ndarray, start: int, count: int) -> np.ndarray:
    """A copy of frames[start : start + count]. From a memory-mapped cache file (video.cache) the
    bytes are read with a plain file read, not through the map: pages touched through a map count
    in this process's resident memory, which would then grow with the collection over an epoch."""
    if not isinstance(frames, np.memmap) or frames.filename is None or frames.ndim != 4:
        return np.array(frames[start : start + count])
    count = max(0, min(count, len(frames) - start))
    out = np.empty((count, *frames.shape[1:]), frames.dtype)
    frame_bytes = out.itemsize * int(np.prod(frames.shape[1:]))
    with open(frames.filename, "rb", buffering=0) as f:
        f.seek(frames.offset + start * frame_bytes)
        if f.readinto(memoryview(out).cast("B")) != out.nbytes:
            raise OSError(f"short read from the frame cache {frames.filename}")
    return out


def epoch_order(num_clips: int, seed: int, epoch: int) -> torch.Tensor:
    """The clip order of one epoch: a permutation that depends only on (seed, epoch), so a resumed
    or multi-process fit sees exactly the data order of a single uninterrupted one."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(num_clips, generator=gen)
