"""The CUDA paths against the CPU ones: an encode on the GPU, decoding there (one clip, batches,
bfloat16 autocast), page-locked batch copies and ArchiveDataset with workers. All skip without a
CUDA device; benchmarks/gpu_check.py runs them (`pytest -m gpu`) on the first machine with one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_video, moving_frames, random_clip_data
from torch.utils.data import DataLoader

import dnerv_codec as dn
from dnerv_codec.metrics import frame_psnr

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.fixture(scope="module")
def cuda_archive(tmp_path_factory):
    """An archive fitted on the GPU (tiny preset, two small videos)."""
    root = tmp_path_factory.mktemp("gpu")
    videos = [make_video(root / f"v{i}.mkv", moving_frames(12, 64, 64, seed=i)) for i in range(2)]
    out = root / "cuda.dnv"
    report = dn.encode(videos, out, preset="tiny", epochs=3, device="cuda")
    return out, report


def _all_clips(archive: dn.Archive, batch_size: int = 4) -> np.ndarray:
    return np.concatenate([c.numpy() for c in archive.iter_clips(range(len(archive.clips)), batch_size)])


def test_encode_on_cuda_writes_an_archive_the_cpu_decodes_alike(cuda_archive):
    path, report = cuda_archive
    assert report.device.startswith("cuda") and report.gain_db is not None
    on_cpu, on_gpu = _all_clips(dn.open(path, "cpu")), _all_clips(dn.open(path, "cuda"))
    assert np.abs(on_cpu.astype(int) - on_gpu.astype(int)).max() <= 1
    assert frame_psnr(on_gpu, on_cpu).min() > 50


def test_cuda_decode_batches_equal_single_clips(cuda_archive):
    archive = dn.open(cuda_archive[0], "cuda")
    batched = _all_clips(archive, batch_size=4)
    single = np.concatenate([archive.decode_clip(i).numpy() for i in range(len(archive.clips))])
    assert np.abs(batched.astype(int) - single.astype(int)).max() <= 1


def test_bfloat16_autocast_decode_stays_close_to_float32(cuda_archive):
    archive = dn.open(cuda_archive[0], "cuda")
    full = _all_clips(archive)
    with torch.autocast("cuda", torch.bfloat16):
        half = _all_clips(archive)
    assert frame_psnr(half, full).mean() > 40


def test_pinned_batches_hold_the_same_frames():
    data = random_clip_data()
    plain, pinned = data.batch([0, 1]), data.batch([0, 1], pin_memory=True)
    assert pinned["frames"].is_pinned() and pinned["keyframes"].is_pinned()  # the large ones
    for key, value in plain.items():
        assert torch.equal(value, pinned[key]), key
    moved = {k: v.to("cuda", non_blocking=True) for k, v in pinned.items()}
    torch.cuda.synchronize()
    assert all(torch.equal(moved[k].cpu(), plain[k]) for k in plain)


def test_archive_dataset_decodes_on_cuda_in_workers(cuda_archive):
    path = cuda_archive[0]
    cpu_items = [item["frames"] for item in dn.ArchiveDataset(path)]
    dataset = dn.ArchiveDataset(path, device="cuda")
    loader = DataLoader(dataset, batch_size=1, num_workers=2, multiprocessing_context="spawn")
    gpu_items = [batch["frames"][0] for batch in loader]
    assert len(gpu_items) == len(cpu_items)
    for a, b in zip(cpu_items, gpu_items, strict=True):
        assert a.device.type == b.device.type == "cpu"  # items come back on the CPU
        assert (a.int() - b.int()).abs().max() <= 1
