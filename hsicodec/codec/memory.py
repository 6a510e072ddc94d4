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

Even plain 4 KiB pages cost about 1 ms per MB to fault in, and a tiled encode makes a float64 copy of every
tile (448 MB for 512 x 512 x 224), which malloc maps afresh each time. A tile runner hands its thread a
:class:`Scratch` (:func:`reused_scratch`) and the float64 conversion writes into it
(:func:`float64_buffer`): the copy of the next tile lands in pages already faulted in, and since a tile's copy
lives through its whole encode, keeping it between tiles adds nothing to the peak.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
from collections.abc import Iterator
from typing import Callable, TypeVar

import numpy as np

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
    """Decorator: ``fn`` runs inside :func:`plain_pages` (in whatever thread calls it; a fresh context each call)."""
    return plain_pages()(fn)


class Scratch:
    """One float64 buffer handed out again for each array :func:`float64_buffer` asks of it (grown when too
    small): the arrays it gives share memory, so each is dead before the next is asked for (one tile's
    conversion at a time, in one thread)."""

    def __init__(self) -> None:
        self._buf: np.ndarray | None = None

    def float64(self, shape: tuple) -> np.ndarray:
        n = math.prod(shape)
        if self._buf is None or self._buf.size < n:
            self._buf = None  # the old one freed before the new one is made
            self._buf = np.empty(n)
        return self._buf[:n].reshape(shape)


_SCRATCH: contextvars.ContextVar[Scratch | None] = contextvars.ContextVar("hsicodec_scratch", default=None)


@contextlib.contextmanager
def reused_scratch(scratch: Scratch) -> Iterator[None]:
    """Within the block, this thread's :func:`float64_buffer` calls return views of ``scratch``."""
    token = _SCRATCH.set(scratch)
    try:
        yield
    finally:
        _SCRATCH.reset(token)


def float64_buffer(shape: tuple) -> np.ndarray:
    """An uninitialised float64 array of ``shape``: the :class:`Scratch` of the enclosing :func:`reused_scratch`
    if any (a view that the next call overwrites), else a new one."""
    scratch = _SCRATCH.get()
    return np.empty(shape) if scratch is None else scratch.float64(tuple(shape))
