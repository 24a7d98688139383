"""Clips per second through a torch DataLoader: a dnerv archive vs the same clips in H.264 files.

    .venv/bin/python benchmarks/dataloader.py                      # encodes its own archive first
    .venv/bin/python benchmarks/dataloader.py --archive my.dnv     # or reuses one (same videos)

1. The archive: `--archive` (default out/bench/dataloader.dnv) is reused when it exists and holds
   the same videos; otherwise it is encoded with --preset (fast) and --time-limit minutes of fit.
2. Its quality: mean per-frame RGB PSNR of every decoded clip against the input frames (the
   project's metric), and its size.
3. H.264 at equal quality: each video coded with x264 (PyAV, preset medium, yuv420p, .mp4) for
   each GOP in --gops; for each GOP the largest integer CRF whose PSNR reaches the archive's
   (a bracketing search), so H.264 is at least as good as the archive and as small as the search allows.
   GOP 250 is x264's default (a clip in the middle of a video decodes from the previous keyframe);
   GOP = the clip length makes every clip start on a keyframe, as every dnerv clip decodes alone.
4. Loading: one shuffled epoch over every clip with DataLoader(batch_size, num_workers=w) for each
   store and each w in --workers, timed from the loader's creation (worker start-up included);
   items are the same for all stores: frames uint8 [T, H, W, 3] padded to T, plus mask / length.
   The dnerv loader decodes each batch in one forward pass (ArchiveDataset.__getitems__).

Prints a table and writes JSON (default benchmarks/results/dataloader.json).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

import dnerv_codec as dn
from dnerv_codec.bench.machine import library_versions, machine_description, provenance
from dnerv_codec.device import resolve_device
from dnerv_codec.metrics import QualityMeter
from dnerv_codec.video.read import iter_frames

ROOT = Path(__file__).resolve().parent.parent


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the archive


def get_archive(args, files: list[Path]) -> tuple[Path, dict | None]:
    """The archive to test and, when this run encoded it, the encode report."""
    path = Path(args.archive)
    names = [f.name for f in files]
    if path.exists() and not args.reencode:
        found = [v.name for v in dn.open(path, "cpu").videos]
        if found == names:
            log(f"reusing {path} (same {len(names)} videos; --reencode to make it again)")
            return path, None
        log(f"{path} holds other videos ({', '.join(found[:3])}, ...); encoding it again")
    path.parent.mkdir(parents=True, exist_ok=True)
    log(f"encoding {len(files)} videos into {path}: preset {args.preset}, {args.time_limit} min of fit")
    report = dn.encode(files, path, preset=args.preset, time_limit=args.time_limit, force=True)
    log(f"  {report.bytes:,} bytes, PSNR {report.psnr:.2f} dB, {report.seconds:.0f} s")
    return path, report.to_json()


def read_references(files: list[Path], size: tuple[int, int]) -> list[np.ndarray]:
    return [np.stack(list(iter_frames(f, size))) for f in files]


def archive_psnr(path: Path, refs: list[np.ndarray], device: str) -> float:
    archive = dn.open(path, device)
    meter = QualityMeter(with_ms_ssim=False)
    for clip, frames in zip(archive.clips, archive.iter_clips(range(len(archive.clips)), 8), strict=True):
        meter.add(frames.numpy(), refs[clip.video][clip.start : clip.start + clip.length])
    return meter.mean_psnr()


# ---------------------------------------------------------------- H.264 at equal quality


def write_h264(path: Path, frames: np.ndarray, fps: float, crf: int, gop: int) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        options = {"crf": str(crf), "preset": "medium"}
        if gop <= 25:  # clip-aligned keyframes: no extra ones at scene cuts to shift them
            options["x264-params"] = "scenecut=0"
        stream.options = options
        stream.codec_context.gop_size = gop
        for i, frame in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p")
            vf.pts = i
            container.mux(stream.encode(vf))
        container.mux(stream.encode(None))


def read_h264(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def h264_store(files, refs, fps, folder: Path, crf: int, gop: int) -> tuple[float, int, list[Path]]:
    """Code every video at (crf, gop) into folder; (mean PSNR, total bytes, paths)."""
    folder.mkdir(parents=True, exist_ok=True)
    meter, paths = QualityMeter(with_ms_ssim=False), []
    for f, ref, rate in zip(files, refs, fps, strict=True):
        out = folder / f"{f.stem}.mp4"
        write_h264(out, ref, rate, crf, gop)
        decoded = read_h264(out)
        if decoded.shape != ref.shape:
            raise RuntimeError(f"{out}: decoded {decoded.shape}, expected {ref.shape}")
        meter.add(decoded, ref)
        paths.append(out)
    return meter.mean_psnr(), sum(p.stat().st_size for p in paths), paths


PSNR_PER_CRF = 0.5  # dB lost per CRF step, roughly (x264, these clips): sizes the search's steps


def search_crf(files, refs, fps, work: Path, target: float, gop: int, start: int = 36) -> dict:
    """The largest integer CRF in 0..51 whose PSNR >= target: steps sized by the PSNR gap, always
    inside the bracket (largest CRF known to pass, smallest known to fail) until it closes."""
    tried: dict[int, tuple[float, int, list[Path]]] = {}
    passing, failing = None, None  # largest passing and smallest failing CRF seen
    crf = start
    while True:
        if crf not in tried:
            tried[crf] = h264_store(files, refs, fps, work / f"gop{gop}_crf{crf}", crf, gop)
            log(f"  gop {gop} crf {crf}: {tried[crf][0]:.2f} dB, {tried[crf][1]:,} bytes")
        psnr = tried[crf][0]
        if psnr >= target:
            passing = crf if passing is None else max(passing, crf)
        else:
            failing = crf if failing is None else min(failing, crf)
        if passing == 51 or failing == 0 or (passing is not None and failing == passing + 1):
            break
        step = round((psnr - target) / PSNR_PER_CRF)
        crf = crf + (step if step else (1 if psnr >= target else -1))
        low = 0 if passing is None else passing + 1
        high = 51 if failing is None else failing - 1
        crf = min(max(crf, low), high)
    best = passing if passing is not None else 0  # nothing reaches the target: the best H.264 can do
    psnr, size, paths = tried[best]
    return {"gop": gop, "crf": best, "psnr": psnr, "bytes": size, "paths": paths, "tried": sorted(tried)}


class H264Clips(Dataset):
    """The archive's clips read from H.264 files: open, seek to the keyframe before the clip's
    first frame, decode up to its last frame. Items are shaped like ArchiveDataset's."""

    def __init__(self, paths: list[Path], clips, clip_len: int, fps: list[float]) -> None:
        self.paths = [str(p) for p in paths]
        self.items = [(c.video, c.start, c.length) for c in clips]
        self.clip_len, self.fps = clip_len, fps

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        video, start, length = self.items[index]
        frames: list[np.ndarray] = []
        with av.open(self.paths[video]) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if start > 0:
                container.seek(int(start / self.fps[video] / stream.time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                i = round(float(frame.pts * stream.time_base) * self.fps[video])
                if i >= start:
                    frames.append(frame.to_ndarray(format="rgb24"))
                if len(frames) == length:
                    break
        out = np.zeros((self.clip_len, *frames[0].shape), np.uint8)
        out[:length] = np.stack(frames)
        return {
            "frames": torch.from_numpy(out),
            "mask": torch.arange(self.clip_len) < length,
            "length": length,
            "video": video,
            "start": start,
            "index": index,
        }


# ---------------------------------------------------------------- loading


def time_loader(dataset: Dataset, batch_size: int, workers: int, context: str | None = None) -> dict:
    generator = torch.Generator().manual_seed(0)
    started = time.perf_counter()
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        generator=generator,
        multiprocessing_context=context if workers else None,
    )
    clips = frames = 0
    for batch in loader:
        clips += len(batch["index"])
        frames += int(batch["length"].sum())
    seconds = time.perf_counter() - started
    return {"clips": clips, "frames": frames, "seconds": seconds, "clips_per_s": clips / seconds}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=Path, default=ROOT.parent / "shared" / "data" / "videos")
    parser.add_argument("--archive", type=Path, default=ROOT / "out" / "bench" / "dataloader.dnv")
    parser.add_argument("--reencode", action="store_true", help="encode even when --archive exists")
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--time-limit", type=float, default=1.0, help="minutes of fit")
    parser.add_argument("--gops", type=int, nargs="+", default=[250, 8])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="auto", help="where the dnerv loader decodes")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads of the main process (default: torch's)"
    )
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "dataloader.json")
    return parser.parse_args()


