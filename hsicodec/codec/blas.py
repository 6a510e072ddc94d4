"""One BLAS thread while hsicodec encodes or decodes: its own C++ threads do the parallel work.

numpy's OpenBLAS runs a product on all cores, and its worker threads then spin for a while (about 0.1 s)
waiting for the next one before they sleep. The encoder alternates numpy products (projections, moments,
refits) with its multithreaded C++ passes (pricing, quantization, entropy coding), so on a 2-core machine
those spinning workers took a core from the C++ threads after every product: a 1024^2 x 189 compress ran
10-15 % faster with one BLAS thread (8.15 s -> 7.34 s, median of 5 alternating runs of its four tiles),
the products' own loss included. Inside :func:`one_blas_thread` the BLAS libraries numpy loaded run one
thread (``threadpoolctl``). The count is the process's, so nested and concurrent calls share one limit,
set by the first to enter and restored by the last to leave. OpenBLAS may ignore a limit asked from a
thread other than the one that last set its count: tiles encoded on several threads may then keep BLAS's
threads. The decoder runs inside it too: its tiles decode on threads of its own, and a reduced-resolution read
of a 2048^2 x 224 scene took 0.41-0.48 s with BLAS's spinning workers, 0.25-0.29 s without (3 runs each).
``HSICODEC_BLAS_THREADS=0`` leaves BLAS as it is (for comparisons).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any, Callable, TypeVar

F = TypeVar("F", bound=Callable)

#: environment variable that leaves BLAS's threads alone when set to 0
ENV = "HSICODEC_BLAS_THREADS"


def _one_thread() -> Any:
    """BLAS limited to one thread: a limiter whose ``restore_original_limits()`` undoes it (None: no
    threadpoolctl)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - a dependency; without it BLAS keeps its threads
        return None
    return ThreadpoolController().limit(limits=1, user_api="blas")


class _Limit:
    """The one BLAS limit of the process: set (``start``) on the first enter, restored on the last leave."""

    def __init__(self, start: Callable[[], Any] = _one_thread) -> None:
        self.start = start
        self.lock = threading.Lock()
        self.depth = 0
        self.limiter: Any = None

    def enter(self) -> None:
        with self.lock:
            if self.depth == 0:
                self.limiter = self.start()
            self.depth += 1

    def leave(self) -> None:
        with self.lock:
            self.depth -= 1
            if self.depth == 0 and self.limiter is not None:
                self.limiter.restore_original_limits()
                self.limiter = None


_LIMIT = _Limit()


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Within the block, numpy's BLAS runs one thread (see the module)."""
    if os.environ.get(ENV, "1") == "0":
        yield
        return
    _LIMIT.enter()
    try:
        yield
    finally:
        _LIMIT.leave()


def uses_one_blas_thread(fn: F) -> F:
    """Decorator: ``fn`` runs inside :func:`one_blas_thread` (a fresh context each call)."""
    return one_blas_thread()(fn)
