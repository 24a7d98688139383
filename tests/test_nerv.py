"""The NeRV baseline model type: frame position in, frame out, no keyframes, same archive."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from conftest import assert_clean_error, invoke, invoke_json, make_video, moving_frames, read_frames

import dnerv_codec as dn
from dnerv_codec.clips import Layout, VideoEntry
from dnerv_codec.config import ModelConfig
from dnerv_codec.errors import ConfigError
from dnerv_codec.model.build import build_model, count_parameters
from dnerv_codec.model.nerv import NeRV

CFG = ModelConfig(kind="nerv", fc_dim=8, stem_hidden=16, pe_levels=12, min_width=4)


def test_forward_shapes_and_parameter_count():
    model = build_model(CFG, 32, 64)
    assert isinstance(model, NeRV)
    assert count_parameters(CFG, 32, 64) == sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        out = model(None, torch.rand(2, 5), None)
    assert out.shape == (2, 5, 3, 32, 64) and float(out.min()) >= 0 and float(out.max()) <= 1
    with pytest.raises(ConfigError, match="1..8"):
        model(None, torch.rand(1, 9))


def test_unknown_kind_is_rejected():
    with pytest.raises(ConfigError, match="model kind"):
        dataclasses.replace(CFG, kind="siren")


def test_global_time_gives_every_frame_of_the_collection_its_own_input():
    layout = Layout.build([VideoEntry("a", 25, 10, 8, 8), VideoEntry("b", 25, 7, 8, 8)], 4)
    local = np.concatenate([layout.clip_inputs(c)[0][: c.length] for c in layout.clips])
    glob = np.concatenate([layout.clip_inputs(c, global_time=True)[0][: c.length] for c in layout.clips])
    assert len(set(local.tolist())) < len(local)  # per video: both videos start at t = 0
    np.testing.assert_allclose(glob, np.arange(17) / 16, atol=1e-7)


@pytest.fixture(scope="module")
def nerv_archive(tmp_path_factory, one_thread):
    root = tmp_path_factory.mktemp("nerv")
    videos = [make_video(root / f"v{i}.mkv", moving_frames(10, 32, 32, seed=i)) for i in range(2)]
    out = root / "n.dnv"
    report = dn.encode(videos, out, preset="nerv", epochs=2, size=(32, 32))
    return out, report


def test_nerv_archive_has_no_keyframes_and_decodes(nerv_archive, runner):
    path, report = nerv_archive
    assert report.blend_psnr is None and report.gain_db is None and report.frames == 20
    info = invoke_json(runner, "info", path)
    assert info["model"]["kind"] == "nerv" and info["keyframes"] == 0
    assert info["bytes"]["keyframes"] == 0 and info["bytes"]["keyframe index"] == 0
    archive = dn.open(path, "cpu")
    frames = torch.cat([archive.decode_clip(i) for i in range(len(archive.clips))])
    assert frames.shape == (20, 32, 32, 3)
    # the archive's PSNR is what encode reported (frames decoded from the file)
    originals = np.concatenate([np.stack(moving_frames(10, 32, 32, seed=i)) for i in range(2)])
    mse = ((frames.numpy().astype(np.float64) - originals) ** 2).reshape(20, -1).mean(1)
    assert np.mean(10 * np.log10(255**2 / np.maximum(mse, 1e-10))) == pytest.approx(report.psnr, abs=1e-3)
    with pytest.raises(ConfigError, match="no keyframes"):
        next(archive.iter_clips([0], blend=True))


def test_decode_cli_on_nerv_archive(nerv_archive, runner, tmp_path):
    path, _ = nerv_archive
    invoke(runner, "decode", path, "--clip", 2, "-o", tmp_path / "c2.mkv")
    written = read_frames(tmp_path / "c2.mkv")  # .mkv is lossless: the clip's frames exactly
    assert np.array_equal(written, dn.open(path, "cpu").decode_clip(2).numpy())


@pytest.mark.parametrize("value", ["0", "-1", "25"])
def test_weight_bpp_out_of_range_is_a_clean_error(runner, tmp_path, value):
    video = make_video(tmp_path / "v.mkv", moving_frames(4, 32, 32))
    result = invoke(runner, "encode", video, "-o", tmp_path / "a.dnv", "--weight-bpp", value, ok=False)
    assert_clean_error(result, "weight bpp")
    assert not (tmp_path / "a.dnv").exists()
