"""Rate-distortion of dnerv's pipeline against the plain one, x265 and SVT-AV1 (issue #3).

    .venv/bin/python benchmarks/rd.py                       # the 8 shared clips (about 50 min, 2 cores)
    .venv/bin/python benchmarks/rd.py VIDEOS... --fit-min 1  # other videos, shorter fits

Curves, all on the same frames at the same working size, every neural point with the same fit
budget (--fit-min minutes of wall clock, stated in the output):

- dnerv: `dnerv encode --bpp TARGET` at TARGETS (rate control picks keyframe quality and width;
  HEVC keyframes in groups of 8; weight compression stage: bit depth per tensor from {4,5,6,8} by
  measured loss, quantization-aware fine-tune in the last 20% of the budget);
- plain: the backbone's pipeline: all-intra HEVC keyframes (gop 1) at PLAIN_CRFS, the preset's
  width, every weight at 8 bits after the fit, the same constriction coding;
- blend / plain-blend: the keyframes of those archives alone, blended linearly (no network);
- x265 preset veryslow and SVT-AV1 preset 4 through PyAV (dnerv_codec.bench.codecs).

Every point is measured on frames decoded back from the written files (dnerv_codec.bench.run_bench,
which caches points in --work: a rerun computes only what is missing). Prints the tables and writes
OUT/rd.json (points, BD-rates, --bpp hit accuracy, coded weight bytes vs entropy per tensor class,
settings, machine, run time) and OUT/rd.png / rd.svg.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from dnerv_codec.bench.machine import library_versions, machine_description, provenance  # noqa: E402
from dnerv_codec.bench.plot import plot_rd  # noqa: E402
from dnerv_codec.bench.run import DnervSetting, bd_table, run_bench  # noqa: E402
from dnerv_codec.config import QuantConfig  # noqa: E402
from dnerv_codec.info import describe  # noqa: E402
from dnerv_codec.report import Reporter  # noqa: E402

TARGETS = (0.02, 0.03, 0.045, 0.065)  # bpp; about the PSNR range of the plain curve below
PLAIN_CRFS = (38, 34, 30, 26)
CODECS = "x265-veryslow,av1-preset4,dnerv,blend"
BD_ROWS = {  # anchor: the curves compared with it
    "plain": ("dnerv",),
    "x265-veryslow": ("dnerv", "plain", "av1-preset4"),
    "av1-preset4": ("dnerv", "plain"),
}


def ladder(fit_min: float, targets: tuple[float, ...]) -> tuple[DnervSetting, ...]:
    dnerv = [DnervSetting("default", time_limit=fit_min, bpp=b) for b in targets]
    plain = [
        DnervSetting("default", q, time_limit=fit_min, curve="plain", keyframe_gop=1, quant=QuantConfig())
        for q in PLAIN_CRFS
    ]
    return tuple(dnerv + plain)


def hit_accuracy(points: list[dict]) -> list[dict]:
    return [
        {
            "target_bpp": p["settings"]["bpp"],
            "bpp": p["bpp"],
            "error": p["bpp"] / p["settings"]["bpp"] - 1,
            "psnr": p["psnr"],
        }
        for p in points
        if p["codec"] == "dnerv"
    ]


def weight_classes(points: list[dict]) -> dict[str, list[dict]]:
    """Per neural point (by label), the weights section per tensor class as `dnerv info` measures it."""
    return {
        f"{p['codec']}: {p['label']}": describe(p["archives"][0])["weights"]
        for p in points
        if p["codec"] in ("dnerv", "plain")
    }


def middle_points(points: list[dict], curves: tuple[str, ...]) -> list[str]:
    """The keys (as weight_classes makes them) of each curve's middle point by rate."""
    keys = []
    for curve in curves:
        pts = sorted((p for p in points if p["codec"] == curve), key=lambda p: p["bpp"])
        if pts:
            keys.append(f"{curve}: {pts[len(pts) // 2]['label']}")
    return keys


def _fmt(value, spec: str, suffix: str = "") -> str:
    return "-" if value is None else format(value, spec) + suffix


