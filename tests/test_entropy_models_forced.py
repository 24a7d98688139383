"""Every residual model decodes exactly when forced; the per-channel Laplace model (blob version 2)."""

import numpy as np
import pytest
import torch

from dnerv_codec.compress import entropy_models as em
from dnerv_codec.compress.entropy import (
    decode_tensors,
    decode_tensors_with_report,
    encode_tensors_with_report,
)
from dnerv_codec.compress.quantize import quantize_tensor
from dnerv_codec.compress.residual_models import (
    HISTOGRAM,
    LAPLACE,
    LAPLACE_CHANNEL,
    LAPLACE_RANGE,
    MODEL_NAMES,
)
from dnerv_codec.errors import ArchiveError


def _tensors(bits: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(bits)
    spread = torch.linspace(0.05, 2.0, 24)[:, None]
    pruned = torch.randn(32, 40, generator=gen)
    pruned[pruned.abs() < 1.0] = 0  # a spike at 0, as after pruning
    return [
        torch.randn(16, 8, 3, 3, generator=gen) * 0.05,
        torch.distributions.Laplace(0.0, 1.0).sample((24, 50)) * spread,  # channels of different shapes
        pruned,
        torch.randn(2, 3, generator=gen),
        torch.randn(30, generator=gen),  # one channel
    ]


@pytest.mark.parametrize("bits", [3, 6, 8, 10])
@pytest.mark.parametrize("model", [LAPLACE, LAPLACE_RANGE, HISTOGRAM, LAPLACE_CHANNEL])
def test_every_model_decodes_exactly_when_forced(bits, model):
    qs = [quantize_tensor(w, bits) for w in _tensors(bits)]
    blob, report = encode_tensors_with_report(qs, force_model=model)
    assert blob[0] == 2
    names = [t.model for t in report.tensors]
    # the forced model is used wherever it applies (per channel needs several channels)
    assert names[:3] == [MODEL_NAMES[model]] * 3
    out, measured = decode_tensors_with_report(blob, [q.shape for q in qs], [bits] * len(qs))
    for q, d in zip(qs, out, strict=True):
        assert np.array_equal(q.symbols, d.symbols)
        assert np.array_equal(q.scale, d.scale) and np.array_equal(q.zero_point, d.zero_point)
    assert [t.model for t in measured.tensors] == names
    for enc, dec in zip(report.tensors, measured.tensors, strict=True):
        assert enc.header_bytes == dec.header_bytes
        assert enc.payload_bits == pytest.approx(dec.payload_bits, abs=64)
        assert enc.entropy_bits == pytest.approx(dec.entropy_bits)


def test_per_channel_model_wins_on_channels_of_different_shapes():
    rng = np.random.default_rng(0)
    # half the channels nearly constant around 0 with rare outliers, half uniform over the range
    rows = [
        np.where(rng.random(400) < 0.02, rng.normal(0, 1, 400), rng.normal(0, 0.01, 400)) for _ in range(16)
    ]
    rows += [rng.uniform(-1, 1, 400) for _ in range(16)]
    q = quantize_tensor(torch.tensor(np.array(rows), dtype=torch.float32), 8)
    blob, report = encode_tensors_with_report([q])
    assert report.tensors[0].model == "laplace-channel"
    others = [
        len(encode_tensors_with_report([q], force_model=m)[0]) for m in (LAPLACE, LAPLACE_RANGE, HISTOGRAM)
    ]
    assert len(blob) < min(others)
    assert np.array_equal(decode_tensors(blob, [q.shape], [8])[0].symbols, q.symbols)


def test_pruned_zeros_are_nearly_free():
    """A spike at 0 costs about its entropy under the chosen model (the histogram codes it)."""
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(64, 64, generator=gen)
    sizes = {}
    for sparsity in (0.0, 0.5, 0.9):
        pruned = w.clone()
        pruned[pruned.abs() < torch.quantile(w.abs(), sparsity)] = 0
        blob, report = encode_tensors_with_report([quantize_tensor(pruned, 8)])
        t = report.tensors[0]
        assert t.payload_bits <= 1.06 * t.entropy_bits + 64
        sizes[sparsity] = len(blob)
    assert sizes[0.9] < 0.35 * sizes[0.0] and sizes[0.5] < 0.8 * sizes[0.0]


def test_version_1_blobs_cannot_hold_model_5():
    q = quantize_tensor(_tensors(8)[1], 8)
    blob, _ = encode_tensors_with_report([q], force_model=LAPLACE_CHANNEL)
    assert blob[0] == 2 and blob[5] & 7 == LAPLACE_CHANNEL
    with pytest.raises(ArchiveError, match="flags"):
        decode_tensors(b"\x01" + blob[1:], [q.shape], [8])


def test_row_fit_matches_the_scalar_estimate():
    rng = np.random.default_rng(1)
    hist = np.stack([np.bincount(rng.geometric(p, 500) % 40, minlength=40) for p in (0.05, 0.3, 0.9)])
    bits, centers, codes = em.fit_laplace_rows(hist.astype(np.float64))
    for row, b, c, k in zip(hist.astype(np.float64), bits, centers, codes, strict=True):
        nz = np.flatnonzero(row)
        assert b == pytest.approx(em._laplace_cost(nz, row[nz], 40, int(c), int(k)))
        # close to the scalar fit's best (which also tries the median as center)
        assert b <= em.fit_laplace(row, 0, 40)[0] * 1.05 + 8
