import dataclasses
import math

import pytest
import torch
from conftest import TINY_DNERV as CFG
from conftest import random_clip_data as _data

from dnerv_codec.config import FitConfig
from dnerv_codec.fit.data import epoch_order
from dnerv_codec.fit.trainer import Schedule, Trainer, frame_losses, learning_rate
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


@pytest.mark.parametrize("win", [11, 7, 3])
def test_ssim_matches_pytorch_msssim_values_and_gradients(win):
    from pytorch_msssim import ssim as reference

    from dnerv_codec.fit.ssim import ssim

    torch.manual_seed(0)
    target = torch.rand(3, 3, 20, 27)
    pred = (target + 0.1 * torch.randn_like(target)).requires_grad_()
    ours = ssim(pred, target, win)
    theirs = reference(pred, target, data_range=1.0, size_average=False, win_size=win)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    weights = torch.tensor([1.0, -2.0, 0.5])
    (g_ours,) = torch.autograd.grad((ours * weights).sum(), pred)
    (g_theirs,) = torch.autograd.grad((theirs * weights).sum(), pred)
    torch.testing.assert_close(g_ours, g_theirs, rtol=1e-4, atol=1e-7)


def test_ssim_statistics_stay_float32_under_autocast():
    from dnerv_codec.fit.ssim import ssim

    torch.manual_seed(0)
    target = torch.rand(2, 3, 16, 16)
    pred = target + 0.01 * torch.randn_like(target)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = ssim(pred, target)
    assert under.dtype == torch.float32
    torch.testing.assert_close(under, ssim(pred, target), rtol=0, atol=0)
    with pytest.raises(ValueError, match="win_size"):
        ssim(pred, target, win_size=17)


def test_train_step_loss_without_padded_frames_equals_the_masked_loss():
    data = _data(counts=(8, 8))  # clips of 4: every frame real
    torch.manual_seed(0)
    model = DNeRV(CFG, 16, 24)
    trainer = Trainer(model, data, FitConfig(epochs=1, batch_size=2), torch.device("cpu"))
    batch = data.batch([0, 3])
    assert bool(batch["mask"].all())
    frames = batch["frames"].float() / 255
    with torch.no_grad():
        pred = model(batch["keyframes"].float() / 255, batch["t"], batch["w"], clamp=False)
        mask = batch["mask"]
        expected = frame_losses(pred[mask], frames[mask], trainer.cfg.loss).mean()
    loss, _ = trainer.train_step([0, 3], lr=0.0)
    torch.testing.assert_close(loss, expected)


def test_run_with_batches_read_ahead_follows_the_plain_step_loop():
    data = _data()
    cfg = FitConfig(epochs=2, batch_size=2, lr=1e-2)

    def model():
        torch.manual_seed(0)
        return DNeRV(CFG, 16, 24)

    ahead = Trainer(model(), data, cfg, torch.device("cpu"))
    reports = []
    ahead.run(on_progress=reports.append)
    plain = Trainer(model(), data, cfg, torch.device("cpu"))
    batches = plain._batches()
    while (progress := plain.progress(0.0)) < 1.0:
        plain.train_step(next(batches), learning_rate(cfg, progress))
        plain.step += 1
    assert ahead.step == plain.step == 2 * 3
    for a, b in zip(ahead.net.parameters(), plain.net.parameters(), strict=True):
        assert torch.equal(a, b)
    assert reports and reports[-1].step == ahead.step  # the last step is always reported


def test_a_run_follows_its_schedule_and_hooks():
    """A second run with its own Schedule (the compression fine-tune's) takes exactly its steps
    from where the trainer stands, at the schedule's learning rates, with the hooks around every
    step, and leaves no hooks behind."""
    trainer = Trainer(
        DNeRV(CFG, 16, 24), _data(), FitConfig(epochs=1, batch_size=2, lr=1e-2), torch.device("cpu")
    )
    trainer.run()
    assert trainer.step == 3
    calls, rates = [], []

    class Hooks:
        def before_forward(self):
            calls.append("forward")
            rates.append(trainer.optimizer.param_groups[0]["lr"])

        def before_step(self):
            calls.append("step")

        def after_step(self):
            calls.append("after")

    curve = FitConfig(epochs=1, lr=0.5, warmup_frac=0.0)
    schedule = Schedule(curve, steps=4, seconds=None, first_step=trainer.step)
    reports = []
    trainer.run(reports.append, schedule=schedule, hooks=Hooks())
    assert trainer.step == 3 + 4 and trainer.hooks is None
    assert calls == ["forward", "step", "after"] * 4
    assert rates == [learning_rate(curve, k / 4) for k in range(4)]
    assert reports[-1].fraction == 1.0
    assert schedule.progress(5, 0.0) == 0.5
    assert Schedule(curve, steps=None, seconds=10.0).progress(0, 6.0) == 0.6


