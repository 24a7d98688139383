"""The faster paths give what the plain ones give (no timings here: benchmarks/speed.py measures)."""

from __future__ import annotations

import dataclasses
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dnerv_codec.clips import Layout, VideoEntry
from dnerv_codec.config import REFERENCE_SHAPES, ModelConfig, from_dict, to_dict
from dnerv_codec.decode import Archive
from dnerv_codec.fit.data import ClipData, read_frames
from dnerv_codec.model.build import count_parameters
from dnerv_codec.model.dnerv import stage_widths
from dnerv_codec.video.cache import open_frames, write_frames

FIXTURE = Path(__file__).resolve().parent / "data" / "fixture-v1.dnv"


def test_reference_shapes_match_the_published_network():
    small, large = REFERENCE_SHAPES["reference-128x160"], REFERENCE_SHAPES["reference-256x320"]
    assert stage_widths(small) == [128, 64, 32, 32]  # stage 0 of C0 * 2 channels
    assert count_parameters(small, 128, 160) == 3_865_007
    assert stage_widths(large) == [332, 166, 83, 42, 32]
    assert count_parameters(large, 256, 320) == 15_955_472
    assert not small.blend_residual and small.pe_levels == 240 and small.stem_hidden == 512


def test_expansion_defaults_to_todays_network():
    doc = to_dict(ModelConfig(fc_dim=24))
    del doc["expansion"]  # as in archives written before the field existed
    cfg = from_dict(ModelConfig, doc)
    assert cfg.expansion == 1 and stage_widths(cfg)[0] == 24
    assert stage_widths(dataclasses.replace(cfg, expansion=2))[0] == 48


def test_read_frames_equals_the_memory_map(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (11, 4, 6, 3), dtype=np.uint8)
    write_frames(tmp_path / "v.u8", frames, 4, 6)
    mapped = open_frames(tmp_path / "v.u8", 4, 6)
    for start, count in [(0, 11), (3, 4), (10, 1), (8, 8)]:
        got = read_frames(mapped, start, count)
        np.testing.assert_array_equal(got, frames[start : start + count])
        np.testing.assert_array_equal(read_frames(frames, start, count), frames[start : start + count])
        assert not isinstance(got, np.memmap)


def test_clip_batches_from_the_cache_equal_those_from_memory(tmp_path):
    frames = np.random.default_rng(1).integers(0, 256, (13, 8, 8, 3), dtype=np.uint8)
    write_frames(tmp_path / "v.u8", frames, 8, 8)
    layout = Layout.build([VideoEntry("v", 25.0, 13, 8, 8)], 4)
    keys = np.stack([frames[f] for _, f in layout.keyframes])
    write_frames(tmp_path / "k.u8", keys, 8, 8)
    mapped_keys = open_frames(tmp_path / "k.u8", 8, 8)
    mapped = ClipData(layout, [open_frames(tmp_path / "v.u8", 8, 8)], mapped_keys).batch(
        range(len(layout.clips))
    )
    plain = ClipData(layout, [frames], keys).batch(range(len(layout.clips)))
    for name in plain:
        assert torch.equal(mapped[name], plain[name]), name


def test_clip_batches_hold_each_clips_frames_padded_and_its_two_keyframes(tmp_path):
    frames = np.random.default_rng(2).integers(0, 256, (13, 8, 8, 3), dtype=np.uint8)
    write_frames(tmp_path / "v.u8", frames, 8, 8)
    layout = Layout.build([VideoEntry("v", 25.0, 13, 8, 8)], 4)
    keys = np.stack([frames[f] for _, f in layout.keyframes])
    data = ClipData(layout, [open_frames(tmp_path / "v.u8", 8, 8)], keys)
    order = list(reversed(range(len(layout.clips))))
    batch = data.batch(order)
    assert any(layout.clips[i].length < 4 for i in order)  # a short clip is padded
    for b, i in enumerate(order):
        c = layout.clips[i]
        clip = frames[c.start : c.start + c.length]
        clip = np.concatenate([clip, np.repeat(clip[-1:], 4 - c.length, axis=0)])
        np.testing.assert_array_equal(batch["frames"][b].permute(0, 2, 3, 1).numpy(), clip)
        np.testing.assert_array_equal(
            batch["keyframes"][b].permute(0, 2, 3, 1).numpy(), keys[[c.key_start, c.key_end]]
        )
        assert batch["mask"][b].tolist() == [k < c.length for k in range(4)]


