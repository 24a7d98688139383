"""The first check on a CUDA machine, in one command of under 5 minutes on one GPU.

    .venv/bin/python benchmarks/gpu_check.py [--out DIR]    # default: benchmarks/results/gpu

1. the `gpu`-marked tests (`pytest -m gpu`: encode on CUDA, CUDA decode against the CPU's, batches,
   bfloat16 autocast, page-locked copies, ArchiveDataset on CUDA with workers);
2. a short encode of the bundled samples on CUDA (preset fast, 1 minute), then every clip decoded
   on CUDA in float32 and under bfloat16 autocast, each against the CPU decode of the same archive
   (PSNR) and timed (frames/s);
3. benchmarks/speed.py --quick on CUDA (its fit and decode rows; no memory-flatness check).

Prints one table and writes DIR/gpu_check.json (and speed.py's DIR/speed-gpu.json). Without a CUDA
device it says so and exits 1: nothing here means anything on a CPU.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import dnerv_codec as dn  # noqa: E402
from dnerv_codec.atomic import write_atomic  # noqa: E402
from dnerv_codec.bench.machine import library_versions, machine_description, provenance  # noqa: E402
from dnerv_codec.metrics import frame_psnr  # noqa: E402


def gpu_tests() -> dict:
    """`pytest -m gpu` in a subprocess: its closing line and exit status."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", str(ROOT / "tests")]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    lines = run.stdout.strip().splitlines()
    return {"returncode": run.returncode, "summary": lines[-1] if lines else run.stderr[-500:]}


def decode_timed(archive: dn.Archive, bf16: bool) -> tuple[np.ndarray, float]:
    """Every clip of the archive (batches of 4) and the frames per second it took."""
    torch.cuda.synchronize()
    started = time.perf_counter()
    with torch.autocast("cuda", torch.bfloat16, enabled=bf16):
        frames = np.concatenate([c.numpy() for c in archive.iter_clips(range(len(archive.clips)), 4)])
    torch.cuda.synchronize()
    return frames, len(frames) / (time.perf_counter() - started)


def encode_and_decode(work: Path) -> dict:
    """The samples encoded on CUDA, then decoded there in float32 and bfloat16 against the CPU."""
    out = work / "samples.dnv"
    started = time.perf_counter()
    report = dn.encode(ROOT / "samples", out, preset="fast", time_limit=1.0, device="cuda")
    encode_s = time.perf_counter() - started
    on_cpu = dn.open(out, "cpu")
    reference = np.concatenate([c.numpy() for c in on_cpu.iter_clips(range(len(on_cpu.clips)), 4)])
    archive = dn.open(out, "cuda")
    decode_timed(archive, False)  # warm-up: builds the network, cuDNN picks its kernels
    rows = {}
    for name, bf16 in (("float32", False), ("bfloat16", True)):
        frames, fps = decode_timed(archive, bf16)
        rows[name] = {"fps": fps, "psnr_vs_cpu": float(frame_psnr(frames, reference).mean())}
    return {"encode_seconds": encode_s, "report": report.to_json(), "decode": rows}


def speed_rows(out_dir: Path) -> dict:
    """benchmarks/speed.py --quick on CUDA, its JSON beside ours."""
    target = out_dir / "speed-gpu.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "speed.py"), "--quick", "--device", "cuda"]
    run = subprocess.run([*cmd, "--skip-flat", "--json", str(target)], capture_output=True, text=True)
    return {
        "returncode": run.returncode,
        "json": str(target),
        "tail": run.stdout[-2000:] + run.stderr[-1000:],
    }


def print_table(doc: dict) -> None:
    tests, coded, speed = doc["tests"], doc["encode_decode"], doc["speed"]
    print(f"gpu tests      {tests['summary']} (exit {tests['returncode']})")
    report = coded["report"]
    print(
        f"encode (cuda)  {coded['encode_seconds']:.1f} s, {report['bytes']:,} bytes, "
        f"{report['psnr']:.2f} dB ({report['gain_db']:+.2f} dB over the blend)"
    )
    for name, row in coded["decode"].items():
        print(
            f"decode {name:8s} {row['fps']:.1f} frames/s, {row['psnr_vs_cpu']:.2f} dB against the CPU decode"
        )
    print(f"speed.py       exit {speed['returncode']}, rows in {speed['json']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; run it on a machine with one", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        doc = {
            "provenance": provenance(),
            "machine": machine_description(),
            "versions": library_versions(),
            "tests": gpu_tests(),
            "encode_decode": encode_and_decode(Path(work)),
            "speed": speed_rows(args.out),
        }
    write_atomic(args.out / "gpu_check.json", json.dumps(doc, indent=1, default=str) + "\n")
    print_table(doc)
    return 0 if doc["tests"]["returncode"] == 0 and doc["speed"]["returncode"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
