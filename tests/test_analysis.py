"""The scene analysis: the float64 values every layer starts from."""

import numpy as np
import pytest

from hsicodec.codec import analysis


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
    values, sums = analysis.float64_with_sums(cube)
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
