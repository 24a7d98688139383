"""Entropy coding of quantized tensors: exact round trips, size near the entropy, corruption."""

import numpy as np
import pytest
import torch

from dnerv_codec.compress import entropy_models as em
from dnerv_codec.compress.entropy import (
    CodingReport,
    decode_tensors,
    encode_tensors,
    encode_tensors_with_report,
)
from dnerv_codec.compress.quantize import QuantizedTensor, quantize_tensor
from dnerv_codec.compress.weights import pack_state, quantize_state, unpack_state
from dnerv_codec.errors import ArchiveError


def _laplace(shape, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.laplace(scale=scale, size=shape).astype(np.float32))


def _assert_same(a: list[QuantizedTensor], b: list[QuantizedTensor]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.shape == y.shape and x.bits == y.bits
        assert y.symbols.dtype == np.int32 and y.zero_point.dtype == np.int32
        assert y.scale.dtype == np.float32
        assert np.array_equal(x.symbols, y.symbols)
        assert np.array_equal(x.scale, y.scale)
        assert np.array_equal(x.zero_point, y.zero_point)


def _roundtrip(qs: list[QuantizedTensor]) -> bytes:
    blob = encode_tensors(qs)
    _assert_same(qs, decode_tensors(blob, [q.shape for q in qs], [q.bits for q in qs]))
    return blob


def _mixed_tensors(bits: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(bits)
    return [
        torch.randn(16, 8, 3, 3, generator=gen) * 0.05,
        _laplace((32, 200), seed=bits, scale=0.02),
        torch.randn(16, generator=gen),
        torch.zeros(0, 4),
        torch.zeros(3, 0),
        torch.tensor(0.5),
        torch.tensor([1.5]),
        torch.full((4, 5), -2.0),
        torch.zeros(7),
        torch.rand(5, 3, generator=gen) + 1.0,  # all positive: zero point 0
        -torch.rand(5, 3, generator=gen),  # all negative: zero point at the top
    ]


@pytest.mark.parametrize("bits", [2, 3, 4, 6, 8, 10, 12, 16])
def test_roundtrip_mixed_shapes(bits):
    _roundtrip([quantize_tensor(w, bits) for w in _mixed_tensors(bits)])


def test_roundtrip_empty_list_and_single_element():
    assert decode_tensors(encode_tensors([]), [], []) == []
    _roundtrip([quantize_tensor(torch.tensor([3.25]), 8)])


@pytest.mark.parametrize("bits", [8, 16])
def test_roundtrip_large_laplacian(bits):
    _roundtrip([quantize_tensor(_laplace((50_000,), seed=1), bits)])


def test_roundtrip_hand_built_tensors():
    """Zero points that are not the implied ones and full float32 scales are stored explicitly."""
    rng = np.random.default_rng(3)
    qs = [
        QuantizedTensor(
            shape=(6, 10),
            bits=bits,
            symbols=rng.integers(0, 2**bits, 60).astype(np.int32),
            scale=rng.uniform(0.001, 2.0, 6).astype(np.float32),
            zero_point=rng.integers(0, 2**bits, 6).astype(np.int32),
        )
        for bits in (3, 8, 11)
    ]
    _roundtrip(qs)


def test_report_adds_up_and_size_is_near_entropy():
    q = quantize_tensor(_laplace((100_000,), seed=2, scale=0.03), 8)
    blob, report = encode_tensors_with_report([q], names=["w"])
    assert isinstance(report, CodingReport) and report.total_bytes == len(blob)
    assert report.tensors[0].name == "w" and report.tensors[0].shape == (100_000,)
    parts = report.payload_bytes + report.side_bytes + report.overhead_bytes
    assert abs(parts - len(blob)) < 1e-6
    assert 0 <= report.overhead_bytes <= 16
    entropy = report.entropy_bytes
    assert entropy > 60_000  # about 6 bits per weight
    assert report.payload_bytes <= 1.002 * entropy + 16
    assert len(blob) <= 1.005 * entropy + 64


@pytest.mark.parametrize("dist", ["normal", "t3", "uniform"])
def test_size_near_entropy_other_distributions(dist):
    rng = np.random.default_rng(5)
    draw = {"normal": rng.normal, "t3": lambda size: rng.standard_t(3, size=size), "uniform": rng.random}
    w = torch.from_numpy(draw[dist](size=(64, 64, 3, 3)).astype(np.float32))
    blob, report = encode_tensors_with_report([quantize_tensor(w, 8)])
    # 64 channels: 2 bytes of scale each at most, plus model parameters
    assert len(blob) <= 1.01 * report.entropy_bytes + 2 * 64 + 64


def _small_net_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3),
        torch.nn.GELU(),
        torch.nn.Conv2d(16, 32, 3),
        torch.nn.Conv2d(32, 32, 1),
        torch.nn.Flatten(),
        torch.nn.Linear(32, 10),
    )
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    # trained weights are peaked (Laplacian-like), unlike the uniform initialisation
    for i, (k, v) in enumerate(state.items()):
        if v.dim() >= 2:
            state[k] = _laplace(tuple(v.shape), seed=i, scale=float(v.std()) / 2)
    return state


