import numpy as np
import pytest

from hsicodec.layers.network.rotation import (
    MAX_ROTATION_CHANNELS,
    codes_from_rotation,
    klt_codes,
    n_angles,
    rotation_from_codes,
)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 8, 16])
def test_any_codes_give_an_orthonormal_matrix(n):
    rng = np.random.default_rng(n)
    codes = bytes(rng.integers(0, 256, n_angles(n)).tolist())
    q = rotation_from_codes(codes, n)
    assert np.allclose(q.T @ q, np.eye(n), atol=1e-12)


@pytest.mark.parametrize("n", [2, 4, 8])
def test_codes_approximate_any_rotation(n):
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    approx = rotation_from_codes(codes_from_rotation(q), n)
    assert np.abs(approx - q).max() < 0.02 * n  # 8-bit angles: about 0.012 rad each


@pytest.mark.parametrize("n", [2, 4, 8])
def test_klt_codes_find_the_principal_axes(n):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4000, n)) * np.geomspace(10, 0.1, n) @ np.linalg.qr(rng.normal(size=(n, n)))[0]
    q = rotation_from_codes(klt_codes(x), n)
    var = (x @ q).var(axis=0)
    assert np.all(np.diff(var) < 0)  # strongest first
    off = np.cov((x @ q).T) - np.diag(var)
    assert np.abs(off).max() < 0.05 * var[0]  # decorrelated up to the 8-bit angles


def test_wide_levels_are_not_rotated():
    assert n_angles(MAX_ROTATION_CHANNELS) == MAX_ROTATION_CHANNELS * (MAX_ROTATION_CHANNELS - 1) // 2
    assert n_angles(MAX_ROTATION_CHANNELS + 1) == 0
