"""hsicodec.coding.products: the encoder's split products equal one product to the bit."""

from __future__ import annotations

import numpy as np
import pytest

from hsicodec.codec.blas import one_blas_thread
from hsicodec.coding import products


@pytest.fixture
def pixels() -> np.ndarray:
    """A tile's worth of pixels (over the split threshold), integer-valued as a converted cube is."""
    rng = np.random.default_rng(3)
    n = products.SPLIT_VALUES // 60 + 2 * products.ROW_PART + 17  # parts of uneven size, a short last one
    return rng.integers(0, 4096, size=(n, 60)).astype(np.float64)


def test_rows_product_is_one_product(pixels: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    basis = np.random.default_rng(4).standard_normal((60, 13))
    with one_blas_thread():
        want = pixels @ basis
        for threads in (1, 2, 3):
            monkeypatch.setattr(products, "worker_threads", lambda t=threads: t)
            got = products.rows_product(pixels, basis)
            assert got.dtype == want.dtype and np.array_equal(got, want)


def test_cross_product_is_one_product(pixels: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    maps = np.random.default_rng(5).standard_normal((len(pixels), 7))
    with one_blas_thread():
        want = maps.T @ pixels
        for threads in (1, 2, 4):
            monkeypatch.setattr(products, "worker_threads", lambda t=threads: t)
            assert np.array_equal(products.cross_product(maps, pixels), want)


def test_small_operands_are_one_call() -> None:
    a = np.arange(12.0).reshape(4, 3)
    assert np.array_equal(products.rows_product(a, np.eye(3)), a)
    assert np.array_equal(products.cross_product(a, a), a.T @ a)