def print_tables(console: Console, points, bd, hits, classes, fit_min: float) -> None:
    rd = Table(title=f"RD points (every neural point fitted for {fit_min:g} min)")
    for col in ("curve", "setting", "bpp", "PSNR", "MS-SSIM", "blend PSNR", "gain dB", "params"):
        rd.add_column(col)
    for p in points:
        rd.add_row(
            p["codec"],
            p.get("label", ""),
            f"{p['bpp']:.4f}",
            f"{p['psnr']:.2f}",
            _fmt(p.get("ms_ssim"), ".4f"),
            _fmt(p.get("blend_psnr"), ".2f"),
            _fmt(p.get("gain_db"), "+.2f"),
            _fmt(p.get("params"), ","),
        )
    console.print(rd)

    table = Table(title="BD-rate (negative: fewer bits at equal quality); PSNR difference at equal bpp")
    for col in (
        "curve",
        "anchor",
        "BD-rate PSNR",
        "BD-rate MS-SSIM",
        "BD-PSNR dB",
        "dB at equal bpp",
        "no BD-rate because",
    ):
        table.add_column(col)
    for row in bd:
        table.add_row(
            row["codec"],
            row["anchor"],
            _fmt(row["bd_rate_psnr"], "+.1f", "%"),
            _fmt(row["bd_rate_ms_ssim"], "+.1f", "%"),
            _fmt(row["bd_psnr"], "+.2f"),
            _fmt(row["psnr_at_equal_rate"], "+.2f"),
            row.get("bd_note") or "",
        )
    console.print(table)

    acc = Table(title="--bpp hit accuracy")
    for col in ("target bpp", "archive bpp", "error", "PSNR"):
        acc.add_column(col)
    for h in hits:
        acc.add_row(f"{h['target_bpp']:g}", f"{h['bpp']:.4f}", f"{h['error']:+.1%}", f"{h['psnr']:.2f}")
    console.print(acc)

    for name in middle_points(points, ("dnerv", "plain")):  # every point's table is in the JSON
        rows = classes[name]
        t = Table(title=f"weights per tensor class, {name}")
        for col in ("class", "params", "bytes", "entropy", "side", "bits/param"):
            t.add_column(col)
        for r in rows:
            t.add_row(
                r["class"],
                f"{r['params']:,}",
                f"{r['bytes']:,.0f}",
                f"{r['entropy']:,.0f}",
                f"{r['side']:,.0f}",
                f"{r['bits_per_param']:.2f}",
            )
        console.print(t)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "videos", nargs="*", type=Path, default=sorted((ROOT.parent / "shared/data/videos").glob("*.mp4"))
    )
    parser.add_argument(
        "--fit-min", type=float, default=2.0, help="fit budget of every neural point (minutes)"
    )
    parser.add_argument(
        "--targets",
        type=lambda text: tuple(float(t) for t in text.split(",")),
        default=TARGETS,
        help="the dnerv curve's --bpp targets, comma-separated (default %(default)s)",
    )
    parser.add_argument("--work", type=Path, default=Path("rd-work"), help="archives and cached points")
    parser.add_argument("-o", "--out", type=Path, default=ROOT / "benchmarks/results/rd")
    args = parser.parse_args()
    if not args.videos:
        parser.error("no videos given and none in ../shared/data/videos")

    started = time.monotonic()
    result = run_bench(
        args.videos,
        args.work,
        codecs=CODECS,
        dnerv_ladder=ladder(args.fit_min, args.targets),
        anchor="x265-veryslow",
        reporter=Reporter(),
        plots=False,
    )
    points = result.points
    bd = [
        row
        for anchor, curves in BD_ROWS.items()
        for row in bd_table(points, anchor)
        if row["codec"] in curves
    ]
    hits = hit_accuracy(points)
    classes = weight_classes(points)
    print_tables(Console(width=160), points, bd, hits, classes, args.fit_min)

    args.out.mkdir(parents=True, exist_ok=True)
    plot_rd(points, args.out / "rd", title=f"{len(args.videos)} videos, fits of {args.fit_min:g} min")
    doc = {
        "fit_min": args.fit_min,
        "settings": result.settings,
        "points": points,
        "bd": bd,
        "bpp_hit_accuracy": hits,
        "weight_classes": classes,
        "provenance": provenance(),
        "machine": machine_description(),
        "versions": library_versions(),
        "points_computed": result.computed,
        "points_cached": result.cached,
        "seconds": time.monotonic() - started,
    }
    (args.out / "rd.json").write_text(json.dumps(doc, indent=1, default=str))
    print(
        f"{result.computed} points computed, {result.cached} cached, {doc['seconds'] / 60:.1f} min; wrote {args.out}"
    )


if __name__ == "__main__":
    main()
