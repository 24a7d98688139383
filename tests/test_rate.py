"""Rate control (`--bpp`): keyframe quality and width chosen for a target, and its bad values."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import assert_clean_error, invoke, make_video, moving_frames

import dnerv_codec as dn
from dnerv_codec.config import COMPRESS, KeyframeConfig, ModelConfig, get_preset
from dnerv_codec.errors import ConfigError
from dnerv_codec.rate import Collection, overhead_bytes, plan_rate


@pytest.mark.parametrize("value", ["0", "-0.5", "24.5"])
def test_nonsense_targets_are_clean_errors(runner, tmp_path, value):
    video = make_video(tmp_path / "v.mkv", moving_frames(4, 32, 32))
    result = invoke(runner, "encode", video, "-o", tmp_path / "a.dnv", "--bpp", value, ok=False)
    assert_clean_error(result, "target bpp must be in (0, 24]")
    assert not (tmp_path / "a.dnv").exists()


def test_bpp_with_a_fixed_width_is_a_clean_error(runner, tmp_path):
    video = make_video(tmp_path / "v.mkv", moving_frames(4, 32, 32))
    result = invoke(
        runner, "encode", video, "-o", tmp_path / "a.dnv", "--bpp", "1", "--fc-dim", "8", ok=False
    )
    assert_clean_error(result, "--bpp chooses", "--fc-dim")


def _plan(bpp, code, key_cfg=None):
    preset = get_preset("fast")
    key_cfg = key_cfg or KeyframeConfig()
    return plan_rate(bpp, Collection(64, 64, 100, 1), preset, ModelConfig(), key_cfg, preset.quant, code)


def test_plan_takes_the_best_keyframe_quality_that_fits():
    tried = []

    def code(cfg):  # a monotone fake coder: bytes fall with the CRF
        tried.append(cfg.quality)
        return [bytes(200_000 // (cfg.quality + 1))]

    plan = _plan(2.0, code)
    budget = plan.target_bytes - plan.weight_bytes_estimate - overhead_bytes(1)
    assert plan.keyframe_bytes <= budget < 200_000 // plan.keyframes.quality  # CRF - 1 would not fit
    assert plan.blobs == [bytes(plan.keyframe_bytes)] and len(tried) <= 8  # bisection, not a scan
    with pytest.raises(ConfigError, match="too low"):
        _plan(0.001, code)


def test_plan_searches_a_quality_where_higher_is_better():
    tried = []

    def code(cfg):  # imagecodec's scale: bytes grow with the quality
        tried.append(cfg.quality)
        return [bytes(2000 * (cfg.quality + 1))]

    plan = _plan(2.0, code, KeyframeConfig("imagecodec", 24))
    budget = plan.target_bytes - plan.weight_bytes_estimate - overhead_bytes(1)
    quality = plan.keyframes.quality
    assert 0 < quality < 100 and tried[0] == 0 and len(tried) <= 9
    assert (
        plan.keyframe_bytes == 2000 * (quality + 1) <= budget < 2000 * (quality + 2)
    )  # quality + 1 would not fit
    with pytest.raises(ConfigError, match=r"lowest quality \(quality 0\)"):
        _plan(0.001, code, KeyframeConfig("imagecodec", 24))


def test_encode_lands_near_the_target(tmp_path, one_thread):
    videos = [make_video(tmp_path / f"v{i}.mkv", moving_frames(16, 64, 64, seed=i)) for i in range(2)]
    for bpp in (2.0, 3.0):  # the smallest network alone costs about 1.1 bpp on 32 frames
        report = dn.encode(videos, tmp_path / f"{bpp}.dnv", preset="fast", epochs=1, bpp=bpp)
        assert report.bpp == pytest.approx(bpp, rel=0.10)


def test_weight_byte_budget_caps_the_weights(tmp_path, one_thread):
    """weight_bytes (bench --separate's share of the joint weights) fits the bit depths to it."""
    video = make_video(tmp_path / "v.mkv", moving_frames(16, 64, 64))
    bytes_cheap = dataclasses.replace(COMPRESS, rd_slope=1e-6)  # left free, every tensor keeps 8 bits
    # trained for a few steps: the zero-initialised last convs have left zero, as in a real fit
    kw = {"preset": "fast", "epochs": 20, "fc_dim": 8, "quant": bytes_cheap}
    free = dn.encode(video, tmp_path / "free.dnv", **kw)
    budget = int(free.sections["weights"] * 0.9)  # 4 bits everywhere would give about 0.8
    capped = dn.encode(video, tmp_path / "cap.dnv", weight_bytes=budget, **kw)
    assert capped.params == free.params
    assert capped.sections["weights"] <= budget


def test_weight_byte_budget_needs_bit_choices(tmp_path):
    video = make_video(tmp_path / "v.mkv", moving_frames(4, 32, 32))
    with pytest.raises(ConfigError, match="weight byte budget"):
        dn.encode(video, tmp_path / "a.dnv", preset="tiny", weight_bytes=1000)  # tiny: plain 8 bits
    with pytest.raises(ConfigError, match="weight byte budget"):
        dn.encode(video, tmp_path / "a.dnv", preset="fast", weight_bytes=0)
    assert not (tmp_path / "a.dnv").exists()


def test_weight_share_moves_the_split():
    def code(cfg):
        return [bytes(400_000 // (cfg.quality + 1))]

    preset = get_preset("fast")

    def plan(share):
        return plan_rate(
            2.0,
            Collection(64, 64, 100, 1),
            preset,
            ModelConfig(),
            KeyframeConfig(),
            preset.quant,
            code,
            share,
        )

    small, large = plan(0.1), plan(0.6)
    assert small.fc_dim < large.fc_dim and small.weight_bytes_estimate < large.weight_bytes_estimate
    assert small.keyframe_bytes > large.keyframe_bytes  # the keyframes get what the weights leave
    for share in (0.0, 1.0, -0.2):
        with pytest.raises(ConfigError, match="weight share must be in"):
            plan(share)


def test_weight_share_needs_a_target(tmp_path):
    video = make_video(tmp_path / "v.mkv", moving_frames(4, 32, 32))
    with pytest.raises(ConfigError, match="needs a target bpp"):
        dn.encode(video, tmp_path / "a.dnv", preset="fast", weight_share=0.3)
    assert not (tmp_path / "a.dnv").exists()
