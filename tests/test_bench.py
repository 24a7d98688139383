"""`dnerv bench`: BD-rate on known curves, codec ladders on a tiny clip, the point cache, bad arguments."""

from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import ROOT, make_video, moving_frames

from dnerv_codec import __version__
from dnerv_codec.bench import bdrate
from dnerv_codec.bench.codecs import CODECS, code_video
from dnerv_codec.bench.run import DnervSetting, parse_codecs, run_bench
from dnerv_codec.cli import app
from dnerv_codec.errors import ConfigError

RATES = [0.01, 0.03, 0.1, 0.3]
PSNR = [27.0, 30.5, 34.0, 36.5]

# ---------------------------------------------------------------- BD-rate


def test_bd_rate_identical_curves_is_zero():
    assert bdrate.bd_rate(RATES, PSNR, RATES, PSNR) == pytest.approx(0.0, abs=1e-9)
    assert bdrate.bd_quality(RATES, PSNR, RATES, PSNR) == pytest.approx(0.0, abs=1e-9)


def test_bd_rate_half_the_rate_is_minus_50_percent():
    half = [r / 2 for r in RATES]
    assert bdrate.bd_rate(RATES, PSNR, half, PSNR) == pytest.approx(-50.0, abs=1e-9)
    assert bdrate.bd_rate(half, PSNR, RATES, PSNR) == pytest.approx(100.0, abs=1e-9)


def test_bd_psnr_of_a_shifted_curve():
    assert bdrate.bd_quality(RATES, PSNR, RATES, [q + 1.5 for q in PSNR]) == pytest.approx(1.5, abs=1e-9)


def test_bd_rate_partial_overlap_uses_the_shared_range():
    # a straight line in (PSNR, log rate), which PCHIP reproduces exactly; the test curve covers
    # only the upper half of the anchor's quality range, at 80% of its rate
    line = [40 + 5 * np.log10(r) for r in RATES]
    test = bdrate.bd_rate(RATES, line, [r * 0.8 for r in RATES[2:]], line[2:])
    assert test == pytest.approx(-20.0, abs=1e-9)


def test_non_overlapping_curves_give_none_and_the_fallback():
    high = [q + 20 for q in PSNR]
    assert bdrate.bd_rate(RATES, PSNR, RATES, high) is None
    assert bdrate.bd_rate(RATES, PSNR, [0.05], [33.0]) is None  # one point: no curve
    assert bdrate.psnr_at_equal_rate(RATES, PSNR, RATES, high) == pytest.approx(20.0)
    assert bdrate.psnr_at_equal_rate(RATES, PSNR, [10.0], [50.0]) is None  # outside the anchor's rates
    assert bdrate.psnr_at_equal_rate(RATES, PSNR, [0.1], [35.0]) == pytest.approx(1.0)


def test_bd_rate_is_refused_over_a_small_overlap_and_says_why():
    # the committed bench points had given -74% over 0.76 dB of shared PSNR: no longer a BD-rate
    line = [40 + 5 * np.log10(r) for r in RATES]
    top = [q + line[-1] - line[0] - 0.5 for q in line]  # shares 0.5 dB with the anchor
    assert bdrate.bd_rate(RATES, line, RATES, top, min_overlap=0.4) is not None
    delta = bdrate.bd_delta((RATES, line), (RATES, top), "quality", bdrate.MIN_PSNR_OVERLAP_DB)
    assert delta.value is None and "overlap by 0.50" in delta.reason
    apart = bdrate.bd_delta((RATES, line), (RATES, [q + 20 for q in line]), "quality", 1.0)
    assert apart.value is None and "do not overlap" in apart.reason


def test_bd_rate_is_refused_for_a_curve_that_does_not_rise():
    dips = [27.0, 31.0, 30.0, 36.5]  # more bits, less quality between the 2nd and 3rd point
    assert bdrate.bd_rate(RATES, PSNR, RATES, dips) is None
    assert bdrate.bd_quality(RATES, dips, RATES, PSNR) is None
    delta = bdrate.bd_delta((RATES, PSNR), (RATES, dips), "quality", 1.0)
    assert delta.reason == "the test curve's quality does not rise with its rate"
    assert bdrate.psnr_at_equal_rate(RATES, PSNR, [0.1], [35.0]) == pytest.approx(1.0)  # still there


