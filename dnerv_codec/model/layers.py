"""Reusable D-NeRV blocks.

Shape conventions: B clips, T frames per clip, N = B * T frames folded into the batch dimension
(frame-major inside a clip: row b * T + i is frame i of clip b). Keyframe tensors hold 2B images,
row b * 2 + k is keyframe k (0 = start, 1 = end) of clip b. Every block is a plain 2-D conv network
on N images; only GTMLP and the instance norm look across the T frames of a clip.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def is_channels_last(x: Tensor) -> bool:
    """Whether a 4-D activation is laid out NHWC (ambiguous layouts, e.g. C == 1, count as NCHW)."""
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def takes_gradients(*tensors: Tensor) -> bool:
    """Whether an operation on these tensors is recorded for a backward pass (the CPU layers pick
    their kernels by it: forward-only and forward + backward favour different ones)."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


class _Relayout(torch.autograd.Function):
    """x in another memory format, with the gradient handed back in x's own format (a plain
    .contiguous(memory_format=...) passes it through as it comes, and the next backward kernel then
    reads mixed layouts, much slower; measured: docs/performance.md#relayout)."""

    @staticmethod
    def forward(ctx, x: Tensor, channels_last: bool) -> Tensor:
        ctx.source_channels_last = is_channels_last(x)
        return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)

    @staticmethod
    def backward(ctx, grad: Tensor):
        fmt = torch.channels_last if ctx.source_channels_last else torch.contiguous_format
        return grad.contiguous(memory_format=fmt), None


class NarrowConv2d(nn.Conv2d):
    """A Conv2d for few (<= 4) output channels at high resolution (flow and RGB outputs).

    In training on CPU, with fewer than 16 input channels, an NCHW input is run through oneDNN's
    NHWC kernels and returned as NCHW (gradients too): their backward is faster by more than the
    layout copies cost. Everywhere else, inference included, it is a plain Conv2d, where the copies
    cost more than NHWC gains (measured: docs/performance.md#narrow-conv). Same parameters and state
    names as nn.Conv2d.
    """

    def forward(self, x: Tensor) -> Tensor:
        grad = takes_gradients(x, self.weight)
        if x.device.type != "cpu" or is_channels_last(x) or not grad or self.in_channels >= 16:
            return super().forward(x)
        return _Relayout.apply(super().forward(_Relayout.apply(x, True)), False)


