"""The encode pipeline's stages (dnerv_codec/encoding/), each run alone on a tiny input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import make_video, moving_frames, read_frames

from dnerv_codec.archive.read import ArchiveReader
from dnerv_codec.encoding import archive
from dnerv_codec.encoding.frames import frame_cache, load_frames, working_size
from dnerv_codec.encoding.inputs import find_inputs
from dnerv_codec.encoding.keyframes import code_keyframes
from dnerv_codec.encoding.plan import decide, read_options
from dnerv_codec.encoding.weights import Weights
from dnerv_codec.errors import ConfigError, InputError, OutputError
from dnerv_codec.fit.distributed import Dist
from dnerv_codec.keyframes import decode_keyframe_run, keyframe_groups
from dnerv_codec.options import EncodeOptions
from dnerv_codec.rate import overhead_bytes
from dnerv_codec.report import Reporter

pytestmark = pytest.mark.usefixtures("one_thread")

ONE = Dist()  # a single process: broadcasts hand back what they get
QUIET = Reporter()


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("stages")
    return [make_video(root / f"v{i}.mkv", moving_frames(n, 32, 32, seed=i)) for i, n in enumerate((9, 5))]


def options(videos, output, **kw) -> EncodeOptions:
    return EncodeOptions(inputs=tuple(videos), output=output, preset="tiny", **kw)


@pytest.fixture
def cached(videos, tmp_path):
    """The plan's first step and the frames stage, into a cache under tmp_path."""
    files, configs, sizing = read_options(options(videos, tmp_path / "a.dnv"))
    found = find_inputs(files.inputs, QUIET)
    shape = working_size(found.videos, None, configs.preset.default_size, configs.model.size_multiple)
    with frame_cache(files.output, tmp_path / "cache", is_main=True) as folder:
        yield (
            found,
            configs,
            sizing,
            load_frames(found.videos, shape, folder, configs.model.clip_len, ONE, QUIET),
        )


# ---------------------------------------------------------------- plan


def test_plan_reads_the_options(videos, tmp_path):
    opts = options(videos, tmp_path / "a.dnv", time_limit=2.0, keyframe_quality=30, fc_dim=12, force=True)
    files, configs, sizing = read_options(opts)
    assert files.checkpoint == tmp_path / "a.dnv.ckpt" and files.overwrite
    assert configs.fit.time_limit == 2.0 and configs.fit.epochs is None  # the schedule is replaced
    assert configs.keyframes.quality == 30 and configs.keyframes.codec == "hevc"
    assert sizing.fc_dim == 12 and sizing.bpp is None


def test_plan_refuses_what_does_not_fit_together(videos, tmp_path):
    with pytest.raises(ConfigError, match="--bpp chooses"):
        read_options(options(videos, tmp_path / "a.dnv", bpp=0.5, fc_dim=8))
    (tmp_path / "b.dnv").write_bytes(b"")
    with pytest.raises(OutputError, match="exists"):
        read_options(options(videos, tmp_path / "b.dnv"))


def test_plan_fixes_the_width_and_fingerprints_the_settings(cached):
    found, configs, sizing, frames = cached
    wide = decide(dataclasses.replace(sizing, fc_dim=12), configs, frames, found.videos, "cpu", ONE, QUIET)
    chosen = decide(sizing, configs, frames, found.videos, "cpu", ONE, QUIET)
    assert wide.configs.model.fc_dim == 12 and wide.coded is None
    assert configs.preset.min_fc_dim <= chosen.configs.model.fc_dim <= configs.preset.max_fc_dim
    assert wide.fingerprint != chosen.fingerprint
    assert chosen.fingerprint == decide(sizing, configs, frames, found.videos, "cpu", ONE, QUIET).fingerprint


def test_plan_for_a_target_codes_the_keyframes_and_leaves_the_rest_to_the_weights(cached):
    found, configs, sizing, frames = cached
    plan = decide(dataclasses.replace(sizing, bpp=12.0), configs, frames, found.videos, "cpu", ONE, QUIET)
    assert len(plan.coded) == len(frames.layout.keyframes)
    keyframe_bytes = sum(map(len, plan.coded))
    assert plan.weight_budget(plan.coded) == plan.target_bytes - keyframe_bytes - overhead_bytes(
        len(plan.coded)
    )
    assert plan.target_bytes == int(12.0 * frames.pixels / 8)


