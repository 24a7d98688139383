"""The weight-compression stage: pruning, per-tensor bit depths, quantization-aware fine-tuning."""

import dataclasses
import signal

import pytest
import torch
from conftest import TINY_DNERV as CFG
from conftest import make_video, moving_frames
from conftest import random_clip_data as _data

import dnerv_codec as dn
from dnerv_codec.compress.prune import apply_masks, magnitude_masks, prunable
from dnerv_codec.compress.quantize import dequantize_tensor, fake_quantize, quantize_tensor, quantized_values
from dnerv_codec.compress.stage import compress_weights, fit_share
from dnerv_codec.compress.weights import blob_report, class_table, pack_state, unpack_state
from dnerv_codec.config import PRESETS, FitConfig, QuantConfig, from_dict, to_dict
from dnerv_codec.errors import ConfigError
from dnerv_codec.fit.trainer import Trainer, to_model_inputs
from dnerv_codec.info import depth_label, describe
from dnerv_codec.model.dnerv import DNeRV

pytestmark = pytest.mark.usefixtures("one_thread")


def _trainer(epochs=4):
    torch.manual_seed(0)
    model = DNeRV(CFG, 16, 24)
    return Trainer(model, _data(), FitConfig(epochs=epochs, batch_size=2, lr=1e-2), torch.device("cpu"))


@pytest.mark.parametrize("bits", [2, 4, 5, 8, 11, 16])
def test_fake_quantize_is_the_quantizer_exactly(bits):
    gen = torch.Generator().manual_seed(bits)
    for shape, scale in [((16, 8, 3, 3), 0.05), ((40,), 3.0), ((), 1.0), ((5, 7), 1e-7), ((0, 3), 1.0)]:
        for sign in (1, -1, 0):
            w = torch.randn(shape, generator=gen) * scale
            w = w.abs() * sign if sign else w
            expected = dequantize_tensor(quantize_tensor(w, bits))
            assert torch.equal(fake_quantize(w, bits), expected)
    w = torch.randn(4, 6, requires_grad=True)
    (fake_quantize(w, 4) * torch.arange(24.0).reshape(4, 6)).sum().backward()
    assert torch.equal(w.grad, torch.arange(24.0).reshape(4, 6))  # straight through


def test_magnitude_pruning_is_global_and_skips_biases():
    named = {
        "a.weight": torch.linspace(-1, 1, 100).reshape(10, 10),
        "b.weight": torch.linspace(-3, 3, 300).reshape(30, 10),
        "b.bias": torch.zeros(30) + 1e-6,
        "tiny.weight": torch.full((2, 2), 1e-9),
    }
    masks = magnitude_masks(named.items(), 0.5)
    assert set(masks) == {"a.weight", "b.weight"}
    assert not prunable("b.bias", named["b.bias"]) and not prunable("tiny.weight", named["tiny.weight"])
    kept = sum(int(m.sum()) for m in masks.values())
    assert kept == 200  # exactly half of the 400 prunable weights
    # global: the small-valued tensor loses more than half, the wide one less
    assert masks["a.weight"].float().mean() < 0.5 < masks["b.weight"].float().mean()
    params = {k: v.clone() for k, v in named.items()}
    apply_masks(params, masks)
    assert int((params["a.weight"] == 0).sum()) + int((params["b.weight"] == 0).sum()) == 200


def test_quant_config_tensor_bits_and_old_headers():
    old = from_dict(QuantConfig, {"bits": 8})  # archives written before the new fields
    assert old.tensor_bits is None and old.bits_of(3) == [8, 8, 8]
    q = QuantConfig(bits=8, tensor_bits=(4, 6, 8))
    assert from_dict(QuantConfig, to_dict(q)) == q and q.bits_of(3) == [4, 6, 8]
    with pytest.raises(ConfigError):
        q.bits_of(2)
    for bad in ({"tensor_bits": (1, 8)}, {"sparsity": 1.0}, {"finetune_frac": -0.1}, {"bit_choices": (17,)}):
        with pytest.raises(ConfigError):
            QuantConfig(**bad)
    assert fit_share(QuantConfig(finetune_frac=0.2)) == pytest.approx(0.8)


