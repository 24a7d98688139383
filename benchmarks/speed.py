"""Fitting and decoding speed, time to the first frame, and peak memory of dnerv.

    .venv/bin/python benchmarks/speed.py                 # the full table (< 20 min on a 2-core CPU)
    .venv/bin/python benchmarks/speed.py --quick         # fewer steps and clips (a smoke run)

Working points: 128x160 and 256x320, each with
  * the reference implementation's network (config.REFERENCE_SHAPES: 480 frame-index features, stem
    hidden 512, content encoder 64, C0 = 64 / 166 with strides 4,2,2,2 / 4,2,2,2,2, stage 0 of
    C0 * 2 channels, lowest width 32, clips of 8 frames, no blend residual), and
  * dnerv's own "default" preset shape, with the fc_dim that encode would choose for the 8 shared
    videos (rate.choose_fc_dim over their 768 frames at that size).
Measurements, each in its own subprocess (so resident-memory peaks do not mix):
  fit      Trainer.train_step on real frames (the shared videos in an on-disk frame cache, read
           through fit.data.ClipData); frames/s of the median step after the warm-up ones. Keyframes are
           the raw frames (keyframe coding does not change the network's cost). Batch 2 at 128x160,
           1 at 256x320 (also 32 on CUDA, and bf16 autocast on CUDA as its own row).
  decode   (a) network only: RGB frames in memory from keyframes already decoded, batch 1 (one clip
           at a time) and batched; (b) Archive.iter_clips end to end (keyframes read and decoded from
           the archive too), batch 1 and batched; (c) as (b) for one clip at a time, plus writing an
           FFV1 .mkv with video.write.write_video. The archive is written by encode from the first
           video with the default preset's settings and the working point's network, briefly fitted.
  first    a cold `python -c` that opens the archive and decodes one random clip: wall time.
  memory   peak resident memory (VmHWM) of every subprocess above, and the flatness check: the same reference
           128x160 fit (a few steps) and the data pipeline over the same number of batches (16
           passes over every clip of 1x, one over 16x), on collections of 1x and 16x the frames
           (the same clips written repeatedly to the frame cache).
  side by side (with --published DIR, a checkout of github.com/boheumd/D-NeRV: its model.py and
           utils.py are imported from there, nothing of it is copied here): the published network and
           ours at the reference 128x160 shape, on the same inputs, in alternating subprocesses
           (--rounds of them): a training step (MSE, AdamW; batch 2) and decode (batch 1 and 4,
           inference mode). The published one runs with the default malloc, as its train.py does,
           and once more with the malloc setting dnerv uses (dnerv_codec/malloc.py), so the table
           separates that setting from the network's own speed. Its train.py also computes PSNR and
           MS-SSIM after every step; that is left out, in its favour.
On CUDA (found automatically) the fits and decodes run on the GPU; timings synchronize the device.

Prints a table and writes JSON (default benchmarks/results/speed.json).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VIDEOS = ROOT.parent / "shared" / "data" / "videos"  # the shared clips beside the checkout
POINTS = ((128, 160), (256, 320))
TRAINED_EPOCHS = 2  # the decode rows read a fitted, compressed network (its cost does not depend on it)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def maxrss_mb() -> float:
    """Peak resident memory of this process. On Linux, VmHWM of its own address space: ru_maxrss
    also counts the peak of the parent's address space at fork/exec (the kernel carries it over), so
    a subprocess started by a big parent reported the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB; macOS: bytes


# ------------------------------------------------------------------ shapes


def model_config(shape: str, height: int, width: int):
    from dnerv_codec.config import PRESETS, REFERENCE_SHAPES
    from dnerv_codec.rate import choose_fc_dim

    if shape == "reference":
        return REFERENCE_SHAPES[f"reference-{height}x{width}"]
    preset = PRESETS[shape]
    frames = 8 * 96  # the 8 shared videos
    fc = choose_fc_dim(preset, preset.model, height, width, frames * height * width)
    return dataclasses.replace(preset.model, fc_dim=fc)


# ------------------------------------------------------------------ data (parent process)