def test_bd_table_notes_why_a_bd_rate_is_missing():
    from dnerv_codec.bench.run import bd_table

    def points(codec, psnr):
        return [
            {"codec": codec, "bpp": r, "psnr": q, "ms_ssim": None} for r, q in zip(RATES, psnr, strict=True)
        ]

    rows = bd_table(
        points("x265", PSNR) + points("near", [q + 2 for q in PSNR]) + points("far", [q + 20 for q in PSNR]),
        "x265",
    )
    by_codec = {r["codec"]: r for r in rows}
    assert by_codec["near"]["bd_rate_psnr"] is not None and by_codec["near"]["bd_note"] is None
    assert by_codec["far"]["bd_rate_psnr"] is None and "do not overlap" in by_codec["far"]["bd_note"]
    assert by_codec["far"]["psnr_at_equal_rate"] == pytest.approx(20.0)


def test_pchip_is_monotone_and_integrates_exactly():
    f = bdrate.Pchip([0, 1, 2, 4], [0, 1, 1.5, 5])
    t = np.linspace(0, 4, 4001)
    assert np.all(np.diff(f(t)) >= -1e-12)  # monotone data, monotone interpolant
    assert f.integrate(0, 4) == pytest.approx(np.trapezoid(f(t), t), abs=1e-5)
    assert f.integrate(0.5, 3) == pytest.approx(np.trapezoid(f(t[500:3001]), t[500:3001]), abs=1e-5)


# ---------------------------------------------------------------- codec ladders


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    frames = np.stack(moving_frames(16, 64, 64, seed=3))
    path = make_video(tmp_path_factory.mktemp("clip") / "tiny.mkv", list(frames))
    return path, frames


@pytest.mark.parametrize("name", ["x264-medium", "av1-preset4"])
def test_codec_ladder_is_monotone(tmp_path, tiny_clip, name):
    _, frames = tiny_clip
    codec = CODECS[name]
    low, high = max(codec.quick_crfs), min(codec.quick_crfs)
    points = [code_video(codec, frames, crf, tmp_path / f"{crf}.mkv", "tiny") for crf in (low, high)]
    for p in points:
        assert p.frames == 16 and (p.height, p.width) == (64, 64)
        assert p.bpp == pytest.approx(p.bytes * 8 / (16 * 64 * 64))
        assert 0 < p.bytes < p.file_bytes  # the container's overhead is not counted
        assert p.ms_ssim is not None and 0 < p.ms_ssim <= 1
        assert p.encode_fps > 0 and p.decode_fps > 0 and p.encoder_version
    assert points[0].bytes < points[1].bytes  # lower CRF: more bits ...
    assert points[0].psnr < points[1].psnr  # ... and better quality
    assert points[1].psnr > 30


def test_x264_stream_excludes_its_version_sei(tmp_path, tiny_clip):
    p = code_video(CODECS["x264-medium"], tiny_clip[1], 30, tmp_path / "a.mkv")
    assert p.excluded_bytes > 100 and p.encoder_version.startswith("x264 - core")


# ---------------------------------------------------------------- the run and its cache


class _Counting:
    def __init__(self, fn=code_video):
        self.fn, self.calls = fn, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


def _fake_encode(paths, archive, **kw):
    """Stands in for dn.encode: a report with the fields bench reads (no fit in these tests)."""
    archive.write_bytes(b"x")
    q = kw["keyframe_quality"] or 20
    return SimpleNamespace(
        to_json=lambda: {
            "width": 64,
            "height": 64,
            "params": 1000,
            "bytes": 4000 - 50 * q,
            "bpp": (4000 - 50 * q) * 8 / (16 * 64 * 64),
            "psnr": 60.0 - q,
            "ms_ssim": 0.99,
            "blend_psnr": 58.0 - q,
            "frames": 16,
            "seconds": 2.0,
            "fit_seconds": 1.0,
            "fit_epochs": 1.0,
            "device": "cpu",
            "sections": {"weights": 1000},
        },
        bytes=4000 - 50 * q,
        frames=16,
        width=64,
        height=64,
        sections={"weights": 1000},
    )


