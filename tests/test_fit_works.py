"""Fitting really improves the archive: a short fit on real frames beats the keyframe blend by a
margin that the untrained network (whose residual heads start at zero: it outputs the blend)
cannot reach, and the stored weights are not the initial ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import SAMPLES

import dnerv_codec as dn
from dnerv_codec.metrics import QualityMeter
from dnerv_codec.model.build import build_model
from dnerv_codec.video.read import iter_frames

pytestmark = pytest.mark.usefixtures("one_thread")

CLIP = SAMPLES / "cockatoo.mp4"  # real frames, large motion
SIZE = (64, 96)  # a multiple of the network strides: fitted as it is
MARGIN_DB = 0.5  # measured +1.5 dB for this fit; the untrained network gives 0


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    out = tmp_path_factory.mktemp("fit") / "fit.dnv"
    report = dn.encode(CLIP, out, preset="tiny", size=SIZE, epochs=40, seed=0, device="cpu")
    return out, report


def gain_over_blend(archive: dn.Archive) -> float:
    """PSNR of the network minus that of the keyframe blend, on frames decoded from the archive."""
    reference = np.stack(list(iter_frames(CLIP, SIZE)))
    network, blend = QualityMeter(with_ms_ssim=False), QualityMeter(with_ms_ssim=False)
    indices = range(len(archive.clips))
    for clip, (out, base) in zip(archive.clips, archive.iter_clips_with_blend(indices), strict=True):
        frames = reference[clip.start : clip.start + clip.length]
        network.add(out.numpy(), frames)
        blend.add(base.numpy(), frames)
    return network.mean_psnr() - blend.mean_psnr()


def initial_state(archive: dn.Archive) -> dict[str, torch.Tensor]:
    """The weights the fit started from: the same seed, the same network."""
    torch.manual_seed(0)
    header = archive.header
    return build_model(header.model, header.height, header.width).learned_state()


def test_short_fit_beats_the_blend_by_a_margin(fitted):
    path, report = fitted
    assert report.gain_db > MARGIN_DB
    assert gain_over_blend(dn.open(path, "cpu")) == pytest.approx(report.gain_db, abs=1e-6)


def test_untrained_network_is_the_blend(fitted):
    archive = dn.open(path := fitted[0], "cpu")
    archive.model.load_learned_state(initial_state(archive))
    assert abs(gain_over_blend(archive)) < 0.01, path


def test_stored_weights_are_not_the_initial_ones(fitted):
    archive = dn.open(fitted[0], "cpu")
    stored, initial = archive.model.learned_state(), initial_state(archive)
    moved = [name for name in stored if not torch.allclose(stored[name], initial[name], atol=1e-3)]
    assert len(moved) > len(stored) // 2, f"only {moved} moved"
    residual_heads = [name for name, p in initial.items() if not p.any()]  # start at zero
    assert residual_heads and all(stored[name].abs().max() > 0 for name in residual_heads)