@pytest.mark.parametrize("bits", [4, 8])
def test_state_dict_roundtrip_matches_quantize_state(bits):
    state = _small_net_state()
    blob, report = pack_state(state, bits)
    assert [t.name for t in report.tensors] == list(state)
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    out = unpack_state(blob, shapes, bits)
    expected = quantize_state(state, bits)
    assert list(out) == list(state)
    for name in state:
        assert out[name].dtype == torch.float32 and out[name].device.type == "cpu"
        assert torch.equal(out[name], expected[name])
    # coded well below raw bits and close to the entropy of what is coded
    n = sum(v.numel() for v in state.values())
    assert len(blob) < n * bits / 8
    assert report.payload_bytes <= 1.05 * report.entropy_bytes + 16 * len(state)


def test_integer_models_are_pinned():
    """The integer model definitions are part of the format: they must never change."""
    assert [em.lambda_q(c) for c in (0, 1, 12, 48, 254)] == [2**28, 253369332, 2**27, 2**24, 114]
    assert em.POW2_FRAC[0] == 2**30 and em.POW2_FRAC[128] == 759250124  # 2**29.5
    assert em.POW2_FRAC[1] == 1070838486 and em.POW2_FRAC[255] == 536870912 + 1455604
    assert list(em.laplace_weights(1, 48, 4)) == [2**29, 2**30, 2**29, 2**28]
    assert list(em.laplace_weights(0, 255, 3)) == [2**30] * 3
    assert em.laplace_weights(0, 0, 3).tolist() == [2**30, 2**14, 1]
    assert em.laplace_weights(2, 254, 100_000)[-1] == 672155014  # a slow decay, vectorised
    assert em.HIST_WEIGHTS[0] == 16384 and em.HIST_WEIGHTS[63] == 27554 << 15
    decays = [em.lambda_q(c) for c in range(255)]
    assert decays == sorted(decays, reverse=True)


