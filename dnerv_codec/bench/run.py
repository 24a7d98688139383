"""The benchmark run: every point of every ladder, cached, then tables, BD-rates, JSON, CSV and plots.

run_bench(inputs, out_dir, ...) finds the videos as `dnerv encode` does, fixes the working size as
encode would, and computes:

- standard codecs (codecs.py): one point per video and CRF, cached in out_dir/points/CODEC/KEY.json
  (KEY = sha256 of the codec, its settings, the video's content hash, the working size and the
  version of the code the point depends on: code_version); a
  collection point per CRF sums the bits of all videos and averages PSNR / MS-SSIM over all frames
  (the frame-weighted mean of the per-video means).
- dnerv: one `dn.encode` of ALL the videos per setting of the ladder (keyframe quality, preset,
  fit budget), the archive kept in out_dir/archives/; cached likewise, keyed on the collection.
  Decode speed is timed on the CPU on up to DECODE_CLIPS clips of the archive.
- blend: from the same archives, the network-free keyframe blend (EncodeReport.blend_psnr) at the
  archive's bytes minus its weights section, i.e. keyframes, keyframe index, header and container:
  what the keyframes alone give. No MS-SSIM (encode measures the blend's PSNR only).
- nerv: the NeRV baseline (model kind 'nerv': no keyframes), one network for all the videos, its
  width set by a ladder of weight budgets; same fit budget, quantization, coding and archive.
- dnerv-separate (separate=True): the dnerv ladder again with one archive per video, each with its
  frame share of the joint model's fit time, parameters (every width scaled down) and weight bytes,
  and the same keyframes: the same total bits as the joint archive, so the paper's claim, one model
  for many videos beats one per video, is tested on the user's data.

--quick codes the first QUICK_FRAMES frames of each video (written once, losslessly, to
out_dir/quick-inputs) with 3 CRFs per codec, the veryslow presets only, and 45-second fits.
A rerun loads every cached point and computes only what is missing (a point computed by other code
is missing); recompute=True computes all.
The anchor's ladder is always computed (the BD-rate table needs it).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import io
import itertools
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..atomic import write_atomic
from ..errors import ConfigError, InputError, OutputError
from ..options import EncodeOptions
from ..report import Reporter
from . import codecs as codecs_mod
from .bdrate import (
    MIN_MS_SSIM_OVERLAP,
    MIN_PSNR_OVERLAP_DB,
    bd_delta,
    bd_quality,
    bd_rate,
    psnr_at_equal_rate,
)
from .machine import library_versions, machine_description, provenance

BENCH_VERSION = 1  # part of every cache key: bump when a point's meaning changes
FAMILIES = ("x264", "x265", "av1", "blend", "dnerv", "nerv")
DEFAULT_CODECS = FAMILIES
DEFAULT_ANCHOR = "x265-veryslow"
DECODE_CLIPS = 16
QUICK_CODECS = ("x264-veryslow", "x265-veryslow", "av1-preset4")  # --quick leaves out the medium presets
QUICK_FRAMES = 32
NEURAL = {"dnerv", "blend", "nerv"}
"""--quick codes the first QUICK_FRAMES frames of each video (every codec the same frames)."""


class _SettingMethods:
    """What a DnervSetting says about itself (its fields come from the option table, below)."""

    @property
    def budget(self) -> str:
        return f"{self.epochs} ep" if self.epochs is not None else f"{self.time_limit:g} min"

    @property
    def label(self) -> str:
        parts = [self.preset]
        if self.bpp is not None:
            parts.append(f"target {self.bpp:g} bpp")
        if self.keyframe_codec is not None:
            parts.append(self.keyframe_codec)
        if self.keyframe_quality is not None:
            parts.append(f"kq{self.keyframe_quality}")
        if self.keyframe_gop is not None:
            parts.append(f"gop {self.keyframe_gop}")
        if self.fc_dim is not None:
            parts.append(f"C0 {self.fc_dim}")
        if self.weight_bpp is not None:
            parts.append(f"weights {self.weight_bpp:g} bpp")
        if self.weight_bytes is not None:
            parts.append(f"weights <= {self.weight_bytes:,} B")
        if self.quant is not None and not self.quant.bit_choices and not self.quant.finetune_frac:
            parts.append(f"plain {self.quant.bits}-bit")
        return f"{' '.join(parts)}, {self.budget}"

    def encode_options(self) -> dict[str, Any]:
        """The keywords of dn.encode this setting fixes."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "curve"}

    def doc(self) -> dict[str, Any]:
        """The settings as results.json and the cached points record them."""
        return {_STORED_NAMES.get(k, k): v for k, v in dataclasses.asdict(self).items()}

    def key_doc(self) -> dict[str, Any]:
        """The settings as cached points are keyed on. Fields added after the first bench version
        are left out while unset, so the points cached before them stay valid."""
        unset = {
            _STORED_NAMES.get(f.name, f.name)
            for f in dataclasses.fields(self)
            if f.name not in _V1_FIELDS and getattr(self, f.name) == f.default
        }
        return {k: v for k, v in self.doc().items() if k not in unset}


