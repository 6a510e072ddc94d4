"""Tiled `.hsim` files: scenes far larger than memory, compressed and decoded tile by tile.

A tiled file (format 1.1, codec id ``"tiled"``; normative text in ``spec/hsim.md``
section 11) cuts the scene into a grid of independent tiles. Every tile is an
ordinary untiled `.hsim` file, made by :func:`hsicodec.codec.api.compress` from the
tile's pixels alone (its own PCA basis, latent grids and rate control) and stored
whole, as one section ``t<i>`` of the outer file. The outer header holds the full
shape, dtype, georeferencing and the tile geometry (header key ``tiles``).

Memory: compressing reads one tile window at a time from the input
(:func:`hsicodec.io.raster.open_cube_reader`) and spools the compressed tiles to a
temporary file next to the output; decoding reads only the sections of the tiles
a window touches and writes each decoded tile through
:func:`hsicodec.io.raster.open_cube_writer`. Peak memory is that of one tile,
whatever the scene size; the raw scene is never held.
"""

from __future__ import annotations

import contextlib
import math
import os
import struct
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Union

import crc32c as _crc32c
import numpy as np

from hsicodec.codec import cube as _codec
from hsicodec.codec.tilebudget import CarryBudget
from hsicodec.codec.tiledecode import (  # noqa: F401  (part of this module's API)
    STRIP_VALUES,
    decompress_file_tiled,
    decompress_tiled,
    release_memory,
)
from hsicodec.codec.tilegrid import (  # noqa: F401  (part of this module's API)
    AUTO_TILE_VALUES,
    CODEC_ID,
    DEFAULT_TILE,
    FORMAT_VERSION,
    MAX_TILE_VALUES,
    SHARED_SECTION,
    TileGrid,
    _check_tile_sections,
    _fill_of,
    is_tiled,
    scene_stage,
    section_name,
    shared_stage,
)
from hsicodec.codec.tilepool import ClusterRunner, ThreadRunner, TileRunner, encoded_tiles, tile_encoders
from hsicodec.coding.shared import SharedSpectral
from hsicodec.errors import HsimHeaderError, HsimLimitError, OptionError
from hsicodec.format.container import (
    DEFAULT_LIMITS,
    TRAILER_SIZE,
    Limits,
    pack_head,
    validate_header,
)
from hsicodec.io.atomic import atomic_path, check_writable
from hsicodec.io.raster import CubeReader, GeoInfo, open_cube_reader
from hsicodec.layers.base import one_target
from hsicodec.metrics import bpppb as bpppb_of

PathLike = Union[str, "os.PathLike[str]"]

__all__ = [
    "CODEC_ID",
    "FORMAT_VERSION",
    "DEFAULT_TILE",
    "AUTO_TILE_VALUES",
    "MAX_TILE_VALUES",
    "TileGrid",
    "is_tiled",
    "should_tile",
    "write_tiled",
    "compress_tiled",
    "compress_file_tiled",
    "decompress_tiled",
    "decompress_file_tiled",
    "tiles_info",
]


_COPY_CHUNK = 1 << 20
#: the shared stage takes at most this share of a rate target's bytes (else the tiles keep their own)
SHARED_SHARE = 0.05
_DEFAULT_BPPPB = 0.05  # the encoder's default target (hsicodec.codec.analysis.DEFAULT_BPPPB)


def _default_bpppb() -> float:
    try:
        from hsicodec.codec.analysis import DEFAULT_BPPPB

        return float(DEFAULT_BPPPB)
    except (ImportError, AttributeError, TypeError, ValueError):  # pragma: no cover
        return _DEFAULT_BPPPB


# --------------------------------------------------------------------------- dispatch helpers


def should_tile(src: PathLike, tile: int | None, *, var: str | None = None, band_first: bool = False) -> bool:
    """Whether compress_file writes a tiled file: ``tile`` > 0 yes, 0 no, None when the input
    holds more than :data:`AUTO_TILE_VALUES` values (its header is read, not its pixels)."""
    if tile is not None:
        if isinstance(tile, bool) or int(tile) < 0:
            raise OptionError(f"tile size must be >= 0 (0 = never tile), got {tile!r}")
        return int(tile) > 0
    from hsicodec.io.raster import read_info

    shape, _, _ = read_info(src, var=var, band_first=band_first)
    return int(np.prod([int(v) for v in shape], dtype=object)) > AUTO_TILE_VALUES


