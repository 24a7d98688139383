"""The `dnerv` command line end to end, through typer's CliRunner: encode a nested folder of awkward
videos (odd size, 1 frame, grey, 10-bit, with audio, a real clip), then info and every way of
decoding; the quality encode reports is the quality of the written file; fits are reproducible and
resumable."""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    REAL_CLIPS,
    SAMPLES,
    assert_clean_error,
    ctrl_c_at,
    invoke,
    invoke_json,
    listing,
    make_video,
    moving_frames,
    read_frames,
)

from dnerv_codec.cli import app
from dnerv_codec.metrics import frame_psnr
from dnerv_codec.video.read import iter_frames

pytestmark = pytest.mark.usefixtures("one_thread")

ENCODE_KEYS = {"bpp", "psnr", "ms_ssim", "blend_psnr", "gain_db", "bytes", "seconds", "params", "frames"}
VIDEO_KEYS = {"name", "fps", "frames", "width", "height", "first_clip", "clips"}
CLIP_LEN = 8  # the tiny preset's


def assert_nearly_equal(a: np.ndarray, b: np.ndarray) -> None:
    """Equal but for rare +-1 steps: the network's float sums depend a little on how many clips are
    decoded together (oneDNN blocks by batch size), so --clip N (alone) and --video / --all (in
    batches) may round a rare pixel differently."""
    diff = np.abs(a.astype(int) - b.astype(int))
    assert diff.max() <= 1, f"differ by {diff.max()}"
    assert (diff > 0).sum() <= max(1, a.size // 1000), f"{(diff > 0).sum()} values differ"


def working_frames(path: Path, size: tuple[int, int]) -> np.ndarray:
    """An input video's frames at the working size, the way encode reads them."""
    return np.stack(list(iter_frames(path, size)))


# ---------------------------------------------------------------- encode and info


def test_help_lists_presets(runner):
    from dnerv_codec.config import PRESETS

    result = invoke(runner, "encode", "--help")
    for name in PRESETS:
        assert name in result.output


def test_encode_json_report(tiny_archive):
    r = tiny_archive.report
    assert set(r) >= ENCODE_KEYS
    assert r["frames"] == 5 + 1 + 6 + 9 + 3 + 24
    assert (r["height"], r["width"]) == tiny_archive.size
    assert r["bytes"] == tiny_archive.path.stat().st_size
    assert r["bpp"] == pytest.approx(r["bytes"] * 8 / (r["frames"] * 32 * 64))
    assert r["gain_db"] == pytest.approx(r["psnr"] - r["blend_psnr"])
    assert 10 < r["psnr"] < 100 and 10 < r["blend_psnr"] < 100
    assert 0 < r["ms_ssim"] <= 1
    assert r["params"] > 0 and r["seconds"] > 0
    # the summary's input size: the usable videos' files (the skipped notes.txt does not count)
    used = [p for p in tiny_archive.inputs.rglob("*") if p.is_file() and p.name != "notes.txt"]
    assert r["input_bytes"] == sum(p.stat().st_size for p in used) and r["processes"] == 1


def test_encode_warns_about_skipped_files_and_audio(tiny_archive):
    out = re.sub(r"\s+", "", tiny_archive.output)  # rich wraps warnings at the console width
    assert "notes.txt" in out  # the skipped file is named
    assert "audioisnotkept" in out


def test_info_json(runner, tiny_archive):
    doc = invoke_json(runner, "info", tiny_archive.path)
    assert {"videos", "clips", "params", "bytes", "bpp"} <= set(doc)
    videos = {v["name"]: v for v in doc["videos"]}
    assert set(videos) == set(tiny_archive.files)
    for v in doc["videos"]:
        assert set(v) >= VIDEO_KEYS
    # original sizes, frame counts and fps survive
    expected = {
        "a/odd.mkv": (5, 33, 47),
        "a/b/one.mkv": (1, 20, 30),
        "gray.mkv": (6, 32, 64),
        "ten_bit.mkv": (9, 48, 64),
        "with_audio.mkv": (3, 32, 32),
        "real/shepard1906.mp4": (24, 128, 160),
    }
    for name, (frames, h, w) in expected.items():
        assert (videos[name]["frames"], videos[name]["height"], videos[name]["width"]) == (frames, h, w)
        assert videos[name]["fps"] == pytest.approx(25)
    # clips: consecutive per video, ceil(frames / T) each
    first = 0
    for v in doc["videos"]:
        assert v["first_clip"] == first
        assert v["clips"] == math.ceil(v["frames"] / CLIP_LEN)
        first += v["clips"]
    assert len(doc["clips"]) == first
    assert [c["index"] for c in doc["clips"]] == list(range(first))
    # bytes per section add up to the file size
    size = tiny_archive.path.stat().st_size
    parts = {k: n for k, n in doc["bytes"].items() if k != "total"}
    assert doc["bytes"]["total"] == size == sum(parts.values())
    assert {"header", "keyframes", "weights"} <= set(parts)
    assert doc["bpp"] == pytest.approx(size * 8 / (doc["frames"] * doc["width"] * doc["height"]))
    assert doc["params"] == tiny_archive.report["params"]
    assert doc["bpp"] == pytest.approx(tiny_archive.report["bpp"])


def test_info_text(runner, tiny_archive):
    result = invoke(runner, "info", tiny_archive.path, "--clips")
    for name in tiny_archive.files:
        assert name in result.output
    assert "weights" in result.output and "total" in result.output


# ---------------------------------------------------------------- decode


@pytest.fixture(scope="module")
def decoded_all(runner, tiny_archive, tmp_path_factory):
    """decode --all --format mkv of the tiny archive: (folder, --json document)."""
    folder = tmp_path_factory.mktemp("all") / "mkv"
    doc = invoke_json(runner, "decode", tiny_archive.path, "--all", "--format", "mkv", "-o", folder)
    return folder, doc


def mkv_of(folder: Path, name: str) -> Path:
    return folder / Path(name).with_suffix(".mkv")


def test_encode_psnr_is_psnr_of_the_written_file(tiny_archive, decoded_all):
    """Issue 2, 'Done when': the PSNR encode reports equals, within 0.05 dB, the PSNR of frames decoded
    from the written archive against the input frames at the working size."""
    folder, doc = decoded_all
    assert doc["frames"] == tiny_archive.report["frames"]
    psnrs = []
    for name, source in tiny_archive.files.items():
        decoded = read_frames(mkv_of(folder, name))
        reference = working_frames(source, tiny_archive.size)
        assert decoded.shape == reference.shape
        psnrs.append(frame_psnr(decoded, reference))
    measured = float(np.concatenate(psnrs).mean())
    assert measured == pytest.approx(tiny_archive.report["psnr"], abs=0.05)


def test_decode_all_layout(tiny_archive, decoded_all):
    folder, doc = decoded_all
    assert {Path(f["output"]).relative_to(folder).as_posix() for f in doc["files"]} == {
        Path(n).with_suffix(".mkv").as_posix() for n in tiny_archive.files
    }
    assert {p for p in listing(folder) if p.endswith(".mkv")} == {
        Path(n).with_suffix(".mkv").as_posix() for n in tiny_archive.files
    }
    assert not [p for p in listing(folder) if ".part" in p or p.startswith(".")]


@pytest.mark.parametrize("ext", ["mkv", "mp4", "y4m"])
def test_decode_clip_to_file(runner, tiny_archive, decoded_all, tmp_path, ext):
    folder, _ = decoded_all
    info = invoke_json(runner, "info", tiny_archive.path)
    real = next(v for v in info["videos"] if v["name"] == "real/shepard1906.mp4")
    clip = real["first_clip"] + 1  # the real clip's second clip: frames 8..15
    out = tmp_path / f"clip.{ext}"
    doc = invoke_json(runner, "decode", tiny_archive.path, "--clip", clip, "-o", out)
    assert doc["output"] == str(out) and doc["frames"] == CLIP_LEN
    assert "psnr" not in doc
    frames = read_frames(out)
    expected = read_frames(mkv_of(folder, real["name"]))[CLIP_LEN : 2 * CLIP_LEN]
    assert frames.shape == expected.shape == (CLIP_LEN, *tiny_archive.size, 3)
    if ext == "mkv":  # FFV1 RGB is lossless; a clip decoded alone may round a rare pixel otherwise
        assert_nearly_equal(frames, expected)
    else:
        assert frame_psnr(frames, expected).mean() > 38
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no temporary files left


def test_decode_video_sizes(runner, tiny_archive, decoded_all, tmp_path):
    folder, _ = decoded_all
    # --size original resamples back to the input's own (odd) size
    out = tmp_path / "odd.mkv"
    doc = invoke_json(
        runner, "decode", tiny_archive.path, "--video", "a/odd.mkv", "--size", "original", "-o", out
    )
    assert doc["frames"] == 5
    assert read_frames(out).shape == (5, 33, 47, 3)
    # an explicit size; and the default is the working size, identical to --all
    out = tmp_path / "big.y4m"
    invoke(runner, "decode", tiny_archive.path, "--video", "a/b/one.mkv", "--size", "40x50", "-o", out)
    assert read_frames(out).shape == (1, 40, 50, 3)
    out = tmp_path / "gray.mkv"
    invoke(runner, "decode", tiny_archive.path, "--video", "gray.mkv", "-o", out)
    np.testing.assert_array_equal(read_frames(out), read_frames(mkv_of(folder, "gray.mkv")))


def test_decode_all_png(runner, tiny_archive, decoded_all, tmp_path):
    folder, _ = decoded_all
    out = tmp_path / "png"
    doc = invoke_json(runner, "decode", tiny_archive.path, "--all", "--format", "png", "-o", out)
    assert doc["frames"] == tiny_archive.report["frames"]
    for name in tiny_archive.files:
        pngs = out / Path(name).with_suffix("")
        assert pngs.is_dir(), listing(out)
        np.testing.assert_array_equal(read_frames(pngs), read_frames(mkv_of(folder, name)))
    # --size original applies to every video
    out = tmp_path / "orig"
    invoke(runner, "decode", tiny_archive.path, "--all", "--format", "y4m", "--size", "original", "-o", out)
    assert read_frames(out / "a" / "odd.y4m").shape == (5, 33, 47, 3)
    assert read_frames(out / "real" / "shepard1906.y4m").shape == (24, 128, 160, 3)


def test_decode_reference(runner, tiny_archive, decoded_all, tmp_path):
    folder, _ = decoded_all
    source = tiny_archive.files["real/shepard1906.mp4"]
    reference = working_frames(source, tiny_archive.size)
    decoded = read_frames(mkv_of(folder, "real/shepard1906.mp4"))
    # a whole video
    doc = invoke_json(
        runner,
        "decode",
        tiny_archive.path,
        "--video",
        "real/shepard1906.mp4",
        "--reference",
        source,
        "-o",
        tmp_path / "v.mkv",
    )
    assert {"output", "frames", "psnr", "ms_ssim"} <= set(doc) and "warnings" not in doc
    assert doc["psnr"] == pytest.approx(frame_psnr(decoded, reference).mean(), abs=1e-6)
    assert 0 < doc["ms_ssim"] <= 1
    # a clip in the middle of it is measured against the matching reference frames
    info = invoke_json(runner, "info", tiny_archive.path)
    first = next(v["first_clip"] for v in info["videos"] if v["name"] == "real/shepard1906.mp4")
    doc = invoke_json(
        runner,
        "decode",
        tiny_archive.path,
        "--clip",
        first + 2,
        "--reference",
        source,
        "-o",
        tmp_path / "c.mkv",
    )
    part = slice(2 * CLIP_LEN, 3 * CLIP_LEN)  # decoded alone: a rare pixel may round otherwise
    assert doc["psnr"] == pytest.approx(frame_psnr(decoded[part], reference[part]).mean(), abs=0.01)
    # the human-readable line
    result = invoke(
        runner, "decode", tiny_archive.path, "--clip", first, "--reference", source, "-o", tmp_path / "h.mkv"
    )
    assert "PSNR" in result.output and "MS-SSIM" in result.output


def test_decode_warns_about_a_reference_of_another_video(runner, tiny_archive, tmp_path):
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(40)]  # longer, unlike
    other = make_video(tmp_path / "other.mkv", noise)
    args = ["decode", str(tiny_archive.path), "--video", "real/shepard1906.mp4", "--reference", str(other)]
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "v.mkv")])
    assert result.exit_code == 0
    assert "has more frames than real/shepard1906.mp4" in result.stderr
    assert f"PSNR against reference {other} is only" in result.stderr
    doc = invoke_json(runner, *args, "-o", tmp_path / "w.mkv")
    assert len(doc["warnings"]) == 2


