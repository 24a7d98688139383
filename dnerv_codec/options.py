"""Every option of an encode, declared once: the fields of EncodeOptions.

Each field carries as metadata its help text (what `dnerv encode --help` prints, word for word),
how the CLI shows it, and the values it accepts (ge/gt/le/lt bounds, choices). Built from this
table: the `dnerv encode` command (cli.py), the keywords `dn.encode` forwards
(dnerv_codec/__init__.py) and the bench's DnervSetting (bench/run.py). The values are refused where
they are used (config.FitConfig, KeyframeConfig, ModelConfig, rate.check_bpp, ...), with the
one-line messages the CLI prints; tests/test_options.py checks that the CLI, dn.encode and the bench
match the table and that a value just outside each bound and choice declared here is refused there.
"""

from __future__ import annotations

import dataclasses
import operator
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import (
    KEYFRAME_CODEC_HELP,
    KEYFRAME_CODECS,
    KEYFRAME_QUALITY_HELP,
    MAX_BPP,
    MAX_KEYFRAME_GOP,
    PRESETS,
    ModelConfig,
    QuantConfig,
)
from .errors import ConfigError, InputError


def option(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    flags: tuple[str, ...] = (),
    cli: bool = True,
    argument: bool = False,
    cli_type: Any = None,
    **accepts: Any,
) -> Any:
    """A field of EncodeOptions with its help. flags: the CLI's names when not --field-name;
    cli=False: library only (no CLI option); argument: a positional CLI argument; cli_type: the
    type the CLI parses when it is not the field's (the library parses the text). accepts: the
    values allowed besides None, as bounds ge, gt, le, lt (>=, >, <=, <) and/or choices."""
    unknown = set(accepts) - {"ge", "gt", "le", "lt", "choices"}
    if unknown:
        raise TypeError(f"unknown option() arguments: {', '.join(sorted(unknown))}")
    meta = {"help": help, "flags": flags, "cli": cli, "argument": argument, "cli_type": cli_type, **accepts}
    return dataclasses.field(default=default, metadata=meta)


_PRESET_HELP = f"Named settings: {', '.join(PRESETS)}; `dnerv presets` shows what each does and costs."


@dataclass(frozen=True)
class EncodeOptions:
    """Everything `dnerv encode` and `dn.encode` take. None means: the preset's value."""

    inputs: tuple[Path, ...] = option(
        help="Video files and/or folders (searched recursively).", argument=True, cli_type=list[Path]
    )
    output: Path = option(help="Archive to write, e.g. archive.dnv.", flags=("-o", "--output"))
    preset: str = option("default", help=_PRESET_HELP, choices=tuple(PRESETS))
    size: tuple[int, int] | None = option(
        None, help="Working size HEIGHTxWIDTH (default: the inputs' own when shared).", cli_type=str | None
    )
    epochs: int | None = option(None, help="Fit for this many epochs (reproducible with --seed).", ge=1)
    time_limit: float | None = option(None, help="Fit for this many minutes; the schedule spans them.", gt=0)
    keyframe_codec: str | None = option(None, help=KEYFRAME_CODEC_HELP, choices=tuple(KEYFRAME_CODECS))
    # its range depends on the codec: KeyframeConfig checks it against KEYFRAME_CODECS
    keyframe_quality: int | None = option(None, help=KEYFRAME_QUALITY_HELP, ge=0)
    keyframe_gop: int | None = option(
        None,
        help="Keyframes per coding group, 1-8: an intra frame then P-frames (1: all intra).",
        ge=1,
        le=MAX_KEYFRAME_GOP,
    )
    fc_dim: int | None = option(None, help="Network width C0 (default: sized to the data).", ge=1)
    bpp: float | None = option(
        None,
        help="Target bits per pixel: picks the keyframe quality and the network width.",
        gt=0,
        le=MAX_BPP,
    )
    weight_bpp: float | None = option(
        None,
        help="Bits per pixel the network's weights may cost; sets C0 (default: the preset's).",
        gt=0,
        le=MAX_BPP,
    )
    model: ModelConfig | None = option(
        None,
        help="Replaces the preset's network shape (fc_dim is still chosen unless given).",
        cli=False,
    )
    quant: QuantConfig | None = option(
        None,
        help="Replaces the preset's weight compression (e.g. plain 8 bits: QuantConfig()).",
        cli=False,
    )
    weight_share: float | None = option(
        None,
        help="With bpp: the share of the target meant for the weights (default: the preset's rule, "
        "see rate.plan_rate).",
        cli=False,
        gt=0,
        lt=1,
    )
    weight_bytes: int | None = option(
        None,
        help="Budget of the weight compression: its bit depths are fitted to at most about this many "
        "weight bytes (--bpp sets it from the target).",
        cli=False,
        ge=1,
    )
    batch_size: int | None = option(None, help="Clips per step.", ge=1)
    lr: float | None = option(None, help="Peak learning rate.", gt=0)
    seed: int = option(0, help="Seed of initialisation and data order.")
    device: str = option("auto", help="auto, cpu or cuda.")
    cache_dir: Path | None = option(None, help="Folder of the temporary frame cache.")
    resume: bool = option(False, help="Continue an interrupted fit from its checkpoint.")
    force: bool = option(False, help="Overwrite an existing output.")

    @classmethod
    def from_call(cls, values: dict[str, Any]) -> EncodeOptions:
        """The options from what a caller passed (every field by name): inputs a path or a list of
        them, size 'HxW' or (height, width), paths as str or os.PathLike. InputError for no inputs,
        InputError / ConfigError for a bad size."""
        inputs = values["inputs"]
        if isinstance(inputs, (str, os.PathLike)):
            inputs = [inputs]
        paths = tuple(Path(p) for p in inputs)
        if not paths:
            raise InputError("no inputs given: pass a video file, a folder or a list of them")
        cache_dir = values["cache_dir"]
        return cls(
            **{
                **values,
                "inputs": paths,
                "output": Path(values["output"]),
                "size": _size(values["size"]),
                "cache_dir": Path(cache_dir) if cache_dir is not None else None,
            }
        )


def _size(size: str | Iterable[int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, str):
        from .export import parse_size

        return parse_size(size)
    try:
        height, width = (operator.index(s) for s in size)
    except (TypeError, ValueError):
        raise ConfigError(f"size must be 'HxW' or (height, width), got {size!r}") from None
    if height < 1 or width < 1:
        raise ConfigError(f"size must be positive, got {size!r}")
    return (height, width)
