"""How hsicodec's encoder and decoder allocate large numpy arrays (the handler of csrc/numpy_alloc.cpp).

numpy asks the kernel for transparent huge pages for every array of 4 MiB and more. On the 2-core virtual
machines we measure on, faulting those 2 MiB pages in cost more kernel time than the codec's own work (a
2048^2 x 224 decode: 8.5-14.5 s with them, 4.5-5.9 s without; a 1024^2 x 189 tiled compress: 17.9-20 s,
10.7-11.2 s), and an encoder or decoder streams through its arrays, which gains nothing from fewer TLB
entries. Inside :func:`plain_pages`, numpy allocates through a handler that is numpy's own except that it
gives no huge-page advice. The handler lives in a context variable: only the calling thread (and the calls
decorated with :func:`uses_plain_pages`, in whatever thread runs them) use it; the caller's own arrays and
threads are untouched, and the arrays handed back are ordinary numpy arrays. ``HSICODEC_PLAIN_PAGES=0``
turns it off (numpy's own handler, for comparisons).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from typing import Callable, TypeVar

from hsicodec.layers.maps.coding import _native_function

F = TypeVar("F", bound=Callable)

#: environment variable that turns the handler off when set to 0
ENV = "HSICODEC_PLAIN_PAGES"


@contextlib.contextmanager
def plain_pages() -> Iterator[None]:
    """Within the block, this thread's numpy allocations get no huge-page advice (see the module)."""
    enter, leave = _native_function("numpy_alloc_enter"), _native_function("numpy_alloc_exit")
    if enter is None or leave is None or os.environ.get(ENV, "1") == "0":
        yield
        return
    previous = enter()
    try:
        yield
    finally:
        leave(previous)


def uses_plain_pages(fn: F) -> F:
    """Decorator: ``fn`` runs inside :func:`plain_pages` (in whatever thread calls it)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with plain_pages():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
