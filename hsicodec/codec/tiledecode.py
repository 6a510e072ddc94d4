"""Decoding tiled `.hsim` files (spec/hsim.md section 11): plan the tiles a window touches, decode them
(several at a time on threads: the decoders' hot paths run in C++ with the GIL released) and assemble them
in memory or write them into a raster, tile by tile."""

from __future__ import annotations

import collections
import ctypes
import ctypes.util
import functools
import gc
import os
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Union

import numpy as np

from hsicodec.codec import cube as _codec
from hsicodec.codec.blas import uses_one_blas_thread
from hsicodec.codec.decode import check_window, reduced_by_layers
from hsicodec.codec.memory import uses_codec_pages
from hsicodec.codec.tilegrid import (
    MAX_TILE_VALUES,
    TileGrid,
    _check_tile_sections,
    _fill_of,
    is_tiled,
    section_name,
    shared_stage,
)
from hsicodec.coding.reduce import aligned_window, check_reduce, reduced_size
from hsicodec.coding.shared import SharedSpectral
from hsicodec.errors import HsimError, HsimHeaderError, OptionError
from hsicodec.format.container import DEFAULT_LIMITS, HsimReader, Limits
from hsicodec.io.atomic import check_writable
from hsicodec.io.raster import GeoInfo, cast_to_dtype, open_raster_writer

PathLike = Union[str, "os.PathLike[str]"]

#: values (rows x cols x bands) decoded per decoder call inside a tile: bounds the decoder's
#: float64 intermediates (about 64 MiB each) independently of the tile size.
STRIP_VALUES = 1 << 23
#: tiles decoded at once into memory when not told (each holds its decoded tile and one strip's intermediates)
AUTO_TILE_THREADS = 2
#: tiles decoded at once into a raster when not told: the writer sets the pace, so one (least memory)
RASTER_TILE_THREADS = 1


_TRIM: list = []


def release_memory() -> None:
    """Between tiles: collect reference cycles (the encoder leaves some that hold tile-sized
    arrays until the next full collection) and give freed heap pages back to the OS (glibc's
    ``malloc_trim``; a no-op elsewhere), so resident memory does not ratchet up tile after tile."""
    gc.collect()
    if not _TRIM:
        fn = None
        try:
            name = ctypes.util.find_library("c")
            lib = ctypes.CDLL(name) if name else None
            fn = getattr(lib, "malloc_trim", None) if lib is not None else None
        except (OSError, AttributeError):  # pragma: no cover - not glibc
            fn = None
        _TRIM.append(fn)
    if _TRIM[0] is not None:
        _TRIM[0](0)


def _open(source, limits: Limits) -> tuple[HsimReader, bool]:
    if isinstance(source, HsimReader):
        return source, False
    return HsimReader(source, limits), True


