"""The D-NeRV network: two decoded keyframes + frame positions -> the clip's frames."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..config import ModelConfig
from ..errors import ConfigError
from .base import FrameModel
from .layers import (
    ContentEncoder,
    DecoderStage,
    FlowWarp,
    NarrowConv2d,
    PointwiseConv2d,
    PositionalEncoding,
    blend_keyframes,
    clip_instance_norm,
    is_channels_last,
    lerp_frames,
    pointwise,
    stem_mlp,
)

__all__ = ["DNeRV", "blend_keyframes", "stage_widths"]


def stage_widths(cfg: ModelConfig) -> list[int]:
    """Output channels of each stride stage: expansion * fc_dim, then max(round(prev / stride), min_width)."""
    widths = [cfg.expansion * cfg.fc_dim]
    for s in cfg.strides[1:]:
        widths.append(max(round(widths[-1] / s), cfg.min_width))
    return widths


class DNeRV(FrameModel):
    """D-NeRV decoder for frames of one working size (height, width), both multiples of prod(strides).

    keyframes [B,2,3,H,W] ──normalise──► kn [2B,3,H,W] ──► ContentEncoder ──► K_0 .. K_{S-1}, kn
                                                        (K_s: [2B,E,h_s,w_s], stage s input size)
    t [B,T] ─► PE (2L) ─► Linear ─► GELU ─► Linear ─► GELU ─► [BT, C0, fc_h, fc_w]
                                                                    │
                             lerp_w(K_0 start, K_0 end) ──► cat ◄───┘
                                                             │
                                          InstanceNorm over (T, h, w) per clip and channel
                                                             │
    stage s = 0..S-1 (x: [BT, C_in, h_s, w_s]) ──────────────▼────────────────────────
    │  flow head(x) ─► 2 flows ─► warp K_s start/end ─► (1-w)*a + w*b ─► SAF(x) (scale, shift)
    │  NeRV block: conv3x3 ─► pixel shuffle(stride_s) ─► GELU ─► + GTMLP (T x T per channel)
    └──────────────────────────────────────────────────────────┬──────────────────────
                                                               ▼ x: [BT, C_S, H, W]
    output: flow head(x) ─► warp kn start/end ─► fuse ─► blend [BT, 3, H, W]
            head(cat[x, blend]) = conv1x1 ─► GELU ─► conv3x3 ─► 3   (+ blend if blend_residual)
            (hidden width C_S with blend_residual; the reference's (C_S + 3) // 4 without)
            ─► * std + mean ─► clamp [0, 1] ─► frames [B, T, 3, H, W]

    With cfg.blend_residual the last conv of every flow head and of the RGB head starts at zero, so
    the untrained network returns exactly blend_keyframes(keyframes, w). mean/std are per-archive
    constants, not learned: state_dict() and learned_state() hold the parameters only.
    """

    def __init__(self, cfg: ModelConfig, height: int, width: int) -> None:
        super().__init__(cfg, height, width)
        zero = cfg.blend_residual
        # Activation layout, a runtime knob (not saved): NCHW on a CPU, where NHWC is a wash overall
        # (measured: docs/performance.md#activation-layout); channels_last for CUDA mixed precision.
        self.memory_format = torch.contiguous_format

        self.encoder = ContentEncoder(cfg.enc_dim, cfg.strides)
        self.pe = PositionalEncoding(cfg.pe_levels, cfg.pe_base)
        self.stem = stem_mlp(2 * cfg.pe_levels, cfg.stem_hidden, self.fc_h * self.fc_w * cfg.fc_dim)
        widths = stage_widths(cfg)
        stages, c_in, h, w = [], cfg.fc_dim + cfg.enc_dim, self.fc_h, self.fc_w
        for s, c_out in zip(cfg.strides, widths, strict=True):
            stages.append(DecoderStage(c_in, c_out, cfg.enc_dim, s, h, w, cfg.clip_len, zero))
            c_in, h, w = c_out, h * s, w * s
        self.stages = nn.ModuleList(stages)
        self.out_flow = FlowWarp(c_in, height, width, zero, exact_identity=True)
        hidden = c_in if zero else (c_in + 3) // 4  # the reference's plain head is its flow head's shape
        self.head = nn.Sequential(
            PointwiseConv2d(c_in + 3, hidden), nn.GELU(), NarrowConv2d(hidden, 3, 3, padding=1)
        )
        if zero:
            nn.init.zeros_(self.head[2].weight)
            nn.init.zeros_(self.head[2].bias)

    def layer_classes(self) -> list[tuple[str, list[nn.Module]]]:
        return [
            ("content encoder", [self.encoder]),
            ("stem MLP", [self.stem]),
            ("flow heads", [stage.flow for stage in self.stages] + [self.out_flow]),
            ("fusion (SAF)", [stage.saf for stage in self.stages]),
            ("decoder convs", [stage.block for stage in self.stages]),
            ("GTMLP", [stage.gtmlp for stage in self.stages]),
            ("RGB head", [self.head]),
        ]

    # -- forward ---------------------------------------------------------------------------------

    def _check(self, keyframes: Tensor, t: Tensor, w: Tensor) -> None:
        b, frames = t.shape if t.dim() == 2 else (-1, -1)
        if tuple(keyframes.shape) != (b, 2, 3, self.height, self.width) or tuple(w.shape) != (b, frames):
            raise ValueError(
                f"expected keyframes [B,2,3,{self.height},{self.width}], t and w [B,T]; got "
                f"{tuple(keyframes.shape)}, {tuple(t.shape)}, {tuple(w.shape)}"
            )
        if not 1 <= frames <= self.cfg.clip_len:
            raise ConfigError(f"clips of {frames} frames: this model handles 1..{self.cfg.clip_len}")

    def forward(self, keyframes: Tensor, t: Tensor, w: Tensor, clamp: bool = True) -> Tensor:
        """keyframes [B, 2, 3, H, W] in [0, 1] (decoded start and end), t [B, T] (frame index / video
        length), w [B, T] ((i - start) / (end - start)) -> frames [B, T, 3, H, W], clamped to [0, 1]
        when clamp (clamp=False keeps gradients everywhere for training)."""
        self._check(keyframes, t, w)
        b, frames = t.shape
        n = b * frames
        mean, std = self.mean.view(1, 3, 1, 1), self.std.view(1, 3, 1, 1)
        fmt = self.memory_format
        kn = (keyframes.reshape(2 * b, 3, self.height, self.width).to(mean.dtype) - mean) / std
        kn = kn.contiguous(memory_format=fmt)
        feats = self.encoder(kn)  # once per clip: [2B, E, h_s, w_s] per stage, then kn

        x = self.stem(self.pe(t)).reshape(b, frames, self.cfg.fc_dim, self.fc_h, self.fc_w)
        k0 = feats[0].reshape(b, 2, 1, -1, self.fc_h, self.fc_w)
        x = torch.cat([x, lerp_frames(k0[:, 0], k0[:, 1], w).to(x.dtype)], dim=2)
        x = clip_instance_norm(x).reshape(n, -1, self.fc_h, self.fc_w).contiguous(memory_format=fmt)

        for stage, kf in zip(self.stages[:-1], feats[:-2], strict=True):
            x = stage(x, kf, w)
        if is_channels_last(x):
            x = self.stages[-1](x, feats[-2], w)
            blend = self.out_flow(x, kn, w)  # [N, 3, H, W], normalised units
            y = self.head(torch.cat([x, blend.to(x.dtype)], dim=1))
        else:
            y, blend = self._output_layers(self.stages[-1](x, feats[-2], w, shuffle=False), kn, w)
        if self.cfg.blend_residual:
            y = y + blend
        y = torch.addcmul(mean, y, std)  # de-normalise: y * std + mean
        if clamp:
            y = y.clamp(0.0, 1.0)
        return y.contiguous().reshape(b, frames, 3, self.height, self.width)

    def _output_layers(self, z: Tensor, kn: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
        """out_flow and head on the last stage's channels before its pixel shuffle (NCHW path).

        z: [C, s, s, T, B, h, w] (GTMLP with shuffle=False). The features meet only two 1x1 convs,
        the flow head's first and the x part of the RGB head's first (cat[x, blend] splits), and a
        1x1 conv commutes with the pixel shuffle: so both run as ONE matmul on z, and only their
        few output channels are shuffled into frames. The wide full-resolution features are never
        laid out as frames, concatenated, or read twice. Same parameters and result as
        head(cat[x, out_flow(x)]), and faster (measured: docs/performance.md#fused-heads).
        Returns the head's output and the blend, [N, 3, H, W] each.
        """
        c, s, _, t, b, h, wd = z.shape
        flow_in, head_in = self.out_flow.head[0], self.head[0]
        head_w = head_in.weight.flatten(1)  # [hidden, C + 3]: features, then the blend
        weight = torch.cat([flow_in.weight.flatten(1), head_w[:, :c]]).to(z.dtype)
        bias = torch.cat([flow_in.bias, head_in.bias]).to(z.dtype)
        pre = torch.addmm(bias.unsqueeze(1), weight, z.reshape(c, -1)).view(-1, s, s, t, b, h, wd)
        pre = pre.permute(4, 3, 0, 5, 1, 6, 2).reshape(b * t, -1, h * s, wd * s)
        flow_pre, head_pre = pre.split([flow_in.out_channels, head_in.out_channels], dim=1)
        flow = self.out_flow.head[2](self.out_flow.head[1](flow_pre))
        blend = self.out_flow.warp(flow, kn, w).to(z.dtype)
        head_pre = head_pre + pointwise(blend, head_w[:, c:].to(z.dtype))
        return self.head[2](self.head[1](head_pre)), blend