def build_cache(folder: Path, files: list[Path], size: tuple[int, int], repeat: int = 1) -> list[dict]:
    """Frame cache of the videos at `size`, each written `repeat` times as its own video."""
    from dnerv_codec.video.cache import write_frames
    from dnerv_codec.video.read import iter_frames

    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for f in files:
        first = folder / f"{len(entries):06d}.u8"
        count = write_frames(first, iter_frames(f, size), *size)
        entries.append({"name": f.name, "frames": count, "file": str(first)})
        for r in range(1, repeat):
            path = folder / f"{len(entries):06d}.u8"
            shutil.copyfile(first, path)
            entries.append({"name": f"{f.stem}-{r}{f.suffix}", "frames": count, "file": str(path)})
    return entries


def build_archive(path: Path, shape: str, size: tuple[int, int], video: Path, device) -> None:
    """An archive of one video written by encode with the default preset's settings (keyframes in
    groups of 8, bit depths chosen per tensor, the quantization-aware fine-tune) and this working
    point's network, fitted for TRAINED_EPOCHS: decoding reads real, compressed weights."""
    import dnerv_codec as dn

    cfg = model_config(shape, *size)
    dn.encode(
        video, path, preset="default", size=size, epochs=TRAINED_EPOCHS, model=cfg, fc_dim=cfg.fc_dim,
        device=str(device), force=True,
    )  # fmt: skip


# ------------------------------------------------------------------ workers (subprocesses)


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _step_seconds(step, warmup: int, steps: int, device) -> list[float]:
    """Seconds of each of `steps` calls step(i) after `warmup` untimed ones (the device synchronized)."""
    times = []
    for i in range(warmup + steps):
        _sync(device)
        started = time.perf_counter()
        step(i)
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - started)
    return times


def _clip_data(spec: dict):
    import numpy as np

    from dnerv_codec.clips import Layout, VideoEntry
    from dnerv_codec.fit.data import ClipData, read_frames
    from dnerv_codec.video.cache import open_frames, write_frames

    h, w = spec["size"]
    entries = spec["entries"]
    videos = [VideoEntry(e["name"], 25.0, e["frames"], w, h) for e in entries]
    layout = Layout.build(videos, spec.get("clip_len", 8))
    frames = [open_frames(Path(e["file"]), h, w) for e in entries]
    # copied with file reads, so that setting up does not map the cache's pages into this process
    keyframes = (read_frames(frames[v], f, 1)[0] for v, f in layout.keyframes)
    if spec.get("keyframes") == "memmap":  # decoded keyframes in their own cache file
        path = Path(spec["workdir"]) / "keyframes.u8"
        write_frames(path, keyframes, h, w)
        keys = open_frames(path, h, w)
    else:  # in memory, as encode holds them today
        keys = np.stack(list(keyframes))
    return ClipData(layout, frames, keys)


