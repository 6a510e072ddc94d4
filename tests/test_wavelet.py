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
