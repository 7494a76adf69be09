"""The weight coder: exact round trips, bits against the estimate, exact consumption."""

import numpy as np
import pytest

from ddcodec.errors import LimitError

from ddcodec.coding.bytesio import FormatError
from ddcodec.coding.weight_coding import decode_weights, encode_weights


def _groups():
    rng = np.random.default_rng(0)
    return [rng.laplace(0, 4, 300).round().astype(np.int32), np.zeros(7, np.int32),
            np.array([], np.int32), rng.integers(-65535, 65536, 20).astype(np.int32)]


def test_weights_round_trip_exactly_at_their_estimated_size():
    groups = _groups()
    data, bits = encode_weights(groups)
    out, bits_back = decode_weights(data, [len(g) for g in groups])
    assert all(np.array_equal(a, b) for a, b in zip(groups, out))
    assert bits_back == pytest.approx(bits)
    assert 8 * len(data) - bits < 64  # one flush word at most


def test_weight_coder_refuses_out_of_range_integers_and_inexact_sections():
    with pytest.raises(LimitError, match="beyond"):
        encode_weights([np.array([70000], np.int32)])
    with pytest.raises(LimitError, match="beyond"):  # int64 that a cast to int32 would wrap
        encode_weights([np.array([-(1 << 63), 1 << 32], np.int64)])
    with pytest.raises(LimitError, match="must be integers"):
        encode_weights([np.array([True, False])])
    groups = _groups()
    data, _ = encode_weights(groups)
    counts = [len(g) for g in groups]
    for bad in (data + b"\0\0\0\0", data[:-4], data[:-1]):
        with pytest.raises(FormatError):
            decode_weights(bad, counts)