def work_fit(spec: dict) -> dict:
    import torch

    from dnerv_codec.config import FitConfig
    from dnerv_codec.device import resolve_device
    from dnerv_codec.fit.prefetch import Prefetcher
    from dnerv_codec.fit.trainer import Trainer
    from dnerv_codec.model.dnerv import DNeRV

    device = resolve_device(spec.get("device", "auto"))
    h, w = spec["size"]
    cfg = model_config(spec["shape"], h, w)
    data = _clip_data(spec)
    torch.manual_seed(0)
    model = DNeRV(cfg, h, w).to(device)
    if spec.get("channels_last"):
        model.memory_format = torch.channels_last
    batch = spec["batch"]
    trainer = Trainer(model, data, FitConfig(epochs=1000, batch_size=batch), device)
    amp = spec.get("amp")
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0)).tolist()
    order = order * (1 + (batch * (spec["warmup"] + spec["steps"])) // len(order))
    model.train()
    losses, marks = [], []  # marks: (seconds reading batches, seconds waiting for them) so far
    # as Trainer.run reads them: ahead, in a thread
    batches = Prefetcher(iter(order[i : i + batch] for i in range(0, len(order), batch)), trainer.host_batch)

    def step(i: int) -> None:
        marks.append((batches.prepared_s, batches.waited_s))
        global_batch, host = next(batches)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bool(amp)):
            losses.append(trainer.train_step(global_batch, 1e-4, host)[0])

    with batches:
        steady = _step_seconds(step, spec["warmup"], spec["steps"], device)
        marks.append((batches.prepared_s, batches.waited_s))
    (read_0, wait_0), (read_1, wait_1) = marks[spec["warmup"]], marks[-1]
    frames = batch * cfg.clip_len
    return {
        # shares of the timed steps: reading batches (one a step, in the thread; a loop without
        # read-ahead would add this), and waiting for them
        "data_read_share": (read_1 - read_0) / sum(steady),
        "data_wait_share": (wait_1 - wait_0) / sum(steady),
        "params": sum(p.numel() for p in model.parameters()),
        "fc_dim": cfg.fc_dim,
        "device": str(device),
        "step_s": steady,
        "fps": frames / sorted(steady)[len(steady) // 2],  # the median step: the machine is shared
        "fps_best_step": frames / min(steady),
        "loss": float(losses[-1]),
        "maxrss_mb": maxrss_mb(),
    }


def work_epoch(spec: dict) -> dict:
    """spec["passes"] passes of the data pipeline (ClipData.batch + to_model_inputs) over every clip.

    The heap's peak creeps up with the number of batches (measured: 16 passes over 768 frames end
    as high as one over 12,288), so collections are compared over the same number of batches."""
    import torch

    from dnerv_codec.fit.trainer import to_model_inputs

    data = _clip_data(spec)
    batch, frames = spec["batch"], 0
    started = time.perf_counter()
    for _ in range(spec.get("passes", 1)):
        for b in range(0, len(data), batch):
            indices = list(range(b, min(b + batch, len(data))))
            inputs = to_model_inputs(data.batch(indices), torch.device("cpu"))
            frames += int(inputs["mask"].sum())
    seconds = time.perf_counter() - started
    return {"clips": len(data), "frames": frames, "fps": frames / seconds, "maxrss_mb": maxrss_mb()}


def work_decode(spec: dict) -> dict:
    import numpy as np
    import torch

    import dnerv_codec as dn
    from dnerv_codec.decode import to_uint8
    from dnerv_codec.video.write import write_video

    archive = dn.open(spec["archive"], spec.get("device", "auto"))
    device = archive.device
    model = archive.model
    if spec.get("channels_last"):
        model.memory_format = torch.channels_last
    n = len(archive.clips)
    clips = list(range(min(n, spec["clips"])))
    out: dict = {"device": str(device), "clips": len(clips)}

    def timed(fn, frames: int, repeats: int) -> float:
        fn()  # warm-up
        best = float("inf")
        for _ in range(repeats):
            _sync(device)
            started = time.perf_counter()
            fn()
            _sync(device)
            best = min(best, time.perf_counter() - started)
        return frames / best

    frames = sum(archive.clip(i).length for i in clips)
    repeats = spec.get("repeats", 2)
    # (a) network only, keyframes decoded beforehand
    prepared = {
        bs: [
            archive._clip_batch([archive.clip(i) for i in clips[b : b + bs]])
            for b in range(0, len(clips), bs)
        ]
        for bs in (1, spec["batch"])
    }

    def network(bs: int, amp: bool = False):
        outs = []
        with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=amp):
            for keys, t, w in prepared[bs]:
                outs.append(to_uint8(model(keys, t, w).float()))
        return outs

    out["network_b1_fps"] = timed(lambda: network(1), frames, repeats)
    out["network_batched_fps"] = timed(lambda: network(spec["batch"]), frames, repeats)
    if device.type == "cuda":
        out["network_batched_bf16_fps"] = timed(lambda: network(spec["batch"], True), frames, repeats)
        ref = torch.cat([o.float() for o in network(spec["batch"])])
        low = torch.cat([o.float() for o in network(spec["batch"], True)])
        mse = float((ref - low).square().mean()) / 255**2
        out["bf16_psnr_vs_fp32_db"] = -10 * np.log10(max(mse, 1e-12))
    # (b) end to end through the archive: keyframes read and decoded as well
    out["archive_b1_fps"] = timed(lambda: list(archive.iter_clips(clips, batch_size=1)), frames, repeats)
    out["archive_batched_fps"] = timed(
        lambda: list(archive.iter_clips(clips, batch_size=spec["batch"])), frames, repeats
    )
    # (c) including an FFV1 .mkv
    mkv = Path(spec["workdir"]) / "decoded.mkv"

    def to_mkv():
        write_video(mkv, (f for clip in archive.iter_clips(clips, batch_size=1) for f in clip.numpy()), 25.0)

    out["archive_mkv_fps"] = timed(to_mkv, frames, repeats)
    out["maxrss_mb"] = maxrss_mb()
    return out


