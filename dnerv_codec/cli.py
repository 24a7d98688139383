"""The `dnerv` command line: a thin typer layer over the library.

Each command parses its options, calls one library function and renders the result; every
DnervError becomes one red line and exit code 1 (2 for usage errors, 130 for Ctrl-C)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape
from rich.table import Table

from .config import PRESETS
from .console import RichReporter, console
from .errors import DnervError, Interrupted

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Neural video codec: many videos, one D-NeRV archive."
)
T = TypeVar("T")

_PRESET_HELP = "Named settings: " + "; ".join(f"{p.name}: {p.description}" for p in PRESETS.values()) + "."


def _line(exc: BaseException) -> str:
    """An exception's message as one line of plain text (paths like `a[1].mp4` are not markup)."""
    return escape(" ".join(str(exc).splitlines()))


def _run(fn: Callable[[], T]) -> T:
    # soft_wrap: one message stays one line however narrow the terminal (scripts grep for it)
    try:
        return fn()
    except Interrupted as exc:
        console.print(f"[yellow]{_line(exc)}[/]", soft_wrap=True)
        raise typer.Exit(130) from None
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        raise typer.Exit(130) from None
    except DnervError as exc:
        console.print(f"[red]error:[/] {_line(exc)}", soft_wrap=True)
        raise typer.Exit(1) from None


