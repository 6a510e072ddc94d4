"""The encoder's big matrix products, split over threads with the bits of one product.

The encoder runs BLAS on one thread (:mod:`hsicodec.codec.blas`), so its few products over every pixel of a
tile (the projections on the principal spectra, the decoded maps' cross moments with the pixels) are split
here instead, each part one BLAS call on a thread of its own (numpy releases the GIL). The splits keep every
sum whole, so the result is the one product's to the bit, whatever the number of threads:

* :func:`rows_product` ``a @ b`` by rows of ``a`` (each output row is its own row's products);
* :func:`cross_product` ``m.T @ x`` by columns of ``x`` (each output column sums over every row, in order).

:func:`in_threads` runs such parts (and the encoder's other passes in parts) in order on threads.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

import numpy as np

T = TypeVar("T")
R = TypeVar("R")

#: values of the larger operand from which a product is split (below: one call, no thread started)
SPLIT_VALUES = 1 << 22
#: rows of ``a`` per part of :func:`rows_product` (at most; fewer where that leaves a thread idle)
ROW_PART = 1 << 15


def worker_threads() -> int:
    """Threads the encoder's passes in parts run on: the cores, at most 4."""
    return min(4, os.cpu_count() or 1)


def in_threads(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``[fn(x) for x in items]`` on :func:`worker_threads` threads (numpy and BLAS release the GIL), in the
    items' order."""
    threads = min(worker_threads(), len(items))
    if threads < 2:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(fn, items))


def rows_product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` for 2-D float64 ``a`` (N, C) and ``b`` (C, K), in parts of :data:`ROW_PART` rows on threads."""
    threads = worker_threads()
    if a.size < SPLIT_VALUES or threads < 2:
        return a @ b
    out = np.empty((a.shape[0], b.shape[1]), np.result_type(a, b))
    rows = min(ROW_PART, -(-a.shape[0] // threads))  # a part for each thread at least

    def part(r: int) -> None:
        np.matmul(a[r : r + rows], b, out=out[r : r + rows])

    in_threads(part, range(0, a.shape[0], rows))
    return out


def cross_product(m: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``m.T @ x`` for 2-D float64 ``m`` (N, K) and ``x`` (N, C), a band range of ``x`` per thread."""
    threads = min(worker_threads(), x.shape[1])
    if x.size < SPLIT_VALUES or threads < 2:
        return m.T @ x
    out = np.empty((m.shape[1], x.shape[1]), np.result_type(m, x))
    cols = np.linspace(0, x.shape[1], threads + 1).astype(int)

    def part(i: int) -> None:
        np.matmul(m.T, x[:, cols[i] : cols[i + 1]], out=out[:, cols[i] : cols[i + 1]])

    in_threads(part, range(threads))
    return out