def test_run_caches_every_point(tmp_path, tiny_clip, monkeypatch):
    import dnerv_codec.bench.run as run_mod

    monkeypatch.setattr(run_mod, "_time_decode", lambda path: (100.0, 16))
    monkeypatch.setattr(
        run_mod.codecs_mod, "CODECS", {n: CODECS[n] for n in ("x264-medium", "av1-preset4", "x265-medium")}
    )
    ladder = (DnervSetting("tiny", 40, epochs=1), DnervSetting("tiny", 30, epochs=1))
    kw = dict(
        codecs="x264,av1,dnerv,blend", quick=True, anchor="x264-medium", dnerv_ladder=ladder, plots=False
    )
    coder, encoder = _Counting(), _Counting(_fake_encode)
    monkeypatch.setattr(run_mod, "QUICK_CODECS", ("x264-medium", "av1-preset4"))
    first = run_bench([tiny_clip[0]], tmp_path / "out", coder=coder, encoder=encoder, **kw)
    n_codec = len(CODECS["x264-medium"].quick_crfs) + len(CODECS["av1-preset4"].quick_crfs)
    assert coder.calls == n_codec and encoder.calls == 2
    assert first.computed == n_codec + 2 and first.cached == 0
    assert {p["codec"] for p in first.points} == {"x264-medium", "av1-preset4", "dnerv", "blend"}
    blend = [p for p in first.points if p["codec"] == "blend"]
    assert sorted(b["bytes"] for b in blend) == [4000 - 50 * 40 - 1000, 4000 - 50 * 30 - 1000]  # no weights
    assert {r["codec"] for r in first.bd} == {"av1-preset4", "dnerv", "blend"}

    second = run_bench([tiny_clip[0]], tmp_path / "out", coder=coder, encoder=encoder, **kw)
    assert coder.calls == n_codec and encoder.calls == 2  # nothing computed again
    assert second.computed == 0 and second.cached == n_codec + 2
    assert second.points == first.points

    third = run_bench([tiny_clip[0]], tmp_path / "out", coder=coder, encoder=encoder, recompute=True, **kw)
    assert coder.calls == 2 * n_codec and encoder.calls == 4 and third.computed == n_codec + 2

    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert doc["machine"]["cores"] and doc["versions"]["av"] and len(doc["points"]) == len(first.points)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert doc["provenance"]["commit"] == (commit.stdout.strip() or None)
    assert isinstance(doc["provenance"]["command"], list)
    rows = list(csv.DictReader((tmp_path / "out" / "results.csv").open()))
    assert {r["codec"] for r in rows} >= {"x264-medium", "dnerv", "blend"}


def test_codecs_may_name_one_configuration(tmp_path, tiny_clip, monkeypatch):
    import dnerv_codec.bench.run as run_mod

    monkeypatch.setattr(
        run_mod.codecs_mod, "CODECS", {n: CODECS[n] for n in ("x264-medium", "x264-veryslow")}
    )
    coder = _Counting()
    result = run_bench(
        [tiny_clip[0]],
        tmp_path / "out",
        codecs="x264-veryslow",
        anchor="x264-veryslow",
        plots=False,
        coder=coder,
    )
    assert {p["codec"] for p in result.points} == {"x264-veryslow"}
    assert coder.calls == len(CODECS["x264-veryslow"].crfs)


