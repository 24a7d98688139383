"""Shared fixtures: tiny generated videos (PyAV), the CLI runner and one session-wide tiny archive.

Every encode in the test suite runs the `tiny` preset for one epoch on a few small frames, so the
whole CLI surface is covered in seconds rather than minutes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dnerv_codec.cli import app
from dnerv_codec.clips import Layout, VideoEntry
from dnerv_codec.config import ModelConfig
from dnerv_codec.fit.data import ClipData
from dnerv_codec.fit.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
# Real clips at the shared clips' 320x256, committed so that a fresh clone runs the real-clip tests
REAL_CLIPS = Path(__file__).resolve().parent / "data" / "real"
TRACEBACK_MARKERS = ("Traceback", 'File "')


# ---------------------------------------------------------------- fit data without videos

TINY_DNERV = ModelConfig(
    fc_dim=8, enc_dim=4, stem_hidden=8, pe_levels=4, min_width=4, strides=(2, 2, 2), clip_len=4
)
"""A D-NeRV small enough for unit tests of the fit and the weight stage (clips of 4 frames)."""


def random_clip_data(counts=(9, 5), size=(16, 24), seed=0) -> ClipData:
    """ClipData over random uint8 videos of `counts` frames at `size`, its keyframes the frames."""
    rng = np.random.default_rng(seed)
    layout = Layout.build([VideoEntry(f"v{i}", 25, n, size[1], size[0]) for i, n in enumerate(counts)], 4)
    frames = [rng.integers(0, 256, (n, *size, 3), dtype=np.uint8) for n in counts]
    keys = np.stack([frames[v][f] for v, f in layout.keyframes])
    return ClipData(layout, frames, keys)


# ---------------------------------------------------------------- generated videos


def moving_frames(n: int, h: int, w: int, seed: int = 0) -> list[np.ndarray]:
    """n uint8 RGB frames [h, w, 3]: a soft bright blob drifting over gradients (easy to fit)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi)
    out = []
    for t in range(n):
        cy = h * (0.3 + 0.4 * t / max(n, 2))
        cx = w * (0.2 + 0.6 * t / max(n, 2))
        blob = 180 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (0.05 * h * w + 1))
        r = blob + 40 + 60 * np.sin(xx / max(w, 1) * 3 + phase)
        g = 0.5 * blob + 150 * xx / max(w, 1)
        b = 230 - 150 * yy / max(h, 1)
        out.append(np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8))
    return out


def make_video(
    path: Path,
    frames: list[np.ndarray],
    codec: str = "ffv1",
    pix_fmt: str = "bgr0",
    rate: int = 25,
    audio: bool = False,
) -> Path:
    """Encode RGB frames with PyAV (any codec / pixel format it converts rgb24 to). An empty frame
    list gives a container with a video stream and no frames (use codec rawvideo, a .y4m path)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=rate)
        s.height, s.width = frames[0].shape[:2] if frames else (16, 16)
        s.pix_fmt = pix_fmt
        a = None
        if audio:
            a = c.add_stream("pcm_s16le", rate=8000)
            a.layout = "mono"
        c.start_encoding()
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format=pix_fmt)
            vf.pts = i
            c.mux(s.encode(vf))
        c.mux(s.encode(None))
        if a is not None:
            af = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
            af.sample_rate, af.pts = 8000, 0
            c.mux(a.encode(af))
            c.mux(a.encode(None))
    return path


def make_zero_frame_y4m(path: Path) -> Path:
    """A y4m stream header with no frames at all."""
    path = Path(path)
    path.write_bytes(b"YUV4MPEG2 W32 H32 F25:1 Ip A1:1 C420jpeg\n")
    return path


def make_audio_only(path: Path) -> Path:
    """A WAV file: audio, no video stream."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("pcm_s16le", rate=8000)
        s.layout = "mono"
        f = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        f.sample_rate, f.pts = 8000, 0
        c.mux(s.encode(f))
        c.mux(s.encode(None))
    return Path(path)