def test_per_tensor_bits_round_trip():
    gen = torch.Generator().manual_seed(0)
    state = {f"t{i}": torch.randn(8, 5, generator=gen) for i in range(4)}
    bits = [3, 5, 8, 12]
    blob, report = pack_state(state, bits)
    out = unpack_state(blob, {k: v.shape for k, v in state.items()}, bits)
    for (name, w), b in zip(state.items(), bits, strict=True):
        assert torch.equal(out[name], dequantize_tensor(quantize_tensor(w, b)))
    assert [t.bits for t in report.tensors] == bits
    with pytest.raises(dn.ArchiveError):  # the wrong depths are refused, not misread
        unpack_state(blob, {k: v.shape for k, v in state.items()}, [3, 5, 8, 8])


def test_stage_prunes_chooses_bits_and_packs_what_it_optimised():
    trainer = _trainer()
    trainer.budget_share = fit_share(QuantConfig(finetune_frac=0.25))
    trainer.run()
    assert trainer.step == 9  # 3 of the 4 epochs of 3 steps
    quant = QuantConfig(bits=8, sparsity=0.5, finetune_frac=0.25, bit_choices=(4, 6, 8), rd_slope=50.0)
    result = compress_weights(trainer, quant, other_bytes=500)
    assert result.steps == 3 and trainer.step == 12 and trainer.hooks is None
    assert result.sparsity >= 0.5
    names = [n for n, _ in trainer.net.named_parameters()]
    assert result.quant.tensor_bits is None or len(result.quant.tensor_bits) == len(names)
    assert set(result.bits.values()) <= {4, 6, 8}
    assert len(set(result.bits.values())) > 1  # a steep slope makes some tensors cheaper
    bits = result.quant.bits_of(len(names))
    shapes = {n: tuple(p.shape) for n, p in trainer.net.named_parameters()}
    loaded = unpack_state(result.blob, shapes, bits)
    # pruned weights are exactly 0 in the file; the file holds the fake-quantized latent weights
    for (name, p), b in zip(trainer.net.named_parameters(), bits, strict=True):
        assert torch.equal(loaded[name], quantized_values(p.detach(), b))
        if prunable(name, p):
            assert torch.equal(loaded[name] == 0, p.detach() == 0)
    zeros = sum(int((loaded[n] == 0).sum()) for n in names if prunable(n, loaded[n]))
    assert zeros >= 0.5 * sum(loaded[n].numel() for n in names if prunable(n, loaded[n]))
    # the fake-quantized forward is the forward of the model rebuilt from the blob
    batch = to_model_inputs(trainer.data.batch([0, 1]), torch.device("cpu"))
    fresh = DNeRV(CFG, 16, 24)
    fresh.load_learned_state(loaded)
    with torch.no_grad():
        for name, p in trainer.net.named_parameters():
            p.copy_(fake_quantize(p, result.bits[name]))
        want = trainer.net(batch["keyframes"], batch["t"], batch["w"])
        got = fresh(batch["keyframes"], batch["t"], batch["w"])
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_class_table_sums_to_the_blob():
    model = DNeRV(CFG, 16, 24)
    state = model.learned_state()
    blob, report = pack_state(state, 8)
    groups = model.tensor_groups()
    classes = set(groups)
    assert {
        "biases",
        "content encoder",
        "stem MLP",
        "flow heads",
        "decoder convs",
        "GTMLP",
        "RGB head",
    } <= classes
    assert "other" not in classes
    rows = class_table(blob_report(blob, {k: tuple(v.shape) for k, v in state.items()}, 8), groups)
    assert rows[-1]["class"] == "total" and rows[-1]["bytes"] == len(blob)
    assert rows[-1]["params"] == sum(v.numel() for v in state.values())
    parts = sum(r["payload"] + r["side"] for r in rows[:-1])
    assert parts <= len(blob) <= parts + 16  # the rest: version, crc, word count, ANS flush
    # measured while decoding == measured while encoding
    enc = class_table(report, groups)
    assert [r["bytes"] for r in enc] == [r["bytes"] for r in rows]


