import math

import pytest
import torch
from conftest import TINY_DNERV as CFG
from conftest import random_clip_data as _data

from dnerv_codec.config import FitConfig
from dnerv_codec.fit.data import epoch_order
from dnerv_codec.fit.trainer import Trainer, frame_losses, learning_rate
from dnerv_codec.model.dnerv import DNeRV


def test_learning_rate_warms_up_then_decays_to_zero():
    cfg = FitConfig(epochs=10, lr=1.0, warmup_frac=0.2)
    assert learning_rate(cfg, 0.0) == pytest.approx(0.1)
    assert learning_rate(cfg, 0.2) == pytest.approx(1.0)
    assert learning_rate(cfg, 0.6) == pytest.approx(0.5)
    assert learning_rate(cfg, 1.0) == pytest.approx(0.0, abs=1e-12)
    values = [learning_rate(cfg, p / 100) for p in range(20, 101)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


@pytest.mark.parametrize("kind", ["l1_ssim", "mse_ssim", "l1", "mse"])
def test_frame_losses_are_per_frame(kind):
    pred, target = torch.rand(5, 3, 16, 24), torch.rand(5, 3, 16, 24)
    whole = frame_losses(pred, target, kind)
    parts = torch.cat([frame_losses(pred[:2], target[:2], kind), frame_losses(pred[2:], target[2:], kind)])
    assert whole.shape == (5,)
    torch.testing.assert_close(whole, parts)
    assert frame_losses(target, target, kind).abs().max() < 1e-5


def test_epoch_order_depends_only_on_seed_and_epoch():
    assert torch.equal(epoch_order(10, 3, 2), epoch_order(10, 3, 2))
    assert not torch.equal(epoch_order(10, 3, 2), epoch_order(10, 3, 1))
    assert sorted(epoch_order(10, 3, 2).tolist()) == list(range(10))


def test_fit_lowers_the_loss_and_is_reproducible():
    data = _data()

    def run():
        torch.manual_seed(0)
        model = DNeRV(CFG, 16, 24)
        trainer = Trainer(model, data, FitConfig(epochs=6, batch_size=2, lr=1e-2), torch.device("cpu"))
        before = float(trainer.train_step([0, 1], lr=0.0)[0])
        trainer.step = 0
        result = trainer.run()
        after = float(trainer.train_step([0, 1], lr=0.0)[0])
        return before, after, result, [p.detach().clone() for p in model.parameters()]

    before, after, result, params = run()
    assert math.isfinite(result.loss) and result.steps == 6 * 3  # 5 clips in batches of 2
    assert after < before
    _, _, again, params_again = run()
    assert all(torch.equal(a, b) for a, b in zip(params, params_again, strict=True))
    assert again.loss == result.loss
