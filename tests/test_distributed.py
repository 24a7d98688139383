"""Fitting on several processes (torchrun / DistributedDataParallel, gloo on the CPU)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dnerv_codec.clips import Layout, VideoEntry
from dnerv_codec.config import FitConfig, ModelConfig
from dnerv_codec.decode import Archive
from dnerv_codec.fit.data import ClipData
from dnerv_codec.fit.distributed import Dist
from dnerv_codec.fit.trainer import Trainer
from dnerv_codec.model.dnerv import DNeRV
from dnerv_codec.video.read import iter_frames

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "samples" / "shepard1906.mp4"
CFG = ModelConfig(fc_dim=8, enc_dim=4, stem_hidden=8, pe_levels=4, min_width=4, strides=(2, 2, 2, 2))
STEPS = 5


def _data() -> ClipData:
    frames = np.stack(list(iter_frames(CLIP, (32, 32))))[:20]  # clips of 8, 8 and 4 frames
    layout = Layout.build([VideoEntry("shepard", 25.0, len(frames), 32, 32)], CFG.clip_len)
    keys = np.stack([frames[f] for _, f in layout.keyframes])
    return ClipData(layout, [frames], keys)


def _fit(ctx: Dist) -> dict[str, torch.Tensor]:
    """STEPS steps with a global batch of 2 clips (3 clips: every other step, one process has none)."""
    torch.manual_seed(0)
    model = DNeRV(CFG, 32, 32)
    trainer = Trainer(
        model, _data(), FitConfig(epochs=100, batch_size=2, lr=1e-2, seed=3), torch.device("cpu"), ctx
    )
    batches = trainer._batches()
    for _ in range(STEPS):
        trainer.train_step(next(batches), lr=1e-2)
        trainer.step += 1
    return {k: v.clone() for k, v in model.learned_state().items()}


def _worker(rank: int, world: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        state = _fit(Dist(rank, world, rank))
        if rank == 0:
            np.savez(out, **{k: v.numpy() for k, v in state.items()})
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_fit_matches_one_process(tmp_path):
    out = tmp_path / "two.npz"
    mp.spawn(_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    two = np.load(out, allow_pickle=False)
    one = _fit(Dist())
    assert set(two.files) == set(one)
    moved = 0
    for name, value in one.items():
        np.testing.assert_allclose(two[name], value.numpy(), rtol=1e-4, atol=1e-6, err_msg=name)
        moved += int(not np.array_equal(value.numpy(), DNeRV(CFG, 32, 32).learned_state()[name].numpy()))
    assert moved > 0  # the fit really changed the weights


@pytest.mark.skipif(sys.platform != "linux", reason="torchrun rendezvous on localhost")
def test_nproc_two_writes_an_archive_that_decodes(tmp_path):
    out = tmp_path / "two.dnv"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [
        sys.executable,
        "-m",
        "dnerv_codec",
        "encode",
        str(CLIP),
        "-o",
        str(out),
        "--preset",
        "tiny",
        "--size",
        "32x32",
        "--epochs",
        "2",
        "--nproc",
        "2",
        "--json",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["frames"] == 24 and out.stat().st_size == report["bytes"]
    assert report["processes"] == 2  # both took part in the fit (a fit that ignored --nproc says 1)
    archive = Archive(out, "cpu")
    frames = torch.cat([archive.decode_clip(c.index) for c in archive.clips])
    assert frames.shape == (24, 32, 32, 3)
    assert not list(tmp_path.glob("two.dnv.*"))  # no checkpoint or cache left behind