# ---------------------------------------------------------------- the clock: time limits, checkpoints


class _StepClock:
    """A clock that moves only when a step ends, by `per_step` seconds (no timed test)."""

    def __init__(self, trainer: Trainer, per_step: float) -> None:
        self.now, self.per_step = 1000.0, per_step
        trainer.clock = lambda: self.now
        real = trainer.train_step

        def train_step(*args, **kwargs):
            out = real(*args, **kwargs)
            self.now += per_step
            return out

        trainer.train_step = train_step


def _trainer(cfg: FitConfig, per_step: float) -> Trainer:
    torch.manual_seed(0)
    trainer = Trainer(DNeRV(CFG, 16, 24), _data(), cfg, torch.device("cpu"))
    _StepClock(trainer, per_step)
    return trainer


def test_time_limited_fit_stops_at_its_limit():
    # 0.5 minutes at 2 s a step: 15 steps, whatever the epochs allow (an upper bound)
    trainer = _trainer(FitConfig(epochs=100, time_limit=0.5, batch_size=2, lr=1e-2), per_step=2.0)
    result = trainer.run()
    assert result.steps == 15 and result.seconds == pytest.approx(30.0)
    trainer = _trainer(FitConfig(epochs=100, time_limit=0.5, batch_size=2), per_step=2.0)
    trainer.budget_share = 0.8  # the compression fine-tune takes the rest
    assert trainer.run().steps == 12


def test_periodic_checkpoints_come_every_checkpoint_min():
    cfg = FitConfig(epochs=4, batch_size=2, lr=1e-2, checkpoint_min=0.1)  # every 6 s
    trainer = _trainer(cfg, per_step=2.0)
    saved = []
    trainer.run(on_checkpoint=lambda: saved.append(trainer.step))
    assert saved == [4, 8, 12]  # 12 steps of 2 s: at the first step more than 6 s after the last save


class _Killed(BaseException):
    """Stands for kill -9: nothing after it runs."""


def test_resume_from_a_periodic_checkpoint_is_the_uninterrupted_fit():
    cfg = FitConfig(epochs=4, batch_size=2, lr=1e-2, checkpoint_min=0.1)
    whole = _trainer(cfg, per_step=2.0)
    whole.run()

    first = _trainer(cfg, per_step=2.0)
    kept = {}

    def save_then_die():
        kept.update(tensors=first.state_tensors(), step=first.step, elapsed=first.elapsed)
        raise _Killed

    with pytest.raises(_Killed):
        first.run(on_checkpoint=save_then_die)
    assert kept["step"] == 4

    resumed = _trainer(cfg, per_step=2.0)
    resumed.load_state({k: v.clone() for k, v in kept["tensors"].items()}, kept["step"], kept["elapsed"])
    assert resumed.run().steps == whole.step
    for a, b in zip(whole.net.parameters(), resumed.net.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("time_limit", [None, 0.5])
def test_progress_reports_frames_per_second_and_a_true_time_left(time_limit):
    """At a steady 2 s a step (the injected clock), the time left that progress reports is the
    real time left, for an epoch schedule (12 steps) and a time limit (15 steps) alike, from the
    first report on; frames/s is the frames fitted over the clock's seconds."""
    trainer = _trainer(FitConfig(epochs=4, time_limit=time_limit, batch_size=2, lr=1e-2), per_step=2.0)
    total_s = 24.0 if time_limit is None else 30.0
    if time_limit is not None:
        trainer.cfg = dataclasses.replace(trainer.cfg, epochs=100)  # the clock ends it
    reports = []
    trainer.run(on_progress=reports.append)
    assert len(reports) >= 2
    for p in reports[:-1]:
        assert p.eta == pytest.approx(total_s - p.elapsed, rel=1e-6)
    assert reports[-1].eta == pytest.approx(0.0, abs=1e-9)
    frames = sum(int(trainer.data.mask[b].sum()) for b in [[0, 1], [2, 3], [4]]) * (trainer.step // 3)
    assert reports[-1].frames_per_s == pytest.approx(frames / total_s)
