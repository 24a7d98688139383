"""Every preset in config.PRESETS fits: two CPU steps of its own network (width sized to the data as
encode sizes it), on the decoded keyframes of a short real clip, with its own keyframe codec."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from conftest import SAMPLES

from dnerv_codec.clips import Layout, VideoEntry
from dnerv_codec.config import PRESETS
from dnerv_codec.encoding.frames import working_size
from dnerv_codec.fit.data import ClipData
from dnerv_codec.fit.trainer import Trainer, learning_rate
from dnerv_codec.keyframes import decode_keyframes, encode_keyframes
from dnerv_codec.model.dnerv import DNeRV
from dnerv_codec.rate import choose_fc_dim
from dnerv_codec.video.read import iter_frames, probe

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = (64, 64)
FRAMES = 10  # clips of 8 + 2 frames: a short last clip is part of every fit


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    source = SAMPLES / "cockatoo.mp4"
    frames = [f for _, f in zip(range(FRAMES), iter_frames(source, SIZE), strict=False)]
    return np.stack(frames)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_fits_two_steps(name, clip):
    preset = PRESETS[name]
    height, width = working_size([probe(SAMPLES / "cockatoo.mp4")], SIZE, preset.default_size, 32)
    assert (height, width) == SIZE
    layout = Layout.build([VideoEntry("cockatoo.mp4", 25.0, len(clip), 160, 128)], preset.model.clip_len)
    fc_dim = choose_fc_dim(preset, preset.model, height, width, layout.total_frames * height * width)
    assert preset.min_fc_dim <= fc_dim <= preset.max_fc_dim
    model_cfg = dataclasses.replace(preset.model, fc_dim=fc_dim)

    keys = np.stack([clip[f] for _, f in layout.keyframes])
    decoded = decode_keyframes(
        encode_keyframes(keys, preset.keyframes), preset.keyframes.codec, height, width, preset.keyframes.gop
    )
    torch.manual_seed(0)
    model = DNeRV(model_cfg, height, width)
    model.set_normalization((decoded.reshape(-1, 3).mean(0) / 255).tolist(), [0.25] * 3)
    fit = dataclasses.replace(preset.fit, epochs=1, time_limit=None)
    trainer = Trainer(model, ClipData(layout, [clip], decoded), fit, torch.device("cpu"))
    before = {k: v.clone() for k, v in model.learned_state().items()}

    model.train()
    batches = trainer._batches()
    for step in range(2):
        lr = learning_rate(fit, step / 2)
        assert lr > 0
        loss, mse = trainer.train_step(next(batches), lr)
        trainer.step += 1
        assert math.isfinite(float(loss)) and math.isfinite(float(mse)), f"{name}: step {step} diverged"
    after = model.learned_state()
    assert all(torch.isfinite(v).all() for v in after.values())
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed, f"{name}: no parameter moved in two steps"
    # the output head learns from the first step on (zero-initialised residual heads included)
    assert any(k.startswith("head.") for k in changed), changed
