"""The NeRV baseline (Chen et al., NeurIPS 2021): frame index in, frame out, no keyframes.

One network for the whole collection: its input is the frame's GLOBAL position in the collection,
t = (frames of earlier videos + frame number) / (total frames - 1), so every frame of every video
has its own input (clips.Layout.clip_inputs(global_time=True)).

    t [B,T] ─► PE (2L) ─► Linear ─► GELU ─► Linear ─► GELU ─► [BT, C0, fc_h, fc_w]
    stage s: NeRV block (conv3x3 ─► pixel shuffle(stride_s) ─► GELU)   widths as DNeRV's stages
    head: conv1x1 ─► GELU ─► conv3x3 ─► 3 ─► * std + mean ─► clamp [0, 1] ─► [B, T, 3, H, W]

It takes DNeRV's forward arguments (keyframes and w are ignored), so fitting, quantization,
entropy coding, the archive and decoding are shared: the comparison is of the representation alone.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..config import ModelConfig
from ..errors import ConfigError
from .base import FrameModel
from .dnerv import stage_widths
from .layers import NarrowConv2d, NeRVBlock, PositionalEncoding, stem_mlp


class NeRV(FrameModel):
    def __init__(self, cfg: ModelConfig, height: int, width: int) -> None:
        super().__init__(cfg, height, width)
        self.pe = PositionalEncoding(cfg.pe_levels, cfg.pe_base)
        self.stem = stem_mlp(2 * cfg.pe_levels, cfg.stem_hidden, self.fc_h * self.fc_w * cfg.fc_dim)
        blocks, c_in = [], cfg.fc_dim
        for s, c_out in zip(cfg.strides, stage_widths(cfg), strict=True):
            blocks.append(NeRVBlock(c_in, c_out, s))
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Conv2d(c_in, c_in, 1), nn.GELU(), NarrowConv2d(c_in, 3, 3, padding=1))

    def layer_classes(self) -> list[tuple[str, list[nn.Module]]]:
        return [("stem MLP", [self.stem]), ("decoder convs", [self.blocks]), ("RGB head", [self.head])]

    def forward(
        self, keyframes: Tensor | None, t: Tensor, w: Tensor | None = None, clamp: bool = True
    ) -> Tensor:
        """t [B, T] (global frame positions in [0, 1]) -> frames [B, T, 3, H, W], clamped to [0, 1]
        when clamp. `keyframes` and `w` are accepted for DNeRV's signature and ignored."""
        if t.dim() != 2:
            raise ValueError(f"expected t [B,T], got {tuple(t.shape)}")
        b, frames = t.shape
        if not 1 <= frames <= self.cfg.clip_len:
            raise ConfigError(f"clips of {frames} frames: this model handles 1..{self.cfg.clip_len}")
        x = self.stem(self.pe(t)).reshape(b * frames, self.cfg.fc_dim, self.fc_h, self.fc_w)
        y = self.head(self.blocks(x))
        y = torch.addcmul(self.mean.view(1, 3, 1, 1), y, self.std.view(1, 3, 1, 1))
        if clamp:
            y = y.clamp(0.0, 1.0)
        return y.contiguous().reshape(b, frames, 3, self.height, self.width)
