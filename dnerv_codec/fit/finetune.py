"""The weight-compression stage after the fit: prune, choose bit depths, quantization-aware fine-tune.

    fitted weights ──► global magnitude pruning (QuantConfig.sparsity; masks fixed from here on)
      ──► bit depth per tensor (QuantConfig.bit_choices): per tensor and depth, the coded size
          (empirical entropy of its levels + 2 bytes of scale per channel) and the PSNR loss
          measured on a few clips with that one tensor at that depth; pick by Lagrangian cost
          loss_dB + rd_slope * bytes / (archive bytes * ln 2)
      ──► fine-tune with the quantizer in the loop (straight-through estimator) and the masks
      ──► quantize + entropy-code: the weights written are the fake-quantized ones optimised

The stage spans QuantConfig.finetune_frac of the fit budget (time limit, else steps); the fit gets
the rest (Trainer.budget_share, set by fit_share), so fit + stage stay within the time limit.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..compress.entropy import CodingReport
from ..compress.prune import apply_masks, magnitude_masks, prunable, sparsity_of
from ..compress.quantize import quantized_parts, quantized_values
from ..compress.weights import pack_state
from ..config import QuantConfig
from .trainer import Trainer, learning_rate, to_model_inputs

FINETUNE_LR = 0.2  # peak learning rate of the fine-tune, times the fit's
MEASURE_CLIPS = 4  # clips in the batch the bit-depth choice is measured on
MEASURE_SHARE = 0.35  # at most this share of the stage's time goes to measuring bit depths


def stage_active(quant: QuantConfig) -> bool:
    return quant.finetune_frac > 0 or quant.sparsity > 0 or bool(quant.bit_choices)


def fit_share(quant: QuantConfig) -> float:
    """Share of the fit budget the fit itself gets (Trainer.budget_share)."""
    return 1.0 - quant.finetune_frac


@dataclass
class CompressionResult:
    blob: bytes
    quant: QuantConfig  # with tensor_bits when they differ
    report: CodingReport
    steps: int  # fine-tune steps
    seconds: float
    sparsity: float  # exact zeros among the prunable tensors
    bits: dict[str, int]


class _QuantHooks:
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


def _measure_batch(trainer: Trainer) -> dict:
    n = len(trainer.data)
    idx = sorted({int(i) for i in np.linspace(0, n - 1, min(n, MEASURE_CLIPS)).round()})
    return to_model_inputs(trainer.data.batch(idx), trainer.device)


@torch.no_grad()
def _mse(trainer: Trainer, batch: dict) -> float:
    pred = trainer.net(batch["keyframes"], batch["t"], batch["w"], clamp=True)
    mask = batch["mask"]
    return float(F.mse_loss(pred[mask], batch["frames"][mask]))


CALIBRATION_ROUNDS = 3  # real codings of the whole network to bring a budgeted choice within budget


def _rate_bytes(w: torch.Tensor, bits: int) -> float:
    """Coded size estimate of one tensor at `bits`: the empirical entropy of its residuals (the
    coder lands within a few % of it) plus 2 bytes of bfloat16 scale per channel."""
    if w.numel() == 0:
        return 0.0
    residual, scale = quantized_parts(w, bits)
    counts = torch.unique(residual, return_counts=True)[1].to(torch.float64)
    entropy = float(-(counts * torch.log2(counts / counts.sum())).sum()) / 8
    return entropy + 2 * len(scale)


@torch.no_grad()
def choose_bits(
    trainer: Trainer,
    quant: QuantConfig,
    other_bytes: float,
    deadline: float | None,
    weight_budget: float | None = None,
) -> tuple[dict[str, int], dict[str, dict[int, tuple[float, float]]]]:
    """Bit depth per learned tensor, and the measurements (depth: (bytes, PSNR loss dB)) behind it.

    weight_budget (rate control): the estimated weight bytes must fit it; bytes are then priced
    higher until they do, and tensors the deadline left unmeasured take the lowest depth if needed."""
    params = dict(trainer.net.named_parameters())
    bits = dict.fromkeys(params, quant.bits)
    choices = sorted(set(quant.bit_choices) - {quant.bits})
    if not choices:
        return bits, {}
    latent = {n: p.detach().clone() for n, p in params.items()}
    for n, p in params.items():
        p.copy_(quantized_values(latent[n], quant.bits))
    batch = _measure_batch(trainer)
    base = _mse(trainer, batch)
    rates = {n: _rate_bytes(latent[n], quant.bits) for n in params}
    total = other_bytes + sum(rates.values())
    per_byte = quant.rd_slope / (total * math.log(2))  # dB a byte is worth
    measured: dict[str, dict[int, tuple[float, float]]] = {}
    candidates = sorted((n for n in params if prunable(n, params[n])), key=lambda n: -params[n].numel())
    for n in candidates:
        if deadline is not None and time.monotonic() > deadline:
            break
        table = {quant.bits: (rates[n], 0.0)}
        for b in choices:
            params[n].copy_(quantized_values(latent[n], b))
            loss_db = 10 * math.log10(max(_mse(trainer, batch), 1e-12) / max(base, 1e-12))
            table[b] = (_rate_bytes(latent[n], b), loss_db)
        params[n].copy_(quantized_values(latent[n], quant.bits))
        measured[n] = table
        bits[n] = min(table, key=lambda b: table[b][1] + per_byte * table[b][0])
    for n, p in params.items():
        p.copy_(latent[n])
    if weight_budget is not None:
        budget = weight_budget
        for _ in range(CALIBRATION_ROUNDS):
            bits = _fit_budget(bits, measured, rates, latent, candidates, quant, per_byte, budget)
            # the estimate leaves out the entropy models' own side information (it weighs most in
            # small networks): check with the real coder and lower the estimate's budget to match
            state = {k: v.detach().cpu() for k, v in trainer.net.learned_state().items()}
            coded = len(pack_state(state, [bits[k] for k in state])[0])
            if coded <= weight_budget:
                break
            budget *= weight_budget / coded
    bits = trainer.dist.broadcast(bits)  # every process fine-tunes with rank 0's choice
    return bits, measured


def _fit_budget(bits, measured, rates, latent, candidates, quant, per_byte, budget) -> dict[str, int]:
    """The cheapest-loss depths whose estimated bytes fit `budget`: the price of a byte is raised
    (bisection over a multiplier) until they fit; unmeasured tensors drop to the lowest depth last."""
    lowest = min(quant.bit_choices)
    fixed = sum(r for n, r in rates.items() if n not in candidates)

    def pick(mult: float, unmeasured_low: bool) -> tuple[dict[str, int], float]:
        out, total = dict(bits), fixed
        for n in candidates:
            if n in measured:
                table = measured[n]
                out[n] = min(table, key=lambda b: table[b][1] + mult * per_byte * table[b][0])
                total += table[out[n]][0]
            else:
                out[n] = lowest if unmeasured_low else quant.bits
                total += _rate_bytes(latent[n], out[n]) if unmeasured_low else rates[n]
        return out, total

    for unmeasured_low in (False, True):
        out, total = pick(1.0, unmeasured_low)
        if total <= budget:
            return out
        lo, hi = 1.0, 1e9
        if pick(hi, unmeasured_low)[1] > budget:
            continue
        for _ in range(60):
            mid = (lo * hi) ** 0.5
            lo, hi = (lo, mid) if pick(mid, unmeasured_low)[1] <= budget else (mid, hi)
        return pick(hi, unmeasured_low)[0]
    return pick(1e9, True)[0]  # the smallest the choices allow


def compress_weights(
    trainer: Trainer,
    quant: QuantConfig,
    other_bytes: float = 0.0,
    on_progress: Callable[[float], None] | None = None,
    weight_budget: float | None = None,
) -> CompressionResult:
    """Run the stage on the trainer's model (modified in place: pruned, fine-tuned) and pack it.

    other_bytes: the rest of the archive (keyframes), which prices the weight bytes in the bit-depth
    choice. Every process of a distributed fit calls this; all but rank 0 may ignore the result."""
    started = time.monotonic()
    cfg = trainer.cfg
    params = dict(trainer.net.named_parameters())
    masks = magnitude_masks(params.items(), quant.sparsity) if quant.sparsity > 0 else {}
    apply_masks(params, masks)

    budget_steps = budget_s = None
    if quant.finetune_frac > 0:
        if cfg.epochs is not None:
            budget_steps = max(1, round(quant.finetune_frac * cfg.epochs * trainer.steps_per_epoch))
        if cfg.time_limit_min is not None:
            budget_s = quant.finetune_frac * 60 * cfg.time_limit_min
    measure_deadline = started + MEASURE_SHARE * budget_s if budget_s is not None else None
    bits, _ = choose_bits(trainer, quant, other_bytes, measure_deadline, weight_budget)

    steps = 0
    if quant.finetune_frac > 0:
        hooks = _QuantHooks(params, bits, masks)
        trainer.hooks = hooks
        trainer.net.train()
        schedule = dataclasses.replace(cfg, lr=cfg.lr * FINETUNE_LR, warmup_frac=0.0)
        batches = trainer.prefetched_batches()
        try:
            while True:
                elapsed, _ = trainer.dist.agree(time.monotonic() - started, False)
                parts = []
                if budget_steps is not None:
                    parts.append(steps / budget_steps)
                if budget_s is not None:
                    parts.append(elapsed / budget_s)
                progress = max(parts)
                if progress >= 1.0:
                    break
                global_batch, host = next(batches)
                trainer.train_step(global_batch, learning_rate(schedule, progress), host)
                trainer.step += 1
                steps += 1
                if on_progress is not None:
                    on_progress(min(progress, 1.0))
        finally:
            batches.close()
            trainer.hooks = None
            trainer.net.eval()
    apply_masks(params, masks)
    state = {k: v.detach().cpu() for k, v in trainer.net.learned_state().items()}
    tensor_bits = tuple(bits[n] for n in state)
    new_quant = dataclasses.replace(
        quant, tensor_bits=None if all(b == quant.bits for b in tensor_bits) else tensor_bits
    )
    blob, report = pack_state(state, list(tensor_bits))
    return CompressionResult(
        blob=blob,
        quant=new_quant,
        report=report,
        steps=steps,
        seconds=time.monotonic() - started,
        sparsity=sparsity_of(params, masks),
        bits=dict(zip(state, tensor_bits, strict=True)),
    )
