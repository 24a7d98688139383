import pytest

from dnerv_codec.config import PRESETS, FitConfig, KeyframeConfig, ModelConfig, from_dict, get_preset, to_dict
from dnerv_codec.errors import ConfigError


def test_presets_round_trip_through_json_dicts():
    for preset in PRESETS.values():
        assert from_dict(ModelConfig, to_dict(preset.model)) == preset.model
        assert from_dict(KeyframeConfig, to_dict(preset.keyframes)) == preset.keyframes


@pytest.mark.parametrize(
    "make",
    [
        lambda: KeyframeConfig(codec="jpeg"),
        lambda: KeyframeConfig(codec="av1", quality=64),
        lambda: KeyframeConfig(codec="hevc", quality=52),
        lambda: FitConfig(epochs=None, time_limit=None),
        lambda: FitConfig(epochs=0),
        lambda: FitConfig(loss="l3"),
        lambda: ModelConfig(strides=()),
        lambda: ModelConfig(clip_len=0),
        lambda: get_preset("nope"),
        lambda: from_dict(ModelConfig, {"fc_dim": 8, "bogus": 1}),
    ],
)
def test_bad_settings_raise_config_error(make):
    with pytest.raises(ConfigError):
        make()


def test_size_multiple():
    assert ModelConfig(strides=(4, 2, 2, 2, 2)).size_multiple == 64