@uses_codec_pages
@uses_one_blas_thread
def decode_tile(
    data: bytes,
    grid: TileGrid,
    i: int,
    local: tuple,
    *,
    bands: tuple,
    dtype: np.dtype,
    fill: float | None,
    nodata,
    limits: Limits,
    threads: int,
    backend: str,
    registry,
    progress: Callable[[float], None] | None = None,
    reduce: int = 0,
    shared: SharedSpectral | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Decode the ``local`` (row, col, h, w) window of tile ``i`` from its section's bytes ``data``
    (coordinates inside the tile; with ``reduce`` n, a window of whole 2^n blocks, decoded 2^n times smaller;
    ``shared``: the file's shared spectral stage; ``out``: the array of that shape and dtype it is written
    into and returned, a window of the caller's cube)."""
    name = section_name(i)
    _, _, th, tw = grid.bounds(i)
    lr, lc, h, w = local
    if not data:
        if fill is None:
            raise HsimHeaderError(f"tile {i} (section {name!r}) is empty but the header has no 'tiles.fill'")
        shape = (reduced_size(h, reduce), reduced_size(w, reduce), bands[1] - bands[0])
        filled = cast_to_dtype(np.full(shape[2], fill), dtype, nodata)
        if out is None:
            return np.broadcast_to(filled, shape).copy()
        out[...] = filled
        return out
    try:
        with HsimReader(data, limits) as sub:  # the nested file: same reader, same limits
            hh = sub.header
            if is_tiled(hh):
                raise HsimHeaderError("a tile must not itself be tiled")
            if [int(v) for v in hh["shape"]] != [th, tw, grid.bands]:
                raise HsimHeaderError(f"header key 'shape' is {hh['shape']}, expected {[th, tw, grid.bands]}")
            if hh["dtype"] != dtype.name:
                raise HsimHeaderError(f"header key 'dtype' is {hh['dtype']!r}, expected {dtype.name!r}")
            # decoded in row strips: the decoder's float64 intermediates then hold one strip, not a tile
            nb = bands[1] - bands[0]
            blk = 1 << reduce
            if reduce and reduced_by_layers(hh):  # intermediates at the reduced size: strips of reduced rows
                step = max(1, STRIP_VALUES // (reduced_size(w, reduce) * nb)) * blk
            else:
                step = max(1, STRIP_VALUES // (w * nb) // blk) * blk  # whole blocks per strip
            shape = (reduced_size(h, reduce), reduced_size(w, reduce), nb)
            cube = np.empty(shape, dtype) if out is None else out
            memo: dict = {}  # the tile's maps decoded once for all its strips
            for a in range(0, h, step):
                b = min(a + step, h)
                part = (lambda f, a=a, b=b: progress((a + f * (b - a)) / h)) if progress else None
                _codec.decompress_untiled(
                    sub,
                    window=(lr + a, lc, b - a, w),
                    bands=bands,
                    threads=threads,
                    backend=backend,
                    registry=registry,
                    progress=part,
                    reduce=reduce,
                    shared_spectral=shared,
                    memo=memo,
                    out=cube[a // blk : reduced_size(b, reduce)],
                )
    except HsimError as exc:
        raise type(exc)(f"tile {i} (section {name!r}): {exc}") from None
    return cube


def _iter_tiles(
    reader: HsimReader, window, bands, *, limits: Limits, max_tile_values: int, verify: bool | None, reduce: int = 0
):
    """Validate a tiled file and plan a decode: grid, window, bands, [(tile, its part, output offset)]
    (``reduce`` n: the window widened to whole 2^n blocks, which tiles of a side divisible by 2^n keep)."""
    header = reader.header
    if not is_tiled(header):
        raise HsimHeaderError(f"header key 'codec.id': {header.get('codec', {}).get('id')!r} is not a tiled file")
    grid = TileGrid.from_header(header, limits, max_tile_values)
    _check_tile_sections(reader, grid)
    shape = (grid.height, grid.width, grid.bands)
    win, bnd = check_window(shape, window, bands)
    if reduce:
        if not grid.reducible(reduce):
            raise OptionError(
                f"reduce {reduce} needs tiles whose sides are multiples of {1 << reduce}; this file's tiles are "
                f"{grid.tile_h}x{grid.tile_w} (decode at full resolution, or a smaller reduce)"
            )
        win = aligned_window(win, shape, reduce)[0]
    todo = grid.intersecting(win)
    if verify is None:
        verify = len(todo) == grid.count
    if verify:
        reader.verify()  # every tile is read anyway: check the whole file (trailer CRC) first
    r0, c0, h, w = win
    plan = []
    for i in todo:
        tr, tc, th, tw = grid.bounds(i)
        a, b = max(r0, tr), min(r0 + h, tr + th)
        c, d = max(c0, tc), min(c0 + w, tc + tw)
        plan.append((i, (a - tr, c - tc, b - a, d - c), (a - r0, c - c0)))
    return grid, win, bnd, plan


def _out_geo(header: Mapping, n_bands: int, window, bands, win, bnd, reduce: int = 0) -> GeoInfo:
    geo = GeoInfo.from_header(header.get("geo"), n_bands=n_bands)
    if window is not None or bands is not None or reduce:
        r0, c0, h, w = win
        f = 1 << reduce
        geo = geo.subset(slice(r0, r0 + h, f), slice(c0, c0 + w, f), slice(bnd[0], bnd[1]))
    return geo


def _tile_decoder(
    reader: HsimReader, grid: TileGrid, bands: tuple, *, limits: Limits, backend: str, registry, reduce: int = 0
) -> Callable[..., np.ndarray]:
    """:func:`decode_tile` bound to the file's dtype, empty-tile fill, nodata and shared spectral stage."""
    header = reader.header
    return functools.partial(
        decode_tile, bands=bands, dtype=np.dtype(header["dtype"]), fill=_fill_of(header),
        nodata=GeoInfo.from_header(header.get("geo"), n_bands=grid.bands).nodata, limits=limits, backend=backend,
        registry=registry, reduce=reduce, shared=shared_stage(reader),
    )  # fmt: skip


def decompress_tiled(
    source,
    *,
    window: tuple | None = None,
    bands: tuple | None = None,
    threads: int = 0,
    backend: str = "auto",
    registry=None,
    progress: Callable[[float], None] | None = None,
    tile_progress: Callable[[int, int], None] | None = None,
    limits: Limits = DEFAULT_LIMITS,
    max_tile_values: int = MAX_TILE_VALUES,
    verify: bool | None = None,
    reduce: int = 0,
    tile_threads: int = 0,
) -> tuple[np.ndarray, GeoInfo]:
    """Decode (a window of) a tiled `.hsim` into memory: (cube, geo), like :func:`hsicodec.codec.api.decompress`
    (``reduce`` too).

    Only the tiles the window touches are read and decoded, ``tile_threads`` of them at a time
    (:func:`decoded_tiles`). A whole-scene decode also checks
    the file's trailer CRC first (``verify`` forces or skips that); a window decode relies on
    the header CRC and the CRC of every tile section it reads.
    """
    reader, own = _open(source, limits)
    try:
        reduce = check_reduce(reduce)
        grid, win, bnd, plan = _iter_tiles(
            reader, window, bands, limits=limits, max_tile_values=max_tile_values, verify=verify, reduce=reduce
        )
        header = reader.header
        dtype = np.dtype(header["dtype"])
        blk = 1 << reduce
        out = np.empty((reduced_size(win[2], reduce), reduced_size(win[3], reduce), bnd[1] - bnd[0]), dtype)
        decode = _tile_decoder(reader, grid, bnd, limits=limits, backend=backend, registry=registry, reduce=reduce)

        def dest(entry: tuple) -> np.ndarray:  # each tile decodes straight into its place in the output
            _, (_, _, h, w), (orow, ocol) = entry
            r, c = orow // blk, ocol // blk
            return out[r : r + reduced_size(h, reduce), c : c + reduced_size(w, reduce)]

        for j, _, _ in decoded_tiles(reader, grid, plan, decode, threads, tile_threads, progress, dest):
            if tile_progress:
                tile_progress(j + 1, len(plan))
    finally:
        if own:
            reader.close()
    return out, _out_geo(header, grid.bands, window, bands, win, bnd, reduce)


def decompress_file_tiled(
    src,
    dst: PathLike,
    *,
    force: bool = False,
    format: str | None = None,
    window: tuple | None = None,
    bands: tuple | None = None,
    threads: int = 0,
    backend: str = "auto",
    registry=None,
    progress: Callable[[float], None] | None = None,
    tile_progress: Callable[[int, int], None] | None = None,
    limits: Limits = DEFAULT_LIMITS,
    max_tile_values: int = MAX_TILE_VALUES,
    creation_options=None,
    tile_threads: int = 0,
) -> dict:
    """Decode a tiled `.hsim` (or a window of it) into a raster, tile by tile.

    Each decoded tile is written by a window into the output (GeoTIFF tiled 256x256, DEFLATE with
    a predictor, with the CRS, transform, nodata, wavelengths... of the file; ENVI; or .npy),
    which appears atomically at the end. ``creation_options``: GDAL GeoTIFF creation options
    (:func:`hsicodec.io.raster.open_raster_writer`). Memory holds the tiles being decoded (``tile_threads``,
    :func:`decoded_tiles`), never the scene: one at a time unless told (0), since writing the raster, not
    decoding, sets the pace here (4096² × 224 to GeoTIFF: 189 s with one tile or two at a time, 0.37 GB against
    0.58 GB peak).
    """
    check_writable(dst, force)
    tile_threads = tile_threads if tile_threads > 0 else RASTER_TILE_THREADS
    t0 = time.perf_counter()
    reader, own = _open(src, limits)
    t_dec = t_write = 0.0
    try:
        grid, win, bnd, plan = _iter_tiles(
            reader, window, bands, limits=limits, max_tile_values=max_tile_values, verify=None
        )
        header = reader.header
        dtype = np.dtype(header["dtype"])
        geo = _out_geo(header, grid.bands, window, bands, win, bnd)
        out_shape = (win[2], win[3], bnd[1] - bnd[0])
        with open_raster_writer(
            dst, out_shape, dtype, geo, format=format, force=force, creation_options=creation_options
        ) as writer:
            decode = _tile_decoder(reader, grid, bnd, limits=limits, backend=backend, registry=registry)
            ta = time.perf_counter()
            for j, (_, _, (orow, ocol)), block in decoded_tiles(reader, grid, plan, decode, threads, tile_threads,
                                                                progress):  # fmt: skip
                tb = time.perf_counter()
                writer.write(orow, ocol, block)
                del block
                release_memory()
                t_dec += tb - ta
                ta = time.perf_counter()
                t_write += ta - tb
                if tile_progress:
                    tile_progress(j + 1, len(plan))
    finally:
        if own:
            reader.close()
    return {
        "input": str(src) if not isinstance(src, HsimReader) else None,
        "output": str(dst),
        "shape": list(out_shape),
        "dtype": dtype.name,
        "tiled": True,
        "tiles_decoded": len(plan),
        "decode_seconds": t_dec,
        "write_seconds": t_write,
        "total_seconds": time.perf_counter() - t0,
    }


def tile_workers(tile_threads: int, n_tiles: int) -> int:
    """Tiles decoded at once: ``tile_threads`` if > 0, else up to :data:`AUTO_TILE_THREADS` (never more
    than the cores or the tiles)."""
    n = int(tile_threads) if tile_threads > 0 else min(AUTO_TILE_THREADS, os.cpu_count() or 1)
    return max(1, min(n, n_tiles))


def decoded_tiles(
    reader: HsimReader,
    grid: TileGrid,
    plan: list,
    decode: Callable[..., np.ndarray],
    threads: int,
    tile_threads: int,
    progress: Callable[[float], None] | None = None,
    dest: Callable[[tuple], np.ndarray] | None = None,
) -> Iterator[tuple[int, tuple, np.ndarray]]:
    """(index, plan entry, decoded block) for each planned tile, in plan order; ``dest(entry)``: where the
    block is decoded (``decode``'s ``out``), else a fresh array.

    Sections are read here, in order (the reader is not thread-safe; each read checks its CRC32C); the
    tiles are decoded by up to :func:`tile_workers` threads, each with its share of ``threads`` (0: the
    cores), at most that many tiles in flight, so memory holds a few tiles whatever the scene's size.
    The decoded pixels do not depend on the thread counts."""
    workers = tile_workers(tile_threads, len(plan))
    if workers == 1:
        for j, entry in enumerate(plan):
            i, local, _ = entry
            sub = (lambda f, j=j: progress((j + f) / len(plan))) if progress else None
            yield j, entry, decode(reader.section(section_name(i)), grid, i, local, threads=threads, progress=sub,
                                   out=dest(entry) if dest else None)  # fmt: skip
        return
    inner = max(1, (threads if threads > 0 else os.cpu_count() or 1) // workers)
    pool = ThreadPoolExecutor(workers, thread_name_prefix="hsicodec-tile")
    pending: collections.deque[tuple[int, tuple, Future]] = collections.deque()
    try:
        for j, entry in enumerate(plan):
            i, local, _ = entry
            pending.append((j, entry, pool.submit(decode, reader.section(section_name(i)), grid, i, local,
                                                  threads=inner, out=dest(entry) if dest else None)))  # fmt: skip
            while pending and (len(pending) == workers or j + 1 == len(plan)):  # full, or nothing left to read
                jj, done, fut = pending.popleft()
                yield jj, done, fut.result()
                if progress:
                    progress((jj + 1) / len(plan))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
