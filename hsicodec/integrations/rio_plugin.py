"""``rio hsim``: the `.hsim` commands as a rasterio CLI plugin (entry point group ``rasterio.rio_plugins``).

::

    rio hsim compress scene.tif scene.hsim --co BPPPB=0.1 --co TILE=512
    rio hsim decompress scene.hsim rgb.tif -b 30,20,10 --co COMPRESS=DEFLATE
    rio hsim info https://example.org/scene.hsim --indent 2

rio's conventions: ``INPUT OUTPUT`` arguments, an existing OUTPUT is refused without ``--overwrite``,
``-b/--bidx`` takes 1-based band indexes (``-b 5 -b 9``, ``-b 5,9`` or a range ``-b 3..7``), ``--co
KEY=VALUE`` creation options (keys in any case), ``-q`` for no summary line. Errors are one line on
stderr and exit status 1. Every command goes through hsicodec's API (:mod:`hsicodec.codec.api`, the
dataset of :func:`hsicodec.open`), so ``decompress`` and ``info`` also read URLs.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import numpy as np

from hsicodec.codec import api as _api
from hsicodec.errors import HsicodecError, OptionError
from hsicodec.integrations.dataset import HsimDataset, open_dataset, select_bands
from hsicodec.io import remote

__all__ = ["hsim", "COMPRESS_OPTIONS", "DECOMPRESS_OPTIONS", "parse_bidx"]

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

#: ``--co`` keys of ``compress`` and the keyword of :func:`hsicodec.compress_file` each sets.
COMPRESS_OPTIONS = {
    "BPPPB": "bpppb",
    "PSNR": "psnr",
    "MAX_ERROR": "max_error",
    "LOSSLESS": "lossless",
    "EFFORT": "effort",
    "MODEL": "model",
    "LAYER": "layer",
    "TILE": "tile",
    "BLOCKSIZE": "tile",
    "NODATA": "nodata",
    "NUM_THREADS": "threads",
}
#: ``--co`` keys of ``decompress`` (GeoTIFF output).
DECOMPRESS_OPTIONS = {"COMPRESS": "compress"}
#: ``-f/--format/--driver`` names and the format :func:`hsicodec.io.raster.write_cube` writes.
_DRIVERS = {"gtiff": "gtiff", "geotiff": "gtiff", "envi": "envi", "npy": "npy"}
_TRUE, _FALSE = {"yes", "true", "on", "1"}, {"no", "false", "off", "0"}


class _Abort(click.ClickException):
    """One line on stderr, exit status 1 (rio's convention for a failed command)."""


def _fail(exc: Exception) -> _Abort:
    """An hsicodec error (or an OSError: a missing file, a full disk) as one line."""
    text = " ".join((str(exc) or type(exc).__name__).split())
    return _Abort(text.replace("pass force=True to overwrite it", "use --overwrite to replace it"))


def parse_bidx(values: Sequence[str], count: int | None = None) -> list[int] | None:
    """``-b`` values (``5``, ``5,9``, ``3..7``; repeatable) as 1-based band indexes, None without any;
    each checked against ``count`` bands when given (click.BadParameter otherwise)."""
    out: list[int] = []
    for value in values:
        for part in str(value).split(","):
            part = part.strip()
            m = re.fullmatch(r"(\d+)\s*\.\.\s*(\d+)", part)
            if m:
                a, b = int(m.group(1)), int(m.group(2))
                if a > b:
                    raise click.BadParameter(f"range {part!r} runs backwards", param_hint="-b/--bidx")
                out.extend(range(a, b + 1))
            elif re.fullmatch(r"\d+", part):
                out.append(int(part))
            else:
                raise click.BadParameter(
                    f"{part!r} is not a band index (1-based: 5, 5,9 or 3..7)", param_hint="-b/--bidx"
                )
    for i in out:
        if i < 1 or (count is not None and i > count):
            have = f"1..{count}" if count is not None else "1 and up"
            raise click.BadParameter(f"band {i} does not exist (bands are {have})", param_hint="-b/--bidx")
    return out or None


def _key_values(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    """``--co KEY=VALUE`` pairs as {KEY (upper case): value (as given)}."""
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", ctx=ctx, param=param)
        out[key.strip().upper()] = value.strip()
    return out


def _check_keys(co: dict[str, str], known: dict[str, str], command: str) -> None:
    bad = sorted(set(co) - set(known))
    if bad:
        raise click.BadParameter(
            f"{', '.join(bad)} not supported by 'rio hsim {command}' (supported: {', '.join(sorted(known))})",
            param_hint="--co",
        )


def _codec_kwargs(co: dict[str, str]) -> dict[str, Any]:
    """compress_file keywords of ``compress``'s creation options (values checked here, ranges by the codec)."""
    _check_keys(co, COMPRESS_OPTIONS, "compress")
    kw: dict[str, Any] = {}
    for key, value in co.items():
        name = COMPRESS_OPTIONS[key]
        try:
            if name in ("bpppb", "psnr", "max_error", "nodata"):
                kw[name] = float(value)
            elif name == "lossless":
                low = value.lower()
                if low not in _TRUE | _FALSE:
                    raise ValueError("expected YES or NO")
                kw[name] = low in _TRUE
            elif name == "tile":
                kw[name] = int(value)
            elif name == "threads":
                kw[name] = 0 if value.upper() == "ALL_CPUS" else int(value)
            elif name == "effort":
                kw[name] = int(value) if value.isdigit() else value.lower()
            else:
                kw[name] = value
        except ValueError as exc:
            raise click.BadParameter(f"{key}={value!r}: {exc}", param_hint="--co") from None
    if sum(kw.get(k) is not None for k in ("bpppb", "psnr", "max_error")) + bool(kw.get("lossless")) > 1:
        raise click.BadParameter("BPPPB, PSNR, MAX_ERROR and LOSSLESS exclude each other: give one", param_hint="--co")
    return kw


def _check_output(output: str, overwrite: bool) -> None:
    if os.path.lexists(output) and not overwrite:
        raise _Abort(f"{output} exists: use --overwrite to replace it")


def _say(quiet: bool, text: str) -> None:
    """The summary line on stderr, unless -q here or ``rio -q`` (rio's verbosity below 0)."""
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    if not quiet and not (isinstance(obj, dict) and obj.get("verbosity", 0) < 0):
        click.echo(text, err=True)


bidx_opt = click.option(
    "-b", "--bidx", multiple=True, metavar="INDEXES", help="Input band indexes, 1-based: -b 5 -b 9, -b 5,9 or -b 3..7."
)
overwrite_opt = click.option(
    "--overwrite", is_flag=True, default=False, help="Always overwrite an existing output file."
)
quiet_opt = click.option("-q", "--quiet", is_flag=True, default=False, help="No summary line.")


def _co_opt(keys: dict[str, str], what: str) -> Any:
    return click.option(
        "--co",
        "--profile",
        "creation_options",
        metavar="NAME=VALUE",
        multiple=True,
        callback=_key_values,
        help=f"{what} Names: {', '.join(sorted(keys))}.",
    )


@click.group(name="hsim", context_settings=_CONTEXT)
def hsim() -> None:
    """Hyperspectral .hsim files (hsicodec): compress rasters, decompress them, describe them."""


@hsim.command(short_help="Compress a raster into a .hsim file.")
@click.argument("input", type=click.Path(exists=True, dir_okay=False))
@click.argument("output", type=click.Path(dir_okay=False))
@bidx_opt
@_co_opt(
    COMPRESS_OPTIONS,
    "Codec options: BPPPB (rate), PSNR (dB), MAX_ERROR, LOSSLESS=YES (one target), EFFORT (fast, default, max or "
    "0-100), MODEL, LAYER, TILE or BLOCKSIZE (N x N tiles; 0: none), NODATA, NUM_THREADS (ALL_CPUS).",
)
@overwrite_opt
@quiet_opt
def compress(
    input: str, output: str, bidx: tuple[str, ...], creation_options: dict[str, str], overwrite: bool, quiet: bool
) -> None:
    """Compress the raster INPUT (GeoTIFF or any raster hsicodec reads) into the .hsim file OUTPUT.

    CRS, transform, nodata, band names and wavelengths are kept.
    """
    kw = _codec_kwargs(creation_options)
    _check_output(output, overwrite)
    try:
        idx = None
        if bidx:
            from hsicodec.io.raster import read_info

            shape, _, _ = read_info(input)
            idx = parse_bidx(bidx, int(shape[2]))
        stats = _compress(input, output, idx, overwrite, kw)
    except (HsicodecError, OSError) as exc:
        raise _fail(exc) from None
    dims = "x".join(str(v) for v in stats.get("shape", []))
    _say(
        quiet,
        f"{output}: {dims} {stats.get('dtype', '')}, {stats.get('bytes')} bytes, {stats.get('bpppb', 0):.4g} bpppb",
    )


def _compress(src: str, dst: str, idx: list[int] | None, overwrite: bool, kw: dict[str, Any]) -> dict:
    """compress_file, or for a band selection: read, keep the bands, compress (tiled as compress_file would)."""
    if idx is None:
        return _api.compress_file(src, dst, force=overwrite, **kw)
    from hsicodec.codec import tiled
    from hsicodec.io.atomic import write_bytes_atomic
    from hsicodec.io.hsimfile import check_hsim_output
    from hsicodec.io.raster import read_cube
    from hsicodec.metrics import bpppb

    check_hsim_output(dst)
    cube, geo = read_cube(src)
    keep = [i - 1 for i in idx]
    cube, geo = np.ascontiguousarray(cube[:, :, keep]), select_bands(geo, keep)
    tile = kw.pop("tile", None)
    if tile is None and math.prod(cube.shape) > tiled.AUTO_TILE_VALUES:
        tile = tiled.DEFAULT_TILE
    if tile:
        return tiled.write_tiled(cube, dst, tile=tile, geo=geo, force=overwrite, **kw)
    data = _api.compress(cube, geo=geo, **kw)
    write_bytes_atomic(dst, data, force=overwrite)
    return {
        "shape": list(cube.shape),
        "dtype": cube.dtype.name,
        "bytes": len(data),
        "bpppb": bpppb(len(data), cube.shape),
    }


@hsim.command(short_help="Decompress a .hsim file into a raster.")
@click.argument("input")
@click.argument("output", type=click.Path(dir_okay=False))
@bidx_opt
@click.option(
    "--bounds",
    nargs=4,
    type=float,
    default=None,
    metavar="LEFT BOTTOM RIGHT TOP",
    help="Decode only the pixels within these bounds (in the file's CRS).",
)
@click.option(
    "-f",
    "--format",
    "--driver",
    "driver",
    default=None,
    metavar="GTiff|ENVI|NPY",
    help="Output format (default: from OUTPUT's extension).",
)
@_co_opt(DECOMPRESS_OPTIONS, "Creation options of the GeoTIFF written: COMPRESS=DEFLATE|LZW|ZSTD|...")
@overwrite_opt
@quiet_opt
def decompress(
    input: str,
    output: str,
    bidx: tuple[str, ...],
    bounds: tuple[float, float, float, float] | None,
    driver: str | None,
    creation_options: dict[str, str],
    overwrite: bool,
    quiet: bool,
) -> None:
    """Decompress the .hsim file INPUT (a path or URL) into the raster OUTPUT (GeoTIFF, ENVI or .npy).

    Only the bands asked for (their covering range is decoded) and, in a tiled file, only the tiles
    the bounds touch are decoded.
    """
    _check_keys(creation_options, DECOMPRESS_OPTIONS, "decompress")
    fmt = None
    if driver is not None:
        fmt = _DRIVERS.get(driver.lower())
        if fmt is None:
            raise click.BadParameter(f"{driver!r} is not one of GTiff, ENVI, NPY", param_hint="-f/--format")
    _check_output(output, overwrite)
    try:
        with open_dataset(input) as ds:
            idx = parse_bidx(bidx, ds.count) or list(ds.indexes)
            win = _bounds_window(ds, bounds)
            shape = _decompress(ds, input, output, idx, win, fmt, creation_options.get("COMPRESS"), overwrite)
    except (HsicodecError, OSError) as exc:
        raise _fail(exc) from None
    _say(quiet, f"{output}: {'x'.join(str(v) for v in shape)}")


def _bounds_window(ds: HsimDataset, bounds: tuple[float, float, float, float] | None) -> tuple[int, int, int, int]:
    """(row, col, height, width) of the pixels within ``bounds`` (every pixel without any)."""
    if bounds is None:
        return 0, 0, ds.height, ds.width
    w = ds.window(*bounds).round_offsets(op="floor").round_lengths(op="ceil")
    r0, c0 = max(0, int(w.row_off)), max(0, int(w.col_off))
    r1, c1 = min(ds.height, int(w.row_off + w.height)), min(ds.width, int(w.col_off + w.width))
    if r0 >= r1 or c0 >= c1:
        raise OptionError(f"bounds {bounds} do not overlap the image (its bounds are {tuple(ds.bounds)})")
    return r0, c0, r1 - r0, c1 - c0


def _decompress(
    ds: HsimDataset,
    src: str,
    dst: str,
    idx: list[int],
    win: tuple[int, int, int, int],
    fmt: str | None,
    compress: str | None,
    overwrite: bool,
) -> tuple[int, ...]:
    """Write the bands ``idx`` of window ``win``: a local file whose bands are one ascending run streams tile by
    tile through decompress_file; anything else is read through the dataset, then written."""
    a, b = idx[0] - 1, idx[-1]
    r0, c0, h, w = win
    if not remote.is_url(src) and compress is None and idx == list(range(a + 1, b + 1)):
        st = _api.decompress_file(src, dst, force=overwrite, format=fmt, window=win, bands=(a, b))
        return tuple(st["shape"])
    from rasterio.windows import Window

    from hsicodec.io.raster import write_cube

    data = ds.read(idx, window=Window(c0, r0, w, h))
    geo = select_bands(ds.geo.subset(slice(r0, r0 + h), slice(c0, c0 + w), slice(None)), [i - 1 for i in idx])
    cube = data.transpose(1, 2, 0)
    write_cube(dst, cube, geo, format=fmt, force=overwrite, compress=compress)
    return tuple(cube.shape)


@hsim.command(short_help="Describe a .hsim file as JSON.")
@click.argument("input")
@click.option("--indent", type=click.IntRange(min=0), default=None, help="Indentation of the JSON output.")
def info(input: str, indent: int | None) -> None:
    """Print the metadata of the .hsim file INPUT (a path or URL) as JSON, with rio info's keys plus "hsim"
    (format version, file size, rate, model, codec, tiles)."""
    try:
        with open_dataset(input) as ds:
            out = _rio_info(ds)
            size, version = ds.file_size, ds.format_version
        if remote.is_url(input) and remote.local_path(input) is None:
            out["hsim"] = _header_summary(ds.header, size, version)
        else:
            path = remote.local_path(input) or input
            out["hsim"] = _api.file_info(Path(path))
    except (HsicodecError, OSError) as exc:
        raise _fail(exc) from None
    click.echo(json.dumps(out, indent=indent, default=_json_default))


def _rio_info(ds: HsimDataset) -> dict[str, Any]:
    """rio info's keys for a dataset."""
    crs = ds.crs
    bh, bw = ds.block_shapes[0]
    return {
        "driver": ds.driver,
        "dtype": ds.dtypes[0],
        "nodata": ds.nodata,
        "width": ds.width,
        "height": ds.height,
        "count": ds.count,
        "shape": [ds.height, ds.width],
        "crs": None if crs is None else crs.to_string(),
        "transform": list(ds.transform),
        "bounds": list(ds.bounds),
        "res": list(ds.res),
        "blockxsize": bw,
        "blockysize": bh,
        "tiled": ds.grid is not None,
        "indexes": list(ds.indexes),
        "descriptions": list(ds.descriptions),
        "units": list(ds.units),
        "overviews": ds.overviews(1),
        "tags": ds.tags(),
    }


def _header_summary(header: dict, size: int, version: tuple[int, int]) -> dict[str, Any]:
    """The file_info part a remote file gives without a local path."""
    from hsicodec.metrics import bpppb

    shape = tuple(int(v) for v in header["shape"])
    return {
        "format_version": f"{version[0]}.{version[1]}",
        "file_bytes": size,
        "shape": list(shape),
        "dtype": header.get("dtype"),
        "bpppb": bpppb(size, shape),
        "model": header.get("model"),
        "codec": header.get("codec"),
        "tags": header.get("tags"),
        "created_by": header.get("created_by"),
    }


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (bytes, bytearray)):
        return obj.hex()
    return str(obj)
