"""Fitting throughput with 1 and 2 processes (DistributedDataParallel; gloo on the CPU, NCCL on
CUDA GPUs when there are at least 2), measured side by side in one run on the same clips.

    .venv/bin/python benchmarks/distributed.py [--size 128x160] [--steps 20] [--batch 4]

The global batch is the same for every process count, so N processes each fit batch/N clips per
step. Frames per second = global batch x frames per clip x steps / seconds, after 3 warm-up steps.
On a 2-core CPU each process gets one thread (as torchrun sets OMP_NUM_THREADS=1). Prints a
table and writes benchmarks/results/distributed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dnerv_codec.bench.machine import library_versions, machine_description, provenance  # noqa: E402
from dnerv_codec.clips import Layout, VideoEntry  # noqa: E402
from dnerv_codec.config import PRESETS, FitConfig  # noqa: E402
from dnerv_codec.fit.data import ClipData  # noqa: E402
from dnerv_codec.fit.distributed import Dist  # noqa: E402
from dnerv_codec.fit.trainer import Trainer  # noqa: E402
from dnerv_codec.model.dnerv import DNeRV  # noqa: E402
from dnerv_codec.video.read import iter_frames  # noqa: E402

VIDEOS = Path(os.environ.get("DNERV_VIDEOS", ROOT.parent / "shared" / "data" / "videos"))
WARMUP = 3


def load(size: tuple[int, int]) -> ClipData:
    videos = sorted(VIDEOS.glob("*.mp4"))[:4] or sorted((ROOT / "samples").glob("*.mp4"))
    frames = [np.stack(list(iter_frames(v, size))) for v in videos]
    entries = [
        VideoEntry(v.name, 25.0, len(f), size[1], size[0]) for v, f in zip(videos, frames, strict=True)
    ]
    layout = Layout.build(entries, 8)
    keys = np.stack([frames[v][f] for v, f in layout.keyframes])
    return ClipData(layout, frames, keys)


def run(rank: int, world: int, port: int, args, out: dict) -> None:
    cuda = torch.cuda.device_count() >= world and world > 1 or (world == 1 and torch.cuda.is_available())
    device = torch.device("cuda", rank) if cuda else torch.device("cpu")
    if not cuda:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    ctx = Dist(rank, world, rank)
    if world > 1:
        backend = "nccl" if cuda else "gloo"
        dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    size = tuple(int(x) for x in args.size.split("x"))
    torch.manual_seed(0)
    model = DNeRV(PRESETS["default"].model, *size).to(device)
    trainer = Trainer(model, load(size), FitConfig(epochs=1000, batch_size=args.batch), device, ctx)
    batches = trainer._batches()
    for i in range(WARMUP + args.steps):
        if i == WARMUP:
            if cuda:
                torch.cuda.synchronize()
            if world > 1:
                dist.barrier()
            start = time.perf_counter()
        trainer.train_step(next(batches), lr=1e-3)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    if rank == 0:
        out["fps"] = args.batch * 8 * args.steps / seconds
        out["device"] = device.type
    if world > 1:
        dist.destroy_process_group()


def measure(world: int, args) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    manager = mp.Manager()
    out = manager.dict()
    mp.spawn(run, args=(world, port, args, out), nprocs=world, join=True)
    return dict(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="128x160")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "distributed.json")
    args = parser.parse_args()
    rows = []
    for world in (1, 2):
        result = measure(world, args)
        rows.append({"processes": world, **result})
        print(f"{world} process(es) on {result['device']}: {result['fps']:.1f} frames/s", flush=True)
    speedup = rows[1]["fps"] / rows[0]["fps"]
    print(f"2 vs 1 processes: {speedup:.2f}x")
    doc = {
        "size": args.size,
        "steps": args.steps,
        "global_batch": args.batch,
        "rows": rows,
        "speedup": speedup,
        "provenance": provenance(),
        "machine": machine_description(),
        "versions": library_versions(),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