@pytest.mark.usefixtures("one_thread")
def test_network_and_blend_in_one_pass_equal_two_passes():
    archive = Archive(FIXTURE, "cpu")
    clips = range(len(archive.clips))
    both = list(archive.iter_clips_with_blend(clips, batch_size=2))
    network = list(archive.iter_clips(clips, batch_size=2))
    blend = list(archive.iter_clips(clips, batch_size=2, blend=True))
    assert len(both) == len(network) == len(blend) == len(archive.clips)
    for (out, base), a, b in zip(both, network, blend, strict=True):
        assert torch.equal(out, a) and torch.equal(base, b)


@pytest.mark.usefixtures("one_thread")
def test_cpu_decoding_splits_wide_batches_into_passes_with_the_same_frames(monkeypatch):
    from dnerv_codec import decode

    archive = Archive(FIXTURE, "cpu")
    clips = list(range(len(archive.clips)))
    one_by_one = [frames for frames in archive.iter_clips(clips, batch_size=1)]
    passes = []
    forward = archive.model.forward
    monkeypatch.setattr(
        archive.model, "forward", lambda keys, t, w: passes.append(len(t)) or forward(keys, t, w)
    )

    monkeypatch.setattr(decode, "CPU_PASS_BYTES", 1)  # below one clip: one clip a pass
    assert archive._clips_per_pass() == 1
    frames, mask = archive.decode_clips(clips)
    batched = list(archive.iter_clips(clips, batch_size=4))
    assert passes == [1] * len(clips) * 2
    for i, expected in enumerate(one_by_one):
        n = len(expected)
        assert torch.equal(frames[i, :n], expected) and torch.equal(batched[i], expected)
        assert bool(mask[i, :n].all()) and not bool(mask[i, n:].any())

    passes.clear()
    monkeypatch.setattr(decode, "CPU_PASS_BYTES", 2**40)
    archive.decode_clips(clips)
    assert passes == [len(clips)]


def test_half_precision_frames_are_scaled_to_uint8_in_float32():
    from dnerv_codec.decode import to_uint8

    frames = torch.rand(2, 3, 8, 8).bfloat16()
    assert torch.equal(to_uint8(frames), to_uint8(frames.float()))


def test_keep_freed_memory_is_idempotent_and_changes_no_output():
    from dnerv_codec.malloc import keep_freed_memory
    from dnerv_codec.model.dnerv import DNeRV

    cfg = ModelConfig(fc_dim=8, enc_dim=4, stem_hidden=8, pe_levels=4, min_width=4, strides=(2, 2))
    torch.manual_seed(0)
    model = DNeRV(cfg, 8, 8).eval()
    keys, t, w = torch.rand(1, 2, 3, 8, 8), torch.rand(1, 8), torch.rand(1, 8)
    with torch.no_grad():
        before = model(keys, t, w)
        applied = keep_freed_memory()
        assert keep_freed_memory() == applied and isinstance(applied, bool)
        assert torch.equal(model(keys, t, w), before)


# In a fresh process: call keep_freed_memory() (or not), malloc 64 MiB and print what it returned
# and how many more blocks glibc then serves from mmap (mallinfo2's hblks): 0 once the setting holds.
_MMAPPED_BLOCKS = """
import ctypes, sys
from dnerv_codec.malloc import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "apply" else None
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
libc.malloc.restype = ctypes.c_void_p
before = libc.mallinfo2().hblks
block = libc.malloc(64 << 20)
print(applied, libc.mallinfo2().hblks - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the malloc setting is glibc's (Linux)")
def test_keep_freed_memory_really_stops_mmapped_blocks():
    def run(mode: str, **env: str) -> list[str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "DNERV_MALLOC"))}
        out = subprocess.run(
            [sys.executable, "-c", _MMAPPED_BLOCKS, mode], env=clean | env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.split()

    assert run("plain") == ["None", "1"]  # glibc's default: a 64 MiB block is its own mmap
    assert run("apply") == ["True", "0"]  # kept in the heap, so freed memory is reused
    assert run("apply", DNERV_MALLOC_DEFAULTS="1") == ["False", "1"]
    assert run("apply", MALLOC_MMAP_MAX_="65536") == ["False", "1"]  # the user's own tuning wins
