"""ArchiveDataset (issue 7): clips and windows, folder labels, padding, batching, DataLoader workers,
pickling, and typed errors for bad arguments."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
from conftest import invoke, read_frames
from torch.utils.data import DataLoader

import dnerv_codec as dn
from dnerv_codec.dataset import folder_class

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def archive(tiny_archive):
    return dn.open(tiny_archive.path, device="cpu")


@pytest.fixture(scope="module")
def videos(archive):
    """Every video decoded clip by clip (decode_clip), by index."""
    return [
        torch.cat([archive.decode_clip(c) for c in archive.layout.video_clips(v)])
        for v in range(len(archive.videos))
    ]


def assert_nearly_equal(a: torch.Tensor, b: torch.Tensor) -> None:
    """Equal but for rare +-1 steps: the network's float sums depend a little on the batch a clip is
    decoded in (oneDNN picks its blocking by batch size), so a batched decode may round a rare
    pixel the other way."""
    assert a.shape == b.shape and a.dtype == b.dtype
    diff = (a.int() - b.int()).abs()
    assert diff.max() <= 1, f"differ by {int(diff.max())}"
    assert int((diff > 0).sum()) <= max(1, a.numel() // 1000), f"{int((diff > 0).sum())} values differ"


def expected_labels(names: list[str]) -> tuple[list[str], list[int]]:
    folders = [n.split("/")[0] if "/" in n else None for n in names]
    classes = sorted({f for f in folders if f is not None})
    return classes, [-1 if f is None else classes.index(f) for f in folders]


def test_folder_class():
    assert folder_class("cats/a.mp4") == "cats"
    assert folder_class("cats/young/a.mp4") == "cats"
    assert folder_class("a.mp4") is None


def test_clips_items(tiny_archive, archive, videos):
    ds = dn.ArchiveDataset(tiny_archive.path)
    t, (h, w) = archive.layout.clip_len, archive.size
    assert len(ds) == len(archive.clips) and ds.frames_per_item == t and ds.size == (h, w)
    classes, labels = expected_labels([v.name for v in archive.videos])
    assert len(classes) >= 2 and -1 in labels, "the fixture should have class folders and loose videos"
    assert ds.classes == classes and list(ds.video_labels) == labels
    assert ds.targets == [labels[c.video] for c in archive.clips]
    for clip in archive.clips:
        item = ds[clip.index]
        assert set(item) == {"frames", "mask", "length", "label", "video", "start", "index"}
        assert item["frames"].dtype == torch.uint8 and item["frames"].shape == (t, h, w, 3)
        assert item["mask"].dtype == torch.bool and item["mask"].shape == (t,)
        n = clip.length
        assert (item["length"], item["video"], item["start"], item["index"]) == (
            n,
            clip.video,
            clip.start,
            clip.index,
        )
        assert item["label"] == labels[clip.video]
        assert item["mask"].tolist() == [True] * n + [False] * (t - n)
        expected = videos[clip.video][clip.start : clip.start + n]
        torch.testing.assert_close(item["frames"][:n], expected, rtol=0, atol=0)
        assert not item["frames"][n:].any(), "padding frames are zero"
    assert len(list(ds)) == len(ds)  # iteration stops at the end (ClipIndexError is an IndexError)
    assert ds[-1]["index"] == len(ds) - 1


def test_clip_equals_the_cli_lossless_decode(tiny_archive, runner, tmp_path):
    ds = dn.ArchiveDataset(tiny_archive.path)
    clip = max(range(len(ds)), key=lambda i: (ds.clips[i].length, i))
    out = tmp_path / "clip.mkv"
    invoke(runner, "decode", tiny_archive.path, "--clip", clip, "-o", out, "--device", "cpu")
    item = ds[clip]
    np.testing.assert_array_equal(item["frames"][: item["length"]].numpy(), read_frames(out))


def test_windows_span_clips_and_pad_short_videos(tiny_archive, archive, videos):
    t = archive.layout.clip_len
    window, stride = t + 3, 5  # every full window crosses a clip boundary
    ds = dn.ArchiveDataset(tiny_archive.path, mode="windows", window=window, stride=stride)
    expected = [
        (v, s)
        for v, video in enumerate(archive.videos)
        for s in range(0, max(video.frames - window, 0) + 1, stride)
    ]
    assert list(ds.items) == expected and len(ds) == len(expected)
    assert any(archive.videos[v].frames < window for v, _ in expected), "want a video shorter than a window"
    batch = ds.decode_batch(range(len(ds)))
    assert batch["frames"].shape == (len(ds), window, *archive.size, 3)
    for i, (v, s) in enumerate(expected):
        item = ds[i]
        n = min(window, archive.videos[v].frames - s)
        assert (item["video"], item["start"], item["length"]) == (v, s, n)
        assert item["mask"].tolist() == [True] * n + [False] * (window - n)
        assert_nearly_equal(item["frames"][:n], videos[v][s : s + n])
        assert not item["frames"][n:].any()
        assert_nearly_equal(batch["frames"][i], item["frames"])
        assert batch["length"][i] == n and batch["label"][i] == item["label"]
    default = dn.ArchiveDataset(tiny_archive.path, mode="windows", window=4)
    assert default.stride == 4


def test_as_float_transform_and_no_labels(tiny_archive):
    plain = dn.ArchiveDataset(tiny_archive.path)
    ds = dn.ArchiveDataset(tiny_archive.path, as_float=True, transform=lambda x: x[:, ::2], labels=None)
    t, (h, w) = plain.clip_len, plain.size
    item, ref = ds[0], plain[0]
    assert item["frames"].dtype == torch.float32 and item["frames"].shape == (3, (t + 1) // 2, h, w)
    expected = ref["frames"].permute(3, 0, 1, 2)[:, ::2].float() / 255
    torch.testing.assert_close(item["frames"], expected, rtol=0, atol=0)
    assert ds.classes == [] and set(ds.targets) == {-1} and item["label"] == -1


def test_dataloader_batches_in_one_pass_and_with_two_workers(tiny_archive):
    ds = dn.ArchiveDataset(tiny_archive.path, mode="windows", window=6, stride=4)
    reference = ds.decode_batch(range(len(ds)))
    assert isinstance(reference["frames"], torch.Tensor)
    for workers in (0, 2):
        loader = DataLoader(ds, batch_size=3, shuffle=True, num_workers=workers)
        seen = []
        for batch in loader:
            assert batch["frames"].shape[1:] == (6, *ds.size, 3) and batch["label"].dtype == torch.int64
            for row, i in enumerate(batch["index"].tolist()):
                assert_nearly_equal(batch["frames"][row], reference["frames"][i])
                assert batch["label"][row] == reference["label"][i]
                seen.append(i)
        assert sorted(seen) == list(range(len(ds)))


def test_spawned_workers_open_the_archive_from_its_path(tiny_archive, tmp_path, monkeypatch):
    ds = dn.ArchiveDataset(os.path.relpath(tiny_archive.path))
    reference = ds.decode_batch(range(len(ds)))
    monkeypatch.chdir(tmp_path)  # a relative path still works: the dataset keeps it absolute
    loader = DataLoader(ds, batch_size=4, num_workers=1, multiprocessing_context="spawn")
    for batch in loader:
        for row, i in enumerate(batch["index"].tolist()):
            assert_nearly_equal(batch["frames"][row], reference["frames"][i])


def test_worker_processes_open_their_own_archive(tiny_archive):
    ds = dn.ArchiveDataset(tiny_archive.path)
    first = ds.archive
    assert ds.archive is first  # one per process
    ds._pid = -1  # as a forked child sees it: another pid
    assert ds.archive is not first
    ds.transform = None
    copy = pickle.loads(pickle.dumps(ds))  # what a spawned worker receives
    assert copy._archive is None and copy.path == ds.path
    torch.testing.assert_close(copy[1]["frames"], ds[1]["frames"], rtol=0, atol=0)
    assert copy._pid == os.getpid()


def test_bad_arguments(tiny_archive, tmp_path):
    path = tiny_archive.path
    with pytest.raises(dn.InputError, match="no such archive"):
        dn.ArchiveDataset(tmp_path / "missing.dnv")
    junk = tmp_path / "junk.dnv"
    junk.write_bytes(b"just some bytes, not an archive" * 4)
    with pytest.raises(dn.ArchiveError):
        dn.ArchiveDataset(junk)
    with pytest.raises(dn.ConfigError, match="mode must be 'clips' or 'windows', got 'frames'"):
        dn.ArchiveDataset(path, mode="frames")
    with pytest.raises(dn.ConfigError, match="needs a window length"):
        dn.ArchiveDataset(path, mode="windows")
    for bad in (0, -3, 2.5, True):
        with pytest.raises(dn.ConfigError, match="window must be a positive number of frames"):
            dn.ArchiveDataset(path, mode="windows", window=bad)
    with pytest.raises(dn.ConfigError, match="stride must be a positive number of frames"):
        dn.ArchiveDataset(path, mode="windows", window=4, stride=0)
    with pytest.raises(dn.ConfigError, match="go with mode='windows'"):
        dn.ArchiveDataset(path, window=4)
    with pytest.raises(dn.ConfigError, match="labels must be 'folder' or None"):
        dn.ArchiveDataset(path, labels="parent")
    with pytest.raises(dn.ConfigError, match="transform must be callable"):
        dn.ArchiveDataset(path, transform="flip")
    with pytest.raises(dn.ConfigError, match="unknown device"):
        dn.ArchiveDataset(path, device="tpu")
    ds = dn.ArchiveDataset(path)
    n = len(ds)
    for bad in (n, -n - 1):
        with pytest.raises(
            dn.ClipIndexError, match=rf"item {bad} does not exist; this dataset has {n} clips"
        ):
            ds[bad]
    with pytest.raises(IndexError):
        ds[n + 5]
    with pytest.raises(TypeError, match="indices must be integers"):
        ds["0"]
    assert ds[np.int64(0)]["index"] == 0 and ds[torch.tensor(1)]["index"] == 1