def read_frames(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """All frames of a video file (or a PNG folder) as uint8 [N, H, W, 3]."""
    from dnerv_codec.video.read import iter_frames

    path = Path(path)
    if path.is_dir():
        frames = []
        for png in sorted(path.glob("*.png")):
            with av.open(str(png)) as c:
                frames.append(next(c.decode(video=0)).to_ndarray(format="rgb24"))
        return np.stack(frames)
    return np.stack(list(iter_frames(path, size)))


# ---------------------------------------------------------------- running the CLI


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """The tests' tiny tensors run fastest on one thread, and several times faster than on two when
    other jobs share the cores (OpenMP threads then wait for each other). Restored afterwards."""
    with torch_threads(1):
        yield


@pytest.fixture
def unwritable_dir(tmp_path: Path) -> Iterator[Path]:
    """An empty folder that this process may not write into, also as root (CI runs as root, whom
    chmod does not bind): read-only mode bits for others, the immutable attribute for root."""
    locked = tmp_path / "locked"
    locked.mkdir()
    as_root = os.geteuid() == 0
    if as_root:
        if shutil.which("chattr") is None:
            pytest.skip("running as root and chattr is missing: no folder refuses root's writes")
        made = subprocess.run(["chattr", "+i", str(locked)], capture_output=True, text=True)
        if made.returncode != 0:
            pytest.skip(f"running as root and chattr +i is refused here: {made.stderr.strip()}")
    else:
        locked.chmod(0o555)
    try:
        yield locked
    finally:
        if as_root:
            subprocess.run(["chattr", "-i", str(locked)], check=True)
        else:
            locked.chmod(0o755)


@pytest.fixture(scope="session")
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, *args, ok: bool = True):
    """Run `dnerv ARGS` in-process; with ok=True, fail with the output when the exit code is not 0."""
    result = runner.invoke(app, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, f"dnerv {' '.join(map(str, args))} failed:\n{result.output}"
        assert result.exception is None or isinstance(result.exception, SystemExit)
    return result


def invoke_json(runner: CliRunner, *args) -> dict:
    """Run `dnerv ARGS --json` and parse its stdout (the progress and warnings go to stderr)."""
    result = invoke(runner, *args, "--json")
    return json.loads(result.stdout)


def assert_clean_error(result, *fragments: str, code: int | None = None) -> str:
    """A failure the way issue 2 asks: non-zero exit, exactly one `error:` line that says what went
    wrong (each fragment, case-insensitive), no traceback. Returns that line."""
    out = result.output
    assert result.exit_code != 0, f"expected a failure, got exit 0:\n{out}"
    if code is not None:
        assert result.exit_code == code, out
    # typer's runner stores unexpected exceptions; a clean failure is a SystemExit only
    assert isinstance(result.exception, SystemExit), (
        f"uncaught {type(result.exception).__name__}: {result.exception}\n{out}"
    )
    for marker in TRACEBACK_MARKERS:
        assert marker not in out, f"traceback in the output:\n{out}"
    errors = [line for line in out.splitlines() if line.lower().startswith("error")]
    assert len(errors) == 1, f"expected one error line, got {len(errors)}:\n{out}"
    # the error is one line: nothing after it (a wrapped message would continue on the next one)
    tail = out[out.lower().index(errors[0].lower()) + len(errors[0]) :]
    assert not tail.strip(), f"the error message spans several lines:\n{out}"
    for fragment in fragments:
        assert fragment.lower() in errors[0].lower(), f"{fragment!r} not in {errors[0]!r}"
    assert not result.stdout.strip().startswith("{"), "a failed --json run must not print a result"
    return errors[0]


def said(result, text: str) -> bool:
    """Whether the output contains `text`, ignoring whitespace: rich wraps warnings at the console
    width, between words and inside long paths."""
    return re.sub(r"\s+", "", text) in re.sub(r"\s+", "", result.output)


def listing(folder: Path) -> set[str]:
    """Every path under `folder`, hidden ones included, relative to it."""
    return {p.relative_to(folder).as_posix() for p in Path(folder).rglob("*")} | {
        p.relative_to(folder).as_posix() for p in Path(folder).rglob(".*")
    }


def ctrl_c_at(monkeypatch, step: int, after_update: bool = False) -> list[int]:
    """Deliver a real SIGINT (as Ctrl-C does) in the fit: when Trainer.train_step is called for step
    number `step` (0-based), before it starts, or with after_update=True just after that step's
    optimizer update, before the trainer has counted the step. Returns the steps started."""
    started = []
    real = Trainer.train_step

    def train_step(self, *args, **kwargs):
        started.append(self.step)
        if self.step == step and not after_update:
            signal.raise_signal(signal.SIGINT)
        out = real(self, *args, **kwargs)
        if self.step == step and after_update:
            signal.raise_signal(signal.SIGINT)
        return out

    monkeypatch.setattr(Trainer, "train_step", train_step)
    return started


# ---------------------------------------------------------------- the shared tiny archive


@dataclass(frozen=True)
class TinyArchive:
    """One archive encoded once per session from a nested folder of small, awkward videos."""

    path: Path
    inputs: Path  # the folder that was encoded
    report: dict  # encode --json
    output: str  # encode's stderr + stdout (warnings)
    size: tuple[int, int]  # working (height, width)
    files: dict[str, Path]  # video name in the archive -> its input file


TINY_SIZE = (32, 64)


def build_collection(root: Path) -> dict[str, Path]:
    """A nested folder of awkward inputs; returns {expected archive name: file}."""
    files = {
        "a/odd.mkv": make_video(root / "a" / "odd.mkv", moving_frames(5, 33, 47, seed=1)),
        "a/b/one.mkv": make_video(root / "a" / "b" / "one.mkv", moving_frames(1, 20, 30, seed=2)),
        "gray.mkv": make_video(root / "gray.mkv", moving_frames(6, 32, 64, seed=3), pix_fmt="gray"),
        "ten_bit.mkv": make_video(
            root / "ten_bit.mkv", moving_frames(9, 48, 64, seed=4), pix_fmt="yuv444p10le"
        ),
        "with_audio.mkv": make_video(root / "with_audio.mkv", moving_frames(3, 32, 32, seed=5), audio=True),
    }
    real = root / "real" / "shepard1906.mp4"
    real.parent.mkdir(parents=True)
    shutil.copy(SAMPLES / "shepard1906.mp4", real)
    files["real/shepard1906.mp4"] = real
    (root / "notes.txt").write_text("not a video\n")
    return files


@pytest.fixture(scope="session")
def tiny_archive(tmp_path_factory, runner) -> TinyArchive:
    base = tmp_path_factory.mktemp("tiny")
    inputs = base / "in"
    files = build_collection(inputs)
    out = base / "out" / "tiny.dnv"
    out.parent.mkdir()
    size = f"{TINY_SIZE[0]}x{TINY_SIZE[1]}"
    with torch_threads(1):
        result = invoke(
            runner, "encode", inputs, "-o", out, "--preset", "tiny", "--epochs", "1", "--size", size, "--json"
        )
    report = json.loads(result.stdout)
    os.chmod(out, 0o444)  # shared by many tests: none may change it
    return TinyArchive(out, inputs, report, result.output, TINY_SIZE, files)


@pytest.fixture(scope="module")
def one_torch_thread(tiny_archive):
    """These tests decode tiny frames, where a second intra-op thread only adds waiting (and much
    of it on a busy machine); the shared archive is built first, with the default threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
