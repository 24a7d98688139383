"""DNeRV network: shapes, blend-residual initialisation, gradients, learned state, parameter count."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from dnerv_codec.config import ModelConfig
from dnerv_codec.errors import ConfigError
from dnerv_codec.model.build import count_parameters
from dnerv_codec.model.dnerv import DNeRV, blend_keyframes
from dnerv_codec.model.layers import (
    GTMLP,
    FlowWarp,
    _WeightedGather,
    clip_instance_norm,
    gather_warp,
    lerp_frames,
    use_gather_warp,
)

SMALL = ModelConfig(fc_dim=8, enc_dim=4, stem_hidden=8, pe_levels=4, min_width=4, strides=(2, 2, 2))


def inputs(b: int, t: int, h: int, w: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    keyframes = torch.rand(b, 2, 3, h, w, generator=g)
    pos = torch.rand(b, t, generator=g)
    dist = torch.rand(b, t, generator=g)
    return keyframes, pos, dist


def perturb(model: torch.nn.Module, seed: int = 1, scale: float = 0.1) -> None:
    """Move every parameter off its (possibly zero) initialisation."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize(
    ("cfg", "h", "w", "t"),
    [
        (ModelConfig(), 64, 96, 8),
        (ModelConfig(), 64, 96, 3),
        (dataclasses.replace(SMALL, blend_residual=False), 32, 32, 8),
        (SMALL, 32, 32, 3),
    ],
)
def test_output_shape_dtype_range(cfg, h, w, t):
    model = DNeRV(cfg, h, w)
    perturb(model)
    with torch.no_grad():
        y = model(*inputs(2, t, h, w))
        raw = model(*inputs(2, t, h, w), clamp=False)
    assert y.shape == (2, t, 3, h, w) and y.dtype == torch.float32 and y.is_contiguous()
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert torch.equal(raw.clamp(0, 1), y)


def test_bad_sizes_and_clip_lengths():
    with pytest.raises(ConfigError):
        DNeRV(ModelConfig(), 64, 90)  # 90 is not a multiple of 32
    with pytest.raises(ConfigError):
        DNeRV(SMALL, 4, 32)  # smaller than one coarse cell
    model = DNeRV(SMALL, 32, 32)
    with pytest.raises(ConfigError):
        model(*inputs(1, SMALL.clip_len + 1, 32, 32))
    with pytest.raises(ValueError):
        model(*inputs(1, 4, 32, 64))
    with pytest.raises(ConfigError):
        model.set_normalization([0.5, 0.5, 0.5], [0.2, 0.0, 0.2])


@pytest.mark.parametrize("fmt", [torch.channels_last, torch.contiguous_format])
@pytest.mark.parametrize(("cfg", "h", "w"), [(ModelConfig(), 64, 96), (SMALL, 32, 32)])
def test_untrained_blend_residual_is_the_blend(cfg, h, w, fmt):
    torch.manual_seed(0)
    model = DNeRV(cfg, h, w)
    model.memory_format = fmt
    model.set_normalization([0.4, 0.5, 0.6], [0.2, 0.3, 0.25])
    keyframes, t, dist = inputs(2, 5, h, w)
    dist[0, 0], dist[0, 1] = 0.0, 1.0
    expected = blend_keyframes(keyframes, dist)
    assert expected.shape == (2, 5, 3, h, w)
    torch.testing.assert_close(model(keyframes, t, dist), expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(expected[0, 0], keyframes[0, 0], atol=0, rtol=0)


def _params_without_grad(model: torch.nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)]


def test_gradients_reach_every_parameter():
    model = DNeRV(dataclasses.replace(SMALL, blend_residual=False), 32, 32)
    y = model(*inputs(2, 8, 32, 32), clamp=False)
    (y - torch.rand_like(y)).square().mean().backward()
    assert _params_without_grad(model) == []


def test_blend_residual_gradients_spread_after_a_few_steps():
    # Zero-initialised last convs block the gradient upstream at first; each Adam step opens one more
    # layer of the chain (RGB head, then the stage flow heads' last convs, then their first convs).
    torch.manual_seed(0)
    model = DNeRV(SMALL, 32, 32)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    keyframes, t, dist = inputs(2, 8, 32, 32)
    target = torch.rand(2, 8, 3, 32, 32)
    for _ in range(3):
        opt.zero_grad()
        (model(keyframes, t, dist, clamp=False) - target).abs().mean().backward()
        first = _params_without_grad(model)
        opt.step()
    assert first == []


