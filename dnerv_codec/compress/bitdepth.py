"""The bit depth of each learned tensor, chosen by measured rate and distortion.

Per tensor and depth: the coded size (empirical entropy of its levels + 2 bytes of scale per
channel) and the PSNR loss measured on a few clips with that one tensor at that depth; the depth
of least Lagrangian cost loss_dB + rd_slope * bytes / (archive bytes * ln 2) wins. Under a weight
budget (rate control) bytes are priced higher until the estimate fits, checked with the real coder.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..config import QuantConfig
from ..fit.trainer import Trainer, to_model_inputs
from .prune import prunable
from .quantize import quantized_parts, quantized_values
from .weights import pack_state

MEASURE_CLIPS = 4  # clips in the batch the bit-depth choice is measured on
CALIBRATION_ROUNDS = 3  # real codings of the whole network to bring a budgeted choice within budget

Table = dict[int, tuple[float, float]]  # depth: (coded bytes, PSNR loss dB)


def _measure_batch(trainer: Trainer) -> dict:
    n = len(trainer.data)
    idx = sorted({int(i) for i in np.linspace(0, n - 1, min(n, MEASURE_CLIPS)).round()})
    return to_model_inputs(trainer.data.batch(idx), trainer.device)


@torch.no_grad()
def _mse(trainer: Trainer, batch: dict) -> float:
    pred = trainer.net(batch["keyframes"], batch["t"], batch["w"], clamp=True)
    mask = batch["mask"]
    return float(F.mse_loss(pred[mask], batch["frames"][mask]))


def rate_bytes(w: torch.Tensor, bits: int) -> float:
    """Coded size estimate of one tensor at `bits`: the empirical entropy of its residuals (the
    coder lands within a few % of it) plus 2 bytes of bfloat16 scale per channel."""
    if w.numel() == 0:
        return 0.0
    residual, scale = quantized_parts(w, bits)
    counts = torch.unique(residual, return_counts=True)[1].to(torch.float64)
    entropy = float(-(counts * torch.log2(counts / counts.sum())).sum()) / 8
    return entropy + 2 * len(scale)


class _Choice:
    """What the choice works from: the latent weights, each tensor's size at the base depth, the
    tensors worth a choice (largest first) and the price of a byte in dB."""

    def __init__(self, trainer: Trainer, quant: QuantConfig, other_bytes: float) -> None:
        self.params = dict(trainer.net.named_parameters())
        self.latent = {n: p.detach().clone() for n, p in self.params.items()}
        self.quant = quant
        self.rates = {n: rate_bytes(w, quant.bits) for n, w in self.latent.items()}
        total = other_bytes + sum(self.rates.values())
        self.per_byte = quant.rd_slope / (total * math.log(2))  # dB a byte is worth
        worth = (n for n, p in self.params.items() if prunable(n, p))
        self.candidates = sorted(worth, key=lambda n: -self.params[n].numel())

    def set(self, name: str, bits: int) -> None:
        self.params[name].copy_(quantized_values(self.latent[name], bits))

    def restore(self) -> None:
        for n, p in self.params.items():
            p.copy_(self.latent[n])


def _measure(trainer: Trainer, choice: _Choice, deadline: float | None) -> dict[str, Table]:
    """Per candidate tensor (largest first, until the deadline): its Table, the others at the base depth."""
    quant = choice.quant
    for n in choice.params:
        choice.set(n, quant.bits)
    batch = _measure_batch(trainer)
    base = _mse(trainer, batch)
    measured: dict[str, Table] = {}
    for n in choice.candidates:
        if deadline is not None and trainer.clock() > deadline:
            break
        table = {quant.bits: (choice.rates[n], 0.0)}
        for b in sorted(set(quant.bit_choices) - {quant.bits}):
            choice.set(n, b)
            loss_db = 10 * math.log10(max(_mse(trainer, batch), 1e-12) / max(base, 1e-12))
            table[b] = (rate_bytes(choice.latent[n], b), loss_db)
        choice.set(n, quant.bits)
        measured[n] = table
    choice.restore()
    return measured


def _cheapest(table: Table, per_byte: float) -> int:
    return min(table, key=lambda b: table[b][1] + per_byte * table[b][0])


@torch.no_grad()
def choose_bits(
    trainer: Trainer,
    quant: QuantConfig,
    other_bytes: float,
    deadline: float | None,
    weight_budget: float | None = None,
) -> tuple[dict[str, int], dict[str, Table]]:
    """Bit depth per learned tensor, and the measurements (depth: (bytes, PSNR loss dB)) behind it.

    weight_budget (rate control): the estimated weight bytes must fit it; bytes are then priced
    higher until they do, and tensors the deadline left unmeasured take the lowest depth if needed."""
    bits = {n: quant.bits for n, _ in trainer.net.named_parameters()}
    if not set(quant.bit_choices) - {quant.bits}:
        return bits, {}
    choice = _Choice(trainer, quant, other_bytes)
    measured = _measure(trainer, choice, deadline)
    bits.update({n: _cheapest(table, choice.per_byte) for n, table in measured.items()})
    if weight_budget is not None:
        bits = _calibrate(trainer, choice, bits, measured, weight_budget)
    bits = trainer.dist.broadcast(bits)  # every process fine-tunes with rank 0's choice
    return bits, measured


def _calibrate(trainer, choice: _Choice, bits, measured, weight_budget: float) -> dict[str, int]:
    """Depths within weight_budget: the estimate leaves out the entropy models' own side information
    (it weighs most in small networks), so check with the real coder and lower the estimate's
    budget to match."""
    budget = weight_budget
    for _ in range(CALIBRATION_ROUNDS):
        bits = _fit_budget(choice, bits, measured, budget)
        state = {k: v.detach().cpu() for k, v in trainer.net.learned_state().items()}
        coded = len(pack_state(state, [bits[k] for k in state])[0])
        if coded <= weight_budget:
            break
        budget *= weight_budget / coded
    return bits


def _fit_budget(
    choice: _Choice, bits: dict[str, int], measured: dict[str, Table], budget: float
) -> dict[str, int]:
    """The cheapest-loss depths whose estimated bytes fit `budget`: the price of a byte is raised
    (bisection over a multiplier) until they fit; unmeasured tensors drop to the lowest depth last."""
    quant, lowest = choice.quant, min(choice.quant.bit_choices)
    fixed = sum(r for n, r in choice.rates.items() if n not in choice.candidates)

    def pick(mult: float, unmeasured_low: bool) -> tuple[dict[str, int], float]:
        out, total = dict(bits), fixed
        for n in choice.candidates:
            if n in measured:
                out[n] = _cheapest(measured[n], mult * choice.per_byte)
                total += measured[n][out[n]][0]
            else:
                out[n] = lowest if unmeasured_low else quant.bits
                total += rate_bytes(choice.latent[n], out[n]) if unmeasured_low else choice.rates[n]
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
