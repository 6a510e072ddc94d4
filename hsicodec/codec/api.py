"""The public codec API: cubes and files in, `.hsim` bytes and files out, and back.

This module only wires the pieces together: raster I/O, the registry, the
encoder, the container and the decoder. The CLI is a thin layer over it.
"""

from __future__ import annotations

import os
import time
from typing import Callable, Union

import numpy as np

from hsicodec._version import __version__
from hsicodec.codec.decoder import decode_sections
from hsicodec.codec.mask import decode_mask, encode_mask, fill_invalid, fill_value, invalid_mask
from hsicodec.errors import HsicodecError, HsimHeaderError, OptionError
from hsicodec.format.container import HsimReader, encode_hsim  # noqa: F401  (re-exported for users)
from hsicodec.io.atomic import check_writable, write_bytes_atomic
from hsicodec.io.raster import GeoInfo, cast_to_dtype, read_cube, write_cube
from hsicodec.layers.network.model import CodecModel, codec_model
from hsicodec.metrics import bpppb as bpppb_of
from hsicodec.models.registry import Registry, default_registry

PathLike = Union[str, "os.PathLike[str]"]
DEFAULT_MODEL = "hsi-grid-v1"
# compress(model=None) tries these bundled models and keeps the better file (a per-file RD choice):
# the plain model wins at very low rates on some scenes, the adaptive grid model elsewhere
AUTO_MODELS = ("hsi-grid-v1", "hsi-plain-v1")


def load_codec_model(ref: str | None = None, registry: Registry | None = None) -> CodecModel:
    """Resolve a model id, prefix or alias (default: the bundled default model)."""
    reg = registry or default_registry()
    return codec_model(reg.load(ref or DEFAULT_MODEL))


def _model_by_hash(sha: str, registry: Registry | None) -> CodecModel:
    reg = registry or default_registry()
    return codec_model(reg.load_by_hash(sha))


def compress(
    cube: np.ndarray,
    *,
    geo: GeoInfo | None = None,
    model: str | None = None,
    bpppb: float | None = None,
    psnr: float | None = None,
    effort: str | int = "default",
    progress: Callable[[float], None] | None = None,
    tags: dict | None = None,
    threads: int = 0,
    registry: Registry | None = None,
    stats: dict | None = None,
    backend: str = "auto",
    created_by: bool = False,
    band_map=None,
    wavelengths=None,
    nodata: float | None = None,
    latent_codings: tuple | None = None,
) -> bytes:
    """Compress a (rows, cols, bands) cube to `.hsim` bytes.

    ``bpppb`` lands at or under the target; ``psnr`` reaches at least the target
    where the model can (else OptionError); neither: 0.05 bpppb. ``stats``, if
    given, is filled with the encoder's figures (k, step, psnr, times).
    ``band_map`` / ``wavelengths`` match bands to the outputs of a plain
    (non-adaptive) model; PCA-adaptive models ignore them. NaN, ±Inf and
    ``nodata`` values (default: the geo metadata's) are kept as an exact mask
    and decode to the nodata value (NaN without one). ``model=None`` (or
    "auto") encodes with each of :data:`AUTO_MODELS` and keeps the file with the
    higher PSNR (rate target) or the smaller size (quality target).
    ``latent_codings`` (names of :data:`hsicodec.codec.encoder.CODINGS`) restricts the
    layers and codings the encoder may choose from, e.g. ``("maps",)`` for the
    coefficient-map layer alone or ``("haar+klt",)`` for the network's latents only.
    """
    from hsicodec.codec.encoder import encode

    cube = np.asarray(cube)
    if cube.ndim == 2:
        cube = cube[:, :, None]
    if cube.ndim != 3:
        raise OptionError(f"expected a (rows, cols, bands) cube, got {cube.ndim} dimensions")
    if cube.dtype.kind not in "uif" or cube.dtype == np.float16:
        raise OptionError(
            f"unsupported cube dtype {cube.dtype}" + ("; convert it to float32" if cube.dtype == np.float16 else "")
        )
    if model in (None, "auto"):
        return _compress_auto(
            cube,
            registry=registry,
            stats=stats,
            progress=progress,
            geo=geo,
            bpppb=bpppb,
            psnr=psnr,
            effort=effort,
            tags=tags,
            threads=threads,
            backend=backend,
            created_by=created_by,
            band_map=band_map,
            wavelengths=wavelengths,
            nodata=nodata,
            latent_codings=latent_codings,
        )
    cm = load_codec_model(model, registry)
    header = {"shape": [int(v) for v in cube.shape], "dtype": cube.dtype.name, "model": cm.sha256}
    nodata = nodata if nodata is not None else (geo.nodata if geo is not None else None)
    mask = invalid_mask(cube, nodata)
    extra: tuple = ()
    if mask is not None:
        fill = float(nodata) if nodata is not None else float("nan")
        header["mask"] = {"fill": fill}
        extra = (("m", encode_mask(mask)),)
        cube = fill_invalid(cube, mask)
    if created_by:
        header["created_by"] = CREATED_BY
    if geo is not None and not geo.is_empty():
        header["geo"] = geo.to_header()
    if tags:
        header["tags"] = {str(k): str(v) for k, v in tags.items()}
    if wavelengths is None and geo is not None and geo.wavelengths:
        wavelengths = geo.wavelengths
    data, st = encode(
        cube,
        cm,
        bpppb=bpppb,
        psnr=psnr,
        effort=effort,
        base_header=header,
        threads=threads,
        progress=progress,
        backend=backend,
        band_map=band_map,
        wavelengths=wavelengths,
        extra_sections=extra,
        valid=None if mask is None else ~mask,
        latent_codings=latent_codings,
    )
    if stats is not None:
        stats.update(st)
        uses_model = st.get("layer") != "maps"  # a map-layer-only file names no model
        stats["model"] = cm.sha256 if uses_model else None
        stats["model_alias"] = cm.alias if uses_model else None
    return data


