import numpy as np
import pytest

from hsicodec.coding import spectral
from hsicodec.coding.spectral import decode_spectral, encode_spectral, fit_pca, lagrangian_exponents, scene_pca
from hsicodec.errors import HsimError


def _cube(seed=0):
    rng = np.random.default_rng(seed)
    ends = rng.uniform(0, 1000, size=(3, 40))
    ab = rng.dirichlet(np.ones(3), size=500)
    return ab @ ends + rng.normal(0, 1, size=(500, 40))


def test_pca_is_orthonormal_and_ordered():
    fit = fit_pca(_cube(), 5)
    assert np.allclose(fit.basis @ fit.basis.T, np.eye(5), atol=1e-8)
    assert np.all(np.diff(fit.comp_std) <= 1e-9)


def test_scene_pca_matches_the_two_pass_pca():
    """One pass about the first pixel (values far from zero: no cancellation) gives the same fit."""
    x = _cube() + 30000.0
    a, b = fit_pca(x, 6), scene_pca(x, 6)
    assert np.allclose(a.mean, b.mean, rtol=0, atol=1e-9)
    assert np.allclose(np.abs(a.basis @ b.basis.T), np.eye(6), atol=1e-6)
    assert np.allclose(a.comp_std, b.comp_std, rtol=1e-9) and abs(a.total_std - b.total_std) < 1e-9 * a.total_std


def test_scene_pca_samples_large_scenes(monkeypatch):
    """Past PCA_SAMPLE pixels the covariance comes from an even stride: the leading spectra barely move."""
    x = np.concatenate([_cube(s) for s in range(8)])  # 4000 pixels
    monkeypatch.setattr(spectral, "PCA_SAMPLE", 1000)
    sampled, full = scene_pca(x, 3), fit_pca(x, 3)
    assert np.allclose(sampled.mean, x[::4].mean(axis=0))
    z = x - x.mean(axis=0)
    kept = [float(np.sum((z @ f.basis.T) ** 2)) for f in (sampled, full)]  # the variance each basis keeps
    assert kept[0] > 0.995 * kept[1]


def test_spectral_round_trip_within_quantization():
    x = _cube()
    fit = fit_pca(x, 4)
    data, params, m_hat, b_hat = encode_spectral(fit.mean, fit.basis, -4, -40)  # steps 2^-1, 2^-10
    m, b = decode_spectral(data, params, 40, 4)
    assert np.array_equal(m, m_hat) and np.array_equal(b, b_hat)
    assert np.abs(m - fit.mean).max() <= 0.25 + 1e-9
    assert np.abs(b - fit.basis).max() <= 2**-11 + 1e-9


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


def test_per_vector_steps_round_trip_and_follow_the_variances():
    """Lagrangian steps: finer for the mean and the high-variance vectors, one exponent offset per vector."""
    x = _cube(1)
    fit = fit_pca(x, 4)
    me, be, bd = lagrangian_exponents(fit, 4, 2.0**-3, x.shape[0])
    assert len(bd) == 4 and bd[0] == 0 and list(bd) == sorted(bd)  # comp_std falls, steps grow
    data, params, m_hat, b_hat = encode_spectral(fit.mean, fit.basis, me, be, bd)
    assert params["bd"] == bd
    m, b = decode_spectral(data, params, 40, 4)
    assert np.array_equal(m, m_hat) and np.array_equal(b, b_hat)
    for i in range(4):
        step = 2.0 ** ((be + bd[i]) / 4)
        assert np.abs(b[i] - fit.basis[i]).max() <= step / 2 + 1e-12
    # a coarser map step gives coarser spectral steps
    me2, be2, _ = lagrangian_exponents(fit, 4, 2.0**0, x.shape[0])
    assert me2 > me and be2 > be


def test_bad_step_offsets_refused():
    fit = fit_pca(_cube(), 2)
    data, params, _, _ = encode_spectral(fit.mean, fit.basis, -4, -40, b"\x00\x03")
    for bad in (b"\x00", b"\x00\x03\x01", "ab", 3):
        with pytest.raises(HsimError, match="codec.sp.bd"):
            decode_spectral(data, {**params, "bd": bad}, 40, 2)
