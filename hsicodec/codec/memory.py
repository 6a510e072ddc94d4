"""How hsicodec's encoder and decoder allocate large numpy arrays (the handlers of csrc/numpy_alloc.cpp).

numpy asks the kernel for transparent huge pages for every array of 4 MiB and more. Faulted in as 2 MiB
pages, an array costs about a quarter of the kernel time of 4 KiB pages (here: 0.08 against 0.28 ms per MB),
and an encoder or decoder writes tens of large arrays (the decoded cube alone is 1.9 GB for a 2048^2 x 224
scene). But with the kernel's usual ``defrag=madvise``, a fault in advised memory that finds no free 2 MiB
block stops to compact memory: on the virtual machines we measured on before, that made a 2048^2 x 224 decode
take 8.5-14.5 s with huge pages and 4.5-5.9 s without, and a 1024^2 x 189 tiled compress 17.9-20 s against
10.7-11.2 s. So inside :func:`codec_pages` numpy allocates through a handler that is numpy's own except that
a block of 4 MiB and more gets numpy's huge-page advice only while the kernel's free lists
(``/proc/buddyinfo``) hold free 2 MiB blocks for twice its size, so that no fault needs to compact memory;
otherwise plain pages. The handler lives in a context variable: only the calling thread (and the calls
decorated with :func:`uses_codec_pages`, in whatever thread runs them) use it; the caller's own arrays and
threads are untouched, and the arrays handed back are ordinary numpy arrays.

``HSICODEC_PLAIN_PAGES=1`` never gives huge pages (the handler of earlier releases), ``0`` leaves numpy's own
handler (huge pages always advised), for comparisons.

Even plain 4 KiB pages cost about 1 ms per MB to fault in under load, and a tiled encode makes a float64 copy
of every tile (448 MB for 512 x 512 x 224), which malloc maps afresh each time. A tile runner hands its thread
a :class:`Scratch` (:func:`reused_scratch`) and the float64 conversion writes into it
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

#: environment variable: 1 never gives huge pages, 0 leaves numpy's own handler (see the module)
ENV = "HSICODEC_PLAIN_PAGES"


@contextlib.contextmanager
def codec_pages() -> Iterator[None]:
    """Within the block, this thread's large numpy allocations get huge pages only where the kernel has them
    free (see the module)."""
    enter, leave = _native_function("numpy_alloc_enter"), _native_function("numpy_alloc_exit")
    mode = os.environ.get(ENV, "")
    if enter is None or leave is None or mode == "0":
        yield
        return
    previous = enter(mode != "1")
    try:
        yield
    finally:
        leave(previous)


def uses_codec_pages(fn: F) -> F:
    """Decorator: ``fn`` runs inside :func:`codec_pages` (in whatever thread calls it; a fresh context each call)."""
    return codec_pages()(fn)


def free_huge_blocks() -> int:
    """Free, whole 2 MiB blocks in the kernel's free lists now (``/proc/buddyinfo``); -1 where unknown."""
    count = _native_function("free_huge_blocks")
    return -1 if count is None else int(count())


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
