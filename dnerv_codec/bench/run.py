"""The benchmark run: every point of every ladder, cached, then tables, BD-rates, JSON, CSV and plots.

run_bench(inputs, out_dir, ...) finds the videos as `dnerv encode` does, fixes the working size as
encode would, and computes:

- standard codecs (codecs.py): one point per video and CRF, cached in out_dir/points/CODEC/KEY.json
  (KEY = sha256 of the codec, its settings, the video's content hash and the working size); a
  collection point per CRF sums the bits of all videos and averages PSNR / MS-SSIM over all frames
  (the frame-weighted mean of the per-video means).
- dnerv: one `dn.encode` of ALL the videos per setting of the ladder (keyframe quality, preset,
  fit budget), the archive kept in out_dir/archives/; cached likewise, keyed on the collection.
  Decode speed is timed on the CPU on up to DECODE_CLIPS clips of the archive.
- blend: from the same archives, the network-free keyframe blend (EncodeReport.blend_psnr) at the
  archive's bytes minus its weights section, i.e. keyframes, keyframe index, header and container:
  what the keyframes alone give. No MS-SSIM (encode measures the blend's PSNR only).

A rerun loads every cached point and computes only what is missing; recompute=True computes all.
The anchor's ladder is always computed (the BD-rate table needs it).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import ConfigError, InputError, OutputError
from ..report import Reporter
from . import codecs as codecs_mod
from .bdrate import bd_quality, bd_rate, psnr_at_equal_rate

BENCH_VERSION = 1  # part of every cache key: bump when a point's meaning changes
FAMILIES = ("x264", "x265", "av1", "blend", "dnerv")
DEFAULT_CODECS = FAMILIES
DEFAULT_ANCHOR = "x265-veryslow"
DECODE_CLIPS = 16
QUICK_CODECS = ("x264-veryslow", "x265-veryslow", "av1-preset4")  # --quick leaves out the medium presets


@dataclass(frozen=True)
class DnervSetting:
    """One dnerv point: the options given to dn.encode (None: the preset's value)."""

    preset: str
    keyframe_quality: int
    time_limit_min: float | None = None
    epochs: int | None = None
    fc_dim: int | None = None
    seed: int = 0

    @property
    def label(self) -> str:
        budget = f"{self.epochs} ep" if self.epochs is not None else f"{self.time_limit_min:g} min"
        width = f", C0 {self.fc_dim}" if self.fc_dim is not None else ""
        return f"{self.preset} kq{self.keyframe_quality}{width}, {budget}"


DNERV_LADDER = tuple(DnervSetting("default", q, time_limit_min=8.0) for q in (38, 34, 30, 26))
DNERV_QUICK = tuple(DnervSetting("fast", q, time_limit_min=1.5) for q in (36, 30))
"""The dnerv ladders: keyframe CRF (HEVC 4:4:4) sets the rate; the network width follows the
preset's weight budget. The fit budget is part of each setting and stated in every point."""


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
    """Families from 'x264,x265,av1,blend,dnerv' (or a list); ConfigError for unknown or none."""
    if text is None:
        return DEFAULT_CODECS
    items = text.split(",") if isinstance(text, str) else list(text)
    names = [s.strip().lower() for s in items if s.strip()]
    if not names:
        raise ConfigError(f"no codec given; choose from {','.join(FAMILIES)}")
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        raise ConfigError(f"unknown codec {unknown[0]!r}; choose from {','.join(FAMILIES)}")
    return tuple(dict.fromkeys(names))


def _check_anchor(anchor: str) -> None:
    if anchor not in codecs_mod.CODECS and anchor not in ("dnerv", "blend"):
        known = ", ".join([*codecs_mod.CODECS, "dnerv", "blend"])
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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        if isinstance(text, bytes):
            tmp.write_bytes(text)
        else:
            tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


# ---------------------------------------------------------------- environment


def machine_description() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = None
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_bytes": memory,
        "gpu": gpu,
        "torch_threads": torch.get_num_threads(),
    }


def library_versions() -> dict[str, Any]:
    import av
    import torch

    versions: dict[str, Any] = {
        "dnerv": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "av": av.__version__,
        "ffmpeg": {k: ".".join(map(str, v)) for k, v in av.library_versions.items()},
        "numpy": np.__version__,
    }
    for name in ("pytorch_msssim", "constriction", "matplotlib"):
        try:
            from importlib.metadata import version

            versions[name] = version(name.replace("_", "-"))
        except Exception:
            versions[name] = None
    return versions


# ---------------------------------------------------------------- the run


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80]


