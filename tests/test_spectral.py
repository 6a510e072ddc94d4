import numpy as np
import pytest

from hsicodec.errors import HsimError
from hsicodec.spectral import decode_spectral, encode_spectral, fit_pca


def _cube(seed=0):
    rng = np.random.default_rng(seed)
    ends = rng.uniform(0, 1000, size=(3, 40))
    ab = rng.dirichlet(np.ones(3), size=500)
    return ab @ ends + rng.normal(0, 1, size=(500, 40))


def test_pca_is_orthonormal_and_ordered():
    fit = fit_pca(_cube(), 5)
    assert np.allclose(fit.basis @ fit.basis.T, np.eye(5), atol=1e-8)
    assert np.all(np.diff(fit.comp_std) <= 1e-9)


def test_spectral_round_trip_within_quantization():
    x = _cube()
    fit = fit_pca(x, 4)
    data, params, m_hat, b_hat = encode_spectral(fit.mean, fit.basis, -4, -40)  # steps 2^-1, 2^-10
    m, b = decode_spectral(data, params, 40, 4)
    assert np.array_equal(m, m_hat) and np.array_equal(b, b_hat)
    assert np.abs(m - fit.mean).max() <= 0.25 + 1e-9
    assert np.abs(b - fit.basis).max() <= 2 ** -11 + 1e-9


def test_coarser_steps_cost_fewer_bytes():
    fit = fit_pca(_cube(), 4)
    fine = encode_spectral(fit.mean, fit.basis, -24, -52)[0]
    coarse = encode_spectral(fit.mean, fit.basis, 0, -24)[0]
    assert len(coarse) < len(fine)


def test_malformed_params_refused():
    fit = fit_pca(_cube(), 2)
    data, params, _, _ = encode_spectral(fit.mean, fit.basis, -4, -40)
    with pytest.raises(HsimError):
        decode_spectral(data, {**params, "sc": b"\x80"}, 40, 2)
    with pytest.raises(HsimError):
        decode_spectral(data, {**params, "me": 10**6}, 40, 2)
    with pytest.raises(HsimError):
        decode_spectral(data, {**params, "be": 1.5}, 40, 2)
    with pytest.raises(HsimError):
        decode_spectral(data, {k: v for k, v in params.items() if k != "ma"}, 40, 2)