def work_network(spec: dict) -> dict:
    """One network on synthetic inputs at the reference 128x160 shape: per-step seconds of training
    steps (MSE, AdamW) or inference-mode decodes. spec["impl"]: "dnerv" or "published"."""
    import torch
    import torch.nn.functional as F

    from dnerv_codec.device import resolve_device

    device = resolve_device(spec.get("device", "auto"))
    (h, w), b, t = spec["size"], spec["batch"], 8
    g = torch.Generator().manual_seed(0)
    keys = torch.rand(b, 2, 3, h, w, generator=g).to(device)
    pos, dist = torch.rand(b, t, generator=g).to(device), torch.rand(b, t, generator=g).to(device)
    target = torch.rand(b, t, 3, h, w, generator=g).to(device)
    torch.manual_seed(0)
    mean, std = [0.45] * 3, [0.25] * 3
    if spec["impl"] == "published":
        sys.path.insert(0, spec["code"])
        import model as published  # the checkout's model.py (imports its utils.py)
        import utils as published_utils

        net = published.DNeRV(
            embed_length=480,
            fc_hw="4_5",
            fc_dim=64,
            expansion=2,
            stride_list=[4, 2, 2, 2],
            lower_width=32,
            clip_size=t,
            device=str(device),
            dataset_mean=mean,
            dataset_std=std,
        ).to(device)
        embed = published_utils.PositionalEncoding("1.25_240")(pos).to(device)  # [B, 480, T]
        kf = ((keys - 0.45) / 0.25).permute(0, 2, 1, 3, 4).contiguous()  # [B, 3, 2, H, W], normalised
        target = target.permute(0, 2, 1, 3, 4)  # its output is [B, 3, T, H, W]
        forward = lambda: net(embed, kf, dist)  # noqa: E731
        optimizer = torch.optim.AdamW(net.parameters(), betas=(0.9, 0.999), eps=1e-8, weight_decay=0)
    else:
        from dnerv_codec.config import REFERENCE_SHAPES
        from dnerv_codec.model.dnerv import DNeRV

        net = DNeRV(REFERENCE_SHAPES[f"reference-{h}x{w}"], h, w).to(device)
        net.set_normalization(mean, std)
        forward = lambda: net(keys, pos, dist, clamp=spec["mode"] != "fit")  # noqa: E731
        # as fit.trainer.Trainer makes it
        optimizer = torch.optim.AdamW(net.parameters(), betas=(0.9, 0.999), weight_decay=0, fused=True)

    def step(_: int) -> None:
        if spec["mode"] == "fit":
            loss = F.mse_loss(forward(), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        else:
            with torch.inference_mode():
                forward()

    net.train(spec["mode"] == "fit")
    times = _step_seconds(step, spec["warmup"], spec["steps"], device)
    return {"step_s": times, "params": sum(p.numel() for p in net.parameters()), "maxrss_mb": maxrss_mb()}


WORKERS = {"fit": work_fit, "epoch": work_epoch, "decode": work_decode, "network": work_network}


def run_worker(spec: dict, threads: int | None) -> dict:
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode:
        raise RuntimeError(f"worker {spec['task']} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def first_frame(archive: Path, clip: int) -> dict:
    """Cold process: import, open the archive, decode one clip; wall time and peak memory."""
    code = (
        "import time, json; t0 = time.perf_counter()\n"
        "import dnerv_codec as dn\n"
        f"a = dn.open({str(archive)!r}); f = a.decode_clip({clip}); f[0].sum().item()\n"
        f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); from speed import maxrss_mb\n"
        "print(json.dumps({'inside_s': time.perf_counter() - t0, 'maxrss_mb': maxrss_mb()}))"
    )
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return {"wall_s": wall, "clip": clip} | json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--videos", type=Path, default=VIDEOS)
    parser.add_argument("--quick", action="store_true", help="fewer steps and clips")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of the workers")
    parser.add_argument("--skip-flat", action="store_true", help="skip the 1x / 16x memory check")
    parser.add_argument("--only-flat", action="store_true", help="only the 1x / 16x memory check")
    parser.add_argument(
        "--published", type=Path, help="a checkout of github.com/boheumd/D-NeRV: side by side"
    )
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of the side by side")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "speed.json")
    return parser.parse_args()


def run_as_worker(spec_json: str) -> None:
    """The subprocess side of run_worker: one measurement, printed as JSON."""
    from dnerv_codec.malloc import keep_freed_memory

    spec = json.loads(spec_json)
    if spec.get("malloc", True):
        keep_freed_memory()  # as the dnerv command does in its own process
    print(json.dumps(WORKERS[spec["task"]](spec)))


def measure_fits(args, base: dict, name: str, big: bool, cuda: bool) -> list[dict]:
    """Fit speed of one working point at each batch size (and bf16 on CUDA)."""
    fit_batches = [1 if big else 2] + ([32] if cuda else [])
    warm, steps = (1, 2) if args.quick else ((2, 3) if big else (2, 8))
    if cuda:
        warm, steps = 10, 30
    rows = []
    for batch in fit_batches:
        for amp in [False] + ([True] if cuda else []):
            log(f"fit {name} batch {batch}{' bf16' if amp else ''}: {warm} + {steps} steps")
            r = run_worker(
                base | {"task": "fit", "batch": batch, "warmup": warm, "steps": steps, "amp": amp},
                args.threads,
            )
            rows.append({"point": name, "what": f"fit b{batch}" + (" bf16" if amp else ""), **r})
            log(f"  {r['fps']:.2f} frames/s, {r['maxrss_mb']:.0f} MB")
    return rows


def measure_decode(args, base: dict, name: str, archive: Path, big: bool, cuda: bool) -> dict:
    """Decode speed of one working point's archive: network, archive, archive + .mkv."""
    n_clips = 12 if not args.quick else 4
    if big and not cuda:
        n_clips = 4 if not args.quick else 2
    log(f"decode {name}: {n_clips} clips")
    r = run_worker(
        base
        | {
            "task": "decode",
            "archive": str(archive),
            "clips": n_clips,
            "batch": 4 if not cuda else 12,
            "repeats": 1 if (big and not cuda) else 2,
        },
        args.threads,
    )
    log(
        f"  network b1 {r['network_b1_fps']:.1f}, batched {r['network_batched_fps']:.1f}, "
        f"archive b1 {r['archive_b1_fps']:.1f}, batched {r['archive_batched_fps']:.1f}, "
        f"+mkv {r['archive_mkv_fps']:.1f} frames/s"
    )
    return {"point": name, "what": "decode", **r}


def measure_first_frame(name: str, archive: Path) -> dict:
    """The faster of two cold processes that decode a random clip's first frame."""
    ff = [first_frame(archive, random.randrange(12)) for _ in range(2)]
    best = min(ff, key=lambda x: x["wall_s"])
    log(f"  first frame {best['wall_s']:.2f} s (cold process), {best['maxrss_mb']:.0f} MB")
    return {"point": name, "what": "first frame", **best, "all_wall_s": [x["wall_s"] for x in ff]}


def measure_points(args, work: Path, files: list[Path], device) -> list[dict]:
    """Fit, decode and first-frame rows of every working point (POINTS x reference/default)."""
    cuda = device.type == "cuda"
    rows = []
    for size in () if args.only_flat else POINTS:
        h, w = size
        log(f"frame cache at {h}x{w} ({len(files)} videos)")
        entries = build_cache(work / f"cache{h}", files, size)
        big = h >= 256
        for shape in ("reference", "default"):
            cfg = model_config(shape, h, w)
            name = f"{shape}-{h}x{w}"
            base = {
                "size": size,
                "entries": entries,
                "shape": shape,
                "workdir": str(work),
                "device": str(device),
            }
            fits = measure_fits(args, base, name, big, cuda)
            archive = work / f"{name}.dnv"
            build_archive(archive, shape, size, files[0], device)
            decode = measure_decode(args, base, name, archive, big, cuda)
            first = measure_first_frame(name, archive)
            decode["params"] = fits[-1].get("params")
            decode["fc_dim"] = cfg.fc_dim
            rows += [*fits, decode, first]
    return rows


def measure_flatness(args, work: Path, files: list[Path]) -> list[dict]:
    """Peak memory of a fit and of the data pipeline on the collection and on 16x it."""
    size = (128, 160)
    flat = []
    for repeat in (1, 16):
        entries = build_cache(work / f"flat{repeat}", files, size, repeat)
        n = sum(e["frames"] for e in entries)
        base = {
            "size": size,
            "entries": entries,
            "shape": "reference",
            "workdir": str(work / f"flat{repeat}"),
        }
        for keys in ("memory", "memmap"):
            log(f"memory flatness: {repeat}x ({n} frames), keyframes in {keys}")
            fit = run_worker(
                base
                | {"task": "fit", "batch": 2, "warmup": 1, "steps": 2, "keyframes": keys, "device": "cpu"},
                args.threads,
            )
            # the same number of batches for both: 16 passes over 1x, one over 16x
            epoch = run_worker(
                base | {"task": "epoch", "batch": 8, "keyframes": keys, "passes": 16 // repeat},
                args.threads,
            )
            flat.append(
                {
                    "repeat": repeat,
                    "frames": n,
                    "keyframes": keys,
                    "fit_maxrss_mb": fit["maxrss_mb"],
                    "epoch_maxrss_mb": epoch["maxrss_mb"],
                    "epoch_fps": epoch["fps"],
                }
            )
            log(f"  fit {fit['maxrss_mb']:.0f} MB, data epoch {epoch['maxrss_mb']:.0f} MB")
    return flat


def main() -> None:
    args = parse_args()
    if args.worker:
        run_as_worker(args.worker)
        return

    from dnerv_codec.bench.machine import library_versions, machine_description, provenance
    from dnerv_codec.device import resolve_device

    device = resolve_device(args.device)
    if args.published is not None and not (args.published / "model.py").is_file():
        sys.exit(f"--published {args.published}: no model.py there (a checkout of boheumd/D-NeRV)")
    started = time.perf_counter()
    files = sorted(p for p in args.videos.glob("*.mp4") if p.is_file())
    if not files:
        sys.exit(f"no .mp4 files in {args.videos}")
    random.seed(0)
    with tempfile.TemporaryDirectory(prefix="dnerv-speed-") as tmp:
        work = Path(tmp)
        rows = measure_points(args, work, files, device)
        flat = [] if args.skip_flat else measure_flatness(args, work, files)

    side = side_by_side(args, device) if args.published is not None else None
    doc = {
        "rows": rows,
        "flatness": flat,
        "side_by_side": side,
        "provenance": provenance(),
        "machine": {**machine_description(), "device": str(device), "load_average_end": os.getloadavg()},
        "versions": library_versions(),
        "quick": args.quick,
        "seconds": time.perf_counter() - started,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=2) + "\n")
    print_table(doc)
    print(f"wrote {args.json}")


SIDE_IMPLS = (  # (name, spec): the published network as its train.py runs it, then with our malloc
    ("published", {"impl": "published", "malloc": False}),
    ("published + dnerv malloc", {"impl": "published", "malloc": True}),
    ("dnerv", {"impl": "dnerv", "malloc": True}),
)
SIDE_MODES = (("fit b2", "fit", 2), ("decode b1", "decode", 1), ("decode b4", "decode", 4))


def side_by_side(args, device) -> dict:
    """Alternating subprocesses, round after round; per cell the median of the rounds' median steps,
    and its ratios to the published code's: of the medians, and the median of each round's ratio."""
    import statistics

    quick = args.quick
    steps = {"fit": (1, 3) if quick else (2, 6), "decode": (1, 5) if quick else (2, 12)}
    rounds = 1 if quick else args.rounds
    frames = {label: 8 * batch for label, _, batch in SIDE_MODES}
    runs: dict[tuple[str, str], list[float]] = {}  # (mode label, implementation): median step per round
    params = {}
    for r in range(rounds):
        for label, mode, batch in SIDE_MODES:
            for name, impl in SIDE_IMPLS:
                warm, n = steps[mode]
                spec = impl | {
                    "task": "network",
                    "code": str(args.published.resolve()),
                    "size": (128, 160),
                    "mode": mode,
                    "batch": batch,
                    "warmup": warm,
                    "steps": n,
                    "device": str(device),
                }
                out = run_worker(spec, args.threads)
                seconds = statistics.median(out["step_s"])
                runs.setdefault((label, name), []).append(seconds)
                params[name] = out["params"]
                log(
                    f"side by side, round {r + 1}/{rounds}: {name}, {label}: {frames[label] / seconds:.1f} frames/s"
                )
    cells = {}
    for (label, name), seconds in runs.items():
        cells.setdefault(label, {})[name] = {
            "fps": frames[label] / statistics.median(seconds),
            "round_fps": [frames[label] / x for x in seconds],
        }
    for row in cells.values():
        published = row["published"]
        for cell in row.values():
            cell["vs_published"] = cell["fps"] / published["fps"]  # ratio of the medians
            # Paired: each round's ratio, both measured within seconds of each other, so the
            # machine's drift over the run (up to 1.7x within minutes) cancels out.
            cell["round_ratios"] = [
                a / b for a, b in zip(cell["round_fps"], published["round_fps"], strict=True)
            ]
            cell["vs_published_paired"] = statistics.median(cell["round_ratios"])
    code = {"code": str(args.published), "commit": _commit_of(args.published)}
    return {**code, "rounds": rounds, "params": params, "cells": cells}


def _commit_of(checkout: Path) -> str | None:
    """The git commit of the published code's checkout (a `fetch` snapshot or a clone), if any."""
    out = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True)
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def _row_items(r: dict) -> list[tuple[str, float]]:
    """The (label, value) lines of one row of the table."""
    if r["what"].startswith("fit"):
        items = [(f"{r['what']} frames/s", r["fps"])]
        if "data_read_share" in r:
            items.append(("  reading data, % of step", 100 * r["data_read_share"]))
            items.append(("  waiting for data, % of step", 100 * r["data_wait_share"]))
        return items
    if r["what"] == "decode":
        items = [
            ("decode network b1 frames/s", r["network_b1_fps"]),
            ("decode network batched frames/s", r["network_batched_fps"]),
            ("decode archive b1 frames/s", r["archive_b1_fps"]),
            ("decode archive batched frames/s", r["archive_batched_fps"]),
            ("decode archive b1 + .mkv frames/s", r["archive_mkv_fps"]),
        ]
        if "network_batched_bf16_fps" in r:
            items.append(("decode network bf16 frames/s", r["network_batched_bf16_fps"]))
            items.append(("  bf16 vs fp32 PSNR dB", r["bf16_psnr_vs_fp32_db"]))
        return items
    return [("first frame, cold process s", r["wall_s"])]


