"""Options declared once (issue 16): the `dnerv encode` command, dn.encode's keywords and the
bench's DnervSetting all equal the fields of options.EncodeOptions, and pass every value on."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest
import typer
from conftest import invoke, make_video, moving_frames

import dnerv_codec as dn
from dnerv_codec.bench.run import _PER_RUN, DnervSetting
from dnerv_codec.cli import app
from dnerv_codec.config import ModelConfig, QuantConfig
from dnerv_codec.options import EncodeOptions

FIELDS = [f.name for f in dataclasses.fields(EncodeOptions)]
CLI_FIELDS = [f for f in dataclasses.fields(EncodeOptions) if f.metadata["cli"]]
CLI_ONLY = ["as_json", "quiet", "verbose", "nproc"]  # options of the command, not of the encode


def encode_command():
    return typer.main.get_command(app).commands["encode"]


def test_cli_options_are_the_declared_fields():
    params = {p.name: p for p in encode_command().params}
    assert list(params) == [f.name for f in CLI_FIELDS] + CLI_ONLY
    for f in CLI_FIELDS:
        param = params[f.name]
        assert param.help == f.metadata["help"], f.name
        flags = f.metadata["flags"] or (f"--{f.name.replace('_', '-')}",)
        assert param.opts == ([f.name] if f.metadata["argument"] else list(flags)), f.name
        if f.default is dataclasses.MISSING:
            assert param.required, f.name
        else:
            assert param.default == f.default, f.name
    assert {f.name for f in dataclasses.fields(EncodeOptions) if not f.metadata["cli"]} == {
        "model",
        "quant",
        "weight_share",
        "weight_bytes",
    }
    assert params["time_limit"].opts == ["--time-limit"]


def test_dn_encode_keywords_are_the_declared_fields():
    names = list(inspect.signature(dn.encode).parameters)
    assert names == [*FIELDS, "reporter"]


# a value other than the default for every field, as dn.encode takes it and as EncodeOptions holds it
GIVEN = {
    "inputs": "videos",
    "output": "a.dnv",
    "preset": "fast",
    "size": "64x80",
    "epochs": 3,
    "time_limit": 1.5,
    "keyframe_codec": "av1",
    "keyframe_quality": 40,
    "keyframe_gop": 2,
    "fc_dim": 12,
    "bpp": 0.05,
    "weight_bpp": 0.02,
    "model": ModelConfig(fc_dim=9),
    "quant": QuantConfig(bits=6),
    "weight_share": 0.3,
    "weight_bytes": 999,
    "batch_size": 4,
    "lr": 0.001,
    "seed": 7,
    "device": "cpu",
    "cache_dir": "cache",
    "resume": True,
    "force": True,
}
HELD = {
    **GIVEN,
    "inputs": (Path("videos"),),
    "output": Path("a.dnv"),
    "size": (64, 80),
    "cache_dir": Path("cache"),
}


@pytest.fixture
def captured(monkeypatch):
    """Stands in for the encoder: records the EncodeOptions it is given."""
    import dnerv_codec.encoding.pipeline as encoder

    seen = []
    monkeypatch.setattr(encoder, "encode", lambda options, reporter=None: seen.append(options))
    return seen


def test_dn_encode_forwards_every_keyword(captured):
    assert set(GIVEN) == set(FIELDS)
    dn.encode(**GIVEN)
    assert dataclasses.asdict(captured[0]) == dataclasses.asdict(EncodeOptions(**HELD))


def test_cli_forwards_every_option(runner, captured):
    args = ["videos", "-o", "a.dnv"]
    for f in CLI_FIELDS[2:]:
        value = GIVEN[f.name]
        args += (
            [f"--{f.name.replace('_', '-')}"] if value is True else [f"--{f.name.replace('_', '-')}", value]
        )
    invoke(runner, "encode", *args)
    cli_held = {k: v for k, v in HELD.items() if k in {f.name for f in CLI_FIELDS}}
    defaults = {f.name: f.default for f in dataclasses.fields(EncodeOptions) if not f.metadata["cli"]}
    assert dataclasses.asdict(captured[0]) == dataclasses.asdict(EncodeOptions(**cli_held, **defaults))


def _outside(meta) -> list:
    """A value just outside each bound and choice a field declares."""
    values = []
    if "ge" in meta:
        values.append(meta["ge"] - 1)
    if "gt" in meta:
        values.append(meta["gt"])
    if "le" in meta:
        values.append(meta["le"] + 1)
    if "lt" in meta:
        values.append(meta["lt"])
    if "choices" in meta:
        values.append("bogus")
    return values


REFUSED = [(f.name, v) for f in dataclasses.fields(EncodeOptions) for v in _outside(f.metadata)]
WORDS = {"fc_dim": "width", "weight_bytes": "weight byte"}  # what the error calls them
NEEDS = {"weight_share": {"bpp": 0.05}}  # a share is a share of a target


def test_every_option_with_a_range_declares_it():
    assert sorted({n for n, _ in REFUSED}) == sorted(
        ["preset", "epochs", "time_limit", "keyframe_codec", "keyframe_quality", "keyframe_gop", "fc_dim"]
        + ["bpp", "weight_bpp", "weight_share", "weight_bytes", "batch_size", "lr"]
    )


@pytest.fixture(scope="module")
def small_video(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("options") / "v.mkv", moving_frames(4, 32, 32))


@pytest.mark.parametrize(("name", "value"), REFUSED, ids=[f"{n}={v}" for n, v in REFUSED])
def test_a_value_outside_a_declared_range_is_refused(small_video, tmp_path, name, value):
    given = {"preset": "fast", "epochs": 1, "device": "cpu", **NEEDS.get(name, {}), name: value}
    with pytest.raises(dn.ConfigError) as caught:
        dn.encode(small_video, tmp_path / "a.dnv", **given)
    assert WORDS.get(name, name.replace("_", " ")) in str(caught.value)


def test_bench_settings_are_the_declared_fields():
    names = [f.name for f in dataclasses.fields(DnervSetting)]
    assert names == [n for n in FIELDS if n not in _PER_RUN] + ["curve"]
    assert set(_PER_RUN) <= set(FIELDS)
    setting = DnervSetting("tiny", 30, epochs=2, lr=0.01)
    assert setting.encode_options() == {n: getattr(setting, n) for n in names if n != "curve"}


def test_bench_records_the_stored_name_of_time_limit():
    """time_limit was time_limit_min in bench version 1: results.json and the cache keys keep it."""
    plain = DnervSetting(
        "default", 30, time_limit=2.0, curve="plain", keyframe_gop=1, quant=QuantConfig(), bpp=0.05
    )
    assert plain.doc()["time_limit_min"] == 2.0 and "time_limit" not in plain.doc()
    assert plain.key_doc()["time_limit_min"] == 2.0