# ---------------------------------------------------------------- inputs and frames


def test_inputs_stage_needs_a_video(tmp_path):
    (tmp_path / "notes.txt").write_text("not a video")
    with pytest.raises(InputError, match="no usable video"):
        find_inputs((tmp_path,), QUIET)


def test_frames_stage_fills_the_cache(cached, videos):
    _, _, _, frames = cached
    assert frames.shape == (32, 32) and frames.folder.parent.name == "cache"
    for video, stored in zip(videos, frames.videos, strict=True):
        assert np.array_equal(stored, read_frames(video))
    assert frames.layout.total_frames == 14 and frames.pixels == 14 * 32 * 32


def test_frame_cache_removes_only_what_it_made(tmp_path):
    with frame_cache(tmp_path / "a.dnv", None, is_main=True) as folder:
        assert folder == tmp_path / "a.dnv.cache" and folder.is_dir()
    assert not folder.exists()
    root = tmp_path / "mine"
    root.mkdir()
    with frame_cache(tmp_path / "a.dnv", root, is_main=True) as folder:
        assert folder.parent == root
    assert root.is_dir() and not folder.exists()  # the user's folder stays
    with frame_cache(tmp_path / "a.dnv", tmp_path / "new", is_main=True):
        pass
    assert not (tmp_path / "new").exists()  # made by the run: removed with it
    with frame_cache(tmp_path / "a.dnv", None, is_main=False) as folder:
        assert folder is None  # only rank 0 makes one


# ---------------------------------------------------------------- keyframes and archive


def test_keyframes_stage_caches_what_the_decoder_will_see(cached):
    found, configs, sizing, frames = cached
    plan = decide(sizing, configs, frames, found.videos, "cpu", ONE, QUIET)
    keys = code_keyframes(frames, plan.configs, None, ONE, QUIET)
    cfg = plan.configs.keyframes
    groups = keyframe_groups(frames.layout.first_keyframe, len(keys.blobs), cfg.gop)
    runs = [decode_keyframe_run(keys.blobs[g.start : g.stop], cfg.codec, 32, 32) for g in groups]
    assert np.array_equal(keys.decoded, np.concatenate(runs))
    mean = keys.decoded.reshape(-1, 3).mean(0) / 255
    assert np.allclose(keys.colours.mean, mean) and min(keys.colours.std) > 0
    again = code_keyframes(frames, plan.configs, keys.blobs, ONE, QUIET)  # given: not coded again
    assert again.blobs is keys.blobs and again.colours == keys.colours


def test_keyframes_stage_without_keyframes_measures_the_frames(cached):
    found, configs, sizing, frames = cached
    nerv = dataclasses.replace(configs, model=dataclasses.replace(configs.model, kind="nerv"))
    keys = code_keyframes(frames, nerv, None, ONE, QUIET)
    assert keys.blobs == [] and keys.decoded is None
    images = frames.keyframe_images().reshape(-1, 3)
    assert np.allclose(keys.colours.mean, images.mean(0) / 255)


def test_archive_stage_returns_the_sizes_of_the_files_sections(cached, tmp_path):
    found, configs, sizing, frames = cached
    plan = decide(sizing, configs, frames, found.videos, "cpu", ONE, QUIET)
    keys = code_keyframes(frames, plan.configs, None, ONE, QUIET)
    path = tmp_path / "a.dnv"
    size = archive.write(
        path, False, frames, plan.configs, keys.colours, keys.blobs, Weights(b"w" * 123, configs.quant)
    )
    reader = ArchiveReader(path)
    assert size.total == path.stat().st_size
    assert size.sections == reader.section_bytes and size.sections["WGTS"] == 123
    assert size.container == reader.container_bytes
    assert reader.header.mean == keys.colours.mean and reader.header.model == plan.configs.model
