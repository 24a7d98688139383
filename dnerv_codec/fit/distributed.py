"""Multi-process fitting on PyTorch's own engine: torchrun starts the processes, this module joins
them into a process group (gloo on CPU, NCCL on CUDA) and offers the few collectives encode needs.

Each process reads its share of every global batch from the frame cache; gradients are averaged by
DistributedDataParallel. A single process (no torchrun) uses the same code with world = 1.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from ..device import resolve_device


@dataclass(frozen=True)
class Dist:
    """Where this process stands: its global rank, the number of processes, its rank on this node."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def broadcast(self, obj):
        """Rank 0's `obj` on every rank (small Python objects: keyframe bytes, settings)."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def agree(self, elapsed: float, stop: bool) -> tuple[float, bool]:
        """The longest elapsed time and whether any process was asked to stop (Ctrl-C), so that
        all processes follow one clock and leave the loop at the same step."""
        if not self.enabled:
            return elapsed, stop
        # gloo reduces CPU tensors; NCCL needs them on this process's GPU
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
        t = torch.tensor([elapsed, float(stop)], dtype=torch.float64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return float(t[0]), bool(t[1] > 0)


def from_environment() -> Dist:
    """The process group torchrun describes in the environment, or a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    return Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def start(ctx: Dist, device_name: str) -> torch.device:
    """Join the process group (if any) and pick this process's device: with CUDA, GPU local_rank
    and NCCL; on the CPU, gloo. A broken peer ends every rank within `timeout`, never a hang."""
    device = resolve_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank if ctx.enabled else (device.index or 0))
        torch.cuda.set_device(device)
    if ctx.enabled and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=timedelta(minutes=10))
    return device


def stop(ctx: Dist) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def launch(nproc: int, argv: list[str]) -> int:
    """`dnerv encode --nproc N ...`: run the same command under torchrun on this machine."""
    from torch.distributed.run import main as torchrun

    args = ["--standalone", f"--nproc-per-node={nproc}", "-m", "dnerv_codec", *argv]
    try:
        torchrun(args)
    except SystemExit as exc:  # torchrun exits with the failed worker's code
        return int(exc.code or 0)
    except Exception as exc:  # ChildFailedError: a worker failed; its own message is above
        print(f"error: a worker process failed: {type(exc).__name__}", file=sys.stderr)
        return 1
    return 0