_PER_RUN = ("inputs", "output", "size", "device", "cache_dir", "resume", "force")
"""Options of dn.encode the bench sets itself for every point (or leaves at their defaults)."""
_POSITIONAL = ("preset", "keyframe_quality")  # DnervSetting("default", 34, ...): a rung of a ladder
_V1_FIELDS = ("preset", "keyframe_quality", "time_limit", "epochs", "fc_dim", "weight_bpp", "seed")
_STORED_NAMES = {"time_limit": "time_limit_min"}  # its name in bench version 1's cache keys and results


def _setting_fields() -> list[tuple[str, Any, Any]]:
    fields = [
        (f.name, f.type, dataclasses.field(default=f.default, kw_only=f.name not in _POSITIONAL))
        for f in dataclasses.fields(EncodeOptions)
        if f.name not in _PER_RUN
    ]
    return [*fields, ("curve", str, dataclasses.field(default="dnerv", kw_only=True))]


DnervSetting = dataclasses.make_dataclass(
    "DnervSetting", _setting_fields(), bases=(_SettingMethods,), frozen=True
)
DnervSetting.__module__ = __name__  # make_dataclass takes module= from Python 3.12 on
DnervSetting.__doc__ = """One neural point: the options given to dn.encode (the fields of
options.EncodeOptions but those in _PER_RUN; None: the preset's value), and `curve`, the curve
(results' "codec") the point belongs to; its blend curve is named after it."""


FIT_MIN, QUICK_FIT_MIN = 3.0, 0.75
DNERV_LADDER = tuple(DnervSetting("default", q, time_limit=FIT_MIN) for q in (38, 34, 30, 26))
DNERV_QUICK = tuple(DnervSetting("default", q, time_limit=QUICK_FIT_MIN) for q in (38, 34, 30, 26))
NERV_LADDER = tuple(DnervSetting("nerv", weight_bpp=b, time_limit=FIT_MIN) for b in (0.03, 0.06, 0.12, 0.24))
NERV_QUICK = tuple(DnervSetting("nerv", weight_bpp=b, time_limit=QUICK_FIT_MIN) for b in (0.06, 0.24))
"""The neural ladders, every point with the same fit budget. dnerv: the keyframe CRF (HEVC) sets the
rate and the network width follows the preset's weight budget; NeRV (no keyframes): the weight
budget sets the width. --separate fits the dnerv ladder once more, one model per video."""


@dataclass
class _Context:
    """What every neural point needs: the cache, the output folder, the encoder and the ladders."""

    cache: PointCache
    out_dir: Path
    reporter: Reporter
    encoder: Callable[..., Any]
    dnerv_ladder: tuple[DnervSetting, ...]
    nerv_ladder: tuple[DnervSetting, ...]


@dataclass
class BenchResult:
    """What run_bench produced: collection points, BD table, files written, cache statistics."""

    out_dir: Path
    points: list[dict[str, Any]]
    bd: list[dict[str, Any]]
    anchor: str
    files: dict[str, Path]
    computed: int
    cached: int
    settings: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- arguments


