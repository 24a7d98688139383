"""Decode clips from an archive: its keyframes + the shared network, on the CPU or CUDA.

archive ──► header, keyframe index, weights ──► DNeRV
    clip i ──► its two keyframes (read and decoded from their groups' starts) ──► network ──► uint8 frames
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from .archive.read import ArchiveReader
from .clips import Clip, VideoEntry
from .compress.weights import unpack_state
from .device import resolve_device
from .errors import ClipIndexError, ConfigError
from .keyframes import decode_keyframe_run, decode_spans
from .model.base import FrameModel
from .model.build import build_model
from .model.dnerv import blend_keyframes, stage_widths

# On a CPU a pass over several clips is faster per frame only while its activations stay moderate
# (measured: docs/performance.md#decode-passes). Larger batches are decoded in passes below this
# size; on CUDA, as asked.
CPU_PASS_BYTES = 192 * 2**20


def to_uint8(frames: torch.Tensor) -> torch.Tensor:
    """Float frames in [0, 1], [..., 3, H, W] -> uint8 [..., H, W, 3], rounded. Scaled in float32:
    from a half-precision network output (autocast), 255 * x would be rounded once more first."""
    return frames.float().mul(255).round_().clamp_(0, 255).to(torch.uint8).movedim(-3, -1)


class Archive:
    """An archive opened for decoding. `device`: 'auto', 'cpu', 'cuda' or a torch.device."""

    def __init__(self, path: str | Path, device: str | torch.device = "auto") -> None:
        self.reader = ArchiveReader(path)
        self.header = self.reader.header
        self.layout = self.reader.layout
        self.device = resolve_device(device)
        self._model: FrameModel | None = None

    # -- what is inside --------------------------------------------------------------------
    @property
    def videos(self) -> tuple[VideoEntry, ...]:
        return self.layout.videos

    @property
    def clips(self) -> tuple[Clip, ...]:
        return self.layout.clips

    @property
    def size(self) -> tuple[int, int]:
        """Working (height, width) of every decoded frame."""
        return self.header.height, self.header.width

    def clip(self, index: int) -> Clip:
        if not 0 <= index < len(self.clips):
            raise ClipIndexError(
                f"clip {index} does not exist; this archive has clips 0..{len(self.clips) - 1}"
            )
        return self.clips[index]

    def video_index(self, name: str) -> int:
        index = self.layout.video_index(name)
        if index is None:
            names = ", ".join(v.name for v in self.videos[:10])
            raise ClipIndexError(f"no video named {name!r} in the archive (videos: {names})")
        return index

    # -- decoding --------------------------------------------------------------------------
    @property
    def model(self) -> FrameModel:
        """The network, built from the header and filled with the archive's weights (lazily)."""
        if self._model is None:
            h = self.header
            model = build_model(h.model, h.height, h.width)
            shapes = {k: tuple(v.shape) for k, v in model.learned_state().items()}
            model.load_learned_state(
                unpack_state(self.reader.weights_blob(), shapes, h.quant.bits_of(len(shapes)))
            )
            model.set_normalization(h.mean, h.std)
            self._model = model.to(self.device).eval()
        return self._model

    def keyframes(self, indices: list[int]) -> np.ndarray:
        """Decoded keyframes uint8 [K, H, W, 3]. Only these are read from the file, plus, when the
        keyframes are coded in groups (gop > 1), the earlier keyframes of their groups; each group
        needed is decoded once, from its first keyframe up to the last one asked for."""
        h, layout = self.header, self.layout
        spans = decode_spans(indices, layout.first_keyframe, len(layout.keyframes), h.keyframes.gop)
        blobs = iter(self.reader.keyframe_blobs([k for span in spans for k in span]))
        decoded = {}
        for span in spans:
            run = decode_keyframe_run([next(blobs) for _ in span], h.keyframes.codec, h.height, h.width)
            decoded.update(zip(span, run, strict=True))
        out = np.empty((len(indices), h.height, h.width, 3), np.uint8)
        for i, k in enumerate(indices):
            out[i] = decoded[k]
        return out

    def _network(self, keys: torch.Tensor | None, t: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """The network on a batch of clips, in passes of at most _clips_per_pass() clips."""
        n = self._clips_per_pass()
        if len(t) <= n:
            return self.model(keys, t, w)
        passes = range(0, len(t), n)
        return torch.cat(
            [
                self.model(None if keys is None else keys[i : i + n], t[i : i + n], w[i : i + n])
                for i in passes
            ]
        )

    def _clips_per_pass(self) -> int:
        if self.device.type != "cpu":
            return 2**31
        cfg, (h, w) = self.header.model, self.size
        h, w = h // cfg.size_multiple, w // cfg.size_multiple  # the coarsest feature map
        widest = 0  # elements of one frame's widest stage output
        for stride, channels in zip(cfg.strides, stage_widths(cfg), strict=True):
            h, w = h * stride, w * stride
            widest = max(widest, channels * h * w)
        return max(1, CPU_PASS_BYTES // (4 * cfg.clip_len * widest))

    def _check_blend(self) -> None:
        if not self.header.model.uses_keyframes:
            raise ConfigError("this archive holds a NeRV network: it has no keyframes to blend")

    def _clip_batch(self, clips: list[Clip]) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        uses_keyframes = self.header.model.uses_keyframes
        inputs = [self.layout.clip_inputs(c, global_time=not uses_keyframes) for c in clips]
        t = torch.from_numpy(np.stack([i[0] for i in inputs])).to(self.device)
        w = torch.from_numpy(np.stack([i[1] for i in inputs])).to(self.device)
        if not uses_keyframes:
            return None, t, w
        wanted = sorted({k for c in clips for k in (c.key_start, c.key_end)})
        decoded = dict(zip(wanted, self.keyframes(wanted), strict=True))
        keys = np.stack([np.stack([decoded[c.key_start], decoded[c.key_end]]) for c in clips])
        keys_t = torch.from_numpy(keys).to(self.device).permute(0, 1, 4, 2, 3).float().div_(255)
        return keys_t, t, w

    @torch.no_grad()  # not inference_mode: its tensors refuse in-place edits and autograd later
    def iter_clips(
        self, indices: Iterable[int], batch_size: int = 4, blend: bool = False
    ) -> Iterator[torch.Tensor]:
        """Decoded clips in the given order, each uint8 [length, H, W, 3] on the CPU.

        blend=True gives the network-free baseline instead: the clip's two decoded keyframes
        blended linearly by distance."""
        for out, base in self._iter(indices, batch_size, network=not blend, blend=blend):
            yield base if blend else out

    @torch.no_grad()
    def iter_clips_with_blend(
        self, indices: Iterable[int], batch_size: int = 4
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(network, blend) of each clip, as iter_clips and iter_clips(blend=True) give them, with
        each batch's keyframes read and decoded once for both."""
        yield from self._iter(indices, batch_size, network=True, blend=True)

    def _iter(self, indices: Iterable[int], batch_size: int, network: bool, blend: bool) -> Iterator[tuple]:
        """(network frames or None, blend frames or None) per clip, uint8 [length, H, W, 3] on the CPU."""
        if blend:
            self._check_blend()
        clips = [self.clip(i) for i in indices]
        for b in range(0, len(clips), batch_size):
            chunk = clips[b : b + batch_size]
            keys, t, w = self._clip_batch(chunk)
            out = to_uint8(self._network(keys, t, w)).cpu() if network else None
            base = to_uint8(blend_keyframes(keys, w)).cpu() if blend else None
            for i, clip in enumerate(chunk):
                n = clip.length
                yield (None if out is None else out[i, :n]), (None if base is None else base[i, :n])

    @torch.no_grad()
    def decode_clips(
        self, indices: Sequence[int], as_float: bool = False, blend: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Several clips at once (on a CPU in passes of a size that keeps it fast), padded to the
        clip length T, on self.device.

        Returns (frames, mask): frames uint8 [B, T, H, W, 3] (float [B, 3, T, H, W] in [0, 1] with
        as_float: the uint8 values / 255); mask bool [B, T], False on the padding frames of a short
        last clip, which are zero. Values equal iter_clips' for the same batch; in another batch a
        clip may differ by 1 on rare pixels (the network's float sums depend on the batch size)."""
        if blend:
            self._check_blend()
        clips = [self.clip(i) for i in indices]
        t_len, (h, w) = self.layout.clip_len, self.size
        if not clips:
            frames = torch.zeros((0, t_len, h, w, 3), dtype=torch.uint8, device=self.device)
            mask = torch.zeros((0, t_len), dtype=torch.bool, device=self.device)
        else:
            keys, t, wt = self._clip_batch(clips)
            frames = to_uint8(blend_keyframes(keys, wt) if blend else self._network(keys, t, wt)).contiguous()
            lengths = torch.tensor([c.length for c in clips], device=self.device)
            mask = torch.arange(t_len, device=self.device) < lengths[:, None]
            frames.masked_fill_(~mask[:, :, None, None, None], 0)
        if as_float:
            frames = frames.permute(0, 4, 1, 2, 3).contiguous().float().div_(255)
        return frames, mask

    def decode_clip(self, index: int, as_float: bool = False) -> torch.Tensor:
        """One clip: uint8 [T, H, W, 3], or float [3, T, H, W] in [0, 1] with as_float=True."""
        frames = next(self.iter_clips([index], batch_size=1))
        return frames.permute(3, 0, 1, 2).float().div(255) if as_float else frames

    def iter_video(self, name: str, batch_size: int = 4, blend: bool = False) -> Iterator[torch.Tensor]:
        """A video's frames clip by clip (uint8 [length, H, W, 3] each), in order."""
        yield from self.iter_clips(self.layout.video_clips(self.video_index(name)), batch_size, blend)

    def decode_video(self, name: str) -> torch.Tensor:
        """A whole video, uint8 [N, H, W, 3]."""
        return torch.cat(list(self.iter_video(name)))
