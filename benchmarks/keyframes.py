"""Keyframe stream: all-intra against inter-coded groups, HEVC / H.264 4:4:4 and AV1 4:2:0.

    .venv/bin/python benchmarks/keyframes.py             # the full table (about 10 min on 2 cores)
    .venv/bin/python benchmarks/keyframes.py --quick     # 2 videos, 3 CRFs (a smoke run)

The keyframes are those an archive holds (clips.keyframe_positions: every clip_len = 8 frames and
each video's last frame) of every video in --videos (default: the 8 shared clips), at the working
size (each video's own size; the shared clips are 256x320). Each setting codes every video's keyframes
with dnerv_codec.keyframes.encode_keyframes (exactly what `dnerv encode` stores: one blob per
keyframe; the keyframes of each video in groups of `gop`, an intra frame then P-frames) at each CRF
of its ladder, and decodes them back with decode_keyframes. Per point: rate = bytes per keyframe
(all blobs / all keyframes), quality = mean per-frame RGB PSNR of the decoded keyframes
(dnerv_codec.metrics.frame_psnr), and the random-access cost of one clip: mean keyframes decoded
and bytes read to get its two keyframes (keyframes.decode_spans). BD-rate (PCHIP, over the PSNR
range both curves cover) of every setting against hevc gop 1 (all-intra HEVC 4:4:4, the codec's
behaviour before groups existed). Encode / decode times are wall-clock on this machine (shared
CPUs slow them down) and informational only.

Prints a table and writes JSON (default benchmarks/results/keyframes.json).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dnerv_codec.bench.bdrate import bd_rate  # noqa: E402
from dnerv_codec.bench.machine import library_versions, machine_description, provenance  # noqa: E402
from dnerv_codec.clips import keyframe_positions  # noqa: E402
from dnerv_codec.config import KeyframeConfig  # noqa: E402
from dnerv_codec.keyframes import decode_keyframes, decode_spans, encode_keyframes  # noqa: E402
from dnerv_codec.metrics import frame_psnr  # noqa: E402
from dnerv_codec.video.read import iter_frames  # noqa: E402

CLIP_LEN = 8
LADDERS = {"hevc": (22, 26, 30, 34, 38), "h264": (22, 26, 30, 34, 38), "av1": (30, 36, 42, 48, 54)}
QUICK = {"hevc": (26, 30, 34), "h264": (26, 30, 34), "av1": (36, 42, 48)}
SETTINGS = [(c, g) for c in ("hevc", "h264", "av1") for g in (1, 4, 8)]
ANCHOR = ("hevc", 1)


def load_keyframes(paths: list[Path]) -> list[np.ndarray]:
    """Per video, its keyframes uint8 [K, H, W, 3] at the video's own size."""
    out = []
    for path in paths:
        frames = list(iter_frames(path))
        out.append(np.stack([frames[p] for p in keyframe_positions(len(frames), CLIP_LEN)]))
    return out