def _aggregate(codec: codecs_mod.Codec, crf: int, per_video: list[dict[str, Any]]) -> dict[str, Any]:
    frames = sum(p["frames"] for p in per_video)
    pixels = sum(p["frames"] * p["height"] * p["width"] for p in per_video)
    nbytes = sum(p["bytes"] for p in per_video)
    ms = [p["ms_ssim"] for p in per_video]
    return {
        "codec": codec.name,
        "family": codec.family,
        "label": f"crf {crf}",
        "settings": codec.settings(crf),
        "bytes": nbytes,
        "bpp": nbytes * 8 / pixels,
        "psnr": sum(p["psnr"] * p["frames"] for p in per_video) / frames,
        "ms_ssim": None
        if None in ms
        else sum(m * p["frames"] for m, p in zip(ms, per_video, strict=True)) / frames,
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


def _dnerv_points(
    videos, size, ladder, cache: PointCache, out_dir: Path, reporter: Reporter, encoder, want: set[str]
) -> list[dict[str, Any]]:
    collection = [v.hash for v in videos]
    points = []
    for setting in ladder:
        key_doc = {
            "codec": "dnerv",
            "settings": dataclasses.asdict(setting),
            "inputs": collection,
            "size": size,
        }
        key = cache_key(key_doc)
        point = cache.load("dnerv", key)
        if point is None:
            reporter.info(f"dnerv {setting.label}: fitting all {len(videos)} videos")
            archive = out_dir / "archives" / f"dnerv-{key}.dnv"
            archive.parent.mkdir(parents=True, exist_ok=True)
            report = encoder(
                [v.info.path for v in videos],
                archive,
                preset=setting.preset,
                size=size,
                epochs=setting.epochs,
                time_limit=setting.time_limit_min,
                keyframe_quality=setting.keyframe_quality,
                fc_dim=setting.fc_dim,
                seed=setting.seed,
                cache_dir=out_dir / "cache",
                force=True,
                reporter=reporter,
            )
            doc = report.to_json()
            decode_fps, decode_frames = _time_decode(archive)
            pixels = report.frames * report.width * report.height
            weights = report.sections.get("weights", 0)
            point = {
                "settings": dataclasses.asdict(setting),
                "label": setting.label,
                "report": doc,
                "decode_fps": decode_fps,
                "decode_frames_timed": decode_frames,
                "blend_bytes": report.bytes - weights,
                "blend_bpp": (report.bytes - weights) * 8 / pixels,
                "archive": str(archive),
            }
            cache.save("dnerv", key, key_doc, point)
        rep = point["report"]
        common = {
            "frames": rep["frames"],
            "settings": point["settings"],
            "label": point["label"],
            "videos": [],
        }
        if "dnerv" in want:
            points.append(
                {
                    "codec": "dnerv",
                    "family": "dnerv",
                    "bytes": rep["bytes"],
                    "bpp": rep["bpp"],
                    "psnr": rep["psnr"],
                    "ms_ssim": rep["ms_ssim"],
                    "encode_fps": rep["frames"] / rep["seconds"],
                    "decode_fps": point["decode_fps"],
                    "fit_seconds": rep["fit_seconds"],
                    "encoder": f"dnerv {__version__} ({rep['device']}, {rep.get('fit_epochs', 0):.1f} epochs)",
                    "note": (
                        f"whole archive; fit budget {point['label'].split(', ')[-1]}; encode fps = frames / "
                        f"total encode time; decode fps on the CPU over {point['decode_frames_timed']} frames"
                    ),
                    **common,
                }
            )
        if "blend" in want:
            points.append(
                {
                    "codec": "blend",
                    "family": "blend",
                    "bytes": point["blend_bytes"],
                    "bpp": point["blend_bpp"],
                    "psnr": rep["blend_psnr"],
                    "ms_ssim": None,
                    "encode_fps": None,
                    "decode_fps": None,
                    "fit_seconds": None,
                    "encoder": "keyframes of the dnerv archive, blended linearly by distance",
                    "note": "archive bytes minus the weights section (keyframes only); PSNR measured by encode",
                    **common,
                }
            )
    return points


@dataclass
class _Video:
    info: Any  # VideoInfo
    hash: str


def bd_table(points: list[dict[str, Any]], anchor: str) -> list[dict[str, Any]]:
    """BD-rate (PSNR, MS-SSIM) and BD-PSNR of every curve against the anchor's; where the quality
    ranges do not overlap, the mean PSNR difference at equal bpp instead (psnr_at_equal_rate)."""
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
        row["bd_rate_psnr"] = bd_rate(a_rate, [p["psnr"] for p in a], rate, psnr)
        row["bd_psnr"] = bd_quality(a_rate, [p["psnr"] for p in a], rate, psnr)
        if all(p["ms_ssim"] is not None for p in pts + a):
            row["bd_rate_ms_ssim"] = bd_rate(
                a_rate, [p["ms_ssim"] for p in a], rate, [p["ms_ssim"] for p in pts]
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


def run_bench(
    inputs: Sequence[str | os.PathLike] | str | os.PathLike,
    out_dir: str | os.PathLike,
    codecs: str | Sequence[str] | None = None,
    quick: bool = False,
    recompute: bool = False,
    reporter: Reporter | None = None,
    anchor: str = DEFAULT_ANCHOR,
    size: tuple[int, int] | None = None,
    dnerv_ladder: Sequence[DnervSetting] | None = None,
    plots: bool = True,
    coder: Callable[..., codecs_mod.CodecPoint] | None = None,
    encoder: Callable[..., Any] | None = None,
) -> BenchResult:
    """Benchmark dnerv against the standard codecs and the keyframe blend on `inputs`; see the
    module docstring. Writes out_dir/results.json, results.csv, rd.png and rd.svg. `coder` and
    `encoder` replace codecs.code_video and dn.encode (tests count their calls).

    Raises InputError (no usable video), ConfigError (unknown codec or anchor), OutputError."""
    from ..config import get_preset
    from ..encoder import working_size
    from ..video.read import find_videos

    reporter = reporter or Reporter()
    families = parse_codecs(codecs)
    _check_anchor(anchor)
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    paths = [Path(p) for p in inputs]
    if not paths:
        raise InputError("no inputs given: pass video files and/or folders")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"output {out_dir} is a file; give a folder for the results")
    ladder = tuple(dnerv_ladder) if dnerv_ladder is not None else (DNERV_QUICK if quick else DNERV_LADDER)
    if not ladder and ({"dnerv", "blend"} & set(families) or anchor in ("dnerv", "blend")):
        raise ConfigError("the dnerv ladder is empty")

    videos_found, skipped = find_videos(paths)
    for path, reason in skipped:
        reporter.warn(f"skipped {path}: {reason}")
    if not videos_found:
        raise InputError("no usable video among the inputs: " + ", ".join(str(p) for p in paths))
    _prepare_out(out_dir)  # only once there is something to benchmark
    preset = get_preset(ladder[0].preset if ladder else "default")
    height, width = working_size(videos_found, size, preset.default_size, preset.model.size_multiple)
    work = (int(height), int(width))
    videos = [_Video(v, file_hash(v.path)) for v in videos_found]
    reporter.info(f"{len(videos)} video(s) at working size {work[0]}x{work[1]}; results in {out_dir}")

    names = [
        c.name
        for c in codecs_mod.CODECS.values()
        if c.family in families and (not quick or c.name in QUICK_CODECS)
    ]
    if anchor in codecs_mod.CODECS and anchor not in names:
        names.append(anchor)  # the BD table needs the anchor's curve
    cache = PointCache(out_dir, recompute)
    started = time.monotonic()
    points = _codec_points(
        videos, work, names, quick, cache, out_dir, reporter, coder or codecs_mod.code_video
    )
    want = {f for f in families if f in ("dnerv", "blend")} | ({anchor} & {"dnerv", "blend"})
    if want:
        if encoder is None:
            from .. import encode as encoder
        points += _dnerv_points(videos, work, ladder, cache, out_dir, reporter, encoder, want)
    points.sort(key=lambda p: (p["codec"], p["bpp"]))
    bd = bd_table(points, anchor)

    settings = {
        "inputs": [str(p) for p in paths],
        "videos": [{"name": v.info.name, "path": str(v.info.path), "sha256": v.hash} for v in videos],
        "working_size": list(work),
        "codecs": list(families),
        "codec_configs": names,
        "anchor": anchor,
        "quick": quick,
        "dnerv_ladder": [dataclasses.asdict(s) for s in ladder] if want else [],
        "bench_version": BENCH_VERSION,
    }
    doc = {
        "settings": settings,
        "machine": machine_description(),
        "versions": library_versions(),
        "points": points,
        "bd": bd,
        "seconds_this_run": time.monotonic() - started,
        "points_computed": cache.misses,
        "points_cached": cache.hits,
        "rate": "bits / (frames x height x width) at the working size",
        "quality": "mean over frames of per-frame RGB PSNR (8-bit); MS-SSIM (pytorch-msssim); decoded frames",
    }
    files = {"json": out_dir / "results.json", "csv": out_dir / "results.csv"}
    _write_atomic(files["json"], json.dumps(doc, indent=1, default=str))
    _write_atomic(files["csv"], _csv(points))
    if plots:
        from .plot import plot_rd

        files.update(plot_rd(points, out_dir / "rd", title=f"{len(videos)} videos at {work[0]}x{work[1]}"))
    return BenchResult(
        out_dir=out_dir,
        points=points,
        bd=bd,
        anchor=anchor,
        files=files,
        computed=cache.misses,
        cached=cache.hits,
        settings=settings,
    )
