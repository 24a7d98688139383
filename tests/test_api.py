"""The public Python API (issue 7): `import dnerv_codec as dn`; dn.open, dn.encode, the exports,
values equal to the CLI's lossless decode, typed errors, and the README training example."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, invoke, make_video, moving_frames, read_frames

import dnerv_codec as dn

DOC = ROOT / "README.md"


def run_python(code: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # tiny tensors: see one_torch_thread
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------- the package


def test_import_is_light():
    code = "import sys, dnerv_codec as dn; print(sorted({'torch', 'av', 'numpy'} & set(sys.modules)))"
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_exports():
    for name in dn.__all__:
        assert getattr(dn, name) is not None, name
    assert dn.Archive is __import__("dnerv_codec.decode").decode.Archive
    assert issubclass(dn.ArchiveDataset, torch.utils.data.Dataset)
    for error in (dn.InputError, dn.ConfigError, dn.OutputError, dn.ArchiveError, dn.ClipIndexError):
        assert issubclass(error, dn.DnervError)
    assert issubclass(dn.ClipIndexError, IndexError)
    assert issubclass(dn.UnsupportedVersionError, dn.ArchiveError)
    from importlib.metadata import version

    assert dn.__version__ == version("dnerv")
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = dn.nope


def test_encode_is_a_plain_function_beside_the_encoder_module():
    from dnerv_codec.options import EncodeOptions

    assert callable(dn.encode) and dn.EncodeOptions is EncodeOptions
    # importing the pipeline module first (as the CLI does) leaves dn.encode the function
    code = "import dnerv_codec.encoder\nimport dnerv_codec as dn\nprint(dn.encode.__module__)"
    assert run_python(code).stdout.strip() == "dnerv_codec"


# ---------------------------------------------------------------- reading an archive


def test_open_describes_the_archive(tiny_archive):
    a = dn.open(str(tiny_archive.path), device="cpu")
    assert isinstance(a, dn.Archive)
    assert a.size == tiny_archive.size
    assert sorted(v.name for v in a.videos) == sorted(tiny_archive.files)
    assert sum(v.frames for v in a.videos) == sum(c.length for c in a.clips)
    for v in a.videos:
        assert v.fps > 0 and v.frames > 0 and v.width > 0 and v.height > 0
    assert [c.index for c in a.clips] == list(range(len(a.clips)))


def test_decode_clip_equals_the_cli_lossless_decode(tiny_archive, runner, tmp_path):
    a = dn.open(tiny_archive.path, device="cpu")
    h, w = a.size
    # the shortest clip (one frame: both keyframes the same), a full one, and the last one
    shortest = min(a.clips, key=lambda c: c.length)
    full = next(c for c in a.clips if c.length == a.layout.clip_len)
    for clip in {shortest, full, a.clips[-1]}:
        frames = a.decode_clip(clip.index)
        assert frames.dtype == torch.uint8 and frames.shape == (clip.length, h, w, 3)
        out = tmp_path / f"clip{clip.index}.mkv"
        invoke(runner, "decode", tiny_archive.path, "--clip", clip.index, "-o", out, "--device", "cpu")
        np.testing.assert_array_equal(frames.numpy(), read_frames(out))
        as_float = a.decode_clip(clip.index, as_float=True)
        assert as_float.dtype == torch.float32 and as_float.shape == (3, clip.length, h, w)
        torch.testing.assert_close(as_float, frames.permute(3, 0, 1, 2).float() / 255, rtol=0, atol=0)
    frames[0] = 0  # an ordinary tensor (not an inference tensor): in-place edits work


def test_decode_video_equals_the_cli_and_the_clips(tiny_archive, runner, tmp_path):
    a = dn.open(tiny_archive.path, device="cpu")
    video = max(a.videos, key=lambda v: v.frames)
    frames = a.decode_video(video.name)
    assert frames.shape == (video.frames, *a.size, 3)
    out = tmp_path / "video.mkv"
    invoke(runner, "decode", tiny_archive.path, "--video", video.name, "-o", out, "--device", "cpu")
    np.testing.assert_array_equal(frames.numpy(), read_frames(out))
    index = a.video_index(video.name)
    same_batches = torch.cat(list(a.iter_clips(a.layout.video_clips(index), batch_size=4)))
    torch.testing.assert_close(same_batches, frames, rtol=0, atol=0)
    by_clip = torch.cat([a.decode_clip(i) for i in a.layout.video_clips(index)])
    assert_nearly_equal(by_clip, frames)


def assert_nearly_equal(a: torch.Tensor, b: torch.Tensor) -> None:
    """Equal but for rare +-1 steps: the network's float sums depend a little on the batch a clip is
    decoded in (oneDNN picks its blocking by batch size), so a clip decoded alone and the same clip
    decoded with others may round a rare pixel differently."""
    assert a.shape == b.shape and a.dtype == b.dtype
    diff = (a.int() - b.int()).abs()
    assert diff.max() <= 1, f"differ by {int(diff.max())}"
    assert int((diff > 0).sum()) <= max(1, a.numel() // 1000), f"{int((diff > 0).sum())} values differ"


def test_decode_clips_batches_with_a_mask(tiny_archive):
    a = dn.open(tiny_archive.path, device="cpu")
    t = a.layout.clip_len
    indices = list(range(len(a.clips)))[::-1]
    frames, mask = a.decode_clips(indices)
    assert frames.shape == (len(indices), t, *a.size, 3) and frames.dtype == torch.uint8
    assert mask.shape == (len(indices), t) and mask.dtype == torch.bool
    assert any(c.length < t for c in a.clips), "the fixture should have short clips"
    same_batch = list(a.iter_clips(indices, batch_size=len(indices)))
    for row, i in enumerate(indices):
        n = a.clips[i].length
        assert mask[row].tolist() == [True] * n + [False] * (t - n)
        torch.testing.assert_close(frames[row, :n], same_batch[row], rtol=0, atol=0)
        assert_nearly_equal(frames[row, :n], a.decode_clip(i))
        assert not frames[row, n:].any()
    as_float, _ = a.decode_clips(indices[:2], as_float=True)
    assert as_float.shape == (2, 3, t, *a.size)
    empty, empty_mask = a.decode_clips([])
    assert empty.shape == (0, t, *a.size, 3) and empty_mask.shape == (0, t)


def test_reading_errors_are_typed_and_clear(tiny_archive, tmp_path):
    with pytest.raises(dn.InputError, match="no such archive"):
        dn.open(tmp_path / "missing.dnv")
    not_archive = tmp_path / "video.dnv"
    not_archive.write_bytes(b"\x00" * 64 + b"not an archive at all" * 10)
    with pytest.raises(dn.ArchiveError):
        dn.open(not_archive)
    with pytest.raises(dn.ArchiveError):
        dn.open(next(iter(tiny_archive.files.values())))  # a video is not an archive
    with pytest.raises(dn.ConfigError, match="unknown device"):
        dn.open(tiny_archive.path, device="tpu")
    a = dn.open(tiny_archive.path, device="cpu")
    n = len(a.clips)
    for bad in (n, -1):
        with pytest.raises(dn.ClipIndexError, match=rf"clip {bad} does not exist.*0\.\.{n - 1}"):
            a.decode_clip(bad)
    with pytest.raises(IndexError):
        a.decode_clip(n + 100)
    with pytest.raises(dn.ClipIndexError, match="no video named 'nope.mp4'"):
        a.decode_video("nope.mp4")


# ---------------------------------------------------------------- encoding


def test_encode_takes_str_paths_and_returns_the_report(tmp_path):
    video = make_video(tmp_path / "in" / "clip.mkv", moving_frames(4, 32, 32, seed=7))
    out = tmp_path / "out.dnv"
    report = dn.encode(str(video.parent), str(out), preset="tiny", epochs=1, size="32x32", seed=1)
    assert isinstance(report, dn.EncodeReport)
    assert report.output == out and out.stat().st_size == report.bytes
    assert (report.frames, report.height, report.width) == (4, 32, 32)
    assert report.psnr > 10
    a = dn.open(out, device="cpu")
    assert [v.name for v in a.videos] == ["clip.mkv"]
    with pytest.raises(dn.OutputError, match="exists"):
        dn.encode([video], out, preset="tiny", epochs=1)


def test_encode_errors(tmp_path):
    with pytest.raises(dn.InputError, match="no inputs"):
        dn.encode([], tmp_path / "a.dnv")
    with pytest.raises(dn.InputError, match="no such file"):
        dn.encode(tmp_path / "missing", tmp_path / "a.dnv")
    with pytest.raises(dn.InputError, match="HEIGHTxWIDTH"):
        dn.encode(tmp_path, tmp_path / "a.dnv", size="big")
    with pytest.raises(dn.ConfigError, match="size must be"):
        dn.encode(tmp_path, tmp_path / "a.dnv", size=(32, 0))
    with pytest.raises(dn.ConfigError, match="unknown preset"):
        dn.encode(tmp_path, tmp_path / "a.dnv", preset="huge")
    with pytest.raises(TypeError):
        dn.encode(tmp_path, tmp_path / "a.dnv", colour="blue")


# ---------------------------------------------------------------- the README example


def readme_example() -> str:
    text = DOC.read_text()
    match = re.search(r"<!-- training-example[^>]*-->\s*```python\n(.*?)```", text, re.S)
    assert match, f"no training example in {DOC}"
    return match.group(1)


def test_readme_training_example_runs(tiny_archive, tmp_path):
    code = readme_example()
    assert code.count('"out/samples.dnv"') == 1
    code = code.replace('"out/samples.dnv"', repr(str(tiny_archive.path)))
    result = run_python(code, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    losses = re.findall(r"epoch (\d): loss ([\d.]+)", result.stdout)
    assert [e for e, _ in losses] == ["0", "1", "2"], result.stdout
    assert all(np.isfinite(float(v)) for _, v in losses)