def measure(videos: list[np.ndarray], codec: str, gop: int, crf: int) -> dict:
    cfg = KeyframeConfig(codec=codec, quality=crf, gop=gop)
    total_bytes = keys = 0
    psnrs, encode_s, decode_s, intra, inter = [], 0.0, 0.0, [], []
    access_keys, access_bytes = [], []
    for keyframes in videos:
        _, h, w, _ = keyframes.shape
        t0 = time.perf_counter()
        blobs = encode_keyframes(keyframes, cfg)
        t1 = time.perf_counter()
        decoded = decode_keyframes(blobs, codec, h, w, gop)
        decode_s += time.perf_counter() - t1
        encode_s += t1 - t0
        sizes = [len(b) for b in blobs]
        total_bytes += sum(sizes)
        keys += len(blobs)
        psnrs.extend(frame_psnr(decoded, keyframes).tolist())
        for k, size in enumerate(sizes):
            (intra if k % gop == 0 else inter).append(size)
        for c in range(len(blobs) - 1):  # clip c uses keyframes c and c + 1 (the shared clips: 12 full clips)
            spans = decode_spans([c, c + 1], (0,), len(blobs), gop)
            access_keys.append(sum(len(s) for s in spans))
            access_bytes.append(sum(sizes[k] for s in spans for k in s))
    return {
        "codec": codec,
        "gop": gop,
        "crf": crf,
        "keyframes": keys,
        "bytes": total_bytes,
        "bytes_per_keyframe": total_bytes / keys,
        "psnr": float(np.mean(psnrs)),
        "intra_bytes": float(np.mean(intra)),
        "inter_bytes": float(np.mean(inter)) if inter else None,
        "clip_keyframes_decoded": float(np.mean(access_keys)),
        "clip_bytes_read": float(np.mean(access_bytes)),
        "encode_ms_per_keyframe": 1000 * encode_s / keys,
        "decode_ms_per_keyframe": 1000 * decode_s / keys,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--videos", type=Path, default=ROOT.parent / "shared" / "data" / "videos")
    parser.add_argument("--quick", action="store_true", help="2 videos, 3 CRFs")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "keyframes.json")
    args = parser.parse_args()

    paths = sorted(args.videos.glob("*.mp4"))[: 2 if args.quick else None]
    if not paths:
        sys.exit(f"no .mp4 videos in {args.videos}")
    videos = load_keyframes(paths)
    ladders = QUICK if args.quick else LADDERS
    points: dict[tuple[str, int], list[dict]] = {}
    for codec, gop in SETTINGS:
        points[codec, gop] = [measure(videos, codec, gop, crf) for crf in ladders[codec]]
        print(f"  {codec} gop {gop}: done", file=sys.stderr, flush=True)

    anchor = points[ANCHOR]
    summary = []
    for (codec, gop), pts in points.items():
        bd = bd_rate(
            [p["bytes"] for p in anchor],
            [p["psnr"] for p in anchor],
            [p["bytes"] for p in pts],
            [p["psnr"] for p in pts],
        )
        summary.append({"codec": codec, "gop": gop, "bd_rate_vs_hevc_intra": bd})

    header = (
        f"{'setting':<14} {'CRF':>4} {'B/key':>7} {'intra B':>8} {'inter B':>8} {'PSNR':>6} "
        f"{'keys/clip':>9} {'B/clip':>7} {'enc ms':>7} {'dec ms':>7}"
    )
    print(header)
    print("-" * len(header))
    for (codec, gop), pts in points.items():
        for p in pts:
            inter = f"{p['inter_bytes']:8.0f}" if p["inter_bytes"] is not None else f"{'-':>8}"
            print(
                f"{codec + ' gop ' + str(gop):<14} {p['crf']:>4} {p['bytes_per_keyframe']:7.0f} "
                f"{p['intra_bytes']:8.0f} {inter} {p['psnr']:6.2f} {p['clip_keyframes_decoded']:9.2f} "
                f"{p['clip_bytes_read']:7.0f} {p['encode_ms_per_keyframe']:7.1f} {p['decode_ms_per_keyframe']:7.1f}"
            )
    print()
    print(
        f"BD-rate vs {ANCHOR[0]} gop {ANCHOR[1]} (all-intra HEVC 4:4:4), equal RGB PSNR; negative = fewer bytes"
    )
    for row in summary:
        bd = row["bd_rate_vs_hevc_intra"]
        print(f"  {row['codec']:<5} gop {row['gop']}: {'n/a' if bd is None else f'{bd:+6.1f} %'}")

    doc = {
        "videos": [p.name for p in paths],
        "keyframes": sum(len(v) for v in videos),
        "size": list(videos[0].shape[1:3]),
        "clip_len": CLIP_LEN,
        "quick": args.quick,
        "provenance": provenance(),
        "machine": machine_description(),
        "versions": library_versions(),
        "anchor": {"codec": ANCHOR[0], "gop": ANCHOR[1]},
        "bd_rate": summary,
        "points": [p for pts in points.values() for p in pts],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
