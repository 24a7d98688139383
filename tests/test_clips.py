import numpy as np
import pytest

from dnerv_codec.clips import Layout, VideoEntry, keyframe_positions


@pytest.mark.parametrize(
    ("frames", "expected"),
    [(1, [0]), (2, [0, 1]), (8, [0, 7]), (9, [0, 8]), (10, [0, 8, 9]), (17, [0, 8, 16])],
)
def test_keyframe_positions(frames, expected):
    assert keyframe_positions(frames, 8) == expected


def _layout(*counts, clip_len=8):
    return Layout.build([VideoEntry(f"v{i}", 25.0, n, 10, 10) for i, n in enumerate(counts)], clip_len)


def test_clips_cover_every_frame_once_and_share_keyframes():
    layout = _layout(10, 1, 17)
    for v, video in enumerate(layout.videos):
        covered = [f for c in layout.clips if c.video == v for f in range(c.start, c.start + c.length)]
        assert covered == list(range(video.frames))
    # neighbouring clips of a video share their boundary keyframe
    first, second = layout.clips[0], layout.clips[1]
    assert first.key_end == second.key_start
    assert len(layout.keyframes) == 3 + 1 + 3
    for c in layout.clips:
        assert layout.keyframes[c.key_start] == (c.video, c.start)
        assert layout.keyframes[c.key_end] == (c.video, c.end_frame)


def test_clip_inputs_interpolate_between_keyframes():
    layout = _layout(10)
    t, w, mask = layout.clip_inputs(layout.clips[0])
    np.testing.assert_allclose(w, np.arange(8) / 8)
    np.testing.assert_allclose(t, np.arange(8) / 9)
    assert mask.all()
    t, w, mask = layout.clip_inputs(layout.clips[1])  # frames 8, 9; keyframes 8 and 9
    assert mask.tolist() == [True, True] + [False] * 6
    assert w[:2].tolist() == [0.0, 1.0]
    assert t[1] == 1.0


def test_single_frame_video():
    layout = _layout(1)
    (clip,) = layout.clips
    assert clip.key_start == clip.key_end == 0
    t, w, mask = layout.clip_inputs(clip)
    assert t[0] == 0 and w[0] == 0 and mask.sum() == 1


def test_video_lookup():
    layout = _layout(10, 3)
    assert layout.video_index("v1") == 1
    assert layout.video_index("nope") is None
    assert list(layout.video_clips(0)) == [0, 1]
    assert list(layout.video_clips(1)) == [2]