def test_decode_force_overwrites(runner, tiny_archive, tmp_path):
    out = tmp_path / "c.mkv"
    out.write_bytes(b"old")
    invoke(runner, "decode", tiny_archive.path, "--clip", 0, "-o", out, "--force")
    assert read_frames(out).shape[0] >= 1


def test_decode_all_output_names(runner, tmp_path):
    """decode --all names each output after its video: names that differ only by extension (a.mkv,
    a.avi) must not overwrite each other, and a dotted stem (take.v2) is still a PNG folder."""
    src = tmp_path / "in"
    make_video(src / "clip.mkv", moving_frames(2, 32, 32, seed=7))
    make_video(src / "clip.avi", moving_frames(2, 32, 32, seed=8))
    make_video(src / "take.v2.mkv", moving_frames(3, 32, 32, seed=9))
    out = tmp_path / "a.dnv"
    invoke(runner, "encode", src, "-o", out, "--preset", "tiny", "--epochs", "1", "--json")
    y4m = tmp_path / "y4m"
    doc = invoke_json(runner, "decode", out, "--all", "--format", "y4m", "-o", y4m)
    assert listing(y4m) == {"clip.avi.y4m", "clip.mkv.y4m", "take.v2.y4m"}
    assert [f["frames"] for f in doc["files"]] == [2, 2, 3]
    png = tmp_path / "png"
    invoke(runner, "decode", out, "--all", "--format", "png", "-o", png)
    assert {p for p in listing(png) if "/" not in p} == {"clip.avi", "clip.mkv", "take.v2"}
    assert read_frames(png / "take.v2").shape == (3, 32, 32, 3)
    assert read_frames(png / "clip.mkv").shape == (2, 32, 32, 3)


