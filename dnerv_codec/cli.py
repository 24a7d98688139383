"""The `dnerv` command line: a thin typer layer over the library.

Each command parses its options, calls one library function and renders the result; every
DnervError becomes one red line and exit code 1 (2 for usage errors, 130 for Ctrl-C)."""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar, get_type_hints

import typer
from rich.markup import escape
from rich.table import Table

from .console import RichReporter, console, results
from .errors import ConfigError, DnervError, Interrupted
from .options import EncodeOptions

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Neural video codec: many videos, one D-NeRV archive.",
    context_settings={"help_option_names": ["-h", "--help"]},
)
T = TypeVar("T")
_QUIET_HELP = "Print nothing but errors (no progress, no summary)."
_JSON_HELP = "Print one JSON object on stdout."


def _flag(*names: str, **kwargs: Any) -> Any:
    """A boolean option shown as a flag (no <bool> beside it in --help)."""
    return typer.Option(*names, metavar="", **kwargs)


def _version(value: bool) -> None:
    if value:
        from . import __version__

        results.print(f"dnerv {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, _flag("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    pass


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


def _keyword(name: str, default: Any, kind: Any, info: Any) -> inspect.Parameter:
    """One parameter of a command whose signature is built (typer reads `info` from Annotated)."""
    annotation = Annotated[kind, info]
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def _encode_parameter(f: dataclasses.Field, hints: dict[str, Any]) -> inspect.Parameter:
    """The typer parameter of one EncodeOptions field: its help, names and default from the table."""
    meta = f.metadata
    if meta["argument"]:
        info = typer.Argument(help=meta["help"])
    else:
        option = _flag if hints[f.name] is bool else typer.Option
        info = option(*(meta["flags"] or (f"--{f.name.replace('_', '-')}",)), help=meta["help"])
    default = inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default
    return _keyword(f.name, default, meta["cli_type"] or hints[f.name], info)


_CLI_ONLY = [  # options of the command itself, not of the encode
    _keyword("as_json", False, bool, _flag("--json", help=_JSON_HELP)),
    _keyword("quiet", False, bool, _flag("--quiet", "-q", help=_QUIET_HELP)),
    _keyword("verbose", False, bool, _flag("--verbose", "-v", help="Also list each skipped file.")),
    _keyword(
        "nproc",
        1,
        int,
        typer.Option(help="Fit with N processes on this machine (torchrun + DistributedDataParallel)."),
    ),
]


def _encode_signature() -> inspect.Signature:
    hints = get_type_hints(EncodeOptions)
    table = [_encode_parameter(f, hints) for f in dataclasses.fields(EncodeOptions) if f.metadata["cli"]]
    return inspect.Signature([*table, *_CLI_ONLY])


def _check_nproc(nproc: int) -> None:
    if nproc < 1:
        raise ConfigError(f"--nproc must be at least 1, got {nproc}")


def encode(*, as_json: bool, quiet: bool, verbose: bool, nproc: int, **options: Any) -> None:
    """Fit one D-NeRV network to all INPUTS and write one archive."""
    _run(lambda: _check_nproc(nproc))
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        from .fit.distributed import launch

        raise typer.Exit(launch(nproc, _without_nproc(sys.argv[1:])))
    from . import encode as run_encode

    report = _run(lambda: run_encode(**options, reporter=RichReporter(quiet or as_json, not quiet, verbose)))
    if report is None:  # a torchrun worker other than rank 0: rank 0 reports
        return
    if as_json:
        _emit_json(report.to_json())
    elif not quiet:
        _print_encode_report(report)


# typer reads the command's options from its signature: the fields of options.EncodeOptions
encode.__signature__ = _encode_signature()  # type: ignore[attr-defined]
app.command()(encode)


def _print_encode_report(report) -> None:
    table = Table(title=escape(str(report.output)), show_header=False)
    ms = f"{report.ms_ssim:.4f}" if report.ms_ssim is not None else "n/a"
    blend = "n/a (no keyframes)"
    if report.blend_psnr is not None:
        blend = f"{report.blend_psnr:.2f} dB (network gain {report.gain_db:+.2f} dB)"
    for key, value in [
        ("frames", f"{report.frames} at {report.height}x{report.width}"),
        ("size", f"{report.bytes:,} bytes, {report.bpp:.4f} bpp"),
        ("inputs", f"{report.input_bytes:,} bytes, {report.input_bytes / report.bytes:.1f}x the archive"),
        ("PSNR / MS-SSIM", f"{report.psnr:.2f} dB / {ms}"),
        ("keyframe blend", blend),
        ("network", f"{report.params:,} parameters"),
        ("fit", f"{report.fit_seconds:.0f} s, {report.fit_epochs:.1f} epochs on {report.device}"),
        ("total time", f"{report.seconds:.0f} s"),
    ]:
        table.add_row(key, value)
    results.print(table)


@app.command()
def decode(
    archive: Annotated[Path, typer.Argument(help="Archive to decode.")],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="File (.mkv, .mp4, .y4m) or folder (PNG, --all).")
    ],
    clip: Annotated[int | None, typer.Option(help="Global clip index, as `dnerv info` lists it.")] = None,
    video: Annotated[str | None, typer.Option(help="Video name, as `dnerv info` lists it.")] = None,
    all_videos: Annotated[
        bool, _flag("--all", help="Every video, one file each, into the output folder.")
    ] = False,
    fmt: Annotated[
        str | None, typer.Option("--format", help="With --all: mkv (default), mp4, y4m or png.")
    ] = None,
    size: Annotated[
        str | None, typer.Option(help="'original' or HEIGHTxWIDTH (default: the working size).")
    ] = None,
    reference: Annotated[
        Path | None, typer.Option(help="Also report PSNR and MS-SSIM against this video.")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    force: Annotated[bool, _flag("--force", help="Overwrite existing outputs.")] = False,
    as_json: Annotated[bool, _flag("--json", help=_JSON_HELP)] = False,
    quiet: Annotated[bool, _flag("--quiet", "-q", help=_QUIET_HELP)] = False,
) -> None:
    """Decode one clip, one video or everything from an archive."""
    from .decode import Archive
    from .errors import InputError
    from .export import decode_all, decode_to_file

    fmt_given, fmt = fmt is not None, fmt or "mkv"

    def work():
        if sum([clip is not None, video is not None, all_videos]) != 1:
            raise InputError("choose exactly one of --clip N, --video NAME or --all")
        if fmt_given and not all_videos:
            raise InputError(
                "--format goes with --all; one clip or video takes its format from -o's extension"
            )
        opened = Archive(archive, device)
        if all_videos:
            if reference is not None:
                raise InputError("--reference goes with --clip or --video, not --all")
            return decode_all(opened, output, fmt, size, force, RichReporter(as_json or quiet, not quiet))
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
    for warning in [] if quiet else [w for r in reports for w in r.warnings]:
        console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    for r in [] if quiet else reports:
        line = f"wrote {escape(str(r.output))} ({r.frames} frames)"
        if r.psnr is not None:
            ms = f"{r.ms_ssim:.4f}" if r.ms_ssim is not None else "n/a"
            line += f": PSNR {r.psnr:.2f} dB, MS-SSIM {ms}"
        results.print(line, soft_wrap=True)


