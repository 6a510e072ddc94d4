"""Encoding the tiles of a tiled file several at a time: on local threads (the encoder's hot paths run in
C++ or numpy with the GIL released) or on the workers of a Dask cluster.

The input is read here, one tile window at a time and in order (readers are not thread-safe); each tile
is encoded by :func:`encode_tile`, a pure function of its pixels, its rate and the encode settings, so
the bytes do not depend on where or how many tiles run at once. At most :attr:`TileRunner.slots` tiles
are in flight (memory: that many tiles' pixels), and results come back in tile order, so the writer
(:func:`hsicodec.codec.tiled.write_tiled`) spools them in order. A rate target's budget carry
(:mod:`hsicodec.codec.tilebudget`) limits how many tiles can run at once to its lag.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from collections.abc import Generator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from hsicodec.codec import cube as _codec
from hsicodec.codec.mask import invalid_mask
from hsicodec.codec.memory import Scratch, reused_scratch
from hsicodec.codec.tilebudget import CarryBudget
from hsicodec.codec.tilegrid import TileGrid
from hsicodec.errors import HsicodecError, OptionError
from hsicodec.format.container import HsimReader

#: tiles encoded at once when not told: one per this many cores (the encoder itself is multithreaded; on
#: 2 cores two tiles at once measured no faster than one, bench/tiles.md)
CORES_PER_TILE = 4
#: and never more than this many (each holds a tile's pixels and the encoder's intermediates)
MAX_AUTO_TILE_THREADS = 4


def tile_encoders(tile_threads: int, n_tiles: int) -> int:
    """Tiles encoded at once on local threads: ``tile_threads`` if > 0, else one per :data:`CORES_PER_TILE`
    cores, at most :data:`MAX_AUTO_TILE_THREADS` (never more than the tiles, never less than one)."""
    if isinstance(tile_threads, bool) or not isinstance(tile_threads, (int, np.integer)) or tile_threads < 0:
        raise OptionError(f"tile threads must be >= 0 (0 = auto), got {tile_threads!r}")
    auto = min(MAX_AUTO_TILE_THREADS, (os.cpu_count() or 1) // CORES_PER_TILE)
    n = int(tile_threads) if tile_threads > 0 else auto
    return max(1, min(n, n_tiles))


# --------------------------------------------------------------------------- one tile (any thread, any worker)


@dataclass(frozen=True)
class TileResult:
    """One encoded tile: its section bytes and what the writer reports of it."""

    data: bytes
    rate: float | None  # the rate it was encoded at (a thin edge tile's raised one), None without a rate
    psnr: float | None
    k: int | None
    fallback: bool  # it got its smallest file (the rate was out of its reach)
    model: str | None  # sha256 of the base model its file names (None: none needed)
    seconds: float


EMPTY = TileResult(b"", None, None, None, False, None, 0.0)


def encode_tile(
    block: np.ndarray, rate: float | None, settings: dict, where: str, or_smallest: bool = False
) -> TileResult:
    """One tile through :func:`hsicodec.codec.cube.compress` with ``settings`` (its keyword arguments);
    a rate below the smallest file the tile allows (a thin edge tile: the nested header alone is a few
    hundred bytes) is doubled, up to 16x, and the budget of the following tiles pays for it.
    ``or_smallest`` (the default rate): the last try takes the tile's smallest file rather than fail.
    Errors name the tile (``where``)."""
    t0 = time.perf_counter()
    tries = 5 if rate is not None else 1
    for attempt in range(tries):
        st: dict = {}
        last = or_smallest and attempt + 1 == tries
        try:
            data = _codec.compress(block, bpppb=rate, stats=st, or_smallest=last, **settings)
        except OptionError as exc:
            if attempt + 1 == tries or rate is None:  # no rate: a single try
                raise OptionError(f"{where}: {exc}") from exc
            rate = 2.0 * rate
            continue
        model = HsimReader(data).header.get("model")  # None: a map-layer-only tile
        return TileResult(
            data, rate, st.get("psnr"), st.get("k"), st.get("target_fallback") is not None, model,
            time.perf_counter() - t0,
        )  # fmt: skip
    raise AssertionError("unreachable")  # pragma: no cover


def encode_tile_on_worker(
    block: np.ndarray, rate: float | None, settings: dict, where: str, or_smallest: bool = False
) -> TileResult:
    """:func:`encode_tile` as a Dask task: ``threads`` 0 becomes the worker machine's cores per task slot."""
    if not settings.get("threads"):
        try:
            from distributed import get_worker

            slots = max(1, int(get_worker().state.nthreads))
        except (ImportError, ValueError, AttributeError):  # not on a worker (a test calling it directly)
            slots = 1
        settings = {**settings, "threads": max(1, (os.cpu_count() or 1) // slots)}
    return encode_tile(block, rate, settings, where, or_smallest)


# --------------------------------------------------------------------------- where tiles run


class TileRunner:
    """Runs :func:`encode_tile` calls: ``submit`` returns something with ``result()``; at most ``slots``
    are kept in flight by :func:`encoded_tiles`."""

    slots = 1
    inline = True  # tiles run in the caller's thread (they may report progress within a tile)
    parallel = 1  # tiles that can be encoded at the same moment
    cluster = False

    def __init__(self) -> None:
        self.scratch = Scratch()  # the tiles' float64 copies, one after the other in the caller's thread

    def submit(self, block: np.ndarray, rate: float | None, settings: dict, where: str, or_smallest: bool) -> Any:
        fut: Future = Future()
        try:
            with reused_scratch(self.scratch):
                fut.set_result(encode_tile(block, rate, settings, where, or_smallest))
        except Exception as exc:  # noqa: BLE001 - raised again by result(), in tile order
            fut.set_exception(exc)
        return fut

    def result(self, fut: Any, where: str) -> TileResult:
        return fut.result()

    def close(self) -> None:
        """Drop the tiles still in flight (after an error)."""


class ThreadRunner(TileRunner):
    """``workers`` tiles at once on threads, each encoder with its share of ``threads`` (0: the cores)."""

    inline = False

    def __init__(self, workers: int, threads: int) -> None:
        self.slots = self.parallel = workers
        self.inner = max(1, (threads if threads > 0 else os.cpu_count() or 1) // workers)
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="hsicodec-tile-enc")
        self._local = threading.local()  # each pool thread's Scratch

    def _encode(self, *args: Any) -> TileResult:
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = Scratch()
        with reused_scratch(scratch):
            return encode_tile(*args)

    def submit(self, block: np.ndarray, rate: float | None, settings: dict, where: str, or_smallest: bool) -> Any:
        return self.pool.submit(self._encode, block, rate, {**settings, "threads": self.inner}, where, or_smallest)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class ClusterRunner(TileRunner):
    """Tiles as tasks of a Dask cluster (``client``: a ``distributed.Client``): each tile's pixels go to a
    worker (``scatter``), the section bytes come back. One tile in flight per worker thread, plus one
    read ahead. A task that fails with anything but an hsicodec error (a lost worker, hsicodec missing
    there) is a :class:`~hsicodec.integrations.cluster.ClusterError` naming the tile."""

    inline = False
    cluster = True

    def __init__(self, client: Any, wait: float = 20.0) -> None:
        from hsicodec.integrations.cluster import ClusterError, error_message

        self.client, self._error, self._message = client, ClusterError, error_message
        try:
            client.wait_for_workers(1, timeout=wait)
            threads = sum(int(n) for n in client.nthreads().values())
        except Exception as exc:  # noqa: BLE001 - a timeout, a closed client
            raise ClusterError(f"the Dask cluster has no worker to encode tiles on: {error_message(exc)}") from None
        self.parallel = max(1, threads)
        self.slots = self.parallel + 1
        self._futures: list = []

    def submit(self, block: np.ndarray, rate: float | None, settings: dict, where: str, or_smallest: bool) -> Any:
        try:
            data = self.client.scatter(block, hash=False)
            fut = self.client.submit(encode_tile_on_worker, data, rate, settings, where, or_smallest, pure=False)
        except HsicodecError:
            raise
        except Exception as exc:  # noqa: BLE001 - the cluster went away, settings that cannot be sent
            raise self._error(f"{where}: cannot send the tile to the Dask cluster: {self._message(exc)}") from None
        self._futures.append(fut)
        return (fut, data)

    def result(self, fut: Any, where: str) -> TileResult:
        task, data = fut
        try:
            out = task.result()
        except HsicodecError:
            raise
        except Exception as exc:  # noqa: BLE001 - KilledWorker, a lost connection, hsicodec missing there
            raise self._error(f"{where}: a Dask worker failed: {self._message(exc)}") from None
        finally:
            self._futures = [f for f in self._futures if f is not task]
            task.release()
            data.release()
        if not isinstance(out, TileResult):
            raise self._error(f"{where}: a Dask worker returned {type(out).__name__}, not an encoded tile")
        return out

    def close(self) -> None:
        if self._futures:
            try:
                self.client.cancel(self._futures)
            except Exception:  # noqa: BLE001 - the cluster is already gone; nothing to cancel
                pass
            self._futures = []


# --------------------------------------------------------------------------- the tiles, in order


@dataclass
class TileTask:
    """What the writer knows of a tile before it is encoded: its place, valid values and rate."""

    index: int
    window: tuple[int, int, int, int]
    valid: tuple[float, float, int]  # min, max and count of the valid values (count 0: an empty tile)
    rate: float | None
    read_seconds: float


def _valid_range(block: np.ndarray, mask: np.ndarray | None) -> tuple[float, float, int]:
    vals = block if mask is None else block[~mask]
    if vals.size == 0:
        return float("inf"), float("-inf"), 0
    return float(vals.min()), float(vals.max()), int(vals.size)


def encoded_tiles(
    reader: Any,
    grid: TileGrid,
    settings: dict,
    runner: TileRunner,
    *,
    nodata: float | None,
    budget: CarryBudget | None = None,
    or_smallest: bool = False,
    progress: Callable[[float], None] | None = None,
    after_tile: Callable[[], None] | None = None,
) -> Generator[tuple[TileTask, TileResult], None, None]:
    """(task, result) of every tile of ``grid``, in tile order, encoded by ``runner``.

    Tiles are read here in order; a tile is read once fewer than ``runner.slots`` are in flight and, with a
    rate ``budget``, once the tiles its rate waits for are done. A tile whose every value is invalid is
    empty (no encode). ``progress`` gets the fraction done within a tile only when ``runner.inline``.
    ``after_tile`` runs after each tile's result is taken (the writer frees memory there). An error of a
    tile is raised in tile order, after the tiles before it; the tiles still in flight are dropped."""
    pending: collections.deque[tuple[TileTask, Any]] = collections.deque()

    def finish() -> tuple[TileTask, TileResult]:
        task, fut = pending.popleft()
        out = EMPTY if fut is None else runner.result(fut, _where(grid, task.index))
        if budget is not None:
            budget.commit(len(out.data))
        if after_tile is not None:
            after_tile()
        return task, out

    try:
        for i in range(grid.count):
            while pending and (len(pending) >= runner.slots or (budget is not None and not budget.ready(i))):
                yield finish()
            r0, c0, h, w = grid.bounds(i)
            t0 = time.perf_counter()
            block = reader.read(r0, c0, h, w)
            t_read = time.perf_counter() - t0
            valid = _valid_range(block, invalid_mask(block, nodata))
            rate = None if budget is None else budget.next_rate(h * w * grid.bands, empty=valid[2] == 0)
            task = TileTask(i, (r0, c0, h, w), valid, rate, t_read)
            fut = None
            if valid[2]:
                kw = settings
                if runner.inline and progress is not None:
                    kw = {**settings, "progress": lambda f, i=i: progress((i + f) / grid.count)}
                fut = runner.submit(block, rate, kw, _where(grid, i), or_smallest)
            del block
            pending.append((task, fut))
        while pending:
            yield finish()
    finally:
        runner.close()


def _where(grid: TileGrid, i: int) -> str:
    r0, c0, h, w = grid.bounds(i)
    return f"tile {i} (rows {r0}..{r0 + h}, cols {c0}..{c0 + w})"