def tiles_info(header: Mapping, spans: Mapping[str, tuple]) -> dict:
    """Summary of a tiled header for file_info: tile size, grid, count, empty tiles."""
    try:
        g = TileGrid.from_header(header)
    except (HsimHeaderError, HsimLimitError, KeyError, TypeError, ValueError) as exc:
        return {"error": str(exc)}
    empty = sum(1 for i in range(g.count) if spans.get(section_name(i), (0, 0))[1] == 0)
    out = {"size": [g.tile_h, g.tile_w], "grid": [g.rows, g.cols], "count": g.count, "empty": empty}
    sp = header["tiles"].get("sp") if isinstance(header.get("tiles"), Mapping) else None
    if isinstance(sp, Mapping):  # a spectral stage the tiles share (spec/hsim.md 10.8)
        out["shared_spectral"] = {"components": sp.get("k"), "bytes": spans.get(SHARED_SECTION, (0, 0))[1]}
    return out


# --------------------------------------------------------------------------- writing


class _ArraySource:
    """An in-memory cube seen through the CubeReader interface."""

    def __init__(self, cube: np.ndarray, geo: GeoInfo | None) -> None:
        self.cube, self.shape, self.dtype = cube, tuple(cube.shape), cube.dtype
        self.geo = geo if geo is not None else GeoInfo()

    def read(self, row: int, col: int, height: int, width: int) -> np.ndarray:
        return np.ascontiguousarray(self.cube[row : row + height, col : col + width])


def _pack_head(header: dict, index: list, limits: Limits, validate: bool = True) -> bytes:
    """Preamble + header bytes of a format-1.1 file whose payload is written separately."""
    hdr = {k: v for k, v in header.items() if k != "sections"}
    hdr["sections"] = index
    if validate:
        validate_header(hdr, limits)
    return pack_head(hdr, limits, FORMAT_VERSION, hint="too many tiles: use larger tiles")


def _outer_header(
    shape,
    dtype: np.dtype,
    model_sha: str | None,
    grid: TileGrid,
    fill: float | None,
    geo: GeoInfo | None,
    tags: dict | None,
    created_by: bool,
    shared: SharedSpectral | None = None,
) -> dict:
    header: dict = {
        "shape": [int(v) for v in shape],
        "dtype": np.dtype(dtype).name,
        "codec": {"id": CODEC_ID},
        "tiles": grid.to_header(fill),
    }
    if shared is not None:  # the spectral stage every map-layer tile codes on (its stream: section "sp")
        header["tiles"]["sp"] = shared.to_header()
    if model_sha is not None:  # the first tile's model, if any tile uses one
        header["model"] = model_sha
    if created_by:
        header["created_by"] = _codec.CREATED_BY
    if geo is not None and not geo.is_empty():
        header["geo"] = geo.to_header()
    if tags:
        header["tags"] = {str(k): str(v) for k, v in tags.items()}
    return header


def _overhead_bytes(
    shape, dtype, grid: TileGrid, geo, tags, created_by: bool, limits: Limits, shared: SharedSpectral | None = None
) -> int:
    """Upper bound of the outer file's own bytes (preamble, header with a worst-case index, the shared
    spectral stage, trailer)."""
    header = _outer_header(shape, dtype, "0" * 64, grid, float("nan"), geo, tags, created_by, shared)
    # lengths and CRCs as 5-byte msgpack uint32 (the longest form they can take)
    index = [[section_name(i), 0xFFFFFFFF, 0xFFFFFFFF] for i in range(grid.count)]
    if shared is not None:
        index.insert(0, [SHARED_SECTION, 0xFFFFFFFF, 0xFFFFFFFF])
    extra = len(shared.data) if shared is not None else 0
    return len(_pack_head(header, index, limits, validate=False)) + extra + TRAILER_SIZE


