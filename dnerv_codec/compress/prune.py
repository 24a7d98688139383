"""Global magnitude pruning of the network's weight tensors.

The conv and linear weights (ndim >= 2, at least MIN_PRUNE_NUMEL elements) are ranked together by
|w| and the smallest `sparsity` fraction of them set to exactly 0; biases and tiny tensors are left
alone. The masks are then kept fixed during fine-tuning (apply_masks after every optimizer step), and
since the quantizer keeps 0.0 on its grid the pruned weights are exactly 0 in the archive too, where
the entropy coder codes the spike at residual 0 cheaply.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

MIN_PRUNE_NUMEL = 64


def prunable(name: str, tensor: torch.Tensor) -> bool:
    """Whether global pruning touches this tensor: weights of ndim >= 2 that are not tiny."""
    return tensor.ndim >= 2 and tensor.numel() >= MIN_PRUNE_NUMEL and not name.endswith("bias")


def magnitude_masks(named: Iterable[tuple[str, torch.Tensor]], sparsity: float) -> dict[str, torch.Tensor]:
    """Boolean keep-masks (True = kept) for the prunable tensors, so that `sparsity` of all their
    elements together, the smallest in magnitude, are dropped (ties at the threshold: dropped)."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    tensors = {name: t.detach() for name, t in named if prunable(name, t)}
    if not tensors or sparsity == 0.0:
        return {name: torch.ones_like(t, dtype=torch.bool) for name, t in tensors.items()}
    flat = torch.cat([t.abs().flatten().float().cpu() for t in tensors.values()])
    drop = int(round(sparsity * flat.numel()))
    if drop == 0:
        return {name: torch.ones_like(t, dtype=torch.bool) for name, t in tensors.items()}
    threshold = torch.kthvalue(flat, drop).values.item()
    return {name: t.abs() > threshold for name, t in tensors.items()}


@torch.no_grad()
def apply_masks(params: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]) -> None:
    """Zero the pruned elements in place (also their gradients, when there are any)."""
    for name, mask in masks.items():
        p = params[name]
        p.mul_(mask)
        if isinstance(p, torch.nn.Parameter) and p.grad is not None:
            p.grad.mul_(mask)


def sparsity_of(params: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]) -> float:
    """Fraction of exact zeros among the masked tensors."""
    total = sum(params[n].numel() for n in masks)
    zeros = sum(int((params[n] == 0).sum()) for n in masks)
    return zeros / total if total else 0.0