def _compress_auto(
    cube: np.ndarray,
    *,
    registry: Registry | None,
    stats: dict | None,
    progress: Callable[[float], None] | None,
    psnr: float | None,
    **kwargs,
) -> bytes:
    """Encode with every installed AUTO_MODELS model and keep the best file."""
    reg = registry or default_registry()
    models = []
    for alias in AUTO_MODELS:
        try:
            reg.resolve(alias)
            models.append(alias)
        except HsicodecError:
            continue
    if not models:
        models = [DEFAULT_MODEL]  # raises the registry's clear "not found" below
    best, first_error = None, None
    for i, alias in enumerate(models):
        part = (lambda f, i=i: progress((i + f) / len(models))) if progress else None
        st: dict = {}
        try:
            data = compress(cube, model=alias, registry=registry, stats=st, progress=part, psnr=psnr, **kwargs)
        except OptionError as exc:  # this model cannot serve the cube or the target
            first_error = first_error or exc
            continue
        better = best is None or (len(data) < len(best[0]) if psnr is not None else st["psnr"] > best[1]["psnr"])
        if better:
            best = (data, st)
        if st.get("maps_first"):
            break  # below effort max a map-layer file ends the choice: the other models' latents lose to it
    if best is None:
        raise first_error
    if stats is not None:
        stats.update(best[1])
        stats["auto_models"] = models
    return best[0]


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
                reader,
                window=window,
                bands=bands,
                threads=threads,
                backend=backend,
                registry=registry,
                progress=progress,
            )
        reader.verify()  # whole-file CRC32C: any changed byte is an error, never wrong pixels
        header = reader.header
        cm = _model_by_hash(header["model"], registry) if "model" in header else None  # map-layer-only file
        values = decode_sections(
            header, reader.section, cm, window=window, bands=bands, backend=backend, threads=threads, progress=progress
        )
        if "mask" in header:
            values = _apply_mask(values, header, reader.section("m"), window, bands)
    finally:
        if reader is not source:
            reader.close()
    geo = GeoInfo.from_header(header.get("geo"), n_bands=int(header["shape"][2]))
    cube = cast_to_dtype(values, np.dtype(header["dtype"]), geo.nodata)
    if window is not None or bands is not None:
        r0, c0, h, w = window if window is not None else (0, 0, values.shape[0], values.shape[1])
        a, b = bands if bands is not None else (0, int(header["shape"][2]))
        geo = geo.subset(slice(r0, r0 + h), slice(c0, c0 + w), slice(a, b))
    return cube, geo


def _apply_mask(values: np.ndarray, header: dict, data: bytes, window: tuple | None, bands: tuple | None) -> np.ndarray:
    """Put the header's fill value back at every masked position of the decoded window."""
    m = header["mask"]
    if not isinstance(m, dict):
        raise HsimHeaderError("header key 'mask': expected a map")
    fill = fill_value(m.get("fill"))
    shape = tuple(int(v) for v in header["shape"])
    mask = decode_mask(data, shape)
    r0, c0, h, w = window if window is not None else (0, 0, shape[0], shape[1])
    a, b = bands if bands is not None else (0, shape[2])
    values = np.array(values, np.float64)
    masked = mask[r0 : r0 + h, c0 : c0 + w, a:b]
    _keep_off_fill(values, ~masked, fill, np.dtype(header["dtype"]))
    values[masked] = fill
    return values


def _keep_off_fill(values: np.ndarray, valid: np.ndarray, fill: float, dtype: np.dtype) -> None:
    """Move valid values that would cast to the fill value to the nearest value on their side (integers:
    fill ± 1, inward at the ends of the range), so that after the cast the fill marks exactly the masked
    positions."""
    if np.isnan(fill):
        return
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        hit = valid & (np.clip(np.rint(values), info.min, info.max) == fill)
        up = (values >= fill) if fill < info.max else np.zeros_like(hit)
        up |= fill <= info.min
        values[hit & up] = fill + 1
        values[hit & ~up] = fill - 1
    else:
        f = dtype.type(fill)
        hit = valid & (values.astype(dtype) == f)
        values[hit] = np.where(
            values[hit] >= fill, np.nextafter(f, dtype.type(np.inf)), np.nextafter(f, dtype.type(-np.inf))
        )


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
    return {
        "path": str(path),
        "format_version": f"{version[0]}.{version[1]}",
        "file_bytes": size,
        "shape": list(shape),
        "dtype": h["dtype"],
        "bpppb": bpppb_of(size, shape),
        "model": h.get("model"),
        "model_alias": alias,
        "model_installed": entry is not None,
        "codec": h.get("codec"),
        "geo": h.get("geo"),
        "tags": h.get("tags"),
        "sections": {name: length for name, (_, length) in spans.items()},
        "created_by": h.get("created_by"),
        **({"tiles": _tiles_info(h, spans)} if _is_tiled(h) else {}),
    }


def _is_tiled(header: dict) -> bool:
    """A format-1.1 tiled file (codec id "tiled"): handled by :mod:`hsicodec.codec.tiled`."""
    c = header.get("codec") if isinstance(header, dict) else None
    return isinstance(c, dict) and c.get("id") == "tiled"


def _tiles_info(header: dict, spans: dict) -> dict:
    from hsicodec.codec.tiled import tiles_info

    return tiles_info(header, spans)


CREATED_BY = f"hsicodec {__version__}"
