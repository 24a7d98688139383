"""The weight-compression stage after the fit: prune, choose bit depths, quantization-aware
fine-tune, quantize and entropy-code. Its one entry point is compress_weights.

    fitted weights ──► global magnitude pruning (prune.py; QuantConfig.sparsity; masks fixed from here on)
      ──► bit depth per tensor (bitdepth.py; QuantConfig.bit_choices)
      ──► fine-tune with the quantizer in the loop and the masks (qat.py, on the trainer's loop)
      ──► quantize + entropy-code (weights.py): the weights written are the fake-quantized ones optimised

The stage spans QuantConfig.finetune_frac of the fit budget (time limit, else steps); the fit gets
the rest (Trainer.budget_share, set by fit_share), so fit + stage stay within the time limit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from ..config import QuantConfig
from ..fit.trainer import Trainer
from .bitdepth import choose_bits
from .entropy import CodingReport
from .prune import apply_masks, magnitude_masks, sparsity_of
from .qat import QuantHooks, finetune, finetune_budget
from .weights import pack_state

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
    started = trainer.clock()
    params = dict(trainer.net.named_parameters())
    masks = magnitude_masks(params.items(), quant.sparsity) if quant.sparsity > 0 else {}
    apply_masks(params, masks)
    seconds = finetune_budget(trainer, quant)[1] if quant.finetune_frac > 0 else None
    deadline = started + MEASURE_SHARE * seconds if seconds is not None else None
    bits, _ = choose_bits(trainer, quant, other_bytes, deadline, weight_budget)
    steps = 0
    if quant.finetune_frac > 0:
        steps = finetune(trainer, quant, QuantHooks(params, bits, masks), started, on_progress)
    apply_masks(params, masks)
    state = {k: v.detach().cpu() for k, v in trainer.net.learned_state().items()}
    tensor_bits = tuple(bits[n] for n in state)
    uniform = all(b == quant.bits for b in tensor_bits)
    blob, report = pack_state(state, list(tensor_bits))
    return CompressionResult(
        blob=blob,
        quant=dataclasses.replace(quant, tensor_bits=None if uniform else tensor_bits),
        report=report,
        steps=steps,
        seconds=trainer.clock() - started,
        sparsity=sparsity_of(params, masks),
        bits=dict(zip(state, tensor_bits, strict=True)),
    )
