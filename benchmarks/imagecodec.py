"""dnerv's own keyframe coder (dnerv_codec.imagecodec) against the PyAV intra codecs, in RGB PSNR vs bytes.

    .venv/bin/python benchmarks/imagecodec.py            # the full table (about 10 min on 2 shared cores)
    .venv/bin/python benchmarks/imagecodec.py --quick    # 2 frames per video, 3 points per codec

Images: frames 0, 8, 16, ... (--step) of every video in --videos (default: the 8 shared clips),
read with dnerv_codec.video.read.iter_frames at 256x320. Every image is coded alone (intra), at each
point of the codec's ladder:
  imagecodec   dnerv_codec.imagecodec.encode_image(rgb, quality), default settings (4:2:0 chroma
               below quality 28, 4:4:4 above)
  imagecodec-444, imagecodec-420   the same with the chroma mode forced (encode(..., subsampled=))
  hevc         keyframes.encode_keyframes, KeyframeConfig(codec='hevc', quality=crf): libx265 4:4:4
  h264         the same with codec='h264': libx264 High 4:4:4 intra
  av1          the same with codec='av1': libsvtav1 4:2:0
  jpeg         PyAV's mjpeg encoder (FFmpeg's JPEG, yuvj444p, qscale = q, Huffman tables optimised
               by FFmpeg's defaults), a sanity reference
Per point: rate = mean bytes per image, quality = mean per-image RGB PSNR (metrics.frame_psnr) of
the decoded image. BD-rate (bench.bdrate.bd_rate, PCHIP over the PSNR range both curves cover) of
each codec against hevc. Times are wall-clock per image on this machine (informational only).

Prints a table and writes JSON (default benchmarks/results/imagecodec.json).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dnerv_codec import imagecodec  # noqa: E402
from dnerv_codec.bench.bdrate import bd_rate  # noqa: E402
from dnerv_codec.bench.machine import library_versions, machine_description, provenance  # noqa: E402
from dnerv_codec.config import KeyframeConfig  # noqa: E402
from dnerv_codec.keyframes import decode_keyframes, encode_keyframes  # noqa: E402
from dnerv_codec.metrics import frame_psnr  # noqa: E402
from dnerv_codec.video.read import iter_frames  # noqa: E402

SIZE = (256, 320)
LADDERS = {
    "imagecodec": (8, 16, 24, 32, 40),
    "imagecodec-444": (8, 16, 24, 32, 40),
    "imagecodec-420": (8, 16, 24, 32, 40),
    "hevc": (22, 26, 30, 34, 38),
    "h264": (22, 26, 30, 34, 38),
    "av1": (30, 36, 42, 48, 54),
    "jpeg": (2, 4, 7, 12, 20),
}
QUICK = {k: v[1:4] for k, v in LADDERS.items()}
ANCHOR = "hevc"


def load_images(folder: Path, step: int, per_video: int | None) -> np.ndarray:
    images = []
    for path in sorted(folder.glob("*.mp4")):
        frames = [f for i, f in enumerate(iter_frames(path, SIZE)) if i % step == 0]
        images.extend(frames[:per_video])
    return np.stack(images)


def _ours(subsampled: bool | None):
    def code(image: np.ndarray, q: int) -> tuple[int, np.ndarray]:
        data = imagecodec.encode(image, q, subsampled=subsampled)[0]
        return len(data), imagecodec.decode_image(data)

    return code


def _keyframe_codec(codec: str):
    def code(image: np.ndarray, crf: int) -> tuple[int, np.ndarray]:
        blobs = encode_keyframes(image[None], KeyframeConfig(codec=codec, quality=crf))
        return len(blobs[0]), decode_keyframes(blobs, codec, *image.shape[:2])[0]

    return code


def _jpeg(image: np.ndarray, q: int) -> tuple[int, np.ndarray]:
    h, w, _ = image.shape
    cc = av.CodecContext.create("mjpeg", "w")
    cc.width, cc.height, cc.pix_fmt = w, h, "yuvj444p"
    cc.time_base = Fraction(1, 25)
    cc.qmin = cc.qmax = q
    frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuvj444p")
    frame.pts = 0
    data = b"".join(bytes(p) for p in [*cc.encode(frame), *cc.encode(None)])
    dec = av.CodecContext.create("mjpeg", "r")
    out = [*dec.decode(av.Packet(data)), *dec.decode(None)][0]
    return len(data), out.to_ndarray(format="rgb24")


CODERS = {
    "imagecodec": _ours(None),
    "imagecodec-444": _ours(False),
    "imagecodec-420": _ours(True),
    "hevc": _keyframe_codec("hevc"),
    "h264": _keyframe_codec("h264"),
    "av1": _keyframe_codec("av1"),
    "jpeg": _jpeg,
}


def measure(images: np.ndarray, codec: str, q: int) -> dict:
    sizes, psnrs, t0 = [], [], time.perf_counter()
    for image in images:
        size, decoded = CODERS[codec](image, q)
        sizes.append(size)
        psnrs.append(float(frame_psnr(decoded[None], image[None])[0]))
    seconds = time.perf_counter() - t0
    return {
        "codec": codec,
        "q": q,
        "bytes": float(np.mean(sizes)),
        "psnr": float(np.mean(psnrs)),
        "ms_per_image": 1000 * seconds / len(images),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--videos", type=Path, default=ROOT.parent / "shared" / "data" / "videos")
    parser.add_argument("--step", type=int, default=8, help="take frames 0, step, 2 step, ...")
    parser.add_argument("--quick", action="store_true", help="2 frames per video, 3 points per codec")
    parser.add_argument("--codecs", default=",".join(CODERS), help="comma-separated subset")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "imagecodec.json")
    args = parser.parse_args()

    images = load_images(args.videos, args.step, 2 if args.quick else None)
    if not len(images):
        sys.exit(f"no .mp4 videos in {args.videos}")
    ladders = QUICK if args.quick else LADDERS
    codecs = [c for c in args.codecs.split(",") if c]
    points = {}
    for codec in codecs:
        points[codec] = [measure(images, codec, q) for q in ladders[codec]]
        print(f"  {codec}: done", file=sys.stderr, flush=True)

    summary = {}
    anchor = points.get(ANCHOR)
    print(f"{len(images)} images {SIZE[0]}x{SIZE[1]}; BD-rate vs {ANCHOR} (negative = fewer bytes)")
    print(f"{'codec':16s} {'q':>4s} {'bytes':>9s} {'PSNR':>7s} {'ms/img':>8s}")
    for codec, pts in points.items():
        for p in pts:
            print(f"{codec:16s} {p['q']:4d} {p['bytes']:9.0f} {p['psnr']:7.2f} {p['ms_per_image']:8.0f}")
        bd = None
        if anchor is not None:
            bd = bd_rate([p["bytes"] for p in anchor], [p["psnr"] for p in anchor],
                         [p["bytes"] for p in pts], [p["psnr"] for p in pts])  # fmt: skip
        summary[codec] = bd
    print(
        "BD-rate vs hevc: "
        + ", ".join(f"{c} {'n/a' if b is None else f'{b:+.1f}%'}" for c, b in summary.items())
    )
    result = {
        "images": len(images),
        "size": list(SIZE),
        "step": args.step,
        "quick": args.quick,
        "provenance": provenance(),
        "machine": machine_description(),
        "versions": library_versions(),
        "anchor": ANCHOR,
        "bd_rate": summary,
        "points": points,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