def match_h264(args, files, refs, fps, folder: Path, target: float) -> list[dict]:
    """For each of --gops, the x264 files (in `folder`) whose CRF reaches the archive's PSNR."""
    h264: list[dict] = []
    for gop in args.gops:
        log(f"searching the x264 CRF that reaches {target:.2f} dB with GOP {gop}")
        start = h264[-1]["crf"] if h264 else 36
        h264.append(search_crf(files, refs, fps, folder, target, gop, start))
    return h264


def time_stores(
    args, archive, path: Path, size: int, target: float, h264: list[dict], device: str
) -> list[dict]:
    """Load every clip from the archive and from each H.264 store, with each of --workers."""
    clips, fps = archive.clips, [v.fps for v in archive.videos]
    height, width = archive.size
    pixels = archive.layout.total_frames * height * width
    # A fresh dataset per run, so that no run starts with a network another one built.
    stores = [("dnerv", size, target, lambda: dn.ArchiveDataset(path, labels=None, device=device))]
    for h in h264:
        make = lambda h=h: H264Clips(h["paths"], clips, archive.layout.clip_len, fps)  # noqa: E731
        stores.append((f"h264 gop {h['gop']} crf {h['crf']}", h["bytes"], h["psnr"], make))
    results = []
    for name, nbytes, psnr, make in stores:
        for workers in args.workers:
            # CUDA cannot be used in forked workers once the parent has used it: spawn them
            ctx = "spawn" if device.startswith("cuda") and workers else None
            log(f"loading {len(clips)} clips from {name} with {workers} worker(s)")
            r = time_loader(make(), args.batch_size, workers, ctx)
            r.update(store=name, workers=workers, bytes=nbytes, bpp=8 * nbytes / pixels, psnr=psnr)
            results.append(r)
            log(f"  {r['clips_per_s']:.1f} clips/s ({r['seconds']:.1f} s)")
    return results