def _golden_tensors() -> list[QuantizedTensor]:
    """Every model, scale mode and zero-point mode, from integer formulas (no RNG)."""
    i = np.arange(400)
    peaked = (((i * 7919) % 13) - 6) * (((i * 104729) % 5) // 4) + 128  # mostly 128, sparse +-6
    spread = 128 + ((i * 7919) % 61) - 30
    bf16 = ((0x3C00 + np.arange(8) * 3) << 16).astype(np.uint32).view(np.float32)

    def qt(shape, bits, sym, scale, zp):
        return QuantizedTensor(shape, bits, np.asarray(sym, np.int32), np.asarray(scale, np.float32),
                               np.asarray(zp, np.int32))  # fmt: skip

    return [
        qt((8, 50), 8, peaked, bf16, np.full(8, 128)),  # histogram, coded scales, explicit zp
        qt((400,), 8, spread, [0.01], [98]),  # laplace over the used range, float32 scale
        qt((5,), 4, [0, 3, 7, 9, 15], [0.5], [7]),  # laplace over the full range
        qt((2, 3), 3, np.full(6, 5), [0.25, 0.5], [2, 2]),  # constant
        qt((0, 3), 8, [], [], []),  # empty
    ]


GOLDEN_HEX = (
    "0162d16d2e34003c1500ff80808080808080800b0c2b0ad7233c62003c00b002003f004521803e003f02020600614802"
    "6b6de5658298dfd3688c37667c7c8952645c945f4bbf45b75e44f1de433ff97b5cec37db42e519f72859b4323c8ece5e"
    "2356625e3926d00c200c755507fcec311b2ec85a037aad5a18c07ce4fb83d30ee698926bf8e0dfe0e18e5badf7f7c913"
    "dc45b1e7c23b3e1ad90c022bc0cee99cd5d392f8bc568f4da3d09e14b72d542f9e9dff58b3b2b9c39a0b1718800a5e07"
    "96b8432d7cf00ef16422af63789b3d9c5ddb439172e9beb35b76346842b087a956c3d96e3e963e67515dda2f372a2446"
    "1eada7c93577581a1c92c77d3261a7fd18e02097ff529974135f6d4ef91015ba0ff8a082f6e84b5bdbb01a4cf338804a"
    "d91f7f7feb449809d3098d2fbcb104fed0488f00b855381acb3a79a7b14e4dc19a224a75ad6b613096924846aa12cb73"
    "9184d5eb78c240d88c967515356b864ba77d456f33b47e424c4bebeea59c37d57a5cdd7b7c1103968fa0e879064894d3"
    "bc3e7db57b0ec8925a081aeb65c1a6a7e000438a98e9b64d4ccf3f4e89b82a0000262a295962cddd45949e15073f2300"
    "0000"
)


def test_golden_blob():
    """Pins the byte format, the integer models and constriction's decoder: old archives must
    keep decoding. (The encoder's float-based model fitting is not part of the format.)"""
    blob = bytes.fromhex("".join(GOLDEN_HEX))
    tensors = _golden_tensors()
    _assert_same(tensors, decode_tensors(blob, [q.shape for q in tensors], [q.bits for q in tensors]))
    # version 2 adds model 5 only: these tensors code to the same bytes under the new version byte
    assert blob[0] == 1 and encode_tensors(tensors) == b"\x02" + blob[1:]
    models = [t.model for t in encode_tensors_with_report(tensors)[1].tensors]
    assert models == ["histogram", "laplace-range", "laplace", "constant", "empty"]


# ---- corruption --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def coded():
    qs = [quantize_tensor(w, 8) for w in _mixed_tensors(8)[:3]]
    return qs, encode_tensors(qs), [q.shape for q in qs], [8] * len(qs)


def _valid_or_archive_error(blob, shapes, bits) -> str:
    """'error', 'same' or 'different'; a returned result must still be well-formed."""
    try:
        out = decode_tensors(blob, shapes, bits)
    except ArchiveError:
        return "error"
    for q, shape, b in zip(out, shapes, bits, strict=True):
        assert q.shape == tuple(shape) and q.symbols.shape == (q.numel,)
        assert q.symbols.size == 0 or (q.symbols.min() >= 0 and q.symbols.max() < 2**b)
        assert (q.scale > 0).all() and np.isfinite(q.scale).all()
    return "different"


def test_every_truncation_is_an_archive_error(coded):
    _, blob, shapes, bits = coded
    for cut in range(len(blob)):
        with pytest.raises(ArchiveError):
            decode_tensors(blob[:cut], shapes, bits)


def test_trailing_garbage_and_wrong_metadata(coded):
    qs, blob, shapes, bits = coded
    for extra in (b"\0", b"\1\2\3\4", b"x" * 9):
        with pytest.raises(ArchiveError, match="trailing"):
            decode_tensors(blob + extra, shapes, bits)
    with pytest.raises(ArchiveError, match="different tensor"):
        decode_tensors(blob, [shapes[0], shapes[2], shapes[1]], bits)
    with pytest.raises(ArchiveError, match="different tensor"):
        decode_tensors(blob, shapes, [8, 8, 7])
    with pytest.raises(ArchiveError):
        decode_tensors(blob, shapes[:2], bits[:2])
    for junk in (b"", b"\x01", bytes(range(256)), np.random.default_rng(0).bytes(4000)):
        with pytest.raises(ArchiveError):
            decode_tensors(junk, shapes, bits)


def test_bit_flips_are_caught_or_harmless(coded):
    qs, blob, shapes, bits = coded
    rng = np.random.default_rng(7)
    positions = sorted(set(range(min(len(blob), 48))) | set(rng.integers(0, len(blob), 300).tolist()))
    outcomes = {"error": 0, "different": 0}
    for pos in positions:
        for bit in (0, 3, 7):
            flipped = bytearray(blob)
            flipped[pos] ^= 1 << bit
            outcomes[_valid_or_archive_error(bytes(flipped), shapes, bits)] += 1
    # most flips are detected here; the container CRC catches the rest
    assert outcomes["error"] >= 0.9 * sum(outcomes.values())