# ---------------------------------------------------------------- reproducibility and resume


@pytest.fixture(scope="module")
def small_input(tmp_path_factory) -> Path:
    """17 frames at 32x32: 3 clips (8, 8, 1), so 2 steps per epoch with the tiny preset's batch of 2."""
    return make_video(tmp_path_factory.mktemp("small") / "small.mkv", moving_frames(17, 32, 32, seed=11))


FIT = ("--preset", "tiny", "--epochs", "3", "--seed", "5", "--device", "cpu")  # a CPU fit is reproducible


@pytest.fixture(scope="module")
def reference_run(runner, small_input, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "ref.dnv"
    invoke(runner, "encode", small_input, "-o", out, *FIT, "--json")
    return out


def test_reproducible_and_cache_dir_kept(runner, small_input, reference_run, tmp_path):
    """Two CPU runs with the same --epochs and --seed write byte-identical archives. A --cache-dir
    that already holds files is used, then left as it was: only dnerv's own cache is removed."""
    cache = tmp_path / "my_cache"
    cache.mkdir()
    (cache / "keep.txt").write_text("mine")
    out = tmp_path / "again.dnv"
    invoke(runner, "encode", small_input, "-o", out, *FIT, "--cache-dir", cache, "--json")
    assert out.read_bytes() == reference_run.read_bytes()
    assert listing(cache) == {"keep.txt"}
    assert listing(tmp_path) == {"again.dnv", "my_cache", "my_cache/keep.txt"}


def sections(path: Path) -> dict[str, bytes]:
    from dnerv_codec.archive.container import ContainerReader
    from dnerv_codec.archive.format import MAGIC, READABLE_VERSIONS

    reader = ContainerReader(path, MAGIC, READABLE_VERSIONS)
    return {tag: reader.read(tag) for tag in reader.sections}


def checkpoint_step(path: Path) -> int:
    from dnerv_codec.fit.checkpoint import Checkpoint

    return Checkpoint.load(path).meta["step"]


STEPS = 6  # 3 epochs of 2 steps


def test_resume_round_trip(runner, small_input, reference_run, tmp_path, monkeypatch):
    out = tmp_path / "r.dnv"
    ckpt = tmp_path / "r.dnv.ckpt"
    # Ctrl-C as step 3 of 6 begins (mid epoch 2): exit 130, a checkpoint, no archive, no cache
    with monkeypatch.context() as m:
        started = ctrl_c_at(m, 3)
        result = runner.invoke(app, [*map(str, ["encode", small_input, "-o", out, *FIT])])
    assert result.exit_code == 130, result.output
    assert started[:4] == [0, 1, 2, 3] and len(started) < STEPS
    assert "--resume" in result.output and "Traceback" not in result.output
    assert 3 <= checkpoint_step(ckpt) < STEPS
    assert listing(tmp_path) == {"r.dnv.ckpt"}, "an interrupted fit leaves only its checkpoint"

    # resuming with other settings is refused, and the checkpoint is kept
    result = invoke(runner, "encode", small_input, "-o", out, *FIT, "--seed", "6", "--resume", ok=False)
    assert_clean_error(result, "--resume", "settings differ", "fit.seed 5 -> 6")
    result = invoke(runner, "encode", small_input, "-o", out, *FIT, "--fc-dim", "9", "--resume", ok=False)
    assert_clean_error(result, "settings differ", "model.fc_dim")
    assert listing(tmp_path) == {"r.dnv.ckpt"}

    # the same command with --resume finishes the fit: the same archive as an uninterrupted run
    invoke(runner, "encode", small_input, "-o", out, *FIT, "--resume", "--json")
    assert listing(tmp_path) == {"r.dnv"}
    assert sections(out)["WGTS"] == sections(reference_run)["WGTS"], "resumed weights differ"
    assert out.read_bytes() == reference_run.read_bytes()


def test_resume_exact_after_ctrl_c_during_update(runner, small_input, reference_run, tmp_path, monkeypatch):
    out = tmp_path / "r.dnv"
    with monkeypatch.context() as m:
        ctrl_c_at(m, 2, after_update=True)
        result = runner.invoke(app, [*map(str, ["encode", small_input, "-o", out, *FIT])])
    assert result.exit_code == 130, result.output
    invoke(runner, "encode", small_input, "-o", out, *FIT, "--resume")
    assert out.read_bytes() == reference_run.read_bytes()


def test_resume_refused_after_input_changes(runner, tmp_path, monkeypatch):
    src = make_video(tmp_path / "in" / "v.mkv", moving_frames(9, 32, 32, seed=12))
    out = tmp_path / "o.dnv"
    with monkeypatch.context() as m:
        ctrl_c_at(m, 1)
        result = runner.invoke(app, [*map(str, ["encode", src, "-o", out, *FIT])])
    assert result.exit_code == 130
    ckpt = tmp_path / "o.dnv.ckpt"
    data = ckpt.read_bytes()
    # a damaged checkpoint is refused clearly
    for damaged in (data[: len(data) // 2], data[:-1] + bytes([data[-1] ^ 1])):
        ckpt.write_bytes(damaged)
        result = invoke(runner, "encode", src, "-o", out, *FIT, "--resume", ok=False)
        assert_clean_error(result, "o.dnv.ckpt")
    ckpt.write_bytes(data)
    make_video(src, moving_frames(9, 32, 32, seed=13))  # the input changed since
    result = invoke(runner, "encode", src, "-o", out, *FIT, "--resume", ok=False)
    assert_clean_error(result, "the inputs", "differ")
    assert listing(tmp_path) == {"in", "in/v.mkv", "o.dnv.ckpt"}


def test_resume_without_checkpoint(runner, small_input, tmp_path):
    out = tmp_path / "none.dnv"
    result = invoke(runner, "encode", small_input, "-o", out, *FIT, "--resume", ok=False)
    assert_clean_error(result, "checkpoint")
    assert listing(tmp_path) == set()


# ---------------------------------------------------------------- real clips


def test_real_samples_round_trip(runner, tmp_path):
    """The committed sample clips as they are: a shared native size, so no --size is needed."""
    clips = sorted(SAMPLES.glob("*.mp4"))
    src = tmp_path / "in"
    src.mkdir()
    for clip in clips:  # the first 3 frames of each keep this fast
        make_video(src / clip.name.replace(".mp4", ".mkv"), list(iter_frames(clip))[:3])
    out = tmp_path / "s.dnv"
    report = invoke_json(runner, "encode", src, "-o", out, "--preset", "tiny", "--epochs", "1")
    assert (report["height"], report["width"]) == (128, 160)
    info = invoke_json(runner, "info", out)
    assert [v["name"] for v in info["videos"]] == [c.name.replace(".mp4", ".mkv") for c in clips]
    for v in info["videos"]:
        dec = tmp_path / f"{v['first_clip']}.mkv"
        doc = invoke_json(runner, "decode", out, "--clip", v["first_clip"], "-o", dec)
        assert doc["frames"] == 3
    shutil.rmtree(src)


def test_real_clips_round_trip(runner, tmp_path):
    """Two real 256x320 clips (tests/data/real, 8 frames each), at a small working size, decoded
    back to their own size."""
    src = tmp_path / "in"
    clips = sorted(REAL_CLIPS.glob("*.mp4"))[:2]
    for clip in clips:
        frames = list(iter_frames(clip))
        make_video(src / clip.with_suffix(".mkv").name, frames)
    out = tmp_path / "s.dnv"
    report = invoke_json(
        runner, "encode", src, "-o", out, "--preset", "tiny", "--epochs", "1", "--size", "64x80"
    )
    assert (report["height"], report["width"]) == (64, 96)  # 80 rounds to the stride multiple 96
    dec = tmp_path / "dec"
    doc = invoke_json(runner, "decode", out, "--all", "--format", "mp4", "--size", "original", "-o", dec)
    assert doc["frames"] == 16
    for clip in clips:
        assert read_frames(dec / clip.with_suffix(".mp4").name).shape == (8, 256, 320, 3)


def test_archive_mode_follows_umask(reference_run):
    umask = os.umask(0)
    os.umask(umask)
    assert reference_run.stat().st_mode & 0o777 == 0o666 & ~umask


# ---------------------------------------------------------------- stdout, stderr, -q, --version


def test_info_tables_go_to_stdout(runner, tiny_archive):
    """`dnerv info a.dnv > info.txt` keeps the tables (progress and warnings alone go to stderr)."""
    result = runner.invoke(app, ["info", str(tiny_archive.path)])
    assert result.exit_code == 0
    assert "section" in result.stdout and "weights" in result.stdout and result.stderr == ""


def test_quiet_prints_nothing_but_errors(runner, tmp_path):
    video = make_video(tmp_path / "v.mkv", moving_frames(9, 32, 32))
    out = tmp_path / "q.dnv"
    args = ["encode", str(video), "-o", str(out), "--preset", "tiny", "--epochs", "1", "-q"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and out.exists()
    assert result.stdout == "" and result.stderr == ""
    result = runner.invoke(app, ["decode", str(out), "--clip", "0", "-o", str(tmp_path / "c.mkv"), "-q"])
    assert result.exit_code == 0 and (tmp_path / "c.mkv").exists()
    assert result.stdout == "" and result.stderr == ""
    result = runner.invoke(app, ["decode", str(tmp_path / "none.dnv"), "--clip", "0", "-o", "x.mkv", "-q"])
    assert result.exit_code == 1 and result.stdout == "" and "error:" in result.stderr


def test_version_and_short_help(runner):
    from dnerv_codec import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"dnerv {__version__}"
    for args in (["-h"], ["encode", "-h"], ["decode", "-h"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0 and "Usage" in result.stdout, args


def test_decode_and_encode_mistakes_are_clean_errors(runner, tiny_archive, tmp_path):
    archive = str(tiny_archive.path)
    result = invoke(runner, "decode", archive, "--all", "-o", tmp_path / "x.mkv", ok=False)
    assert_clean_error(result, "folder", "x.mkv")
    assert not (tmp_path / "x.mkv").exists()
    result = invoke(
        runner, "decode", archive, "--clip", 0, "--format", "png", "-o", tmp_path / "c.mkv", ok=False
    )
    assert_clean_error(result, "--format goes with --all")
    assert not (tmp_path / "c.mkv").exists()
    video = make_video(tmp_path / "v.mkv", moving_frames(4, 32, 32))
    result = invoke(runner, "encode", video, "-o", tmp_path / "a.dnv", "--nproc", 0, ok=False)
    assert_clean_error(result, "--nproc must be at least 1")
    assert listing(tmp_path) == {"v.mkv"}


def test_many_skipped_files_make_one_line_and_verbose_lists_them(runner, tmp_path):
    folder = tmp_path / "in"
    make_video(folder / "v.mkv", moving_frames(4, 32, 32))
    for i in range(5):
        (folder / f"note{i}.txt").write_text("not a video\n")
    (folder / "a.jpg").write_bytes(b"\xff\xd8 not a picture either")
    args = ["encode", str(folder), "-o", str(tmp_path / "a.dnv"), "--preset", "tiny", "--epochs", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0
    warnings = [line for line in result.stderr.splitlines() if "skipped" in line]
    assert warnings == ["warning: skipped 6 files that are not usable video (5 .txt, 1 .jpg); -v lists them"]
    size = (folder / "v.mkv").stat().st_size
    assert f"{size:,} bytes" in result.stdout and "x the archive" in result.stdout  # the summary
    result = runner.invoke(app, [*args, "--force", "-v"])
    assert result.exit_code == 0
    assert all(f"note{i}.txt" in result.stderr for i in range(5)) and "a.jpg" in result.stderr


def test_usage_errors_are_one_line_like_other_errors(tmp_path):
    """The dnerv command (not CliRunner, which calls the app directly) prints usage mistakes as one
    red line with a pointer to the help, not a box, and exits 2."""
    for args, fragment in (
        (["decode", "a.dnv", "--clip", "x", "-o", "a.mkv"], "--clip"),
        (["encode"], "Missing argument"),
        (["bogus"], "No such command"),
    ):
        run = subprocess.run(
            [sys.executable, "-m", "dnerv_codec", *args], capture_output=True, text=True, cwd=tmp_path
        )
        assert run.returncode == 2, args
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], run.stderr
        assert "-h`" in lines[0] and run.stdout == ""


def test_presets_lists_every_preset_with_its_costs(runner):
    from dnerv_codec.config import PRESETS

    result = runner.invoke(app, ["presets"])
    assert result.exit_code == 0
    rows = [
        line for line in result.stdout.splitlines() if line.startswith("│ ") and not line.startswith("│  ")
    ]
    assert [row.split("│")[1].strip() for row in rows] == list(PRESETS)
    assert (
        "8 min" in result.stdout and "hevc q30 gop 8" in result.stdout
    )  # the default's budget and keyframes
    help_text = runner.invoke(app, ["encode", "-h"]).stdout
    assert "dnerv presets" in help_text