class PointwiseConv2d(nn.Conv2d):
    """A 1x1 Conv2d that, on CPU in NCHW, runs as one batched matmul per frame.

    oneDNN's NCHW 1x1 kernels are slow for few channels at high resolution (measured:
    docs/performance.md#pointwise-conv). Same parameters and state names as nn.Conv2d.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type != "cpu" or is_channels_last(x):
            return super().forward(x)
        return pointwise(x, self.weight.flatten(1), self.bias)


def pointwise(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """1x1 convolution of NCHW frames as a batched matmul: x [N, C, h, w], weight [C_out, C]."""
    n, c, h, w = x.shape
    weight = weight.unsqueeze(0).expand(n, -1, -1)
    x = x.reshape(n, c, h * w)
    y = torch.bmm(weight, x) if bias is None else torch.baddbmm(bias.view(1, -1, 1), weight, x)
    return y.view(n, -1, h, w)


def lerp_frames(start: Tensor, end: Tensor, w: Tensor) -> Tensor:
    """Per-frame distance-weighted fusion (1 - w) * start + w * end.

    start, end: [B, 1, ...] or [B, T, ...] (broadcast over T); w: [B, T]. Returns [B, T, ...].
    """
    wv = w.to(start.dtype).reshape(w.shape + (1,) * (start.dim() - 2))
    return torch.lerp(start, end, wv)


def blend_keyframes(keyframes: Tensor, w: Tensor) -> Tensor:
    """The network-free baseline: each frame is (1 - w) * k0 + w * k1 of its clip's keyframes.

    keyframes: [B, 2, 3, H, W]; w: [B, T]. Returns [B, T, 3, H, W] (no copy of the keyframes).
    """
    return lerp_frames(keyframes[:, :1], keyframes[:, 1:], w)


def clip_instance_norm(x: Tensor, eps: float = 1e-5) -> Tensor:
    """InstanceNorm3d without affine on a clip laid out frame-major.

    x: [B, T, C, h, w]; each (clip, channel) is normalised over (T, h, w), exactly as
    nn.InstanceNorm3d on [B, C, T, h, w] would, but without permuting the frames out of the batch.
    Statistics are taken in at least float32 (half precision loses them on large maps).
    """
    xs = x.to(torch.promote_types(x.dtype, torch.float32))
    var, mean = torch.var_mean(xs, dim=(1, 3, 4), keepdim=True, unbiased=False)
    return ((xs - mean) * torch.rsqrt(var + eps)).to(x.dtype)


class PositionalEncoding(nn.Module):
    """sin/cos of t at frequencies base**i * pi, i = 0..levels-1: [N] -> [N, 2 * levels]."""

    def __init__(self, levels: int, base: float) -> None:
        super().__init__()
        freqs = (base ** torch.arange(levels, dtype=torch.float64, device="cpu")) * math.pi
        # Constant: recomputed from the config, so kept out of the learned state.
        self.register_buffer("freqs", freqs.float().to(torch.get_default_device()), persistent=False)

    def forward(self, t: Tensor) -> Tensor:
        x = t.to(self.freqs.dtype).reshape(-1, 1) * self.freqs
        return torch.cat([torch.sin(x), torch.cos(x)], dim=1)


def stem_mlp(features: int, hidden: int, out: int) -> nn.Sequential:
    """The stem on the frame-index encoding: Linear -> GELU -> Linear -> GELU."""
    return nn.Sequential(nn.Linear(features, hidden), nn.GELU(), nn.Linear(hidden, out), nn.GELU())


def base_grid(height: int, width: int) -> Tensor:
    """Identity sampling grid for grid_sample(align_corners=True): [height, width, 2] as (x, y).

    Built on the default device; on 'meta' (count_parameters) only its shape is made.
    """
    device = torch.get_default_device()
    if device.type == "meta":
        return torch.empty(height, width, 2)
    ys = torch.linspace(-1.0, 1.0, height, device=device)
    xs = torch.linspace(-1.0, 1.0, width, device=device)
    return torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)


class FlowWarp(nn.Module):
    """Flow head, backward warp of both keyframes' features, distance-weighted fusion.

    forward(x [N, C, h, w], kf [2B, E, h, w], w [B, T]) -> fused [N, E, h, w], where
    fused = (1 - w) * warp(start, flow_fwd) + w * warp(end, flow_bwd). The head predicts 4
    channels: (dx, dy) from the start keyframe, then (dx, dy) from the end one, in pixels of this
    resolution. With zero_init the last conv starts at zero, so the warp starts as the identity.

    exact_identity: grid_sample's float32 unnormalisation lands up to ~1e-5 px off the pixel centres
    (no float32 grid avoids it for every size), so a zero flow blurs slightly. With this flag the
    warp is computed as kf + (sample(kf, base + flow) - sample(kf, base)); the second sample is once
    per keyframe, not per frame, and a zero flow is then an exact identity. Used where the warped
    keyframes reach the output (the blend), so the untrained blend-residual network is exactly the blend.
    """

    def __init__(self, channels: int, height: int, width: int, zero_init: bool, exact_identity: bool = False):
        super().__init__()
        hidden = max(channels // 4, 1)
        self.head = nn.Sequential(
            PointwiseConv2d(channels, hidden), nn.GELU(), NarrowConv2d(hidden, 4, 3, padding=1)
        )
        if zero_init:
            nn.init.zeros_(self.head[2].weight)
            nn.init.zeros_(self.head[2].bias)
        self.exact_identity = exact_identity
        # Constants of this resolution, built once: pixel -> normalised units, identity grid.
        scale = torch.tensor([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)])
        self.register_buffer("grid_scale", scale, persistent=False)
        self.register_buffer("base_grid", base_grid(height, width), persistent=False)

    def _sample(self, kf: Tensor, grid: Tensor) -> Tensor:
        return F.grid_sample(kf, grid.to(kf.dtype), "bilinear", "border", align_corners=True)

    def forward(self, x: Tensor, kf: Tensor, w: Tensor) -> Tensor:
        return self.warp(self.head(x), kf, w, channels_last=is_channels_last(x))

    def warp(self, flow: Tensor, kf: Tensor, w: Tensor, channels_last: bool = False) -> Tensor:
        """The warp and fusion on the head's output flow [N, 4, h, w]; NHWC out when channels_last
        or when gather_warp runs it (NHWC always)."""
        if use_gather_warp(flow, kf):
            return gather_warp(flow, kf, w)
        return self.grid_warp(flow, kf, w, channels_last)

    def grid_warp(self, flow: Tensor, kf: Tensor, w: Tensor, channels_last: bool = False) -> Tensor:
        """warp by grid_sample, one call per keyframe (CUDA, and few channels on CPU)."""
        b, t = w.shape
        e, h, wd = kf.shape[-3:]
        flow = flow.reshape(b, t, 2, 2, h, wd)  # [B, T, keyframe, (x, y), h, w]
        kf2 = kf.reshape(b, 2, e, h, wd)
        warped = []
        for k in range(2):  # start, end keyframe (never a loop over frames)
            # The T frames' grids are stacked along the height, [B, T*h, w, 2], so each keyframe's
            # features are sampled by one call per clip instead of being expanded to T copies.
            grid = torch.addcmul(self.base_grid, flow[:, :, k].permute(0, 1, 3, 4, 2), self.grid_scale)
            out = self._sample(kf2[:, k], grid.reshape(b, t * h, wd, 2)).reshape(b, e, t, h, wd)
            if self.exact_identity:
                ident = self._sample(kf2[:, k], self.base_grid.expand(b, h, wd, 2))
                out = out + (kf2[:, k] - ident).unsqueeze(2)
            warped.append(out)
        wv = w.to(warped[0].dtype).reshape(b, 1, t, 1, 1)
        fused = torch.lerp(warped[0], warped[1], wv)  # [B, E, T, h, w]
        # Back to frames in the batch, in x's memory format (one copy either way).
        if channels_last:
            return fused.permute(0, 2, 3, 4, 1).contiguous().view(b * t, h, wd, e).permute(0, 3, 1, 2)
        return fused.transpose(1, 2).reshape(b * t, e, h, wd)


def use_gather_warp(flow: Tensor, kf: Tensor) -> bool:
    """Whether FlowWarp runs gather_warp rather than grid_sample: on CPU, for keyframe features of
    at least 16 channels; with gradients, of at least 32 channels, or 16 on maps of at least
    128x160.

    The gather pays a fixed cost per output pixel (8 indices and weights, and in the backward a
    sort of them) and wins where each pixel carries many channels, which grid_sample's NCHW kernel
    reads one strided plane at a time, and where the maps are large; in training, 16 channels on
    smaller maps lost (measured: docs/performance.md#warp).
    """
    if kf.device.type != "cpu":
        return False
    channels, h, w = kf.shape[-3:]
    if takes_gradients(flow, kf):
        return channels >= 32 or (channels >= 16 and h * w >= 128 * 160)
    return channels >= 16


def gather_warp(flow: Tensor, kf: Tensor, w: Tensor) -> Tensor:
    """FlowWarp's warp and fusion as ONE weighted gather (for CPUs: see use_gather_warp).

    Every output pixel is a bag of 8 rows of the keyframes' features laid out NHWC (the 4 bilinear
    corners in each keyframe), weighted by bilinear weight * (1 - w) or w, summed by embedding_bag
    in one pass. Same result as grid_sample (bilinear, border padding, align_corners=True) of each
    keyframe and the lerp, to float rounding; the flow is in pixels, so a zero flow lands exactly on
    the pixels and the warp is then an exact identity. Returns [N, E, h, w] laid out NHWC (the
    gather's rows are pixels).
    """
    b, t = w.shape
    e, h, wd = kf.shape[-3:]
    table = kf.permute(0, 2, 3, 1).reshape(-1, e)  # [2B*h*w, E]: row (clip*2 + key)*h*w + y*w + x
    flow = flow.view(b, t, 2, 2, h, wd)  # [B, T, key, (x, y), h, w] in pixels
    coord = torch.promote_types(flow.dtype, torch.float32)  # pixel coordinates need float32
    x_base = torch.arange(wd, dtype=coord, device=flow.device)
    y_base = torch.arange(h, dtype=coord, device=flow.device).view(h, 1)
    wv = w.to(coord).view(b, t, 1, 1)
    dx, dy = int(wd > 1), wd * int(h > 1)
    # Every operation below is on whole [B, T, h, w] planes (vectorised); the 8 taps are
    # interleaved once at the end, by stack.
    index, weight = [], []
    for k in range(2):
        x = (flow[:, :, k, 0] + x_base).clamp(0, wd - 1)  # border padding: clamp to the frame
        y = (flow[:, :, k, 1] + y_base).clamp(0, h - 1)
        # The top-left corner stops one short of the last column / row (a coordinate on the last
        # pixel then has fx or fy = 1), so the other corners are always +1 column, +1 row.
        x0 = x.detach().floor().clamp_(max=max(wd - 2, 0))
        y0 = y.detach().floor().clamp_(max=max(h - 2, 0))
        fx, fy = x - x0, y - y0
        first_row = (
            torch.arange(b, dtype=torch.int32, device=flow.device).view(b, 1, 1, 1) * (2 * h * wd)
            + k * h * wd
        )
        top_left = y0.int() * wd + x0.int() + first_row
        index += [top_left, top_left + dx, top_left + dy, top_left + (dx + dy)]
        key_weight = 1 - wv if k == 0 else wv
        top, bottom = key_weight * (1 - fy), key_weight * fy
        weight += [top * (1 - fx), top * fx, bottom * (1 - fx), bottom * fx]
    index = torch.stack(index, dim=-1).view(-1, 8)
    weight = torch.stack(weight, dim=-1).view(-1, 8).to(table.dtype)
    out = _WeightedGather.apply(index, table, weight)  # [B*T*h*w, E]
    return out.view(b * t, h, wd, e).permute(0, 3, 1, 2)


class _WeightedGather(torch.autograd.Function):
    """out[p] = sum_j weight[p, j] * table[index[p, j]]: embedding_bag (mode "sum"), with its table
    gradient computed as the same kind of gather, over the taps grouped by the table row they read.

    PyTorch's own backward adds the taps into the table gradient one by one after sorting them; the
    gather form is one fused pass (measured: docs/performance.md#gather-backward).
    """

    @staticmethod
    def forward(ctx, index: Tensor, table: Tensor, weight: Tensor) -> Tensor:
        ctx.save_for_backward(index, table, weight)
        return F.embedding_bag(index, table, per_sample_weights=weight, mode="sum")

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        index, table, weight = ctx.saved_tensors
        grad = grad.contiguous()
        grad_table = grad_weight = None
        if ctx.needs_input_grad[1]:
            taps = index.flatten()
            order = taps.sort().indices  # the taps grouped by row
            counts = torch.bincount(taps, minlength=table.shape[0])
            first = counts.cumsum(0) - counts  # where each row's taps start in `order`
            pixel = order // index.shape[1]  # the output pixel each tap belongs to
            tap_weight = weight.flatten()[order]
            grad_table = F.embedding_bag(pixel, grad, first, per_sample_weights=tap_weight, mode="sum")
        if ctx.needs_input_grad[2]:
            # d out[p] / d weight[p, j] = table[index[p, j]]: embedding_bag's own backward for the
            # weights alone (the table detached, so no table gradient is made twice).
            with torch.enable_grad():
                w = weight.detach().requires_grad_()
                out = F.embedding_bag(index, table.detach(), per_sample_weights=w, mode="sum")
                (grad_weight,) = torch.autograd.grad(out, w, grad)
        return None, grad_table, grad_weight


class SAF(nn.Module):
    """Spatially-adaptive fusion: (g, b) = conv1x1(fused); x * (1 + g) + b.

    forward(x [N, C, h, w], fused [N, E, h, w]) -> [N, C, h, w].
    """

    def __init__(self, feat_channels: int, channels: int) -> None:
        super().__init__()
        self.conv = PointwiseConv2d(feat_channels, 2 * channels)

    def forward(self, x: Tensor, fused: Tensor) -> Tensor:
        if x.device.type == "cpu" and not is_channels_last(x):
            # The CPU warp hands fused over NHWC: the matmul reads it in place and writes NCHW, as x.
            g, b = pointwise(fused, self.conv.weight.flatten(1), self.conv.bias).chunk(2, dim=1)
        else:
            g, b = self.conv(fused).chunk(2, dim=1)
        return torch.addcmul(x + b, x, g)


class NeRVBlock(nn.Module):
    """3x3 conv -> pixel shuffle by the stride -> GELU: [N, C_in, h, w] -> [N, C_out, s*h, s*w].

    With shuffle=False the GELU'd conv output is returned before the shuffle, [N, C_out*s*s, h, w]
    (GELU is elementwise, so it commutes with the shuffle), for GTMLP to fold the shuffle into its copy.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels * stride * stride, 3, padding=1)
        self.shuffle = nn.PixelShuffle(stride)
        self.act = nn.GELU()

    def forward(self, x: Tensor, shuffle: bool = True) -> Tensor:
        if not shuffle:
            return self.act(self.conv(x))
        return self.act(self.shuffle(self.conv(x)))


class GTMLP(nn.Module):
    """Global temporal MLP: per channel, a learned T x T map across a clip's frames, residual.

    Built for clip_len frames; a shorter clip (T < clip_len) uses the top-left T x T block.
    forward(x [N, C, h, w], frames=T) -> x + mix(x), mix[b, i, c] = sum_j W[c, i, j] x[b, j, c] + bias[c, i],
    returned in x's memory format. Weights start at zero: the block begins as the identity.
    """

    def __init__(self, channels: int, clip_len: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(channels, clip_len, clip_len))
        self.bias = nn.Parameter(torch.zeros(channels, clip_len))
        self.register_buffer(
            "eye", torch.eye(clip_len, device="cpu").to(torch.get_default_device()), persistent=False
        )

    def forward(self, x: Tensor, frames: int, stride: int = 1, shuffle: bool = True) -> Tensor:
        """x [N, C*s*s, h, w], s = stride: frames before a pixel shuffle by s (1: none) -> the
        shuffled, mixed frames [N, C, s*h, s*w]. shuffle=False (NCHW x only) returns the mixed
        channels as they come out of the matmul, [C, s, s, T, B, h, w], for pointwise layers that
        commute with the shuffle (DNeRV's output layers)."""
        if not shuffle and is_channels_last(x):
            raise ValueError("GTMLP returns unshuffled channels for NCHW input only")
        if stride > 1 and is_channels_last(x):
            x, stride = F.pixel_shuffle(x, stride), 1
        n, cs2, h, w = x.shape
        s, c = stride, cs2 // (stride * stride)
        b, t = n // frames, frames
        if t > self.weight.shape[1]:
            raise ValueError(f"clip of {t} frames exceeds the {self.weight.shape[1]} it was built for")
        # The residual is folded into the map, (I + W) x + bias, so the whole block is one
        # batched matmul over channels between two layout copies (no separate add pass).
        weight = (self.weight[:, :t, :t] + self.eye[:t, :t]).to(x.dtype)
        bias = self.bias[:, :t].to(x.dtype)
        if is_channels_last(x):  # memory [B, T, h, w, C]
            xc = x.permute(0, 2, 3, 1).reshape(b, t, h * w, c).permute(3, 1, 0, 2).reshape(c, t, -1)
            y = torch.baddbmm(bias.unsqueeze(-1), weight, xc).view(c, t, b, h, w)
            return y.permute(2, 1, 3, 4, 0).reshape(n, h, w, c).permute(0, 3, 1, 2)
        # NCHW: the mix runs on the unshuffled channels (channel c of the shuffled frames is channels
        # c*s*s .. c*s*s + s*s - 1 here, so its map is repeated s*s times) and the shuffle happens in
        # the copy back, one copy instead of two (measured: docs/performance.md#gtmlp-shuffle).
        if s > 1:
            weight, bias = weight.repeat_interleave(s * s, 0), bias.repeat_interleave(s * s, 0)
        xc = x.reshape(b, t, cs2, h * w).permute(2, 1, 0, 3).reshape(cs2, t, -1)
        y = torch.baddbmm(bias.unsqueeze(-1), weight, xc).view(c, s, s, t, b, h, w)
        if not shuffle:
            return y
        return y.permute(4, 3, 0, 5, 1, 6, 2).reshape(n, c, h * s, w * s)


class DecoderStage(nn.Module):
    """One stride stage: flow + warp + fuse, SAF, NeRV block (upsample by stride), GTMLP.

    forward(x [N, C_in, h, w], kf [2B, E, h, w], w [B, T]) -> [N, C_out, s*h, s*w].
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        feat_channels: int,
        stride: int,
        height: int,
        width: int,
        clip_len: int,
        zero_init: bool,
    ) -> None:
        super().__init__()
        self.flow = FlowWarp(in_channels, height, width, zero_init)
        self.saf = SAF(feat_channels, in_channels)
        self.block = NeRVBlock(in_channels, out_channels, stride)
        self.gtmlp = GTMLP(out_channels, clip_len)

    def forward(self, x: Tensor, kf: Tensor, w: Tensor, shuffle: bool = True) -> Tensor:
        x = self.saf(x, self.flow(x, kf, w))
        stride = self.block.shuffle.upscale_factor
        return self.gtmlp(self.block(x, shuffle=False), w.shape[1], stride, shuffle)


class ContentEncoder(nn.Module):
    """Keyframe content encoder: [2B, 3, H, W] (normalised) -> multi-scale features.

    3x3 conv 3 -> E + GELU at full resolution, then one patchify conv (kernel = stride) + GELU per
    decoder stage, finest first. Returns the features at each decoder stage's input resolution,
    coarsest first ([2B, E, h_s, w_s] for s = 0..S-1), then the normalised keyframes themselves.
    """

    def __init__(self, enc_dim: int, strides: tuple[int, ...]) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, enc_dim, 3, padding=1), nn.GELU())
        # down[i] undoes strides[-1 - i]: built fine -> coarse.
        self.down = nn.ModuleList(
            nn.Sequential(nn.Conv2d(enc_dim, enc_dim, s, stride=s), nn.GELU()) for s in reversed(strides)
        )

    def forward(self, k: Tensor) -> list[Tensor]:
        feats = []
        x = self.stem(k)
        for down in self.down:
            x = down(x)
            feats.append(x)
        return feats[::-1] + [k]