def test_encode_with_the_stage_keeps_exact_zeros(tmp_path, monkeypatch):
    video = make_video(tmp_path / "in" / "a.mkv", moving_frames(9, 32, 64, seed=1))
    quant = QuantConfig(bits=8, sparsity=0.6, finetune_frac=0.3, bit_choices=(6, 8))
    monkeypatch.setitem(PRESETS, "tiny", dataclasses.replace(PRESETS["tiny"], quant=quant))
    out = tmp_path / "a.dnv"
    dn.encode(video, out, preset="tiny", epochs=2, size=(32, 64))
    archive = dn.open(out, device="cpu")
    header = archive.header.quant
    assert header.sparsity == 0.6 and header.finetune_frac == 0.3
    weights = [(n, p.detach()) for n, p in archive.model.named_parameters()]
    assert len(header.bits_of(len(weights))) == len(weights)
    pruned = [w for n, w in weights if prunable(n, w)]
    zeros = sum(int((w == 0).sum()) for w in pruned)
    assert zeros >= 0.6 * sum(w.numel() for w in pruned)
    assert archive.decode_clip(0).shape[1:] == (32, 64, 3)
    depths = sorted(set(header.bits_of(len(weights))))
    assert describe(out)["weight_depths"] == depths


def test_depth_label_names_a_mix_by_its_range():
    assert depth_label([8]) == "8-bit" and depth_label([4, 5, 6, 8]) == "4-8 bit"


def test_ctrl_c_in_the_fine_tune_stops_at_a_step_boundary(monkeypatch):
    """The fine-tune runs on Trainer.run: a first Ctrl-C lets the step under way finish, then
    raises KeyboardInterrupt, and the quantizer hooks are gone."""
    trainer = _trainer()
    trainer.budget_share = fit_share(QuantConfig(finetune_frac=0.5))
    trainer.run()
    assert trainer.step == 6
    real = Trainer.train_step

    def train_step(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        if self.step == 7:  # the fine-tune's second step, before the trainer counts it
            signal.raise_signal(signal.SIGINT)
        return out

    monkeypatch.setattr(Trainer, "train_step", train_step)
    with pytest.raises(KeyboardInterrupt):
        compress_weights(trainer, QuantConfig(bits=8, finetune_frac=0.5))
    assert trainer.step == 8 and trainer.hooks is None


def test_ctrl_c_while_compressing_resumes_to_the_uninterrupted_archive(tmp_path, monkeypatch):
    """The fit's end is checkpointed before the compression stage, so the --resume that the
    Interrupted message asks for has something to resume (before, no checkpoint was there)."""
    clip = make_video(tmp_path / "v.mkv", moving_frames(12, 32, 32, seed=4))
    quant = QuantConfig(bits=8, finetune_frac=0.3, bit_choices=(4, 8))
    kw = dict(preset="tiny", epochs=3, size=(32, 32), device="cpu", quant=quant)
    whole = tmp_path / "whole.dnv"
    dn.encode(clip, whole, **kw)

    out, real = tmp_path / "cut.dnv", Trainer.train_step

    def train_step(self, *args, **kwargs):
        result = real(self, *args, **kwargs)
        if self.hooks is not None:  # a fine-tune step: Ctrl-C
            signal.raise_signal(signal.SIGINT)
        return result

    with monkeypatch.context() as m:
        m.setattr(Trainer, "train_step", train_step)
        with pytest.raises(dn.Interrupted, match="while compressing.*--resume"):
            dn.encode(clip, out, **kw)
    checkpoint = out.with_name(out.name + ".ckpt")
    assert checkpoint.exists() and not out.exists()
    dn.encode(clip, out, resume=True, **kw)
    assert out.read_bytes() == whole.read_bytes() and not checkpoint.exists()