@app.command()
def info(
    archive: Annotated[Path, typer.Argument(help="Archive to describe.")],
    as_json: Annotated[bool, _flag("--json", help=_JSON_HELP)] = False,
    clips: Annotated[bool, _flag("--clips", help="List every clip.")] = False,
) -> None:
    """What is inside an archive and where the bytes went."""
    from .info import depth_label, describe

    doc = _run(lambda: describe(archive))
    if as_json:
        _emit_json(doc)
        return
    results.print(
        f"[bold]{escape(str(archive))}[/]: format {doc['format_version']}, written by {escape(doc['writer'])}"
    )
    keyframes = "no keyframes"
    if doc["model"]["kind"] == "dnerv":
        keyframes = (
            f"{doc['keyframes']} keyframes ({doc['keyframe_codec']} q{doc['keyframe_quality']} "
            f"gop {doc['keyframe_gop']})"
        )
    results.print(
        f"{len(doc['videos'])} videos, {len(doc['clips'])} clips, {doc['frames']} frames at "
        f"{doc['height']}x{doc['width']}; {doc['model']['kind']} network of {doc['params']:,} parameters "
        f"({depth_label(doc['weight_depths'])}), {keyframes}"
    )
    results.print(_videos_table(doc["videos"]))
    if clips:
        results.print(_clips_table(doc["clips"]))
    results.print(_sections_table(doc))
    results.print(_weights_table(doc["weights"]))


