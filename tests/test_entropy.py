import numpy as np
import pytest

from hsicodec import entropy
from hsicodec.errors import HsimError


def test_round_trip_and_rate_close_to_ideal():
    rng = np.random.default_rng(0)
    sym = np.round(rng.laplace(0, 2.0, 5000)).astype(np.int32)
    max_abs = int(np.abs(sym).max())
    scales = np.full(sym.size, entropy.fit_scale(sym))
    data = entropy.laplace_encode(sym, scales, max_abs)
    assert np.array_equal(entropy.laplace_decode(data, scales, max_abs), sym)
    ideal = entropy.laplace_bits(sym, scales, max_abs)
    assert 8 * len(data) <= ideal * 1.01 + 64


def test_all_zero_symbols_cost_nothing():
    sym = np.zeros(100, np.int32)
    assert entropy.laplace_encode(sym, np.ones(100), 0) == b""
    assert np.array_equal(entropy.laplace_decode(b"", np.ones(100), 0), sym)


def test_symbol_out_of_range_refused():
    with pytest.raises(ValueError):
        entropy.laplace_encode(np.array([5], np.int32), np.ones(1), 4)


@pytest.mark.parametrize("data", [b"\x01\x02\x03", b"\x01\x02\x03\x04\x05"])
def test_bad_stream_length_is_hsim_error(data):
    with pytest.raises(HsimError):
        entropy.laplace_decode(data, np.ones(10), 8)


def test_garbage_stream_never_crashes():
    rng = np.random.default_rng(1)
    for _ in range(50):
        data = rng.integers(0, 256, 4 * int(rng.integers(1, 8)), dtype=np.uint8).tobytes()
        try:
            out = entropy.laplace_decode(data, np.ones(20), 16)
            assert out.shape == (20,) and np.abs(out).max() <= 16
        except HsimError:
            pass


def test_nonzero_data_with_zero_bound_refused():
    with pytest.raises(HsimError):
        entropy.laplace_decode(b"\0\0\0\1", np.ones(3), 0)
