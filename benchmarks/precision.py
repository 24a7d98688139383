"""Decoding under bfloat16 autocast against float32: quality and speed on real video.

    .venv/bin/python benchmarks/precision.py ARCHIVE [--videos DIR] [--device auto] [--batch 4]

Decodes every clip of ARCHIVE (a trained one: an untrained network says nothing about quality)
twice through Archive.iter_clips, in float32 and under torch.autocast(bfloat16), on the device
(CUDA when present, else the CPU, where bfloat16 is emulated and slow: its speed there means
nothing). Prints frames/s of each, the PSNR of each against the source videos (read from --videos
at the archive's working size, as encode reads them) and the PSNR between the two.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dnerv_codec.decode import Archive  # noqa: E402
from dnerv_codec.malloc import keep_freed_memory  # noqa: E402
from dnerv_codec.video.read import iter_frames  # noqa: E402


def decode_all(archive: Archive, videos: list[int], batch: int, bf16: bool) -> tuple[list[np.ndarray], float]:
    """Every frame of the given videos, uint8 [n, H, W, 3] per video, and the seconds it took."""
    out, seconds = [], 0.0
    for v in videos:
        clips = archive.layout.video_clips(v)
        started = time.perf_counter()
        with torch.autocast(archive.device.type, torch.bfloat16, enabled=bf16):
            frames = [clip.numpy() for clip in archive.iter_clips(clips, batch_size=batch)]
        seconds += time.perf_counter() - started
        out.append(np.concatenate(frames))
    return out, seconds


def psnr(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """PSNR over all frames (one mean squared error over every pixel of every video)."""
    se = sum(float(((x.astype(np.float64) - y) ** 2).sum()) for x, y in zip(a, b, strict=True))
    return float(10 * np.log10(255**2 / max(se / sum(x.size for x in a), 1e-12)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("archive", type=Path)
    parser.add_argument("--videos", type=Path, default=ROOT.parent / "shared" / "data" / "videos")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args()
    keep_freed_memory()
    archive = Archive(args.archive, args.device)
    h, w = archive.size
    index = list(range(len(archive.videos)))
    sources = []
    for entry in archive.videos:
        path = args.videos / entry.name
        if not path.is_file():
            sys.exit(f"error: {path} not found: --videos must hold the archive's source videos")
        sources.append(np.stack(list(iter_frames(path, (h, w)))))
    frames = sum(len(s) for s in sources)
    fp32, fp32_s = decode_all(archive, index, args.batch, bf16=False)
    bf16, bf16_s = decode_all(archive, index, args.batch, bf16=True)
    print(f"{args.archive.name}: {frames} frames at {h}x{w} on {archive.device}, batches of {args.batch}")
    print(
        f"  float32:  {frames / fp32_s:8.1f} frames/s, PSNR {psnr(fp32, sources):.3f} dB against the source"
    )
    print(
        f"  bfloat16: {frames / bf16_s:8.1f} frames/s, PSNR {psnr(bf16, sources):.3f} dB against the source"
    )
    print(f"  bfloat16 against float32: {psnr(bf16, fp32):.2f} dB")


if __name__ == "__main__":
    main()