def print_side_by_side(side: dict) -> None:
    names = [n for n, _ in SIDE_IMPLS]
    print(
        f"side by side, reference 128x160 ({side['rounds']} alternating rounds): frames/s "
        "(x published: ratio of the medians; median of the rounds' ratios, their range)"
    )
    print(f"{'':<12}" + "".join(f"{n:>38}" for n in names))
    for label, row in side["cells"].items():
        cells = [
            f"{c['fps']:.1f} ({c['vs_published']:.2f}x; {c['vs_published_paired']:.2f}x, "
            f"{min(c['round_ratios']):.2f}-{max(c['round_ratios']):.2f})"
            for c in (row[n] for n in names)
        ]
        print(f"{label:<12}" + "".join(f"{c:>38}" for c in cells))


def print_flatness(flatness: list[dict]) -> None:
    print("memory flatness (reference-128x160, batch 2): peak RSS MB")
    print(f"{'collection':<12} {'frames':>7} {'keyframes':<10} {'fit':>8} {'data epoch':>11}")
    for f in flatness:
        print(
            f"{str(f['repeat']) + 'x':<12} {f['frames']:>7} {f['keyframes']:<10} {f['fit_maxrss_mb']:>8.0f} {f['epoch_maxrss_mb']:>11.0f}"
        )


def print_table(doc: dict) -> None:
    m = doc["machine"]
    print(
        f"dnerv speed on {m['device']} ({m['gpu'] or str(m['cores']) + ' CPUs'}), torch {doc['versions']['torch']}; {doc['seconds']:.0f} s"
    )
    print(f"{'point':<20} {'params':>10} {'measure':<34} {'value':>10} {'peak RSS MB':>12}")
    for r in doc["rows"]:
        point, params = r["point"], f"{r.get('params') or 0:,}"
        for i, (label, value) in enumerate(_row_items(r)):
            rss = f"{r['maxrss_mb']:.0f}" if i == 0 else ""
            print(
                f"{point if i == 0 else '':<20} {params if i == 0 else '':>10} {label:<34} {value:>10.2f} {rss:>12}"
            )
    if doc.get("side_by_side"):
        print_side_by_side(doc["side_by_side"])
    if doc["flatness"]:
        print_flatness(doc["flatness"])


if __name__ == "__main__":
    main()
