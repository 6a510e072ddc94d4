"""The public codec API: cubes and files in, `.hsim` bytes and files out, and back.

This module only wires the pieces together: raster I/O, one cube's codec (:mod:`hsicodec.codec.cube`)
and tiled files (:mod:`hsicodec.codec.tiled`). The CLI is a thin layer over it.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from typing import Callable, Union

import numpy as np

from hsicodec.codec.blas import uses_one_blas_thread
from hsicodec.codec.cube import (  # noqa: F401  (the public names of one cube's codec, re-exported)
    AUTO_MODELS,
    CREATED_BY,
    DEFAULT_MODEL,
    _model_by_hash,
    compress,
    decompress_untiled,
    load_codec_model,
)
from hsicodec.codec.memory import uses_codec_pages
from hsicodec.coding.shared import SharedSpectral
from hsicodec.errors import HsicodecError, HsimHeaderError, OptionError
from hsicodec.format.container import HsimReader, encode_hsim  # noqa: F401  (re-exported for users)
from hsicodec.io.atomic import check_writable, write_bytes_atomic
from hsicodec.io.raster import GeoInfo, read_cube, read_info, write_cube
from hsicodec.metrics import bpppb as bpppb_of
from hsicodec.models.registry import Registry, default_registry

PathLike = Union[str, "os.PathLike[str]"]


@uses_codec_pages
@uses_one_blas_thread
def decompress(
    source: bytes | PathLike | HsimReader,
    *,
    window: tuple | None = None,
    bands: tuple | None = None,
    threads: int = 0,
    backend: str = "auto",
    registry: Registry | None = None,
    progress: Callable[[float], None] | None = None,
    reduce: int = 0,
    shared_spectral: SharedSpectral | None = None,
) -> tuple[np.ndarray, GeoInfo]:
    """Decode a `.hsim` (bytes, path or open reader) to (cube in its original dtype, geo metadata).

    ``window`` = (row, col, height, width) and ``bands`` = (start, stop) decode
    only that part; the geo transform and band metadata are adjusted to match.
    ``reduce`` n > 0 gives the image 2^n times smaller on each side, one pixel per 2^n × 2^n block (a window,
    in full-resolution pixels, is widened to whole blocks): for coefficient-map files (the default) an
    estimate of the block means from the coarse wavelet levels alone (decoded 4^n times faster, not equal to
    the means of the full decode), for other layers' files the exact block means of the full decode; see
    :mod:`hsicodec.coding.reduce`.
    ``shared_spectral``: the shared spectral stage a file made with one needs (a zarr chunk's; a tiled
    file holds its own).
    """
    reader = source if isinstance(source, HsimReader) else HsimReader(source)
    try:
        if _is_tiled(reader.header):  # format 1.1 tiled file: decoded tile by tile (hsicodec.codec.tiled)
            from hsicodec.codec.tiled import decompress_tiled

            return decompress_tiled(
                reader, window=window, bands=bands, threads=threads, backend=backend, registry=registry,
                progress=progress, reduce=reduce,
            )  # fmt: skip
        return decompress_untiled(
            reader, window=window, bands=bands, threads=threads, backend=backend, registry=registry, progress=progress,
            reduce=reduce, shared_spectral=shared_spectral,
        )  # fmt: skip
    finally:
        if reader is not source:
            reader.close()


@uses_codec_pages
@uses_one_blas_thread
def compress_file(
    src: PathLike,
    dst: PathLike,
    *,
    force: bool = False,
    var: str | None = None,
    band_first: bool = False,
    tile: int | None = None,
    tile_progress: Callable[[int, int], None] | None = None,
    shared_basis: bool = False,
    tile_threads: int = 0,
    scheduler: str | None = None,
    carry_lag: int = 1,
    **kwargs,
) -> dict:
    """Read a raster, compress it and write the `.hsim` atomically; returns statistics.

    ``tile`` N > 0 writes a tiled file (N x N tiles, read and compressed one at a time:
    memory does not grow with the scene, see :mod:`hsicodec.codec.tiled`); 0 never tiles;
    None (default) tiles inputs over :data:`hsicodec.codec.tiled.AUTO_TILE_VALUES` values.
    ``shared_basis``: the tiles share one spectral stage stored once in the file (tiled files only;
    :func:`hsicodec.codec.tiled.write_tiled`). A tiled file's tiles are encoded ``tile_threads`` at a time
    (0: auto), or with ``scheduler`` (a Dask scheduler's address, e.g. ``tcp://host:8786``) on that
    cluster's workers; the file is the same either way (:func:`hsicodec.codec.tiled.write_tiled`). With a rate
    target, ``carry_lag`` N lets N tiles be encoded at once (each tile's budget waits for the bytes of the tile
    N before it; the file depends on N).
    """
    from hsicodec.io.hsimfile import check_hsim_output

    check_hsim_output(dst)  # a raster extension (out.tif): refused, the file would be a .hsim
    check_writable(dst, force)
    from hsicodec.codec import tiled as stream

    if stream.should_tile(src, tile, var=var, band_first=band_first):
        return stream.compress_file_tiled(
            src, dst, tile=tile, var=var, band_first=band_first, force=force, tile_progress=tile_progress,
            shared_basis=shared_basis, tile_threads=tile_threads, scheduler=scheduler, carry_lag=carry_lag,
            **kwargs,
        )  # fmt: skip
    if shared_basis:
        raise OptionError("--shared-basis is for tiled files: give --tile N (its tiles share the stage)")
    if scheduler or kwargs.get("client") is not None:
        raise OptionError("--scheduler spreads the tiles of a tiled file over a Dask cluster: give --tile N")
    t0 = time.perf_counter()
    cube, geo = read_cube(src, var=var, band_first=band_first)
    stats: dict = {}
    data = compress(cube, geo=geo, stats=stats, **kwargs)
    write_bytes_atomic(dst, data, force=force)
    stats.update(
        {
            "input": str(src),
            "output": str(dst),
            "shape": list(cube.shape),
            "dtype": cube.dtype.name,
            "bytes": len(data),
            "bpppb": bpppb_of(len(data), cube.shape),
            "total_seconds": time.perf_counter() - t0,
        }
    )
    return stats


@uses_codec_pages
@uses_one_blas_thread
def decompress_file(
    src: PathLike,
    dst: PathLike,
    *,
    force: bool = False,
    format: str | None = None,
    window: tuple | None = None,
    bands: tuple | None = None,
    threads: int = 0,
    progress: Callable[[float], None] | None = None,
    tile_progress: Callable[[int, int], None] | None = None,
    backend: str = "auto",
    bounds: Sequence[float] | None = None,
    creation_options: Mapping[str, str] | Sequence[str] | None = None,
    reduce: int = 0,
    tile_threads: int = 0,
) -> dict:
    """Decode a `.hsim` file and write the raster atomically (GeoTIFF, ENVI or .npy).

    A tiled file is decoded and written tile by tile (only the tiles ``window`` touches); with ``reduce``
    n > 0 the image 2^n times smaller (:func:`decompress`) is decoded in memory (4^n times less of it) and
    written with its scaled geo transform.
    ``bounds`` (left, bottom, right, top) in the file's map coordinates picks the window instead
    of ``window`` (:func:`bounds_window`). ``creation_options``: GDAL GeoTIFF creation options
    (``{"COMPRESS": "ZSTD"}`` or ``["TILED=NO"]``) over the default layout (256x256 tiles, DEFLATE
    with a predictor); OptionError for another output format. ``tile_threads``: tiles of a tiled file decoded at
    once (0: one, :data:`hsicodec.codec.tiledecode.RASTER_TILE_THREADS`); each holds its decoded tile in memory.
    """
    check_writable(dst, force)
    if bounds is not None and window is not None:
        raise OptionError("give a pixel window or map bounds, not both")
    from hsicodec.io.raster import parse_creation_options, write_format

    if creation_options and write_format(dst, format) != "gtiff":
        raise OptionError(
            f"--co (GDAL creation options) applies to GeoTIFF output only, not {write_format(dst, format)} ({dst})"
        )
    options = parse_creation_options(creation_options) or None  # malformed: refused before decoding
    with HsimReader(src) as reader:
        if bounds is not None:
            window = bounds_window(reader.header, bounds)
        if _is_tiled(reader.header) and not reduce:
            from hsicodec.codec.tiled import decompress_file_tiled

            stats = decompress_file_tiled(
                reader,
                dst,
                force=force,
                format=format,
                window=window,
                bands=bands,
                threads=threads,
                backend=backend,
                progress=progress,
                tile_progress=tile_progress,
                creation_options=options,
                tile_threads=tile_threads,
            )
            stats["input"] = str(src)
            if bounds is not None:
                stats["window"] = list(window)  # type: ignore[arg-type]
            return stats
    t0 = time.perf_counter()
    cube, geo = decompress(
        src, window=window, bands=bands, threads=threads, backend=backend, progress=progress, reduce=reduce
    )
    t1 = time.perf_counter()
    write_cube(dst, cube, geo, format=format, force=force, creation_options=options)
    return {
        "input": str(src),
        "output": str(dst),
        "shape": list(cube.shape),
        "dtype": cube.dtype.name,
        **({"window": list(window)} if bounds is not None and window is not None else {}),
        **({"reduce": reduce} if reduce else {}),
        "decode_seconds": t1 - t0,
        "total_seconds": time.perf_counter() - t0,
    }


#: pixel coordinates within this of a pixel edge count as on it (map bounds given to a few decimals)
_EDGE_TOLERANCE = 1e-6


def bounds_window(header: Mapping, bounds: Sequence[float]) -> tuple[int, int, int, int]:
    """The pixel window ``(row, col, height, width)`` of map ``bounds`` (left, bottom, right, top) in a
    `.hsim` header's georeferencing, like rio's ``--bounds`` and gdal_translate's ``-projwin``.

    The box's corners go through the inverse of the file's geo transform; the window is rounded
    outward to whole pixels and clipped to the image. OptionError for a file without a transform,
    an empty or non-finite box, or a box that misses the image (the message gives the image's bounds).
    """
    try:
        left, bottom, right, top = (float(v) for v in bounds)
    except (TypeError, ValueError):
        raise OptionError(f"--bounds needs four numbers LEFT BOTTOM RIGHT TOP, got {bounds!r}") from None
    if not all(math.isfinite(v) for v in (left, bottom, right, top)):
        raise OptionError(f"--bounds {left:g} {bottom:g} {right:g} {top:g}: every coordinate must be finite")
    if not (left < right and bottom < top):
        raise OptionError(
            f"--bounds {left:g} {bottom:g} {right:g} {top:g}: expected LEFT < RIGHT and BOTTOM < TOP (an empty box)"
        )
    rows, cols = int(header["shape"][0]), int(header["shape"][1])
    geo = GeoInfo.from_header(header.get("geo"), n_bands=int(header["shape"][2]))
    if geo.transform is None:
        raise OptionError("--bounds needs a georeferenced file, and this one has no geo transform; use --window")
    a, b, c, d, e, f = (float(v) for v in geo.transform)
    det = a * e - b * d
    if det == 0 or not math.isfinite(det):
        raise OptionError("--bounds: the file's geo transform cannot be inverted; use --window")

    def pixel(x: float, y: float) -> tuple[float, float]:  # (col, row) of map point (x, y)
        return (e * (x - c) - b * (y - f)) / det, (a * (y - f) - d * (x - c)) / det

    corners = [pixel(x, y) for x in (left, right) for y in (bottom, top)]
    col_lo = max(0, math.floor(min(p[0] for p in corners) + _EDGE_TOLERANCE))
    col_hi = min(cols, math.ceil(max(p[0] for p in corners) - _EDGE_TOLERANCE))
    row_lo = max(0, math.floor(min(p[1] for p in corners) + _EDGE_TOLERANCE))
    row_hi = min(rows, math.ceil(max(p[1] for p in corners) - _EDGE_TOLERANCE))
    if col_lo >= col_hi or row_lo >= row_hi:
        xs = [a * cc + b * rr + c for cc in (0, cols) for rr in (0, rows)]
        ys = [d * cc + e * rr + f for cc in (0, cols) for rr in (0, rows)]
        raise OptionError(
            f"--bounds {left:g} {bottom:g} {right:g} {top:g} do not overlap the image "
            f"(its bounds: {min(xs):g} {min(ys):g} {max(xs):g} {max(ys):g})"
        )
    return row_lo, col_lo, row_hi - row_lo, col_hi - col_lo


#: ``raster_info`` measures the default compress only on cubes of at most this many values (2**21: e.g.
#: 100 x 100 x 205, a second or two); larger ones report the default target without measuring it.
INFO_ESTIMATE_VALUES = 1 << 21


def raster_info(
    path: PathLike,
    *,
    var: str | None = None,
    band_first: bool = False,
    estimate: bool = True,
    max_values: int | None = None,
) -> dict:
    """Summary of a raster the codec reads (GeoTIFF or any GDAL raster, ENVI, ``.npy``, ``.mat``): shape,
    dtype, CRS, transform and bounds, nodata, spectral metadata, and what a default ``compress`` gives.

    The metadata is read without the pixels. ``default_compress`` is measured (the default compress run
    in memory: bytes, bpppb, PSNR, layer, and whether the default rate fell back to the smallest file)
    when ``estimate`` and the cube holds at most ``max_values`` (default :data:`INFO_ESTIMATE_VALUES`) values;
    otherwise it states the default target and why it was not measured.
    """
    from hsicodec.codec.analysis import DEFAULT_BPPPB
    from hsicodec.codec.tiled import AUTO_TILE_VALUES
    from hsicodec.io.raster import raster_format

    shape, dtype, geo = read_info(path, var=var, band_first=band_first)
    n_values = int(shape[0]) * int(shape[1]) * int(shape[2])
    try:
        fmt: str | None = raster_format(path)
    except HsicodecError:
        fmt = None  # something else GDAL opens
    out: dict = {
        "path": str(path),
        "format": fmt,
        "shape": [int(v) for v in shape],
        "dtype": np.dtype(dtype).name,
        "raw_bytes": n_values * np.dtype(dtype).itemsize,
        "crs": geo.crs_wkt,
        "transform": list(geo.transform) if geo.transform is not None else None,
        "bounds": _map_bounds(geo.transform, int(shape[0]), int(shape[1])),
        "nodata": geo.nodata,
        "wavelengths": geo.wavelengths,
        "wavelength_units": geo.wavelength_units,
        "fwhm": geo.fwhm,
        "band_names": geo.band_names,
        "units": geo.units,
    }
    max_values = INFO_ESTIMATE_VALUES if max_values is None else int(max_values)
    dc: dict = {"target_bpppb": DEFAULT_BPPPB, "tiled": n_values > AUTO_TILE_VALUES, "measured": False}
    if not estimate:
        dc["reason"] = "not asked for"
    elif n_values > max_values:
        dc["reason"] = f"the cube has {n_values:,} values, over the {max_values:,} that info compresses to measure"
    else:
        t0 = time.perf_counter()
        cube, full_geo = read_cube(path, var=var, band_first=band_first)
        st: dict = {}
        data = compress(cube, geo=full_geo, stats=st)
        dc.update(
            measured=True,
            bytes=len(data),
            bpppb=bpppb_of(len(data), cube.shape),
            psnr=st.get("psnr"),
            layer=st.get("layer"),
            target_fallback=st.get("target_fallback"),
            ratio=(n_values * np.dtype(dtype).itemsize) / len(data),
            seconds=time.perf_counter() - t0,
        )
    out["default_compress"] = dc
    return out


def _map_bounds(transform, rows: int, cols: int) -> list[float] | None:
    """[left, bottom, right, top] of an image under a geo transform (None without one)."""
    if transform is None:
        return None
    a, b, c, d, e, f = (float(v) for v in transform)
    xs = [a * cc + b * rr + c for cc in (0, cols) for rr in (0, rows)]
    ys = [d * cc + e * rr + f for cc in (0, cols) for rr in (0, rows)]
    return [min(xs), min(ys), max(xs), max(ys)]


def file_info(path: PathLike, registry: Registry | None = None) -> dict:
    """Summary of a `.hsim` file's header: shape, dtype, model, codec parameters, geo, sections, rate."""
    with HsimReader(path) as r:
        h = r.header
        size = r.file_size
        spans = r.section_spans
        version = r.version
    try:
        shape = tuple(int(v) for v in h["shape"])
    except (KeyError, TypeError, ValueError) as exc:
        raise HsimHeaderError(f"header key 'shape': {exc}") from exc
    reg = registry or default_registry()
    try:
        entry = reg.resolve(h["model"]) if "model" in h else None
    except HsicodecError:  # the model may not be installed: info still works
        entry = None
    alias = entry.alias if entry is not None else None
    needed = "model" in h
    return {
        "path": str(path),
        "format_version": f"{version[0]}.{version[1]}",
        "file_bytes": size,
        "shape": list(shape),
        "dtype": h["dtype"],
        "bpppb": bpppb_of(size, shape),
        "model": h.get("model"),
        "model_alias": alias,
        "model_needed": needed,
        "model_installed": (entry is not None) if needed else None,
        "coding": _coding_info(h, entry, registry) if not _is_tiled(h) else None,
        "codec": h.get("codec"),
        "geo": h.get("geo"),
        "tags": h.get("tags"),
        "sections": {name: length for name, (_, length) in spans.items()},
        "created_by": h.get("created_by"),
        **({"tiles": _tiles_info(h, spans)} if _is_tiled(h) else {}),
    }


def _coding_info(header: dict, entry, registry: Registry | None) -> dict:
    """The spectral stage and layers of an untiled file (an error text where they cannot be read)."""
    from hsicodec.codec.decode import describe

    try:
        model = _model_by_hash(header["model"], registry) if entry is not None else None
        return describe(header, model)
    except HsicodecError as exc:
        return {"error": str(exc)}


def _is_tiled(header: dict) -> bool:
    """A format-1.1 tiled file (codec id "tiled"): handled by :mod:`hsicodec.codec.tiled`."""
    c = header.get("codec") if isinstance(header, dict) else None
    return isinstance(c, dict) and c.get("id") == "tiled"


def _tiles_info(header: dict, spans: dict) -> dict:
    from hsicodec.codec.tiled import tiles_info

    return tiles_info(header, spans)
