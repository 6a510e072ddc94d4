"""The scene analysis: the float64 values every layer starts from."""

import numpy as np
import pytest

from hsicodec.codec import analysis
from hsicodec.coding import spectral


@pytest.mark.parametrize("dtype", ["uint8", "int16", "uint16", "int32", "float32", "float64"])
@pytest.mark.parametrize("threshold", [1, 1 << 40])
def test_float64_conversion_is_numpys(dtype, threshold, monkeypatch):
    """In parts on several threads (a large cube) or at once: numpy's float64 values, the input untouched."""
    monkeypatch.setattr(analysis, "PARALLEL_CAST_VALUES", threshold)
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    cube = (rng.integers(info.min, info.max, size=(37, 29, 11), endpoint=True) if info else
            rng.normal(size=(37, 29, 11)) * 1e3).astype(dtype)  # fmt: skip
    kept = cube.copy()
    out = analysis.float64_with_sums(cube)[0]
    assert out.dtype == np.float64 and np.array_equal(out, cube.astype(np.float64)) and np.array_equal(cube, kept)
    assert (out is cube) == (dtype == "float64")
    strided = cube[:, ::2]  # not contiguous: numpy's own conversion
    assert np.array_equal(analysis.float64_with_sums(strided)[0], strided.astype(np.float64))


@pytest.mark.parametrize("threshold", [1, 1 << 40])
def test_the_conversion_sums_are_the_pixels_moments(threshold, monkeypatch):
    """A large cube's conversion also sums its pixels about the first one (in parts, in a fixed order);
    a small one leaves that to its users (None)."""
    monkeypatch.setattr(analysis, "PARALLEL_CAST_VALUES", threshold)
    rng = np.random.default_rng(1)
    cube = rng.integers(0, 4000, size=(50, 41, 13)).astype(np.uint16)
    values, sums, _ = analysis.float64_with_sums(cube)
    assert np.array_equal(values, cube.astype(np.float64))
    if threshold > 1:
        assert sums is None
        return
    shift, total, squares = sums
    z = cube.reshape(-1, 13).astype(np.float64) - cube[0, 0]
    assert np.array_equal(shift, cube[0, 0].astype(np.float64))
    np.testing.assert_allclose(total, z.sum(axis=0), rtol=1e-12)
    assert squares == pytest.approx(float(np.sum(z * z)), rel=1e-12)
    assert analysis.float64_with_sums(cube)[1][2] == squares  # the same bits every time


@pytest.mark.parametrize("dtype", ["uint8", "int16", "uint16", "int32", "float32"])
@pytest.mark.parametrize("sample", [1 << 16, 300])
def test_the_conversion_takes_the_pca_moments_of_small_integers(dtype, sample, monkeypatch):
    """An 8- or 16-bit cube's conversion also takes scene_pca's moments (every sum an integer below 2^53:
    exact in its parts' order), so the PCA fitted from them is scene_pca's own to the bit, sampled by a
    stride or not; other types leave the PCA its own pass (None)."""
    monkeypatch.setattr(analysis, "PARALLEL_CAST_VALUES", 1)
    monkeypatch.setattr(spectral, "PCA_SAMPLE", sample)  # 300: every 7th of the 2050 pixels
    rng = np.random.default_rng(2)
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    cube = (rng.integers(info.min, info.max, size=(50, 41, 13), endpoint=True) if info else
            rng.normal(size=(50, 41, 13)) * 1e3).astype(dtype)  # fmt: skip
    values, _, moments = analysis.float64_with_sums(cube)
    if dtype in ("int32", "float32"):
        assert moments is None
        return
    assert moments is not None and moments[3] == len(range(0, 50 * 41, spectral.pca_stride(50 * 41)))
    own = spectral.scene_pca(values.reshape(-1, 13), 13)
    fused = spectral.scene_pca(values.reshape(-1, 13), 13, moments)
    for a, b in zip(
        (own.mean, own.basis, own.comp_std, own.total_std), (fused.mean, fused.basis, fused.comp_std, fused.total_std)
    ):
        assert np.array_equal(a, b)