def test_learned_state_round_trip():
    torch.manual_seed(0)
    a = DNeRV(SMALL, 32, 32)
    perturb(a)
    a.set_normalization([0.3, 0.4, 0.5], [0.2, 0.2, 0.3])
    state = a.learned_state()
    assert list(state) == [n for n, _ in a.named_parameters()]
    assert set(a.state_dict()) == set(state)  # mean/std and grids are not state
    assert sum(v.numel() for v in state.values()) == count_parameters(SMALL, 32, 32)

    torch.manual_seed(1)
    b = DNeRV(SMALL, 32, 32)
    b.load_learned_state({k: v.clone() for k, v in state.items()})
    b.set_normalization([0.3, 0.4, 0.5], [0.2, 0.2, 0.3])
    x = inputs(2, 8, 32, 32)
    assert torch.equal(a(*x), b(*x))

    with pytest.raises(ConfigError):
        b.load_learned_state({k: v for k, v in state.items() if k != "head.0.bias"})
    with pytest.raises(ConfigError):
        b.load_learned_state({**state, "head.0.bias": torch.zeros(1)})


@pytest.mark.parametrize(
    ("cfg", "h", "w"),
    [
        (ModelConfig(), 256, 320),
        (ModelConfig(fc_dim=100, strides=(4, 2, 2, 2, 2)), 256, 320),
        (SMALL, 32, 48),
    ],
)
def test_count_parameters_matches_real_model(cfg, h, w):
    assert count_parameters(cfg, h, w) == sum(p.numel() for p in DNeRV(cfg, h, w).parameters())


def test_deterministic_under_seed():
    x = inputs(1, 8, 32, 32)
    outs = []
    for _ in range(2):
        torch.manual_seed(3)
        model = DNeRV(dataclasses.replace(SMALL, blend_residual=False), 32, 32)
        outs.append(model(*x))
    assert torch.equal(outs[0], outs[1])