def print_table(doc: dict) -> None:
    print(
        f"{doc['clips']} clips of {doc['clip_len']} frames at {doc['height']}x{doc['width']} "
        f"({len(doc['videos'])} videos, {doc['frames']} frames); batch {doc['batch_size']}, shuffled; "
        f"{doc['machine']['cores']} CPUs, dnerv decodes on {doc['machine']['decode_device']}"
    )
    print(f"{'store':<24} {'bytes':>11} {'bpp':>7} {'PSNR dB':>8} {'workers':>7} {'clips/s':>8}")
    for r in doc["loaders"]:
        print(
            f"{r['store']:<24} {r['bytes']:>11,} {r['bpp']:>7.4f} {r['psnr']:>8.2f} "
            f"{r['workers']:>7} {r['clips_per_s']:>8.1f}"
        )
    print(f"(source files, H.264 4:4:4 CRF 10: {doc['source_bytes']:,} bytes; {doc['seconds']:.0f} s in all)")


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)

    files = sorted(p for p in args.videos.glob("*.mp4") if p.is_file())
    if not files:
        sys.exit(f"no .mp4 files in {args.videos}")
    path, encode_report = get_archive(args, files)
    archive = dn.open(path, "cpu")
    height, width = archive.size
    clips, fps = archive.clips, [v.fps for v in archive.videos]
    device = str(resolve_device(args.device))

    log("reading the reference frames")
    refs = read_references(files, (height, width))
    if encode_report is not None:  # measured by encode on the same frames (iter_frames at this size)
        target = encode_report["psnr"]
    else:
        log("measuring the archive")
        target = archive_psnr(path, refs, device)
    size = path.stat().st_size
    log(f"  archive: {size:,} bytes, PSNR {target:.2f} dB over {len(clips)} clips")
    with tempfile.TemporaryDirectory(prefix="dnerv-bench-") as tmp:
        h264 = match_h264(args, files, refs, fps, Path(tmp), target)
        del refs
        results = time_stores(args, archive, path, size, target, h264, device)

    source_bytes = sum(f.stat().st_size for f in files)
    doc = {
        "videos": [f.name for f in files],
        "clips": len(clips),
        "clip_len": archive.layout.clip_len,
        "frames": archive.layout.total_frames,
        "height": height,
        "width": width,
        "batch_size": args.batch_size,
        "archive": {"path": str(path), "bytes": size, "psnr": target, "encode": encode_report},
        "h264": [{k: v for k, v in h.items() if k != "paths"} for h in h264],
        "source_bytes": source_bytes,
        "loaders": results,
        "provenance": provenance(),
        "machine": {**machine_description(), "decode_device": device, "load_average": os.getloadavg()},
        "versions": library_versions(),
        "seconds": time.perf_counter() - started,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=2) + "\n")

    print_table(doc)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
