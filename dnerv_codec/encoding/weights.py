"""Weights stage: the fitted network's parameters compressed (pruned, bit depths chosen within the
plan's budget, fine-tuned with fake quantization; compress/stage.py) or plainly quantized, and
packed into the archive's weight section (rank 0)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..compress.stage import CompressionResult, compress_weights, stage_active
from ..compress.weights import pack_state
from ..config import QuantConfig
from ..errors import Interrupted
from ..fit.distributed import Dist
from ..report import Reporter
from .fit import Fitted
from .keyframes import Keyframes
from .plan import Plan


@dataclass(frozen=True)
class Weights:
    blob: bytes  # the weight section
    quant: QuantConfig  # as written: with the chosen bit depths


def compress(
    fitted: Fitted, plan: Plan, keys: Keyframes, checkpoint: Path, ctx: Dist, reporter: Reporter
) -> Weights | None:
    """Every rank takes part in the fine-tune; rank 0 returns the packed weights, the others None."""
    quant = plan.configs.quant
    stage = _fine_tune(fitted, plan, keys, checkpoint, reporter) if stage_active(quant) else None
    if not ctx.is_main:
        return None
    if stage is None:
        state = {k: v.cpu() for k, v in fitted.trainer.net.learned_state().items()}
        return Weights(pack_state(state, quant.bits)[0], quant)
    depths = sorted(set(stage.bits.values()))
    reporter.info(
        f"weights: {len(stage.blob):,} bytes, {stage.sparsity:.0%} pruned, bit depths {depths}, "
        f"{stage.steps} fine-tune steps"
    )
    return Weights(stage.blob, stage.quant)


def _fine_tune(
    fitted: Fitted, plan: Plan, keys: Keyframes, checkpoint: Path, reporter: Reporter
) -> CompressionResult:
    """Prune, choose the bit depths, fine-tune with fake quantization."""
    with reporter.task("compressing weights", total=1.0) as task:
        try:
            keyframe_bytes = sum(len(b) for b in keys.blobs)
            budget = plan.weight_budget(keys.blobs)
            return compress_weights(fitted.trainer, plan.configs.quant, keyframe_bytes, task.update, budget)
        except KeyboardInterrupt:
            raise Interrupted(
                f"interrupted while compressing the weights; the last checkpoint is {checkpoint}; "
                "run the same command with --resume to continue"
            ) from None