def test_memory_formats_and_dtypes_agree():
    torch.manual_seed(0)
    model = DNeRV(SMALL, 32, 32)
    perturb(model)
    x = inputs(2, 6, 32, 32)
    model.memory_format = torch.contiguous_format
    ref = model(*x)
    model.memory_format = torch.channels_last
    torch.testing.assert_close(model(*x), ref, atol=1e-5, rtol=0)
    model.memory_format = torch.contiguous_format
    out64 = model.double()(*x)
    assert out64.dtype == torch.float64
    torch.testing.assert_close(out64.float(), ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("cfg", [SMALL, dataclasses.replace(SMALL, blend_residual=False)])
def test_fused_output_layers_equal_the_plain_ones_with_gradients(cfg):
    """NCHW runs the output layers on the last stage's unshuffled channels (DNeRV._output_layers);
    channels_last runs the plain modules, head(cat[x, out_flow(x)]). Same values and gradients."""
    torch.manual_seed(0)
    model = DNeRV(cfg, 32, 32)
    perturb(model)
    x = inputs(2, 6, 32, 32)
    grads = []
    for fmt in (torch.contiguous_format, torch.channels_last):
        model.memory_format = fmt
        model.zero_grad()
        y = model(*x, clamp=False)
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        grads.append((y.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    torch.testing.assert_close(grads[0][0], grads[1][0], atol=1e-5, rtol=0)
    for name, g in grads[0][1].items():
        torch.testing.assert_close(g, grads[1][1][name], atol=1e-4, rtol=1e-4, msg=name)


def test_gtmlp_short_clip_uses_top_left_block():
    full = GTMLP(channels=3, clip_len=8)
    perturb(full)
    short = GTMLP(channels=3, clip_len=5)
    with torch.no_grad():
        short.weight.copy_(full.weight[:, :5, :5])
        short.bias.copy_(full.bias[:, :5])
    x = torch.randn(2 * 5, 3, 4, 6)
    torch.testing.assert_close(full(x, 5), short(x, 5))
    # Frames do not leak across clips of the batch.
    x2 = x.clone()
    x2[5:] += 1.0
    torch.testing.assert_close(full(x2, 5)[:5], full(x, 5)[:5])


def test_clip_instance_norm_is_instance_norm_3d():
    x = torch.randn(2, 5, 6, 4, 3)  # [B, T, C, h, w]
    ref = torch.nn.InstanceNorm3d(6)(x.transpose(1, 2)).transpose(1, 2)
    torch.testing.assert_close(clip_instance_norm(x), ref, atol=1e-5, rtol=0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    torch.manual_seed(0)
    model = DNeRV(ModelConfig(), 64, 96)
    perturb(model, scale=0.05)
    x = inputs(2, 8, 64, 96)
    ref = model(*x)
    out = model.cuda()(*(v.cuda() for v in x))
    torch.testing.assert_close(out.cpu(), ref, atol=1e-4, rtol=0)


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
def test_gtmlp_folds_the_pixel_shuffle(fmt):
    """The fast path (shuffle inside GTMLP's copy) equals shuffle-then-mix, values and gradients."""
    torch.manual_seed(0)
    gt = GTMLP(channels=3, clip_len=4)
    perturb(gt)
    x = torch.randn(2 * 4, 3 * 4, 5, 6).contiguous(memory_format=fmt)
    fast_in, plain_in = x.clone().requires_grad_(), x.clone().requires_grad_()
    fast = gt(fast_in, 4, stride=2)
    plain = gt(torch.nn.functional.pixel_shuffle(plain_in, 2), 4)
    torch.testing.assert_close(fast, plain, atol=1e-6, rtol=0)
    g = torch.randn_like(plain)
    (fast * g).sum().backward()
    (plain * g).sum().backward()
    torch.testing.assert_close(fast_in.grad, plain_in.grad, atol=1e-5, rtol=0)


@pytest.mark.parametrize("in_channels", [5, 16])
def test_narrow_conv_equals_conv2d_with_gradients_in_the_input_layout(in_channels):
    """Both of its paths (NHWC kernels for few input channels in training, plain otherwise) give
    Conv2d's values, in inference too, and hand gradients back in the input's NCHW layout."""
    from dnerv_codec.model.layers import NarrowConv2d

    torch.manual_seed(0)
    conv = NarrowConv2d(in_channels, 3, 3, padding=1)
    x = torch.randn(2, in_channels, 9, 7, requires_grad=True)
    ref = torch.nn.functional.conv2d(x, conv.weight, conv.bias, padding=1)
    with torch.inference_mode():
        torch.testing.assert_close(conv(x), ref, atol=1e-5, rtol=0)
    y = conv(x)
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=0)
    assert y.is_contiguous()
    g = torch.randn_like(y)
    y.backward(g)
    assert x.grad.is_contiguous()
    x2 = x.detach().clone().requires_grad_()
    torch.nn.functional.conv2d(x2, conv.weight, conv.bias, padding=1).backward(g)
    torch.testing.assert_close(x.grad, x2.grad, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("b", "e", "h", "w"), [(2, 5, 6, 7), (1, 3, 1, 6), (2, 4, 7, 1), (1, 2, 1, 1), (1, 64, 16, 20)]
)
def test_gather_warp_equals_grid_sample_with_gradients(b, e, h, w):
    """The CPU warp (one embedding_bag) gives grid_sample's values and gradients, flows leaving the
    frame (border padding) and 1-pixel-wide maps included."""
    g = torch.Generator().manual_seed(0)
    t = 3
    warp = FlowWarp(8, h, w, zero_init=False)
    flow = (3 * torch.randn(b * t, 4, h, w, generator=g)).requires_grad_()
    kf = torch.randn(2 * b, e, h, w, generator=g).requires_grad_()
    dist = torch.rand(b, t, generator=g)
    grad = torch.randn(b * t, e, h, w, generator=g)
    ref = warp.grid_warp(flow, kf, dist)
    out = gather_warp(flow, kf, dist)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    ref_grads = torch.autograd.grad(ref, (flow, kf), grad)
    for got, want in zip(torch.autograd.grad(out, (flow, kf), grad), ref_grads, strict=True):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_gather_warp_of_a_zero_flow_is_the_keyframe_blend():
    g = torch.Generator().manual_seed(0)
    b, t, e, h, w = 2, 4, 16, 5, 6
    kf = torch.randn(2 * b, e, h, w, generator=g)
    dist = torch.rand(b, t, generator=g)
    dist[0, 0], dist[1, 3] = 0.0, 1.0
    out = gather_warp(torch.zeros(b * t, 4, h, w), kf, dist).reshape(b, t, e, h, w)
    k = kf.reshape(b, 2, e, h, w)
    torch.testing.assert_close(out, lerp_frames(k[:, :1], k[:, 1:], dist), atol=1e-6, rtol=0)
    assert torch.equal(out[0, 0], k[0, 0]) and torch.equal(out[1, 3], k[1, 1])  # exact identity


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
def test_network_with_the_gather_warp_equals_it_with_grid_sample(fmt, monkeypatch):
    """The network with the gather warp at every stage, in inference and training, gives
    grid_sample's frames and gradients (the warp's NHWC output meets an NCHW network in SAF)."""
    import dnerv_codec.model.layers as layers

    cfg = dataclasses.replace(SMALL, enc_dim=16)
    torch.manual_seed(0)
    model = DNeRV(cfg, 32, 32)
    model.memory_format = fmt
    perturb(model)
    x = inputs(2, 6, 32, 32)
    runs = []
    for gather in (True, False):
        monkeypatch.setattr(layers, "use_gather_warp", lambda flow, kf, on=gather: on)
        with torch.inference_mode():
            frames = model(*x)
        model.zero_grad()
        y = model(*x, clamp=False)
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        runs.append((frames, {n: p.grad.clone() for n, p in model.named_parameters()}))
    torch.testing.assert_close(runs[0][0], runs[1][0], atol=1e-5, rtol=0)
    for name, g in runs[0][1].items():
        torch.testing.assert_close(g, runs[1][1][name], atol=1e-4, rtol=1e-4, msg=name)


def test_the_gather_warp_is_chosen_on_cpu_for_wide_features():
    flow = torch.zeros(8, 4, 4, 5)
    assert use_gather_warp(flow, torch.zeros(2, 16, 4, 5))
    assert not use_gather_warp(flow, torch.zeros(2, 8, 4, 5))
    assert not use_gather_warp(flow, torch.zeros(2, 16, 4, 5, device="meta"))  # off the CPU
    # Training: 32 channels, or 16 on maps of 128x160 and more.
    assert not use_gather_warp(flow, torch.zeros(2, 16, 4, 5, requires_grad=True))
    assert use_gather_warp(flow, torch.zeros(2, 32, 4, 5, requires_grad=True))
    assert use_gather_warp(flow, torch.zeros(2, 16, 128, 160, requires_grad=True))
    with torch.no_grad():
        assert use_gather_warp(flow, torch.zeros(2, 16, 4, 5, requires_grad=True))


def test_weighted_gather_gradients_equal_embedding_bags():
    """The gather's own backward (table gradient as a gather over the taps grouped by row) gives
    embedding_bag's gradients, with repeated rows and rows that no tap reads."""
    g = torch.Generator().manual_seed(0)
    index = torch.randint(0, 40, (30, 8), generator=g, dtype=torch.int32)  # rows 40..49 never read
    table = torch.randn(50, 6, generator=g, requires_grad=True)
    weight = torch.rand(30, 8, generator=g, requires_grad=True)
    grad = torch.randn(30, 6, generator=g)
    ours = torch.autograd.grad(_WeightedGather.apply(index, table, weight), (table, weight), grad)
    out = torch.nn.functional.embedding_bag(index, table, per_sample_weights=weight, mode="sum")
    torch.testing.assert_close(_WeightedGather.apply(index, table, weight), out)
    for got, want in zip(ours, torch.autograd.grad(out, (table, weight), grad), strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["dnerv", "nerv"])
def test_the_model_names_the_class_of_every_tensor(kind):
    """tensor_groups() puts every learned tensor in one class, every bias in 'biases' and none in
    'other': the per-class byte table of `dnerv info` asks the model, not the tensor names."""
    from dnerv_codec.model.build import build_model

    model = build_model(dataclasses.replace(SMALL, kind=kind), 16, 24)
    groups = model.tensor_groups()
    names = [n for n, _ in model.named_parameters()]
    assert sorted(n for members in groups.values() for n in members) == sorted(names)
    assert groups["biases"] == [n for n in names if n.endswith(".bias")]
    assert "other" not in groups and list(groups)[0] == "biases"
    expect = {
        "dnerv": {
            "encoder.stem.0.weight": "content encoder",
            "stem.2.weight": "stem MLP",
            "stages.1.flow.head.2.weight": "flow heads",
            "out_flow.head.0.weight": "flow heads",
            "stages.0.saf.conv.weight": "fusion (SAF)",
            "stages.2.block.conv.weight": "decoder convs",
            "stages.0.gtmlp.weight": "GTMLP",
            "head.2.weight": "RGB head",
        },
        "nerv": {
            "stem.0.weight": "stem MLP",
            "blocks.1.conv.weight": "decoder convs",
            "head.0.weight": "RGB head",
        },
    }[kind]
    assert {name: label for label, members in groups.items() for name in members if name in expect} == expect
