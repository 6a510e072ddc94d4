"""The public codec API: cubes and files in, `.hsim` bytes and files out, and back.

This module only wires the pieces together: raster I/O, one cube's codec (:mod:`hsicodec.codec.cube`)
and tiled files (:mod:`hsicodec.codec.tiled`). The CLI is a thin layer over it.
"""

from __future__ import annotations

import os
import time
from typing import Callable, Union

import numpy as np

from hsicodec.codec.cube import (  # noqa: F401  (the public names of one cube's codec, re-exported)
    AUTO_MODELS,
    CREATED_BY,
    DEFAULT_MODEL,
    _model_by_hash,
    compress,
    decompress_untiled,
    load_codec_model,
)
from hsicodec.errors import HsicodecError, HsimHeaderError
from hsicodec.format.container import HsimReader, encode_hsim  # noqa: F401  (re-exported for users)
from hsicodec.io.atomic import check_writable, write_bytes_atomic
from hsicodec.io.raster import GeoInfo, read_cube, write_cube
from hsicodec.metrics import bpppb as bpppb_of
from hsicodec.models.registry import Registry, default_registry

PathLike = Union[str, "os.PathLike[str]"]


def decompress(
    source: bytes | PathLike | HsimReader,
    *,
    window: tuple | None = None,
    bands: tuple | None = None,
    threads: int = 0,
    backend: str = "auto",
    registry: Registry | None = None,
    progress: Callable[[float], None] | None = None,
) -> tuple[np.ndarray, GeoInfo]:
    """Decode a `.hsim` (bytes, path or open reader) to (cube in its original dtype, geo metadata).

    ``window`` = (row, col, height, width) and ``bands`` = (start, stop) decode
    only that part; the geo transform and band metadata are adjusted to match.
    """
    reader = source if isinstance(source, HsimReader) else HsimReader(source)
    try:
        if _is_tiled(reader.header):  # format 1.1 tiled file: decoded tile by tile (hsicodec.codec.tiled)
            from hsicodec.codec.tiled import decompress_tiled

            return decompress_tiled(
                reader, window=window, bands=bands, threads=threads, backend=backend, registry=registry,
                progress=progress,
            )  # fmt: skip
        return decompress_untiled(
            reader, window=window, bands=bands, threads=threads, backend=backend, registry=registry, progress=progress
        )
    finally:
        if reader is not source:
            reader.close()


def compress_file(
    src: PathLike,
    dst: PathLike,
    *,
    force: bool = False,
    var: str | None = None,
    band_first: bool = False,
    tile: int | None = None,
    tile_progress: Callable[[int, int], None] | None = None,
    **kwargs,
) -> dict:
    """Read a raster, compress it and write the `.hsim` atomically; returns statistics.

    ``tile`` N > 0 writes a tiled file (N x N tiles, read and compressed one at a time:
    memory does not grow with the scene, see :mod:`hsicodec.codec.tiled`); 0 never tiles;
    None (default) tiles inputs over :data:`hsicodec.codec.tiled.AUTO_TILE_VALUES` values.
    """
    from hsicodec.io.hsimfile import check_hsim_output

    check_hsim_output(dst)  # a raster extension (out.tif): refused, the file would be a .hsim
    check_writable(dst, force)
    from hsicodec.codec import tiled as stream

    if stream.should_tile(src, tile, var=var, band_first=band_first):
        return stream.compress_file_tiled(
            src, dst, tile=tile, var=var, band_first=band_first, force=force, tile_progress=tile_progress, **kwargs
        )
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
) -> dict:
    """Decode a `.hsim` file and write the raster atomically (GeoTIFF, ENVI or .npy).

    A tiled file is decoded and written tile by tile (only the tiles ``window`` touches).
    """
    check_writable(dst, force)
    with HsimReader(src) as reader:
        if _is_tiled(reader.header):
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
            )
            stats["input"] = str(src)
            return stats
    t0 = time.perf_counter()
    cube, geo = decompress(src, window=window, bands=bands, threads=threads, backend=backend, progress=progress)
    t1 = time.perf_counter()
    write_cube(dst, cube, geo, format=format, force=force)
    return {
        "input": str(src),
        "output": str(dst),
        "shape": list(cube.shape),
        "dtype": cube.dtype.name,
        "decode_seconds": t1 - t0,
        "total_seconds": time.perf_counter() - t0,
    }


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