def _without_nproc(argv: list[str]) -> list[str]:
    """The command line minus its --nproc option (the workers run it as one process each)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def _emit_json(doc: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")


@app.command()
def encode(
    inputs: Annotated[list[Path], typer.Argument(help="Video files and/or folders (searched recursively).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Archive to write, e.g. archive.dnv.")],
    preset: Annotated[str, typer.Option(help=_PRESET_HELP)] = "default",
    size: Annotated[
        str | None, typer.Option(help="Working size HEIGHTxWIDTH (default: the inputs' own when shared).")
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(help="Fit for this many epochs (reproducible with --seed).")
    ] = None,
    time_limit: Annotated[
        float | None, typer.Option(help="Fit for this many minutes; the schedule spans them.")
    ] = None,
    keyframe_codec: Annotated[str | None, typer.Option(help="hevc, h264 or av1.")] = None,
    keyframe_quality: Annotated[int | None, typer.Option(help="Keyframe CRF (lower is better).")] = None,
    keyframe_gop: Annotated[
        int | None,
        typer.Option(help="Keyframes per coding group, 1-8: an intra frame then P-frames (1: all intra)."),
    ] = None,
    fc_dim: Annotated[int | None, typer.Option(help="Network width C0 (default: sized to the data).")] = None,
    bpp: Annotated[
        float | None,
        typer.Option(help="Target bits per pixel: picks the keyframe quality and the network width."),
    ] = None,
    weight_bpp: Annotated[
        float | None,
        typer.Option(help="Bits per pixel the network's weights may cost; sets C0 (default: the preset's)."),
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Clips per step.")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of initialisation and data order.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    cache_dir: Annotated[Path | None, typer.Option(help="Folder of the temporary frame cache.")] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an interrupted fit from its checkpoint.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    nproc: Annotated[
        int, typer.Option(help="Fit with N processes on this machine (torchrun + DistributedDataParallel).")
    ] = 1,
) -> None:
    """Fit one D-NeRV network to all INPUTS and write one archive."""
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        from .fit.distributed import launch

        raise typer.Exit(launch(nproc, _without_nproc(sys.argv[1:])))
    from . import encode as run_encode

    def work():
        return run_encode(
            inputs,
            output,
            preset=preset,
            size=size,
            epochs=epochs,
            time_limit=time_limit,
            keyframe_codec=keyframe_codec,
            keyframe_quality=keyframe_quality,
            keyframe_gop=keyframe_gop,
            fc_dim=fc_dim,
            weight_bpp=weight_bpp,
            bpp=bpp,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            device=device,
            cache_dir=cache_dir,
            resume=resume,
            force=force,
            reporter=RichReporter(quiet=quiet or as_json),
        )

    report = _run(work)
    if report is None:  # a torchrun worker other than rank 0: rank 0 reports
        return
    if as_json:
        _emit_json(report.to_json())
        return
    table = Table(title=escape(str(report.output)), show_header=False)
    ms = f"{report.ms_ssim:.4f}" if report.ms_ssim is not None else "n/a"
    blend = "n/a (no keyframes)"
    if report.blend_psnr is not None:
        blend = f"{report.blend_psnr:.2f} dB (network gain {report.gain_db:+.2f} dB)"
    for key, value in [
        ("frames", f"{report.frames} at {report.height}x{report.width}"),
        ("size", f"{report.bytes:,} bytes, {report.bpp:.4f} bpp"),
        ("PSNR / MS-SSIM", f"{report.psnr:.2f} dB / {ms}"),
        ("keyframe blend", blend),
        ("network", f"{report.params:,} parameters"),
        ("fit", f"{report.fit_seconds:.0f} s, {report.fit_epochs:.1f} epochs on {report.device}"),
        ("total time", f"{report.seconds:.0f} s"),
    ]:
        table.add_row(key, value)
    console.print(table)


@app.command()
def decode(
    archive: Annotated[Path, typer.Argument(help="Archive to decode.")],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="File (.mkv, .mp4, .y4m) or folder (PNG, --all).")
    ],
    clip: Annotated[int | None, typer.Option(help="Global clip index, as `dnerv info` lists it.")] = None,
    video: Annotated[str | None, typer.Option(help="Video name, as `dnerv info` lists it.")] = None,
    all_videos: Annotated[
        bool, typer.Option("--all", help="Every video, one file each, into the output folder.")
    ] = False,
    fmt: Annotated[str, typer.Option("--format", help="With --all: mkv, mp4, y4m or png.")] = "mkv",
    size: Annotated[
        str | None, typer.Option(help="'original' or HEIGHTxWIDTH (default: the working size).")
    ] = None,
    reference: Annotated[
        Path | None, typer.Option(help="Also report PSNR and MS-SSIM against this video.")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing outputs.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
) -> None:
    """Decode one clip, one video or everything from an archive."""
    from .decode import Archive
    from .errors import InputError
    from .export import decode_all, decode_to_file

    def work():
        if sum([clip is not None, video is not None, all_videos]) != 1:
            raise InputError("choose exactly one of --clip N, --video NAME or --all")
        opened = Archive(archive, device)
        if all_videos:
            if reference is not None:
                raise InputError("--reference goes with --clip or --video, not --all")
            return decode_all(opened, output, fmt, size, force, RichReporter(quiet=as_json))
        return [decode_to_file(opened, output, clip, video, size, reference, force)]

    reports = _run(work)
    if as_json:
        docs = [r.to_json() for r in reports]
        _emit_json(
            docs[0]
            if len(docs) == 1 and not all_videos
            else {"output": str(output), "frames": sum(r.frames for r in reports), "files": docs}
        )
        return
    for r in reports:
        line = f"wrote {escape(str(r.output))} ({r.frames} frames)"
        if r.psnr is not None:
            ms = f"{r.ms_ssim:.4f}" if r.ms_ssim is not None else "n/a"
            line += f": PSNR {r.psnr:.2f} dB, MS-SSIM {ms}"
        console.print(line, soft_wrap=True)


@app.command()
def info(
    archive: Annotated[Path, typer.Argument(help="Archive to describe.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
    clips: Annotated[bool, typer.Option("--clips", help="List every clip.")] = False,
) -> None:
    """What is inside an archive and where the bytes went."""
    from .info import depth_label, describe

    doc = _run(lambda: describe(archive))
    if as_json:
        _emit_json(doc)
        return
    console.print(
        f"[bold]{escape(str(archive))}[/]: format {doc['format_version']}, written by {escape(doc['writer'])}"
    )
    keyframes = "no keyframes"
    if doc["model"]["kind"] == "dnerv":
        keyframes = (
            f"{doc['keyframes']} keyframes ({doc['keyframe_codec']} q{doc['keyframe_quality']} "
            f"gop {doc['keyframe_gop']})"
        )
    console.print(
        f"{len(doc['videos'])} videos, {len(doc['clips'])} clips, {doc['frames']} frames at "
        f"{doc['height']}x{doc['width']}; {doc['model']['kind']} network of {doc['params']:,} parameters "
        f"({depth_label(doc['weight_depths'])}), {keyframes}"
    )
    videos = Table("video", "frames", "fps", "original size", "clips")
    for v in doc["videos"]:
        last = v["first_clip"] + v["clips"] - 1
        videos.add_row(
            escape(v["name"]),
            str(v["frames"]),
            f"{v['fps']:.3g}",
            f"{v['height']}x{v['width']}",
            f"{v['first_clip']}..{last}",
        )
    console.print(videos)
    if clips:
        table = Table("clip", "video", "frames")
        for c in doc["clips"]:
            table.add_row(
                str(c["index"]), escape(c["video"]), f"{c['start']}..{c['start'] + c['frames'] - 1}"
            )
        console.print(table)
    sizes = Table("section", "bytes", "share", "bpp")
    total = doc["bytes"]["total"]
    pixels = doc["frames"] * doc["width"] * doc["height"]
    for name, n in doc["bytes"].items():
        sizes.add_row(name, f"{n:,}", f"{100 * n / total:.1f}%", f"{8 * n / pixels:.4f}")
    console.print(sizes)
    weights = Table("weights", "tensors", "params", "bytes", "entropy", "side", "bits/param")
    for r in doc["weights"]:
        weights.add_row(
            r["class"],
            str(r["tensors"]),
            f"{r['params']:,}",
            f"{r['bytes']:,.0f}",
            f"{r['entropy']:,.0f}",
            f"{r['side']:,.0f}",
            f"{r['bits_per_param']:.2f}",
        )
    console.print(weights)


@app.command()
def bench(
    inputs: Annotated[list[Path], typer.Argument(help="Video files and/or folders (searched recursively).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for results, plots and cache.")],
    quick: Annotated[
        bool,
        typer.Option(
            "--quick", help="First 32 frames of each video, 3 CRFs, veryslow presets, 45-second fits."
        ),
    ] = False,
    codecs: Annotated[
        str,
        typer.Option(
            help="Comma-separated families (x264, x265, av1, blend, dnerv, nerv) "
            "or single configurations (e.g. x265-veryslow, av1-preset4)."
        ),
    ] = "x264,x265,av1,blend,dnerv,nerv",
    separate: Annotated[
        bool,
        typer.Option(
            "--separate", help="Also fit one dnerv model per video at the same total bits and fit time."
        ),
    ] = False,
    recompute: Annotated[
        bool, typer.Option("--recompute", help="Compute every point again, ignoring the cache.")
    ] = False,
    anchor: Annotated[
        str, typer.Option(help="Curve the BD-rates are measured against (a codec config, or dnerv).")
    ] = "x265-veryslow",
    size: Annotated[
        str | None, typer.Option(help="Working size HEIGHTxWIDTH (default: as `dnerv encode` picks it).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Rate-distortion and speed of dnerv against x264, x265, SVT-AV1, NeRV and the keyframe blend."""
    from .bench.run import run_bench

    def work():
        work_size = None
        if size is not None:
            from .export import parse_size

            work_size = parse_size(size)
        return run_bench(
            inputs,
            output,
            codecs=codecs,
            quick=quick,
            separate=separate,
            recompute=recompute,
            anchor=anchor,
            size=work_size,
            reporter=RichReporter(quiet=quiet),
        )

    result = _run(work)

    def num(value, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    table = Table(title="points")
    table.add_column("codec", no_wrap=True)
    table.add_column("setting", no_wrap=True)
    for column in ("bpp", "PSNR", "MS-SSIM", "enc fps", "dec fps", "fit s"):
        table.add_column(column, justify="right")
    for p in result.points:
        table.add_row(
            p["codec"],
            escape(p["label"]),
            f"{p['bpp']:.4f}",
            f"{p['psnr']:.2f}",
            num(p["ms_ssim"], ".4f"),
            num(p["encode_fps"], ".1f"),
            num(p["decode_fps"], ".1f"),
            num(p["fit_seconds"], ".0f"),
        )
    console.print(table)
    if result.bd:
        bd = Table(
            "codec", "BD-rate PSNR", "BD-rate MS-SSIM", "BD-PSNR", "dPSNR at equal bpp",
            title=f"against {result.anchor} (negative BD-rate: fewer bits)",
        )  # fmt: skip
        for row in result.bd:
            bd.add_row(
                row["codec"],
                num(row["bd_rate_psnr"], "+.1f") + ("%" if row["bd_rate_psnr"] is not None else ""),
                num(row["bd_rate_ms_ssim"], "+.1f") + ("%" if row["bd_rate_ms_ssim"] is not None else ""),
                num(row["bd_psnr"], "+.2f"),
                num(row["psnr_at_equal_rate"], "+.2f"),
            )
        console.print(bd)
    console.print(
        f"{result.computed} point(s) computed, {result.cached} from the cache; wrote "
        + ", ".join(escape(str(f)) for f in result.files.values()),
        soft_wrap=True,
    )


def main() -> None:
    from .malloc import keep_freed_memory

    keep_freed_memory()  # our own process: reuse freed activations instead of page-faulting them in
    app()
