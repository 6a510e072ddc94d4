import os

import numpy as np
import pytest

from hsicodec.coding.wavelet import haar_forward, haar_inverse, subband_groups, wavelet_levels

SHAPES = [(1, 1), (1, 9), (5, 1), (2, 2), (7, 7), (13, 13), (26, 51), (100, 100)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("max_levels", [0, 1, 3, 8])
def test_exact_inverse_and_orthonormal(shape, max_levels):
    rng = np.random.default_rng(1)
    g = rng.normal(size=shape + (3,))
    j = wavelet_levels(*shape, max_levels)
    c = haar_forward(g, j)
    assert c.shape == g.shape
    assert np.allclose(haar_inverse(c, j), g, atol=1e-12)
    assert np.isclose(np.sum(c * c), np.sum(g * g))
    # orthonormal: the inverse is the transpose, so inner products are kept
    h = rng.normal(size=g.shape)
    assert np.isclose(np.sum(haar_forward(h, j) * c), np.sum(h * g))


def test_levels_stop_at_one_sample():
    assert wavelet_levels(1, 1, 5) == 0
    assert wavelet_levels(2, 1, 5) == 1
    assert wavelet_levels(7, 7, 5) == 3  # 7 → 4 → 2 → 1
    assert wavelet_levels(100, 100, 3) == 3


def test_constant_grid_compacts_into_the_lowpass_group():
    g = np.full((16, 16, 1), 2.0)
    j = wavelet_levels(16, 16, 2)
    c = haar_forward(g, j)
    groups = subband_groups(16, 16, j)
    assert np.allclose(c[groups > 0], 0.0)
    assert np.count_nonzero(groups == 0) == 16  # a 4 × 4 lowpass region


@pytest.mark.parametrize("shape", SHAPES)
def test_groups_cover_every_coefficient_once_and_are_not_empty(shape):
    j = wavelet_levels(*shape, 3)
    groups = subband_groups(*shape, j)
    assert groups.shape == shape
    assert set(np.unique(groups)) == set(range(j + 1))


# -- CDF 9/7: the C++ kernels against the numpy reference ----------------------------------------

from hsicodec.coding import wavelet as wv  # noqa: E402

NATIVE = wv.native_wavelet("cdf97_forward_inplace") is not None
needs_native = pytest.mark.skipif(not NATIVE, reason="hsicodec._native without the CDF 9/7 kernels")
CDF_SHAPES = [(1, 1), (1, 2), (2, 1), (2, 2), (1, 9), (9, 1), (3, 5), (7, 7), (16, 16), (17, 33), (64, 37), (130, 3)]


def _agree(got: np.ndarray, want: np.ndarray) -> None:
    """Native and reference agree within NATIVE_RTOL of the largest magnitude (bit for bit in the default build)."""
    assert got.shape == want.shape and got.dtype == want.dtype == np.float64
    scale = float(np.abs(want).max(initial=0.0))
    assert np.abs(got - want).max(initial=0.0) <= wv.NATIVE_RTOL * scale


@needs_native
@pytest.mark.parametrize("shape", CDF_SHAPES)
@pytest.mark.parametrize("k", [None, 1, 3, 8])
def test_cdf97_native_matches_reference(shape, k):
    rng = np.random.default_rng(sum(shape) * 7 + (k or 0))
    x = rng.normal(size=shape if k is None else shape + (k,)) * 100.0
    for levels in range(0, 9):  # past the levels that fit: the regions stop splitting, as in the reference
        c = wv.cdf97_forward(x, levels)
        _agree(c, wv.cdf97_forward_reference(x, levels))
        _agree(wv.cdf97_inverse(c, levels), wv.cdf97_inverse_reference(c, levels))


@needs_native
@pytest.mark.skipif(
    os.environ.get("HSICODEC_NATIVE_MARCH") == "native", reason="-march=native may contract to FMA (within NATIVE_RTOL)"
)
def test_cdf97_native_is_bit_identical_in_the_default_build():
    """No FMA contraction in the default x86-64 build: the same roundings in the same order."""
    x = np.random.default_rng(3).normal(size=(45, 38, 6))
    c = wv.cdf97_forward(x, 4)
    assert np.array_equal(c, wv.cdf97_forward_reference(x, 4))
    assert np.array_equal(wv.cdf97_inverse(c, 4), wv.cdf97_inverse_reference(c, 4))


@needs_native
def test_cdf97_native_inverts_and_keeps_the_input():
    x = np.random.default_rng(4).normal(size=(33, 50, 5))
    keep = x.copy()
    c = wv.cdf97_forward(x, 5)
    assert np.array_equal(x, keep)  # a copy is transformed, never the caller's array
    assert np.allclose(wv.cdf97_inverse(c, 5), x, atol=1e-12)


@needs_native
@pytest.mark.parametrize("threads", [1, 2, 5])
def test_cdf97_native_result_does_not_depend_on_threads(threads):
    x = np.random.default_rng(5).normal(size=(70, 41, 4))
    assert np.array_equal(wv.cdf97_forward(x, 3, threads=threads), wv.cdf97_forward(x, 3, threads=1))
    assert np.array_equal(wv.cdf97_inverse(x, 3, threads=threads), wv.cdf97_inverse(x, 3, threads=1))


@needs_native
def test_cdf97_native_takes_any_layout_and_dtype():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(20, 24, 3))
    for arr in (np.asfortranarray(x), x[::-1, ::2], x.astype(np.float32), (x * 10).astype(np.int32)):
        _agree(wv.cdf97_forward(arr, 2), wv.cdf97_forward_reference(arr, 2))
    y = rng.normal(size=(9, 10, 2, 3))  # trailing axes beyond the third: maps flattened
    _agree(wv.cdf97_forward(y, 2), wv.cdf97_forward_reference(y, 2))
    assert wv.cdf97_forward(np.zeros((5, 4, 0)), 2).shape == (5, 4, 0)


@needs_native
def test_cdf97_kernel_refuses_arrays_it_cannot_write_in_place():
    with pytest.raises(TypeError):
        wv.native_wavelet("cdf97_forward_inplace")(np.zeros((4, 4), np.float32), 1)
    with pytest.raises(TypeError):
        wv.native_wavelet("cdf97_forward_inplace")(np.zeros((4, 4, 2)).transpose(1, 0, 2), 1)


def test_cdf97_environment_variable_selects_the_reference(monkeypatch):
    monkeypatch.setenv(wv.NATIVE_ENV, "0")
    assert wv.native_wavelet("cdf97_forward_inplace") is None
    x = np.random.default_rng(7).normal(size=(12, 9, 2))
    assert np.array_equal(wv.cdf97_forward(x, 2), wv.cdf97_forward_reference(x, 2))


def test_forward_may_overwrite_a_float64_grid_it_is_given():
    """``overwrite``: the coefficients of a C-contiguous float64 grid land in it (no copy of a tile's maps),
    the same as a fresh copy's; any other grid is left alone."""
    wavelet = wv

    rng = np.random.default_rng(3)
    grid = rng.normal(size=(40, 36, 3))
    want = wavelet.cdf97_forward(grid, 3)
    mine = grid.copy()
    got = wavelet.cdf97_forward(mine, 3, overwrite=True)
    np.testing.assert_array_equal(got, want)
    if wavelet.native_wavelet("cdf97_forward_inplace") is not None:
        assert got is mine
    f32 = grid.astype(np.float32)
    kept = f32.copy()
    wavelet.cdf97_forward(f32, 3, overwrite=True)
    np.testing.assert_array_equal(f32, kept)