def parse_codecs(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """Families ('x264,x265,av1,blend,dnerv,nerv') or single configurations ('x265-veryslow'),
    from a comma-separated string or a list; ConfigError for unknown or none."""
    if text is None:
        return DEFAULT_CODECS
    items = text.split(",") if isinstance(text, str) else list(text)
    names = [s.strip().lower() for s in items if s.strip()]
    known = FAMILIES + tuple(codecs_mod.CODECS)
    if not names:
        raise ConfigError(f"no codec given; choose from {','.join(known)}")
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"unknown codec {unknown[0]!r}; choose from {','.join(known)}")
    return tuple(dict.fromkeys(names))


def _check_anchor(anchor: str) -> None:
    if anchor not in codecs_mod.CODECS and anchor not in NEURAL:
        known = ", ".join([*codecs_mod.CODECS, *sorted(NEURAL)])
        raise ConfigError(f"unknown anchor {anchor!r}; choose one of {known}")


def _prepare_out(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"output {out_dir} is a file; give a folder for the results")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder {out_dir}: {exc.strerror or exc}") from None


# ---------------------------------------------------------------- cache


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# What the points of the standard codecs depend on in dnerv_codec (the neural points: all of it)
_CODEC_SOURCES = ("bench/codecs.py", "keyframes.py", "metrics.py", "video/read.py", "video/colour.py")
_PACKAGE = Path(__file__).resolve().parent.parent


@functools.cache
def code_version(sources: tuple[str, ...] | None = None, root: Path = _PACKAGE) -> str:
    """The package version and a hash of the source files `sources` (paths under `root`, the
    dnerv_codec package; None: every .py in it). In every cache key: a code change computes again."""
    paths = sorted(root.rglob("*.py")) if sources is None else [root / s for s in sources]
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return f"{__version__}+{digest.hexdigest()[:16]}"


