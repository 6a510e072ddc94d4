import numpy as np
import pytest

from hsicodec.coding import entropy
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


def test_best_scale_codes_beat_the_mean_estimate_on_sparse_groups():
    rng = np.random.default_rng(0)
    sparse = np.where(rng.random(4000) < 0.03, rng.choice([-1, 1], 4000), 0)
    dense = np.round(rng.laplace(0, 3.0, 4000)).astype(np.int64)
    sym = np.concatenate([sparse, dense])
    ids = np.repeat([0, 1], 4000)
    codes = entropy.best_scale_codes(sym, ids, 2)
    best = [entropy.scale_from_code(c) for c in codes]
    naive = [entropy.scale_from_code(entropy.scale_code(entropy.fit_scale(x))) for x in (sparse, dense)]
    ma = int(np.abs(sym).max())
    for part, b, n in ((sparse, best[0], naive[0]), (dense, best[1], naive[1])):
        bits_best = entropy.laplace_bits(part, np.full(part.size, b), ma)
        bits_naive = entropy.laplace_bits(part, np.full(part.size, n), ma)
        assert bits_best <= bits_naive + 1e-6
    assert entropy.laplace_bits(sparse, np.full(4000, best[0]), ma) < 0.7 * entropy.laplace_bits(
        sparse, np.full(4000, naive[0]), ma
    )
    # the codes are real: the coder round-trips with them
    scales = np.array([best[i] for i in ids])
    data = entropy.laplace_encode(sym, scales, ma)
    assert np.array_equal(entropy.laplace_decode(data, scales, ma), sym)


def test_best_scale_codes_empty_and_all_zero_groups():
    codes = entropy.best_scale_codes(np.zeros(10, np.int64), np.zeros(10, np.int64), 3)
    assert codes == bytes([entropy.scale_code(entropy.MIN_SCALE)] * 3)


def test_best_scale_codes_huge_magnitudes_use_the_closed_form():
    rng = np.random.default_rng(1)
    sym = np.round(rng.laplace(0, 3000.0, 2000)).astype(np.int64)
    code = entropy.best_scale_codes(sym, np.zeros(sym.size, np.int64), 1)[0]
    assert abs(entropy.scale_from_code(code) / np.mean(np.abs(sym)) - 1) < 0.15


def test_fit_scales_is_fit_scale_row_by_row():
    rng = np.random.default_rng(2)
    for shape in ((5, 17), (1, 1), (3, 0), (40, 300)):
        rows = np.round(rng.laplace(size=shape) * 10 ** rng.uniform(-2, 3)).astype(np.int64)
        assert entropy.fit_scales(rows) == [entropy.fit_scale(r) for r in rows]