@app.command()
def presets() -> None:
    """The named settings of `dnerv encode --preset`: what each does and what it costs."""
    from .config import PRESETS

    table = Table("preset", "fitting", "keyframes", "weights", "what it is for")
    for p in PRESETS.values():
        fit = p.fit
        budget = f"{fit.time_limit:g} min" if fit.time_limit is not None else f"{fit.epochs} epochs"
        keys = (
            "none"
            if not p.model.uses_keyframes
            else f"{p.keyframes.codec} q{p.keyframes.quality} gop {p.keyframes.gop}"
        )
        depths = (
            f"{min(p.quant.bit_choices)}-{p.quant.bits} bit" if p.quant.bit_choices else f"{p.quant.bits} bit"
        )
        table.add_row(p.name, budget, keys, f"~{p.weight_bpp:g} bpp, {depths}", escape(p.description))
    results.print(table)


def _videos_table(videos: list[dict[str, Any]]) -> Table:
    table = Table("video", "frames", "fps", "original size", "clips")
    for v in videos:
        last = v["first_clip"] + v["clips"] - 1
        table.add_row(
            escape(v["name"]),
            str(v["frames"]),
            f"{v['fps']:.3g}",
            f"{v['height']}x{v['width']}",
            f"{v['first_clip']}..{last}",
        )
    return table


def _clips_table(clips: list[dict[str, Any]]) -> Table:
    table = Table("clip", "video", "frames")
    for c in clips:
        table.add_row(str(c["index"]), escape(c["video"]), f"{c['start']}..{c['start'] + c['frames'] - 1}")
    return table


def _sections_table(doc: dict[str, Any]) -> Table:
    table = Table("section", "bytes", "share", "bpp")
    total = doc["bytes"]["total"]
    pixels = doc["frames"] * doc["width"] * doc["height"]
    for name, n in doc["bytes"].items():
        table.add_row(name, f"{n:,}", f"{100 * n / total:.1f}%", f"{8 * n / pixels:.4f}")
    return table


def _weights_table(rows: list[dict[str, Any]]) -> Table:
    table = Table("weights", "tensors", "params", "bytes", "entropy", "side", "bits/param")
    for r in rows:
        table.add_row(
            r["class"],
            str(r["tensors"]),
            f"{r['params']:,}",
            f"{r['bytes']:,.0f}",
            f"{r['entropy']:,.0f}",
            f"{r['side']:,.0f}",
            f"{r['bits_per_param']:.2f}",
        )
    return table