def cache_key(doc: dict[str, Any]) -> str:
    text = json.dumps({"bench_version": BENCH_VERSION, **doc}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class PointCache:
    """One JSON file per point: out_dir/points/GROUP/KEY.json holding {"key": doc, "point": ...}."""

    def __init__(self, root: Path, recompute: bool) -> None:
        self.root, self.recompute = root, recompute
        self.hits = 0
        self.misses = 0

    def path(self, group: str, key: str) -> Path:
        return self.root / "points" / group / f"{key}.json"

    def load(self, group: str, key: str) -> dict[str, Any] | None:
        if self.recompute:
            return None
        path = self.path(group, key)
        try:
            doc = json.loads(path.read_text())
            point = doc["point"]
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing or damaged: computed again
        self.hits += 1
        return point

    def save(self, group: str, key: str, key_doc: dict[str, Any], point: dict[str, Any]) -> None:
        self.misses += 1
        _write_atomic(
            self.path(group, key), json.dumps({"key": key_doc, "point": point}, indent=1, default=str)
        )


def _write_atomic(path: Path, text: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        write_atomic(path, text)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


# ---------------------------------------------------------------- the run


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80]


def _frame_mean(parts: list[dict[str, Any]], key: str) -> float | None:
    """The mean of parts[i][key] over all frames (each part weighs its frame count); None if any is."""
    values = [p[key] for p in parts]
    if None in values:
        return None
    return sum(v * p["frames"] for v, p in zip(values, parts, strict=True)) / sum(p["frames"] for p in parts)


def _aggregate(codec: codecs_mod.Codec, crf: int, per_video: list[dict[str, Any]]) -> dict[str, Any]:
    frames = sum(p["frames"] for p in per_video)
    pixels = sum(p["frames"] * p["height"] * p["width"] for p in per_video)
    nbytes = sum(p["bytes"] for p in per_video)
    return {
        "codec": codec.name,
        "family": codec.family,
        "label": f"crf {crf}",
        "settings": codec.settings(crf),
        "bytes": nbytes,
        "bpp": nbytes * 8 / pixels,
        "psnr": _frame_mean(per_video, "psnr"),
        "ms_ssim": _frame_mean(per_video, "ms_ssim"),
        "frames": frames,
        "encode_fps": frames / sum(p["encode_seconds"] for p in per_video),
        "decode_fps": frames / sum(p["decode_seconds"] for p in per_video),
        "fit_seconds": None,
        "encoder": per_video[0]["encoder_version"],
        "note": f"{codec.pix_fmt}, BT.709 full range; rate counts the coded stream, not the container",
        "videos": per_video,
    }


def _codec_points(
    videos, size, names: list[str], quick: bool, cache: PointCache, out_dir: Path, reporter: Reporter, coder
) -> list[dict[str, Any]]:
    from ..video.read import iter_frames

    per_point: dict[tuple[str, int], list[dict[str, Any]]] = {}
    todo = []
    for v in videos:
        for name in names:
            codec = codecs_mod.CODECS[name]
            for crf in codec.ladder(quick):
                key_doc = {"codec": name, "settings": codec.settings(crf), "input": v.hash, "size": size}
                key_doc["code"] = code_version(_CODEC_SOURCES)
                key = cache_key(key_doc)
                point = cache.load(name, key)
                per_point.setdefault((name, crf), []).append(point)
                if point is None:
                    todo.append((v, codec, crf, key, key_doc, len(per_point[(name, crf)]) - 1))
    if todo:
        with reporter.task("standard codecs", total=len(todo), unit="point") as task:
            frames_of: dict[str, np.ndarray] = {}
            for v, codec, crf, key, key_doc, slot in todo:
                if v.info.name not in frames_of:
                    frames_of.clear()  # one video in memory at a time (todo is grouped by video)
                    frames_of[v.info.name] = np.stack(list(iter_frames(v.info.path, size)))
                stream = out_dir / "streams" / codec.name / f"{_safe(v.info.name)}-{v.hash[:8]}-crf{crf}.mkv"
                point = coder(codec, frames_of[v.info.name], crf, stream, v.info.name, v.info.fps).to_json()
                cache.save(codec.name, key, key_doc, point)
                per_point[(codec.name, crf)][slot] = point
                task.advance(1, codec=codec.name, crf=crf, psnr=point["psnr"])
    return [_aggregate(codecs_mod.CODECS[n], c, pts) for (n, c), pts in per_point.items()]


def _time_decode(archive_path: Path) -> tuple[float, int]:
    """Decode frames per second of an archive on the CPU, over up to DECODE_CLIPS clips."""
    from ..decode import Archive

    archive = Archive(archive_path, "cpu")
    indices = list(range(min(DECODE_CLIPS, len(archive.clips))))
    started = time.perf_counter()
    frames = sum(len(clip) for clip in archive.iter_clips(indices, 4))  # builds the network too
    return frames / (time.perf_counter() - started), frames


def _fit(videos, size, setting: DnervSetting, group: str, ctx: _Context) -> dict[str, Any]:
    """One archive of `videos` fitted with `setting` (cached under `group`): the encode report,
    decode speed and the keyframes-only bytes."""
    key_doc = {
        "codec": group,
        "settings": setting.key_doc(),
        "inputs": [v.hash for v in videos],
        "size": size,
        "code": code_version(),
    }
    key = cache_key(key_doc)
    point = ctx.cache.load(group, key)
    if point is not None:
        return point
    names = videos[0].info.name if len(videos) == 1 else f"all {len(videos)} videos"
    ctx.reporter.info(f"{group} {setting.label}: fitting {names}")
    archive = ctx.out_dir / "archives" / f"{group}-{key}.dnv"
    archive.parent.mkdir(parents=True, exist_ok=True)
    report = ctx.encoder(
        [v.info.path for v in videos],
        archive,
        size=size,
        cache_dir=ctx.out_dir / "cache",
        force=True,
        reporter=ctx.reporter,
        **setting.encode_options(),
    )
    decode_fps, decode_frames = _time_decode(archive)
    pixels = report.frames * report.width * report.height
    keyframes_only = report.bytes - report.sections.get("weights", 0)
    point = {
        "settings": setting.doc(),
        "label": setting.label,
        "report": report.to_json(),
        "decode_fps": decode_fps,
        "decode_frames_timed": decode_frames,
        "blend_bytes": keyframes_only,
        "blend_bpp": keyframes_only * 8 / pixels,
        "archive": str(archive),
    }
    ctx.cache.save(group, key, key_doc, point)
    return point


def _neural_point(
    codec: str, family: str, fitted: list[dict[str, Any]], setting: DnervSetting
) -> dict[str, Any]:
    """The collection point of one or more archives (several: --separate, one per video): bytes
    summed, PSNR and MS-SSIM averaged over all frames, speeds over the total time."""
    reps = [f["report"] for f in fitted]
    frames = sum(r["frames"] for r in reps)
    nbytes = sum(r["bytes"] for r in reps)
    pixels = sum(r["frames"] * r["width"] * r["height"] for r in reps)
    decoded = sum(f["decode_frames_timed"] for f in fitted)
    blend_psnr = _frame_mean(reps, "blend_psnr")  # None for NeRV
    psnr = _frame_mean(reps, "psnr")
    return {
        "codec": codec,
        "family": family,
        "bytes": nbytes,
        "bpp": nbytes * 8 / pixels,
        "psnr": psnr,
        "ms_ssim": _frame_mean(reps, "ms_ssim"),
        "blend_psnr": blend_psnr,
        "gain_db": None if blend_psnr is None else psnr - blend_psnr,
        "frames": frames,
        "encode_fps": frames / sum(r["seconds"] for r in reps),
        "decode_fps": decoded / sum(f["decode_frames_timed"] / f["decode_fps"] for f in fitted),
        "fit_seconds": sum(r["fit_seconds"] for r in reps),
        "params": sum(r["params"] for r in reps) if all("params" in r for r in reps) else None,
        "encoder": f"dnerv {__version__} ({reps[0]['device']}, {len(reps)} archive(s), "
        f"{sum(r.get('fit_epochs', 0) for r in reps) / len(reps):.1f} epochs)",
        "note": (
            f"fit budget {setting.budget}; encode fps = frames / total encode time; decode fps on the "
            f"CPU over {decoded} frames"
        ),
        "settings": setting.doc(),
        "label": setting.label,
        "archives": [f["archive"] for f in fitted],
        "videos": [],
    }


def _blend_point(fitted: dict[str, Any], setting: DnervSetting) -> dict[str, Any]:
    rep = fitted["report"]
    return {
        "codec": "blend" if setting.curve == "dnerv" else f"{setting.curve}-blend",
        "family": "blend",
        "bytes": fitted["blend_bytes"],
        "bpp": fitted["blend_bpp"],
        "psnr": rep["blend_psnr"],
        "ms_ssim": None,
        "frames": rep["frames"],
        "encode_fps": None,
        "decode_fps": None,
        "fit_seconds": None,
        "encoder": "keyframes of the dnerv archive, blended linearly by distance",
        "note": "archive bytes minus the weights section (keyframes only); PSNR measured by encode",
        "settings": setting.doc(),
        "label": setting.label,
        "videos": [],
    }


def _separate_settings(videos, size, setting: DnervSetting, joint: dict[str, Any]) -> list[DnervSetting]:
    """Per video, `setting` with its share (by frame count when known) of the joint model's fit
    time, parameters and weight bytes, so the total bits match the joint archive's (the keyframes
    are coded per video either way): every width of the network scaled by sqrt(share) (parameters
    grow about as width squared), then the widest C0 within the parameter share, and the bit
    depths fitted to the share of the joint weight bytes."""
    from ..config import get_preset
    from ..model.build import count_parameters

    counts = [v.info.frames_estimate or 0 for v in videos]
    shares = [c / sum(counts) for c in counts] if all(counts) else [1 / len(videos)] * len(videos)
    model = setting.model or get_preset(setting.preset).model
    report = joint["report"]
    out = []
    for share in shares:
        k = math.sqrt(share)
        scaled = dataclasses.replace(
            model,
            enc_dim=max(2, round(model.enc_dim * k)),
            stem_hidden=max(4, round(model.stem_hidden * k)),
            min_width=max(2, round(model.min_width * k)),
        )
        fc = 1
        while count_parameters(dataclasses.replace(scaled, fc_dim=fc + 1), *size) <= share * report["params"]:
            fc += 1
        time_limit = None if setting.time_limit is None else setting.time_limit * share
        out.append(
            dataclasses.replace(
                setting,
                curve=f"{setting.curve}-separate",
                fc_dim=fc,
                model=scaled,
                weight_bytes=max(1, int(share * report["sections"]["weights"])),
                time_limit=time_limit,
            )
        )
    return out


def _neural_points(videos, size, ctx: _Context, chosen: _Choice) -> list[dict[str, Any]]:
    points, want, separate = [], chosen.want, chosen.separate
    if chosen.fits_dnerv:
        for setting in ctx.dnerv_ladder:
            curve = setting.curve
            joint = _fit(videos, size, setting, curve, ctx)  # --separate matches its bits
            if "dnerv" in want:
                points.append(_neural_point(curve, "dnerv", [joint], setting))
            if "blend" in want:
                points.append(_blend_point(joint, setting))
            if separate:
                per_video = _separate_settings(videos, size, setting, joint)
                fitted = [_fit([v], size, s, s.curve, ctx) for v, s in zip(videos, per_video, strict=True)]
                points.append(_neural_point(per_video[0].curve, "dnerv", fitted, setting))
    if "nerv" in want:
        for setting in ctx.nerv_ladder:
            points.append(_neural_point("nerv", "nerv", [_fit(videos, size, setting, "nerv", ctx)], setting))
    return points


@dataclass
class _Video:
    info: Any  # VideoInfo
    hash: str


def bd_table(points: list[dict[str, Any]], anchor: str) -> list[dict[str, Any]]:
    """BD-rate (PSNR, MS-SSIM) and BD-PSNR of every curve against the anchor's, and the mean PSNR
    difference at equal bpp (psnr_at_equal_rate), which is what is left where a BD-rate is refused
    (bd_note says why: too small an overlap, a curve that does not rise)."""
    curves: dict[str, list[dict[str, Any]]] = {}
    for p in points:
        curves.setdefault(p["codec"], []).append(p)
    if anchor not in curves:
        return []
    a = curves[anchor]
    a_rate = [p["bpp"] for p in a]
    rows = []
    for name, pts in curves.items():
        if name == anchor:
            continue
        rate = [p["bpp"] for p in pts]
        psnr = [p["psnr"] for p in pts]
        row: dict[str, Any] = {"codec": name, "anchor": anchor, "points": len(pts)}
        delta = bd_delta((a_rate, [p["psnr"] for p in a]), (rate, psnr), "quality", MIN_PSNR_OVERLAP_DB)
        row["bd_rate_psnr"], row["bd_note"] = delta.value, delta.reason
        row["bd_psnr"] = bd_quality(a_rate, [p["psnr"] for p in a], rate, psnr)
        if all(p["ms_ssim"] is not None for p in pts + a):
            row["bd_rate_ms_ssim"] = bd_rate(
                a_rate, [p["ms_ssim"] for p in a], rate, [p["ms_ssim"] for p in pts], MIN_MS_SSIM_OVERLAP
            )
        else:
            row["bd_rate_ms_ssim"] = None
        row["psnr_at_equal_rate"] = psnr_at_equal_rate(a_rate, [p["psnr"] for p in a], rate, psnr)
        rows.append(row)
    return rows


_CSV_FIELDS = [
    "codec",
    "label",
    "video",
    "frames",
    "bytes",
    "bpp",
    "psnr",
    "ms_ssim",
    "encode_fps",
    "decode_fps",
    "fit_seconds",
    "encoder",
]


def _csv(points: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, _CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for p in points:
        writer.writerow({**p, "video": "(all)"})
        for v in p.get("videos", []):
            writer.writerow(
                {**v, "label": p["label"], "encoder": v.get("encoder_version"), "fit_seconds": None}
            )
    return buf.getvalue()


def _quick_inputs(
    videos: list[_Video], size: tuple[int, int], out_dir: Path, reporter: Reporter
) -> list[_Video]:
    """The first QUICK_FRAMES frames of each video at the working size, as lossless FFV1 files in
    out_dir/quick-inputs (written once; every codec and fit of a --quick run reads these)."""
    from ..video.read import find_videos, iter_frames
    from ..video.write import write_video

    folder = out_dir / "quick-inputs"
    paths = []
    for v in videos:
        path = folder / f"{_safe(Path(v.info.name).stem)}-{v.hash[:8]}-{QUICK_FRAMES}f.mkv"
        if not path.exists():
            frames = itertools.islice(iter_frames(v.info.path, size), QUICK_FRAMES)
            write_video(path, frames, v.info.fps)
        paths.append(path)
    found, _ = find_videos(paths)
    reporter.info(f"--quick: the first {QUICK_FRAMES} frames of each video ({folder})")
    return [_Video(f, file_hash(f.path)) for f in found]


def run_bench(
    inputs: Sequence[str | os.PathLike] | str | os.PathLike,
    out_dir: str | os.PathLike,
    codecs: str | Sequence[str] | None = None,
    quick: bool = False,
    recompute: bool = False,
    reporter: Reporter | None = None,
    anchor: str = DEFAULT_ANCHOR,
    size: tuple[int, int] | None = None,
    separate: bool = False,
    dnerv_ladder: Sequence[DnervSetting] | None = None,
    nerv_ladder: Sequence[DnervSetting] | None = None,
    plots: bool = True,
    coder: Callable[..., codecs_mod.CodecPoint] | None = None,
    encoder: Callable[..., Any] | None = None,
) -> BenchResult:
    """Benchmark dnerv against the standard codecs, NeRV and the keyframe blend on `inputs`; see
    the module docstring. separate=True also fits the dnerv ladder one model per video. Writes
    out_dir/results.json, results.csv, rd.png and rd.svg. `coder` and `encoder` replace
    codecs.code_video and dn.encode (tests count their calls).

    Raises InputError (no usable video), ConfigError (unknown codec or anchor), OutputError."""
    reporter = reporter or Reporter()
    families = parse_codecs(codecs)
    _check_anchor(anchor)
    paths = _input_paths(inputs)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"output {out_dir} is a file; give a folder for the results")
    chosen = _choose(families, anchor, quick, separate, dnerv_ladder, nerv_ladder)
    videos, work = _bench_videos(paths, size, chosen.dnerv_ladder, out_dir, quick, reporter)

    cache = PointCache(out_dir, recompute)
    started = time.monotonic()
    coder = coder or codecs_mod.code_video
    points = _codec_points(videos, work, chosen.codec_configs, quick, cache, out_dir, reporter, coder)
    if chosen.want or separate:
        if encoder is None:
            from .. import encode as encoder
        ctx = _Context(cache, out_dir, reporter, encoder, chosen.dnerv_ladder, chosen.nerv_ladder)
        points += _neural_points(videos, work, ctx, chosen)
    points.sort(key=lambda p: (p["codec"], p["bpp"]))
    bd = bd_table(points, anchor)

    settings = {
        "inputs": [str(p) for p in paths],
        "videos": [{"name": v.info.name, "path": str(v.info.path), "sha256": v.hash} for v in videos],
        "working_size": list(work),
        **chosen.doc(),
        "bench_version": BENCH_VERSION,
    }
    doc = _results_doc(settings, points, bd, cache, time.monotonic() - started)
    files = _write_results(out_dir, doc, f"{len(videos)} videos at {work[0]}x{work[1]}" if plots else None)
    return BenchResult(out_dir, points, bd, anchor, files, cache.misses, cache.hits, settings)


@dataclass(frozen=True)
class _Choice:
    """What a run computes: the standard codec configurations and the neural curves with their
    ladders."""

    families: tuple[str, ...]
    codec_configs: list[str]
    anchor: str
    quick: bool
    separate: bool
    want: set[str]  # the neural curves asked for (the anchor's included)
    dnerv_ladder: tuple[DnervSetting, ...]
    nerv_ladder: tuple[DnervSetting, ...]

    @property
    def fits_dnerv(self) -> bool:
        return bool(self.want & {"dnerv", "blend"}) or self.separate

    def doc(self) -> dict[str, Any]:
        """The run's settings as results.json records them."""
        return {
            "codecs": list(self.families),
            "codec_configs": self.codec_configs,
            "anchor": self.anchor,
            "quick": self.quick,
            "quick_frames": QUICK_FRAMES if self.quick else None,
            "separate": self.separate,
            "dnerv_ladder": [s.doc() for s in self.dnerv_ladder] if self.fits_dnerv else [],
            "nerv_ladder": [s.doc() for s in self.nerv_ladder] if "nerv" in self.want else [],
        }


def _choose(
    families: tuple[str, ...],
    anchor: str,
    quick: bool,
    separate: bool,
    dnerv_ladder: Sequence[DnervSetting] | None,
    nerv_ladder: Sequence[DnervSetting] | None,
) -> _Choice:
    """The codec configurations (--quick: of QUICK_CODECS; the anchor's always, the BD table needs
    it), the neural curves and their ladders (given, else the full or --quick ones)."""
    names = [
        c.name
        for c in codecs_mod.CODECS.values()
        if (c.family in families or c.name in families) and (not quick or c.name in QUICK_CODECS)
    ]
    if anchor in codecs_mod.CODECS and anchor not in names:
        names.append(anchor)
    want = {f for f in families if f in NEURAL} | ({anchor} & NEURAL)
    d_ladder = tuple(dnerv_ladder) if dnerv_ladder is not None else (DNERV_QUICK if quick else DNERV_LADDER)
    n_ladder = tuple(nerv_ladder) if nerv_ladder is not None else (NERV_QUICK if quick else NERV_LADDER)
    chosen = _Choice(families, names, anchor, quick, separate, want, d_ladder, n_ladder)
    if (not d_ladder and chosen.fits_dnerv) or (not n_ladder and "nerv" in want):
        raise ConfigError("a neural ladder is empty")
    return chosen


def _input_paths(inputs: Sequence[str | os.PathLike] | str | os.PathLike) -> list[Path]:
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    paths = [Path(p) for p in inputs]
    if not paths:
        raise InputError("no inputs given: pass video files and/or folders")
    return paths


def _bench_videos(
    paths: list[Path],
    size: tuple[int, int] | None,
    dnerv_ladder: tuple[DnervSetting, ...],
    out_dir: Path,
    quick: bool,
    reporter: Reporter,
) -> tuple[list[_Video], tuple[int, int]]:
    """The videos to benchmark (each with its content hash) and the working size, as encode would
    pick it for the first dnerv setting's preset; the output folder is made once there are some."""
    from ..config import get_preset
    from ..encoding.frames import working_size
    from ..video.read import find_videos

    found, skipped = find_videos(paths)
    for path, reason in skipped:
        reporter.warn(f"skipped {path}: {reason}")
    if not found:
        raise InputError("no usable video among the inputs: " + ", ".join(str(p) for p in paths))
    _prepare_out(out_dir)  # only once there is something to benchmark
    preset = get_preset(dnerv_ladder[0].preset if dnerv_ladder else "default")
    height, width = working_size(found, size, preset.default_size, preset.model.size_multiple)
    work = (int(height), int(width))
    videos = [_Video(v, file_hash(v.path)) for v in found]
    reporter.info(f"{len(videos)} video(s) at working size {work[0]}x{work[1]}; results in {out_dir}")
    if quick:
        videos = _quick_inputs(videos, work, out_dir, reporter)
    return videos, work


def _results_doc(
    settings: dict[str, Any],
    points: list[dict[str, Any]],
    bd: list[dict[str, Any]],
    cache: PointCache,
    seconds: float,
) -> dict[str, Any]:
    return {
        "settings": settings,
        "provenance": provenance(),
        "machine": machine_description(),
        "versions": library_versions(),
        "points": points,
        "bd": bd,
        "seconds_this_run": seconds,
        "points_computed": cache.misses,
        "points_cached": cache.hits,
        "rate": "bits / (frames x height x width) at the working size",
        "quality": "mean over frames of per-frame RGB PSNR (8-bit); MS-SSIM (pytorch-msssim); decoded frames",
    }


def _write_results(out_dir: Path, doc: dict[str, Any], plot_title: str | None) -> dict[str, Path]:
    """results.json, results.csv and (with a plot title) the RD plots; returns the files by kind."""
    files = {"json": out_dir / "results.json", "csv": out_dir / "results.csv"}
    _write_atomic(files["json"], json.dumps(doc, indent=1, default=str))
    _write_atomic(files["csv"], _csv(doc["points"]))
    if plot_title is not None:
        from .plot import plot_rd

        files.update(plot_rd(doc["points"], out_dir / "rd", title=plot_title))
    return files