def test_separate_and_nerv_points(tmp_path, tiny_clip, monkeypatch):
    """--separate fits one archive per video with its share of the fit time and sums them into one
    point; the NeRV ladder gives its own curve (weight budgets, no keyframe quality)."""
    import dnerv_codec.bench.run as run_mod

    monkeypatch.setattr(run_mod, "_time_decode", lambda path: (100.0, 16))
    second = make_video(tmp_path / "second.mkv", moving_frames(16, 64, 64, seed=4))
    calls = []

    def encoder(paths, archive, **kw):
        calls.append((len(paths), kw["time_limit"], kw["weight_bpp"], kw["preset"], kw["weight_bytes"]))
        return _fake_encode(paths, archive, **kw)

    ladder = (DnervSetting("tiny", 40, time_limit=1.0),)
    nerv = (DnervSetting("nerv", weight_bpp=0.1, time_limit=1.0),)
    monkeypatch.setattr(run_mod.codecs_mod, "CODECS", {})  # neural points only
    result = run_bench(
        [tiny_clip[0], second],
        tmp_path / "out",
        codecs="dnerv,nerv",
        anchor="dnerv",
        separate=True,
        dnerv_ladder=ladder,
        nerv_ladder=nerv,
        plots=False,
        encoder=encoder,
    )
    expected = [
        (2, 1.0, None, "tiny", None),
        (1, 0.5, None, "tiny", 500),  # each video: half the joint fit time and weight bytes
        (1, 0.5, None, "tiny", 500),
        (2, 1.0, 0.1, "nerv", None),
    ]
    assert sorted(map(repr, calls)) == sorted(map(repr, expected))
    by_codec = {p["codec"]: p for p in result.points}
    assert set(by_codec) == {"dnerv", "dnerv-separate", "nerv"}
    joint, sep = by_codec["dnerv"], by_codec["dnerv-separate"]
    assert sep["bytes"] == 2 * joint["bytes"] and sep["frames"] == 2 * joint["frames"]
    assert sep["bpp"] == pytest.approx(joint["bpp"])  # two archives of the same size, twice the frames
    assert result.settings["separate"] and result.settings["nerv_ladder"][0]["weight_bpp"] == 0.1
    assert {r["codec"] for r in result.bd} == {"dnerv-separate", "nerv"}


def test_separate_models_share_the_joint_bits():
    """Per video: its frame share of the joint parameters (every width scaled down, then the widest
    C0), of the joint weight bytes and of the fit time."""
    from dnerv_codec.bench.run import DNERV_LADDER, _separate_settings
    from dnerv_codec.model.build import count_parameters

    videos = [SimpleNamespace(info=SimpleNamespace(frames_estimate=n)) for n in (96, 96, 192)]
    joint = {"report": {"params": 113_753, "sections": {"weights": 64_000}}}
    settings = _separate_settings(videos, (256, 320), DNERV_LADDER[0], joint)
    for setting, share in zip(settings, (0.25, 0.25, 0.5), strict=True):
        params = count_parameters(dataclasses.replace(setting.model, fc_dim=setting.fc_dim), 256, 320)
        wider = count_parameters(dataclasses.replace(setting.model, fc_dim=setting.fc_dim + 1), 256, 320)
        assert params <= share * 113_753 < wider
        assert setting.weight_bytes == share * 64_000 and setting.time_limit == share * 3.0
        assert setting.curve == "dnerv-separate" and setting.model.enc_dim < 16
    assert settings[0].key_doc() != settings[2].key_doc()
    # points cached before the newer fields existed keep their keys
    assert set(DNERV_LADDER[0].key_doc()) == {
        "preset",
        "keyframe_quality",
        "time_limit_min",
        "epochs",
        "fc_dim",
        "weight_bpp",
        "seed",
    }


def test_quick_codes_the_first_frames_of_each_video(tmp_path, tiny_clip, monkeypatch):
    import dnerv_codec.bench.run as run_mod
    from dnerv_codec.video.read import iter_frames

    monkeypatch.setattr(run_mod, "QUICK_FRAMES", 6)
    monkeypatch.setattr(run_mod, "QUICK_CODECS", ("x264-medium",))
    seen = []

    def coder(codec, frames, crf, path, name, fps):
        seen.append(frames.copy())
        return code_video(codec, frames, crf, path, name, fps)

    run_bench(
        tiny_clip[0],
        tmp_path / "out",
        codecs="x264",
        anchor="x264-medium",
        quick=True,
        plots=False,
        coder=coder,
    )
    assert seen and all(len(f) == 6 for f in seen)
    np.testing.assert_array_equal(seen[0], tiny_clip[1][:6])  # losslessly the first frames
    (copy,) = (tmp_path / "out" / "quick-inputs").iterdir()
    assert len(list(iter_frames(copy, (64, 64)))) == 6