def write_tiled(
    source: np.ndarray | CubeReader,
    dst: PathLike,
    *,
    tile: int | tuple = DEFAULT_TILE,
    geo: GeoInfo | None = None,
    force: bool = False,
    model: str | None = None,
    bpppb: float | None = None,
    psnr: float | None = None,
    max_error: float | None = None,
    lossless: bool = False,
    effort: str | int = "default",
    progress: Callable[[float], None] | None = None,
    tile_progress: Callable[[int, int], None] | None = None,
    tags: dict | None = None,
    threads: int = 0,
    registry=None,
    backend: str = "auto",
    created_by: bool = False,
    band_map=None,
    wavelengths=None,
    nodata: float | None = None,
    limits: Limits = DEFAULT_LIMITS,
    layer: str | None = None,
    latent_codings: tuple | None = None,
    or_smallest: bool = False,
    shared_basis: bool = False,
    post_filter: bool = False,
    synthesis: bool = False,
    recon_table: bool = True,
    tile_threads: int = 0,
    scheduler: str | None = None,
    client: Any = None,
    carry_lag: int = 1,
) -> dict:
    """Compress ``source`` (a cube or an open :class:`~hsicodec.io.raster.CubeReader`) into the
    tiled `.hsim` file ``dst``, one tile at a time; returns statistics.

    ``shared_basis``: one spectral stage for the scene, stored once (``tiles.sp``, section ``sp``; fitted on
    a sample of every tile in a first pass), that map-layer tiles code on instead of their own: 64 × 64
    tiles spend 4–6 % of their bits on side information instead of 12–17 % (bench/shared.md). At most
    :data:`SHARED_SHARE` of a rate target's bytes, else the tiles keep their own; never for ``max_error``.

    Each tile is compressed by :func:`hsicodec.codec.api.compress` with the same options.
    ``bpppb`` applies per tile: each gets the rate budget left (the target over the scene,
    less the outer file's own bytes) per remaining value, so the whole file lands at or near
    the target (thin edge tiles whose nested header alone exceeds their share are given
    more; see spec/hsim.md 11.6); ``psnr`` applies per tile (each tile's peak is its own
    max - min); ``max_error`` (``lossless``: 0) bounds every value of every tile. A tile whose every value
    is invalid (NaN/±Inf/nodata) is stored empty. Without a target (the default rate), or with
    ``or_smallest``, a tile the rate cannot reach gets its smallest file instead of an error
    (``target_fallback`` in the statistics).
    The compressed tiles are spooled to a temporary file beside ``dst``; the output appears
    atomically at the end.

    Tiles are encoded several at a time (:mod:`hsicodec.codec.tilepool`), the file the same whatever their
    number: ``tile_threads`` on local threads (0: one per 4 cores, :func:`~hsicodec.codec.tilepool.tile_encoders`),
    each encoder with its share of ``threads``; or, with ``scheduler`` (a Dask scheduler's address) or
    ``client`` (a ``distributed.Client``), as tasks on the cluster's workers, which need hsicodec and the
    models. A rate target's tiles wait for the bytes of the tiles ``carry_lag`` before them
    (:mod:`hsicodec.codec.tilebudget`; 1, the default: each tile for the one before, so at most one runs at a
    time); the file depends on ``carry_lag``, never on the threads or the cluster.
    """
    bpppb, psnr, max_error = one_target(bpppb, psnr, max_error, lossless)
    reader: CubeReader | _ArraySource
    if isinstance(source, np.ndarray) or not hasattr(source, "read"):
        cube = np.asarray(source)
        if cube.ndim == 2:
            cube = cube[:, :, None]
        if cube.ndim != 3 or 0 in cube.shape:
            raise OptionError(f"expected a (rows, cols, bands) cube, got shape {cube.shape}")
        reader = _ArraySource(cube, geo)
    else:
        reader = source
    if geo is None:
        geo = getattr(reader, "geo", None) or GeoInfo()
    shape, dtype = tuple(int(v) for v in reader.shape), np.dtype(reader.dtype)
    if dtype.kind not in "uif":
        raise OptionError(f"unsupported cube dtype {dtype}")
    grid = TileGrid.for_shape(shape, tile)
    try:
        grid.check(limits)
    except HsimLimitError as exc:
        raise OptionError(f"{exc}; choose a larger --tile") from None
    nd = nodata if nodata is not None else geo.nodata
    wl = wavelengths if wavelengths is not None else geo.wavelengths
    n_values = shape[0] * shape[1] * shape[2]
    shared = None
    if shared_basis and max_error is None and shape[2] > 1:
        rate = bpppb if bpppb is not None else (_default_bpppb() if psnr is None else None)
        cap = SHARED_SHARE * rate * n_values / 8.0 if rate is not None else math.inf
        shared = scene_stage(reader, grid, nd, cap)
    overhead = _overhead_bytes(shape, dtype, grid, geo, tags, created_by, limits, shared)
    target = None
    default = bpppb is None and psnr is None and max_error is None  # the default rate: never fails
    fallback_ok = default or (or_smallest and psnr is None and max_error is None)
    if psnr is None and max_error is None:
        target = _default_bpppb() if bpppb is None else float(bpppb)
        if not (math.isfinite(target) and target > 0):
            raise OptionError(f"--bpppb must be a positive number, not {bpppb}")
        if not fallback_ok and target - 8.0 * overhead / n_values <= 0.5 * target:
            raise OptionError(
                f"bpppb target {target:g} is too low for {grid.count} tiles: the tiled file's own "
                f"header takes {8.0 * overhead / n_values:.3g} bpppb; use larger tiles"
            )
    check_writable(dst, force)
    dst = Path(dst)
    t0 = time.perf_counter()
    index: list = []
    models: dict = {}
    tile_stats: list = []
    lo, hi, sse, n_valid = math.inf, -math.inf, 0.0, 0
    # rate budget: the target over the scene less the outer file's own bytes; each tile gets what is
    # left per remaining value, so a tile landing under its share leaves the rest to the next ones
    budget = None if target is None else CarryBudget(target, n_values, overhead, carry_lag)
    settings = dict(
        geo=None, model=model, psnr=psnr, max_error=max_error, effort=effort, progress=None, tags=None,
        threads=threads, registry=registry, backend=backend, created_by=False, band_map=band_map, wavelengths=wl,
        nodata=nd, layer=layer, latent_codings=latent_codings, shared_spectral=shared, post_filter=post_filter,
        synthesis=synthesis, recon_table=recon_table,
    )  # fmt: skip
    t_read = t_enc = 0.0
    fell_back = 0  # tiles that got their smallest file (the default rate was out of their reach)
    with contextlib.ExitStack() as stack:
        runner = _runner(stack, grid, threads, tile_threads, scheduler, client, registry)
        tmp = stack.enter_context(atomic_path(dst, force))
        fd, spool_name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tiles.part", dir=tmp.parent)
        spool_path = Path(spool_name)
        try:
            with os.fdopen(fd, "w+b") as spool:
                tiles = encoded_tiles(
                    reader, grid, settings, runner, nodata=nd, budget=budget, or_smallest=fallback_ok,
                    progress=progress, after_tile=release_memory,
                )  # fmt: skip
                for task, res in stack.enter_context(contextlib.closing(tiles)):
                    i, (r0, c0, h, w), (tmin, tmax, nv) = task.index, task.window, task.valid
                    data = res.data
                    if nv:
                        fell_back += res.fallback
                        models[res.model] = models.get(res.model, 0) + 1
                        lo, hi, n_valid = min(lo, tmin), max(hi, tmax), n_valid + nv
                        if res.psnr is not None and math.isfinite(res.psnr):
                            rng = (tmax - tmin) or 1.0
                            sse += nv * rng * rng / 10.0 ** (res.psnr / 10.0)
                    t_read += task.read_seconds
                    t_enc += res.seconds
                    spool.write(data)
                    index.append([section_name(i), len(data), _crc32c.crc32c(data)])
                    tile_stats.append(
                        {
                            "tile": i,
                            "window": [r0, c0, h, w],
                            "bytes": len(data),
                            "bpppb_target": res.rate if nv else task.rate,
                            "psnr": res.psnr if nv else None,
                            "k": res.k,
                        }
                    )
                    if progress:
                        progress((i + 1) / grid.count)
                    if tile_progress:
                        tile_progress(i + 1, grid.count)
                if not models:
                    raise OptionError("every value of the cube is nodata/NaN/Inf: nothing to compress")
                empty = sum(1 for e in index if e[1] == 0)
                fill = None
                if empty:
                    fill = float(nd) if nd is not None else float("nan")
                first_model = next((m for m in models if m is not None), None)
                header = _outer_header(shape, dtype, first_model, grid, fill, geo, tags, created_by, shared)
                if shared is not None:  # its stream goes first, before the tiles
                    index.insert(0, [SHARED_SECTION, len(shared.data), _crc32c.crc32c(shared.data)])
                head = _pack_head(header, index, limits)
                total = len(head) + sum(e[1] for e in index) + TRAILER_SIZE  # the shared stream is in the index
                if total > limits.max_file_bytes:
                    raise HsimLimitError(f"file would be {total} bytes, exceeds the limit of {limits.max_file_bytes}")
                tc = time.perf_counter()
                with open(tmp, "wb") as out:
                    crc = _crc32c.crc32c(head)
                    out.write(head)
                    if shared is not None:
                        crc = _crc32c.crc32c(shared.data, crc)
                        out.write(shared.data)
                    spool.seek(0)
                    while True:
                        chunk = spool.read(_COPY_CHUNK)
                        if not chunk:
                            break
                        crc = _crc32c.crc32c(chunk, crc)
                        out.write(chunk)
                    out.write(struct.pack("<I", crc))
                    out.flush()
                    os.fsync(out.fileno())
                t_write = time.perf_counter() - tc
        finally:
            with contextlib.suppress(FileNotFoundError):
                spool_path.unlink()
    psnr_est = None
    if n_valid and sse > 0:
        rng = (hi - lo) or 1.0
        psnr_est = 10.0 * math.log10(rng * rng / (sse / n_valid))
    elif n_valid:
        psnr_est = math.inf
    return {
        "output": str(dst),
        "shape": list(shape),
        "dtype": dtype.name,
        "bytes": total,
        "bpppb": bpppb_of(total, shape),
        "psnr": psnr_est,
        "tiled": True,
        "tiles": {
            "size": [grid.tile_h, grid.tile_w],
            "grid": [grid.rows, grid.cols],
            "count": grid.count,
            "empty": empty,
        },
        "bpppb_target": target,
        "target_bpppb": target,
        "target_default": default,
        # the default rate out of reach (tiles at their smallest file, or the outer header's own bytes)
        "target_fallback": (
            "smallest file"
            if fallback_ok and target is not None and (fell_back or bpppb_of(total, shape) > target)
            else None
        ),
        "header_bytes": len(head),
        "shared_spectral_bytes": None if shared is None else len(shared.data),
        "model": first_model,
        "models": models,
        "per_tile": tile_stats,
        # tiles encoded at once: the local threads or the cluster's worker threads, a rate target's carry lag
        "tiles_at_once": runner.parallel if budget is None else min(runner.parallel, budget.lag),
        "cluster": runner.cluster,
        "read_seconds": t_read,
        "encode_seconds": t_enc,
        "write_seconds": t_write,
        "total_seconds": time.perf_counter() - t0,
    }


