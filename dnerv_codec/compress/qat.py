"""The quantization-aware fine-tune, run on the trainer's own loop (Trainer.run: Ctrl-C at a step
boundary, progress reports) with the quantizer and the pruning masks in every step."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from ..config import QuantConfig
from ..fit.trainer import FitProgress, Schedule, Trainer
from .prune import apply_masks
from .quantize import quantized_values

FINETUNE_LR = 0.2  # peak learning rate of the fine-tune, times the fit's


class QuantHooks:
    """Trainer step hooks: the forward sees the fake-quantized weights, the optimizer updates the
    latent float weights with those gradients (straight through), pruned weights stay exactly 0."""

    def __init__(self, params: dict[str, torch.nn.Parameter], bits: dict[str, int], masks) -> None:
        self.params, self.bits, self.masks = params, bits, masks
        self.latent: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def before_forward(self) -> None:
        for name, p in self.params.items():
            self.latent[name] = p.detach().clone()
            p.copy_(quantized_values(p, self.bits[name]))

    @torch.no_grad()
    def before_step(self) -> None:
        for name, p in self.params.items():
            p.copy_(self.latent[name])
        apply_masks(self.params, self.masks)  # zero their gradients too: AdamW moments stay 0

    @torch.no_grad()
    def after_step(self) -> None:
        apply_masks(self.params, self.masks)


def finetune_budget(trainer: Trainer, quant: QuantConfig) -> tuple[int | None, float | None]:
    """(steps, seconds) of the fine-tune: QuantConfig.finetune_frac of the fit's configured epochs
    and time limit (None where the fit has none)."""
    cfg = trainer.cfg
    steps = seconds = None
    if cfg.epochs is not None:
        steps = max(1, round(quant.finetune_frac * cfg.epochs * trainer.steps_per_epoch))
    if cfg.time_limit is not None:
        seconds = quant.finetune_frac * 60 * cfg.time_limit
    return steps, seconds


def finetune(
    trainer: Trainer,
    quant: QuantConfig,
    hooks: QuantHooks,
    started: float,
    on_progress: Callable[[float], None] | None = None,
) -> int:
    """Fine-tune the trainer's model at a fifth of the fit's learning rate (no warm-up) with
    `hooks` in every step, until finetune_budget is spent; the seconds since `started` (the stage's
    start) count against it. Returns the steps taken."""
    cfg, first = trainer.cfg, trainer.step
    steps, seconds = finetune_budget(trainer, quant)
    spent, _ = trainer.dist.agree(trainer.clock() - started, False)  # one number on every process
    curve = dataclasses.replace(cfg, lr=cfg.lr * FINETUNE_LR, warmup_frac=0.0)
    schedule = Schedule(curve, steps, seconds, first_step=first, spent=spent)

    def report(p: FitProgress) -> None:
        if on_progress is not None:
            on_progress(p.fraction)

    trainer.run(report, schedule=schedule, hooks=hooks)
    return trainer.step - first
