"""The residual models' registry and the tensor header described as data (fields.py)."""

import numpy as np
import pytest

from dnerv_codec.compress.entropy import BLOB_VERSION, SCALE_CODED, TENSOR_HEADER
from dnerv_codec.compress.fields import Field, Reader, int_array_fields, read_fields, write_fields
from dnerv_codec.compress.residual_models import MODEL_NAMES, MODELS, Residuals
from dnerv_codec.errors import ArchiveError


def test_every_model_is_registered_under_its_own_id():
    assert list(MODELS) == list(range(len(MODELS))) and len(MODELS) <= 8  # 3 bits of the flags byte
    assert [m.id for m in MODELS.values()] == list(MODELS)
    assert len(set(MODEL_NAMES)) == len(MODELS) == len(MODEL_NAMES)
    assert all(1 <= m.since_version <= BLOB_VERSION for m in MODELS.values())
    assert MODEL_NAMES[:2] == ("empty", "constant")


def test_each_model_applies_where_it_should():
    """Empty residuals only fit 'empty', a constant only 'constant', spread ones every coded model."""
    empty = Residuals(np.zeros((3, 0), np.int64), 255)
    constant = Residuals(np.full((3, 4), -2, np.int64), 255)
    spread = Residuals(np.arange(-6, 6, dtype=np.int64).reshape(3, 4), 255)
    cases = {"empty": empty, "constant": constant, "spread": spread}
    fitting = {
        k: [m.name for m in MODELS.values() if m.fit(res, False) is not None] for k, res in cases.items()
    }
    assert fitting == {
        "empty": ["empty"],
        "constant": ["constant"],
        "spread": ["laplace", "laplace-range", "histogram", "laplace-channel"],
    }


@pytest.mark.parametrize("model", list(MODELS.values()), ids=MODEL_NAMES)
def test_model_fields_round_trip_what_the_fit_writes(model):
    r = np.array([[0, 1, 1, 2, 0, -1, 3, 1], [2, 2, 1, 0, 0, 1, -3, 1]], np.int64)
    res = {0: Residuals(np.zeros((2, 0), np.int64), 15), 1: Residuals(np.full((2, 8), 3), 15)}.get(
        model.id, Residuals(r, 15)
    )
    fit = model.fit(res, True)
    context = {"channels": 2, "bits": 4, "top": 15}
    data = write_fields(model.fields, context | fit.values)
    read = dict(context)
    rd = Reader(data)
    read_fields(rd, model.fields, read)
    assert rd.pos == len(data)
    assert {k: read[k] for k in fit.values} == fit.values


def test_the_header_table_reads_what_it_writes_and_checks_limits():
    values = {"channels": 3, "bits": 4, "top": 15, "scale_mode": SCALE_CODED, "explicit": 1}
    values |= {"scale_min": 16000, "scale_span": 7, "scale_center": 3, "scale_code": 40}
    values["zero_points"] = np.array([0, 7, 15], np.uint8)
    data = write_fields(TENSOR_HEADER, values)
    assert len(data) == 2 + 1 + 1 + 1 + 3  # u16 min, varint span, varint center, u8 code, 3 x u8
    read = {k: values[k] for k in ("channels", "bits", "top", "scale_mode", "explicit")}
    read_fields(Reader(data), TENSOR_HEADER, read)
    assert read["scale_span"] == 7 and read["zero_points"].tolist() == [0, 7, 15]
    with pytest.raises(ArchiveError, match="zero_points"):  # a zero point above 2**bits - 1
        read_fields(Reader(data), TENSOR_HEADER, read | {"top": 7})
    fields = (Field("lo", "zigzag", limit=lambda v: 3), Field("span", "varint", limit=lambda v: 9, least=1))
    for lo, span, ok in ((-3, 1, True), (-4, 1, False), (0, 0, False), (0, 10, False)):
        raw = write_fields(fields, {"lo": lo, "span": span})
        if ok:
            read_fields(Reader(raw), fields, {})
        else:
            with pytest.raises(ArchiveError, match="corrupt"):
                read_fields(Reader(raw), fields, {})
    with pytest.raises(ArchiveError, match="truncated"):
        read_fields(Reader(data[:-1]), TENSOR_HEADER, dict(read))


def test_an_int_array_without_spread_has_no_laplace_fields():
    fields = int_array_fields("x", "varint", limit=lambda v: 100)
    assert write_fields(fields, {"x_min": 5, "x_span": 0}) == bytes([5, 0])
    assert write_fields(fields, {"x_min": 5, "x_span": 2, "x_center": 1, "x_code": 9}) == bytes([5, 2, 1, 9])