def _runner(
    stack: contextlib.ExitStack, grid: TileGrid, threads: int, tile_threads: int, scheduler, client, registry
) -> TileRunner:
    """Where the tiles are encoded: the cluster of ``client`` or ``scheduler`` (connected here, closed with
    ``stack``), else ``tile_threads`` local threads (one: in this thread)."""
    if client is None and not scheduler:
        workers = tile_encoders(tile_threads, grid.count)
        runner = TileRunner() if workers == 1 else ThreadRunner(workers, threads)
    else:
        if registry is not None:
            raise OptionError("a model registry cannot be sent to the Dask workers: install the models there")
        if client is None:
            from hsicodec.integrations.cluster import scheduler_client

            client = stack.enter_context(scheduler_client(str(scheduler), "--scheduler"))
        runner = ClusterRunner(client)
    stack.callback(runner.close)
    return runner


def compress_tiled(cube: np.ndarray, *, tile: int | tuple = DEFAULT_TILE, stats: dict | None = None, **kwargs) -> bytes:
    """Compress an in-memory cube into tiled `.hsim` bytes (see :func:`write_tiled` for the options)."""
    with tempfile.TemporaryDirectory(prefix="hsicodec-tiled-") as d:
        out = Path(d) / "cube.hsim"
        st = write_tiled(cube, out, tile=tile, **kwargs)
        if stats is not None:
            stats.update(st)
        return out.read_bytes()


def compress_file_tiled(
    src: PathLike,
    dst: PathLike,
    *,
    tile: int | tuple | None = None,
    var: str | None = None,
    band_first: bool = False,
    force: bool = False,
    **kwargs,
) -> dict:
    """Read the raster ``src`` by tile windows and write the tiled `.hsim` ``dst``; returns statistics."""
    check_writable(dst, force)
    t0 = time.perf_counter()
    with open_cube_reader(src, var=var, band_first=band_first) as reader:
        stats = write_tiled(reader, dst, tile=tile or DEFAULT_TILE, force=force, **kwargs)
    stats.update({"input": str(src), "total_seconds": time.perf_counter() - t0})
    return stats


# --------------------------------------------------------------------------- reading
