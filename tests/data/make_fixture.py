"""Regenerate the committed fixture archive and its golden expectations (tests/test_fixture.py).

    .venv/bin/python tests/data/make_fixture.py            # writes the three files below

  fixture-v1.dnv        the archive: the first 16 frames of samples/shepard1906.mp4 (CC0), preset
                        tiny, 2 epochs, seed 0, working size 64x64 (about 15 kB)
  fixture-v1.info.json  what `dnerv info --json` said about it when it was written
  fixture-v1.frames.mkv every clip decoded on a CPU, in clip order (a short last clip: its real
                        frames only), stored losslessly: FFV1 in RGB (bgr0), read back bit-exact

Never regenerate a fixture once it is committed: it is what old files look like. When the format
changes on purpose (the header, the sections, the weight coding, the network that the stored
configs build: anything that makes this file decode differently), bump FORMAT_VERSION in
dnerv_codec/archive/format.py, keep reading version 1 (or refuse it with "unsupported ... version"),
and write the new fixture under a new name (fixture-v2.*) next to the old one, which stays: every
later build must keep reading each committed fixture or refuse it clearly.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import av
import numpy as np

from dnerv_codec.video.read import iter_frames
from dnerv_codec.video.write import write_video

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SOURCE = ROOT / "samples" / "shepard1906.mp4"
FRAMES = 16
SIZE = "64x64"
NAME = "fixture-v1"
ARGS = ("--preset", "tiny", "--epochs", "2", "--seed", "0", "--size", SIZE, "--device", "cpu")


def cut(source: Path, out: Path, frames: int) -> Path:
    """The first `frames` frames of `source`, losslessly (FFV1 RGB), at their own size and rate."""
    with av.open(str(source)) as c:
        fps = float(c.streams.video[0].average_rate)
    kept = [f for _, f in zip(range(frames), iter_frames(source), strict=False)]
    write_video(out, kept, fps)
    return out


def decode_clips(archive: Path) -> np.ndarray:
    """Every clip's frames, in clip order: uint8 [N, H, W, 3]."""
    from dnerv_codec.decode import Archive

    opened = Archive(archive, "cpu")
    return np.concatenate([f.numpy() for f in opened.iter_clips(range(len(opened.clips)))])


def write_ffv1(path: Path, frames: np.ndarray) -> None:
    """Lossless RGB video with PyAV alone (not dnerv's writer, which the fixture must not trust)."""
    with av.open(str(path), "w", format="matroska") as c:
        s = c.add_stream("ffv1", rate=25)
        s.height, s.width, s.pix_fmt = frames.shape[1], frames.shape[2], "bgr0"
        s.options = {"level": "3"}
        for i, frame in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24").reformat(
                format="bgr0"
            )
            vf.pts = i
            c.mux(s.encode(vf))
        c.mux(s.encode(None))


def read_ffv1(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def main() -> int:
    import torch
    from typer.testing import CliRunner

    from dnerv_codec.cli import app

    torch.set_num_threads(1)
    runner = CliRunner()
    archive = HERE / f"{NAME}.dnv"
    with tempfile.TemporaryDirectory() as tmp:
        clip = cut(SOURCE, Path(tmp) / "shepard1906-16f.mkv", FRAMES)
        result = runner.invoke(app, ["encode", str(clip), "-o", str(archive), "--force", "--json", *ARGS])
        if result.exit_code != 0:
            print(result.output, file=sys.stderr)
            return 1
    result = runner.invoke(app, ["info", str(archive), "--json"])
    info = json.loads(result.stdout)
    (HERE / f"{NAME}.info.json").write_text(json.dumps(info, indent=2) + "\n")
    frames = decode_clips(archive)
    write_ffv1(HERE / f"{NAME}.frames.mkv", frames)
    assert np.array_equal(read_ffv1(HERE / f"{NAME}.frames.mkv"), frames)
    for path in sorted(HERE.glob(f"{NAME}.*")):
        print(f"{path.relative_to(ROOT)}: {path.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