@app.command()
def bench(
    inputs: Annotated[list[Path], typer.Argument(help="Video files and/or folders (searched recursively).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for results, plots and cache.")],
    quick: Annotated[
        bool,
        _flag("--quick", help="First 32 frames of each video, 3 CRFs, veryslow presets, 45-second fits."),
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
        _flag("--separate", help="Also fit one dnerv model per video at the same total bits and fit time."),
    ] = False,
    recompute: Annotated[
        bool, _flag("--recompute", help="Compute every point again, ignoring the cache.")
    ] = False,
    anchor: Annotated[
        str, typer.Option(help="Curve the BD-rates are measured against (a codec config, or dnerv).")
    ] = "x265-veryslow",
    size: Annotated[
        str | None, typer.Option(help="Working size HEIGHTxWIDTH (default: as `dnerv encode` picks it).")
    ] = None,
    quiet: Annotated[bool, _flag("--quiet", "-q", help=_QUIET_HELP)] = False,
) -> None:
    """Rate-distortion and speed of dnerv against x264, x265, SVT-AV1, NeRV and the keyframe blend."""
    from .bench.run import run_bench

    def work():
        from .export import parse_size

        return run_bench(
            inputs,
            output,
            codecs=codecs,
            quick=quick,
            separate=separate,
            recompute=recompute,
            anchor=anchor,
            size=None if size is None else parse_size(size),
            reporter=RichReporter(quiet, not quiet),
        )

    result = _run(work)
    if not quiet:
        _print_bench(result)


def _print_bench(result) -> None:
    results.print(_points_table(result.points))
    if result.bd:
        results.print(_bd_table(result.bd, result.anchor))
    results.print(
        f"{result.computed} point(s) computed, {result.cached} from the cache; wrote "
        + ", ".join(escape(str(f)) for f in result.files.values()),
        soft_wrap=True,
    )


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _percent(value: float | None) -> str:
    return _num(value, "+.1f") + ("%" if value is not None else "")


def _points_table(points: list[dict[str, Any]]) -> Table:
    table = Table(title="points")
    table.add_column("codec", no_wrap=True)
    table.add_column("setting", no_wrap=True)
    for column in ("bpp", "PSNR", "MS-SSIM", "enc fps", "dec fps", "fit s"):
        table.add_column(column, justify="right")
    for p in points:
        table.add_row(
            p["codec"],
            escape(p["label"]),
            f"{p['bpp']:.4f}",
            f"{p['psnr']:.2f}",
            _num(p["ms_ssim"], ".4f"),
            _num(p["encode_fps"], ".1f"),
            _num(p["decode_fps"], ".1f"),
            _num(p["fit_seconds"], ".0f"),
        )
    return table


def _bd_table(rows: list[dict[str, Any]], anchor: str) -> Table:
    table = Table(
        "codec", "BD-rate PSNR", "BD-rate MS-SSIM", "BD-PSNR", "dPSNR at equal bpp", "no BD-rate because",
        title=f"against {anchor} (negative BD-rate: fewer bits)",
    )  # fmt: skip
    for row in rows:
        table.add_row(
            row["codec"],
            _percent(row["bd_rate_psnr"]),
            _percent(row["bd_rate_ms_ssim"]),
            _num(row["bd_psnr"], "+.2f"),
            _num(row["psnr_at_equal_rate"], "+.2f"),
            escape(row.get("bd_note") or ""),
        )
    return table


def main() -> None:
    from .malloc import keep_freed_memory

    keep_freed_memory()  # our own process: reuse freed activations instead of page-faulting them in
    sys.exit(_main_exit_code())


def _main_exit_code() -> int:
    """Run the app; a usage error is one red line like every other error (not a box)."""
    # typer vendors click: its exceptions live there (typer exports no UsageError)
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

    try:
        code = app(standalone_mode=False)
    except NoArgsIsHelpError as exc:  # `dnerv` alone: the help
        exc.show()
        return exc.exit_code
    except UsageError as exc:
        where = f" (see `{exc.ctx.command_path} -h`)" if exc.ctx is not None else ""
        console.print(f"[red]error:[/] {_line(exc.format_message())}{where}", soft_wrap=True)
        return exc.exit_code
    except ClickException as exc:
        exc.show()
        return exc.exit_code
    except typer.Abort:  # end of input where typer was reading some (Ctrl-C comes back as exit code 130)
        console.print("[yellow]aborted[/]")
        return 1
    return code if isinstance(code, int) else 0
