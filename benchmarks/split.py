"""Where the bits should go: the keyframe / weight split that maximises PSNR at a target rate, and how
it moves with the target and the collection size (issue #3, item 6).

    .venv/bin/python benchmarks/split.py                 # about 25 min on 2 cores
    .venv/bin/python benchmarks/split.py --fit-min 0.5   # shorter fits

For each collection (the first 2 of the shared clips, then all 8) and each target bpp, `dnerv encode
--bpp TARGET` is run with the weights' share of the target forced to each of SHARES (rate control
then gives the keyframes the rest and sizes the network for the weight share); every fit has the same
budget (--fit-min). PSNR is measured on frames decoded from the written archive. Prints a table and
writes benchmarks/results/split.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

import dnerv_codec as dn  # noqa: E402
from dnerv_codec.bench.machine import library_versions, machine_description, provenance  # noqa: E402

TARGETS = (0.03, 0.06)
SHARES = (0.1, 0.25, 0.5)
COLLECTIONS = (2, 8)  # videos: the first N of the sorted shared clips


def run_point(videos: list[Path], target: float, share: float, fit_min: float, work: Path) -> dict:
    out = work / f"{len(videos)}-{target}-{share}.dnv"
    report = dn.encode(videos, out, bpp=target, weight_share=share, time_limit=fit_min, force=True)
    row = {
        "videos": len(videos),
        "frames": report.frames,
        "target_bpp": target,
        "weight_share": share,
        "bpp": report.bpp,
        "psnr": report.psnr,
        "blend_psnr": report.blend_psnr,
        "gain_db": report.gain_db,
        "params": report.params,
        "weight_bytes": report.sections.get("weights", 0),
        "keyframe_bytes": report.sections.get("keyframes", 0),
        "fit_epochs": report.fit_epochs,
    }
    out.unlink()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--videos", type=Path, default=ROOT.parent / "shared/data/videos")
    parser.add_argument("--fit-min", type=float, default=1.0)
    parser.add_argument(
        "--targets", type=lambda text: tuple(float(t) for t in text.split(",")), default=TARGETS
    )
    parser.add_argument("-o", "--out", type=Path, default=ROOT / "benchmarks/results/split.json")
    args = parser.parse_args()
    videos = sorted(args.videos.glob("*.mp4"))
    if len(videos) < max(COLLECTIONS):
        parser.error(f"need {max(COLLECTIONS)} videos in {args.videos}, found {len(videos)}")

    started = time.monotonic()
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for n in COLLECTIONS:
            for target in args.targets:
                for share in SHARES:
                    rows.append(run_point(videos[:n], target, share, args.fit_min, Path(work)))
                    r = rows[-1]
                    print(
                        f"{n} videos, {target:g} bpp, share {share:g}: {r['bpp']:.4f} bpp, {r['psnr']:.2f} dB"
                    )

    table = Table(title=f"PSNR by weight share of the target (fits of {args.fit_min:g} min)")
    for col in ("videos", "target bpp", *(f"share {s:g}" for s in SHARES), "best share", "gain at best"):
        table.add_column(col)
    best = []
    for n in COLLECTIONS:
        for target in args.targets:
            group = [r for r in rows if r["videos"] == n and r["target_bpp"] == target]
            top = max(group, key=lambda r: r["psnr"])
            best.append({"videos": n, "target_bpp": target, "weight_share": top["weight_share"]})
            cells = [f"{r['psnr']:.2f} dB ({r['bpp']:.4f}, {r['params']:,} p)" for r in group]
            table.add_row(
                str(n), f"{target:g}", *cells, f"{top['weight_share']:g}", f"{top['gain_db']:+.2f} dB"
            )
    Console(width=160).print(table)

    doc = {
        "fit_min": args.fit_min,
        "rows": rows,
        "best": best,
        "provenance": provenance(),
        "machine": machine_description(),
        "versions": library_versions(),
        "seconds": time.monotonic() - started,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1))
    print(f"{doc['seconds'] / 60:.1f} min; wrote {args.out}")


if __name__ == "__main__":
    main()