def test_plots_are_written(tmp_path):
    from dnerv_codec.bench.plot import plot_rd

    points = [
        {"codec": c, "bpp": r * k, "psnr": q, "ms_ssim": 0.9 + q / 1000}
        for c, k in (("x265-veryslow", 1.0), ("dnerv", 0.8))
        for r, q in zip(RATES, PSNR, strict=True)
    ]
    files = plot_rd(points, tmp_path / "rd", title="test")
    assert files["png"].read_bytes()[:4] == b"\x89PNG" and b"<svg" in files["svg"].read_bytes()[:500]


# ---------------------------------------------------------------- bad arguments


def test_parse_codecs():
    assert parse_codecs("x264, AV1") == ("x264", "av1")
    assert parse_codecs("x265-veryslow,dnerv") == ("x265-veryslow", "dnerv")  # one configuration
    with pytest.raises(ConfigError, match="unknown codec 'vp9'"):
        parse_codecs("x264,vp9")
    with pytest.raises(ConfigError, match="no codec"):
        parse_codecs(" , ")


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--codecs", "x264,vp9"], "unknown codec 'vp9'"),
        (["--anchor", "mpeg2"], "unknown anchor 'mpeg2'"),
        (["--size", "big"], "size must look like"),
    ],
)
def test_cli_bad_arguments(tmp_path, tiny_clip, extra, message):
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["bench", str(tiny_clip[0]), "-o", str(tmp_path / "o"), *extra])
    assert result.exit_code == 1
    assert message in " ".join(result.output.split()) and "Traceback" not in result.output


def test_cli_output_is_a_file_and_empty_inputs(tmp_path, tiny_clip):
    from typer.testing import CliRunner

    runner = CliRunner()
    afile = tmp_path / "results.txt"
    afile.write_text("x")
    result = runner.invoke(app, ["bench", str(tiny_clip[0]), "-o", str(afile), "--codecs", "x264"])
    assert result.exit_code == 1 and "is a file" in " ".join(result.output.split())
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["bench", str(empty), "-o", str(tmp_path / "o"), "--codecs", "x264"])
    assert result.exit_code == 1 and "no usable video" in result.output
    result = runner.invoke(app, ["bench", "-o", str(tmp_path / "o")])
    assert result.exit_code == 2  # usage error: no INPUTS
    assert not (tmp_path / "o").exists()


def test_bench_table_prints_why_a_bd_rate_is_missing():
    from rich.console import Console

    from dnerv_codec.cli import _bd_table

    row = {"codec": "far", "bd_rate_psnr": None, "bd_rate_ms_ssim": None, "bd_psnr": None}
    row |= {"psnr_at_equal_rate": 20.0, "bd_note": "the curves' quality ranges do not overlap"}
    console = Console(width=300, record=True)
    console.print(_bd_table([row], "x265"))
    assert "the curves' quality ranges do not overlap" in console.export_text()


def test_cache_keys_change_with_the_code_the_point_depends_on(tmp_path):
    from dnerv_codec.bench.run import code_version

    (tmp_path / "sub").mkdir()
    used, other = tmp_path / "sub" / "used.py", tmp_path / "other.py"
    used.write_text("x = 1\n")
    other.write_text("y = 1\n")
    only_used, everything = code_version(("sub/used.py",), tmp_path), code_version(None, tmp_path)
    other.write_text("y = 2\n")
    assert code_version.__wrapped__(("sub/used.py",), tmp_path) == only_used  # not a dependency
    assert code_version.__wrapped__(None, tmp_path) != everything
    used.write_text("x = 2\n")
    assert code_version.__wrapped__(("sub/used.py",), tmp_path) != only_used
    assert code_version().startswith(__version__ + "+")
