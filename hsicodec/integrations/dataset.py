"""A read-only dataset with rasterio's reading API over a `.hsim` file: ``hsicodec.open(path_or_url)``.

GIS code written for ``rasterio.open`` reads `.hsim` files unchanged::

    with hsicodec.open("scene.hsim") as ds:          # or "https://...", "s3://...", any fsspec URL
        print(ds.crs, ds.transform, ds.bounds, ds.count, ds.dtypes[0])
        rgb = ds.read([30, 20, 10], window=ds.window(*bbox))   # (3, rows, cols), 1-based band indexes
        quick = ds.read(1, out_shape=(ds.height // 4, ds.width // 4))  # the 4x reduced level

Metadata (CRS, transform, nodata, band descriptions, wavelength tags) comes from the file's GeoInfo and
follows what :func:`hsicodec.decompress_file` writes into a GeoTIFF, so both read the same. Pixels are
decoded by :func:`hsicodec.codec.api.decompress`: only the window asked for and the range of bands
covering ``indexes``; in a tiled file only the tiles the window touches are read (over a URL, only their
bytes are fetched: :mod:`hsicodec.io.remote`). ``out_shape`` resamples as rasterio does (nearest), except
that a reduction by 2, 4, 8, ... reads the file's reduced-resolution level (estimates of 2^n x 2^n block means,
:mod:`hsicodec.coding.reduce`), as GDAL reads an overview; :meth:`HsimDataset.overviews` lists them.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any, Callable, Union

import numpy as np

from hsicodec.codec import api as _api
from hsicodec.codec.tilegrid import TileGrid, is_tiled
from hsicodec.coding.reduce import MAX_REDUCE, reduced_size
from hsicodec.errors import HsimHeaderError, OptionError
from hsicodec.format.container import DEFAULT_LIMITS, HsimReader, Limits
from hsicodec.io import remote
from hsicodec.io.geo import GeoInfo
from hsicodec.io.geotiff import _gtiff_tags

__all__ = ["DRIVER", "MAX_DOWNLOAD", "HsimDataset", "open_dataset", "select_bands"]

Source = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, Any]

#: the driver name the dataset reports (``ds.driver``, ``ds.profile["driver"]``).
DRIVER = "HSIM"
#: an untiled remote file up to this size is fetched whole, once: any decode of it reads every byte
#: (whole-file CRC first), so reading it again for each window would only cost more.
MAX_DOWNLOAD = 256 << 20


class _TagRecorder:
    """Stands in for a rasterio dataset being written, to record the tags :func:`_gtiff_tags` sets:
    the dataset then reports exactly the tags a GeoTIFF written from the same file holds."""

    def __init__(self) -> None:
        self.tags: dict[tuple[int, str | None], dict[str, str]] = {}
        self.descriptions: tuple | None = None
        self.units: tuple | None = None

    def update_tags(self, bidx: int = 0, ns: str | None = None, **kwargs: str) -> None:
        self.tags.setdefault((bidx, ns), {}).update({k: str(v) for k, v in kwargs.items()})


def select_bands(geo: GeoInfo, indexes: Sequence[int]) -> GeoInfo:
    """The GeoInfo of the bands ``indexes`` (0-based, any order, repeats allowed) of a cube."""

    def pick(v: list | None) -> list | None:
        return None if v is None else [v[i] for i in indexes]

    return replace(geo, band_names=pick(geo.band_names), wavelengths=pick(geo.wavelengths), fwhm=pick(geo.fwhm))


class HsimDataset:
    """A `.hsim` file opened for reading with rasterio's dataset API (see the module docstring).

    Reads are serialised by a lock (the file handle is shared), so a dataset may be read from several
    threads. Close it (or use ``with``) to release the file or connection.
    """

    mode = "r"
    driver = DRIVER

    def __init__(
        self,
        reader: HsimReader,
        name: str,
        *,
        closers: Sequence[Callable[[], None]] = (),
        threads: int = 0,
        backend: str = "auto",
        registry: Any = None,
    ) -> None:
        self._reader: HsimReader | None = reader
        self._closers = list(closers)
        self.name = name
        self._threads = threads
        self._backend = backend
        self._registry = registry
        self._lock = threading.Lock()
        self.header: dict = reader.header
        self.file_size: int = reader.file_size  #: bytes of the `.hsim` file
        self.format_version: tuple[int, int] = reader.version  #: (major, minor) of the `.hsim` format
        try:
            rows, cols, bands = (int(v) for v in self.header["shape"])
            self._dtype = np.dtype(self.header["dtype"])
        except (KeyError, TypeError, ValueError) as exc:  # pragma: no cover - HsimReader validated both
            raise HsimHeaderError(f"header key 'shape'/'dtype': {exc}") from exc
        self.height, self.width, self.count = rows, cols, bands
        self.geo: GeoInfo = GeoInfo.from_header(self.header.get("geo"), n_bands=bands)
        self.grid: TileGrid | None = TileGrid.from_header(self.header, reader.limits) if is_tiled(self.header) else None
        rec = _TagRecorder()
        _gtiff_tags(rec, self.geo, bands)
        self._tags = rec.tags
        self._tags.setdefault((0, None), {}).setdefault("AREA_OR_POINT", "Area")  # the transform maps pixel corners
        for k, v in (self.header.get("tags") or {}).items():  # the file's own free-form tags
            self._tags[(0, None)].setdefault(str(k), str(v))

    # ------------------------------------------------------------------ rasterio's properties
    @property
    def closed(self) -> bool:
        return self._reader is None

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    @property
    def indexes(self) -> tuple[int, ...]:
        return tuple(range(1, self.count + 1))

    @property
    def dtypes(self) -> tuple[str, ...]:
        return (self._dtype.name,) * self.count

    @property
    def crs(self) -> Any:
        """rasterio's CRS of the file (None when it has none)."""
        if not self.geo.crs_wkt:
            return None
        from rasterio.crs import CRS

        return CRS.from_user_input(self.geo.crs_wkt)

    @property
    def transform(self) -> Any:
        """The affine pixel-to-map transform (identity when the file has none, as rasterio reports)."""
        from affine import Affine

        return Affine.identity() if self.geo.transform is None else Affine(*(float(v) for v in self.geo.transform))

    @property
    def bounds(self) -> Any:
        """BoundingBox(left, bottom, right, top) of the image in map units."""
        from rasterio.coords import BoundingBox

        t = self.transform
        if t.b == 0 and t.d == 0:
            return BoundingBox(t.c, t.f + t.e * self.height, t.c + t.a * self.width, t.f)
        corners = ((0, 0), (0, self.height), (self.width, self.height), (self.width, 0))
        xs = [t.a * c + t.b * r + t.c for c, r in corners]
        ys = [t.d * c + t.e * r + t.f for c, r in corners]
        return BoundingBox(min(xs), min(ys), max(xs), max(ys))

    @property
    def res(self) -> tuple[float, float]:
        """(x, y) size of a pixel in map units."""
        t = self.transform
        if t.b == 0 and t.d == 0:
            return abs(t.a), abs(t.e)
        return math.hypot(t.a, t.d), math.hypot(t.b, t.e)

    @property
    def nodata(self) -> float | None:
        return None if self.geo.nodata is None else float(self.geo.nodata)

    @property
    def nodatavals(self) -> tuple[float | None, ...]:
        return (self.nodata,) * self.count

    @property
    def descriptions(self) -> tuple[str | None, ...]:
        names = self.geo.band_names
        return tuple(names) if names is not None else (None,) * self.count

    @property
    def units(self) -> tuple[str | None, ...]:
        return (self.geo.units,) * self.count

    @property
    def block_shapes(self) -> list[tuple[int, int]]:
        """(rows, cols) of the blocks of every band: the tiles of a tiled file, else the whole image."""
        shape = (self.grid.tile_h, self.grid.tile_w) if self.grid is not None else (self.height, self.width)
        return [shape] * self.count

    @property
    def meta(self) -> dict[str, Any]:
        return {
            "driver": DRIVER,
            "dtype": self._dtype.name,
            "nodata": self.nodata,
            "width": self.width,
            "height": self.height,
            "count": self.count,
            "crs": self.crs,
            "transform": self.transform,
        }

    @property
    def profile(self) -> Any:
        """rasterio's Profile: :attr:`meta` plus the block layout."""
        from rasterio.profiles import Profile

        bh, bw = self.block_shapes[0]
        return Profile(**self.meta, blockxsize=bw, blockysize=bh, tiled=self.grid is not None, interleave="pixel")

    def tags(self, bidx: int = 0, ns: str | None = None) -> dict[str, str]:
        """Dataset (``bidx`` 0) or band tags: units and wavelength units, per-band ``wavelength`` and
        ``fwhm`` (and GDAL's ``IMAGERY`` domain with ``ns="IMAGERY"``), the file's own tags."""
        self._band(bidx, allow_zero=True)
        return dict(self._tags.get((bidx, ns), {}))

    def tag_namespaces(self, bidx: int = 0) -> list[str]:
        return sorted({ns for (b, ns) in self._tags if b == bidx and ns is not None})

    # ------------------------------------------------------------------ blocks and overviews
    def block_window(self, bidx: int, i: int, j: int) -> Any:
        """The Window of block (row ``i``, col ``j``)."""
        from rasterio.windows import Window

        self._band(bidx, allow_zero=True)
        bh, bw = self.block_shapes[0]
        if not (0 <= i < -(-self.height // bh) and 0 <= j < -(-self.width // bw)):
            raise IndexError(f"block ({i}, {j}) is outside the {-(-self.height // bh)}x{-(-self.width // bw)} blocks")
        r0, c0 = i * bh, j * bw
        return Window(c0, r0, min(bw, self.width - c0), min(bh, self.height - r0))

    def block_windows(self, bidx: int = 0) -> Iterator[tuple[tuple[int, int], Any]]:
        """((block row, block col), Window) of every block, row by row, as rasterio yields them."""
        self._band(bidx, allow_zero=True)
        bh, bw = self.block_shapes[0]
        for i in range(-(-self.height // bh)):
            for j in range(-(-self.width // bw)):
                yield (i, j), self.block_window(bidx, i, j)

    def overviews(self, bidx: int = 1) -> list[int]:
        """Reduction factors 2, 4, ... the file reads directly (its reduced-resolution levels), while the
        reduced image keeps at least one whole pixel on each side (and, in a tiled file, while the tile
        sides are multiples of the factor)."""
        self._band(bidx)
        return [1 << n for n in self._levels()]

    def _levels(self) -> list[int]:
        out = []
        for n in range(1, MAX_REDUCE + 1):
            if min(self.height, self.width) < (1 << n) or (self.grid is not None and not self.grid.reducible(n)):
                break
            out.append(n)
        return out

    # ------------------------------------------------------------------ coordinates
    def index(self, x: float, y: float, z: float | None = None, op: Callable | None = None) -> tuple[int, int]:
        """(row, col) of the pixel holding map point (x, y)."""
        from rasterio.transform import rowcol

        return rowcol(self.transform, x, y, op=op or math.floor)

    def xy(self, row: int, col: int, z: float | None = None, offset: str = "center") -> tuple[float, float]:
        """Map (x, y) of a pixel's centre (or corner: ``offset`` "ul", "ur", "ll", "lr")."""
        from rasterio.transform import xy

        return xy(self.transform, row, col, offset=offset)

    def window(self, left: float, bottom: float, right: float, top: float) -> Any:
        """The Window covering map bounds (may be fractional; :meth:`read` rounds to whole pixels)."""
        from rasterio.windows import from_bounds

        return from_bounds(left, bottom, right, top, transform=self.transform)

    def window_transform(self, window: Any) -> Any:
        """The affine transform of a window."""
        from rasterio.windows import transform

        return transform(self._as_window(window), self.transform)

    def window_bounds(self, window: Any) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) of a window."""
        from rasterio.windows import bounds

        return bounds(self._as_window(window), self.transform)

    # ------------------------------------------------------------------ reading
    def read(
        self,
        indexes: int | Sequence[int] | None = None,
        out: np.ndarray | None = None,
        window: Any = None,
        masked: bool = False,
        out_shape: Sequence[int] | None = None,
        boundless: bool = False,
        out_dtype: Any = None,
    ) -> np.ndarray:
        """Pixels as rasterio returns them: (bands, rows, cols), or (rows, cols) for one int index.

        ``indexes`` are 1-based; ``window`` a rasterio Window or ((row_start, row_stop), (col_start,
        col_stop)) inside the image (fractional offsets are rounded); ``out_shape`` (rows, cols) or
        (bands, rows, cols) resamples the window (nearest; a reduction by 2^n reads level n, see
        :meth:`overviews`); ``out`` receives the result; ``masked`` gives a masked array (nodata masked).
        """
        if boundless:
            raise OptionError("boundless reads are not supported: the window must lie inside the image")
        idx, two_d = self._indexes(indexes)
        r0, c0, h, w = self._window_tuple(window)
        shape = tuple(out.shape) if out is not None else (tuple(out_shape) if out_shape is not None else None)
        oh, ow = h, w
        if shape is not None:
            if len(shape) not in (2, 3) or (len(shape) == 3 and shape[0] != len(idx)) or min(shape) < 1:
                want = "(rows, cols)" if two_d else f"({len(idx)}, rows, cols) or (rows, cols)"
                raise OptionError(f"output shape {shape} does not fit the read: expected {want}")
            if two_d and len(shape) == 3:
                raise OptionError(f"output shape {shape}: reading one band (an int index) gives (rows, cols)")
            oh, ow = int(shape[-2]), int(shape[-1])
        data = self._decode(idx, (r0, c0, h, w), (oh, ow))
        if out_dtype is not None:
            data = data.astype(out_dtype, copy=False)
        result = data[0] if two_d else data
        if masked:
            result = self._mask(result)
        if out is not None:
            out[...] = result
            return out
        return result

    def _decode(self, idx: list[int], win: tuple[int, int, int, int], out_hw: tuple[int, int]) -> np.ndarray:
        """(len(idx), oh, ow) array: the covering band range decoded at the chosen level, then selected."""
        r0, c0, h, w = win
        oh, ow = out_hw
        level = self._level_for(h, w, oh, ow)
        a, b = min(idx) - 1, max(idx)
        with self._lock:
            reader = self._open_reader()
            cube, _ = _api.decompress(
                reader,
                window=win,
                bands=(a, b),
                threads=self._threads,
                backend=self._backend,
                registry=self._registry,
                reduce=level,
            )
        cube = cube[:, :, [i - 1 - a for i in idx]]
        if (oh, ow) != (cube.shape[0], cube.shape[1]) or (level and (r0 % (1 << level) or c0 % (1 << level))):
            f = 1 << level
            rows = _nearest(r0, h, oh, f, cube.shape[0])
            cols = _nearest(c0, w, ow, f, cube.shape[1])
            cube = cube[rows][:, cols]
        return np.ascontiguousarray(cube.transpose(2, 0, 1))

    def _level_for(self, h: int, w: int, oh: int, ow: int) -> int:
        """The reduced level a read of an (h, w) window into (oh, ow) uses: n when (oh, ow) is the window
        reduced 2^n times, else the coarsest level not coarser than the requested ratio (0: full resolution)."""
        if (oh, ow) == (h, w):
            return 0
        levels = self._levels()
        for n in levels:
            if (oh, ow) == (reduced_size(h, n), reduced_size(w, n)):
                return n
        ratio = min(h / oh, w / ow)
        return max([n for n in levels if (1 << n) <= ratio], default=0)

    def _mask(self, arr: np.ndarray) -> np.ma.MaskedArray:
        nd = self.nodata
        if nd is None:
            mask = np.zeros(arr.shape, bool)
        elif math.isnan(nd):
            mask = np.isnan(arr) if arr.dtype.kind == "f" else np.zeros(arr.shape, bool)
        else:
            mask = arr == nd
        return np.ma.masked_array(arr, mask=mask, fill_value=nd)

    def _open_reader(self) -> HsimReader:
        if self._reader is None:
            raise OptionError(f"{self.name}: the dataset is closed")
        return self._reader

    def _band(self, bidx: int, allow_zero: bool = False) -> int:
        if isinstance(bidx, bool) or not isinstance(bidx, (int, np.integer)):
            raise TypeError(f"band index must be an int, not {type(bidx).__name__}")
        if not (0 if allow_zero else 1) <= int(bidx) <= self.count:
            raise IndexError(f"band index {bidx} out of range (not in {self.indexes})")
        return int(bidx)

    def _indexes(self, indexes: int | Sequence[int] | None) -> tuple[list[int], bool]:
        """(1-based band list, whether the result is 2-D) of rasterio's ``indexes`` argument."""
        if indexes is None:
            return list(self.indexes), False
        if isinstance(indexes, (int, np.integer)):
            return [self._band(indexes)], True  # (a bool is refused there)
        idx = [self._band(i) for i in indexes]
        if not idx:
            raise OptionError("indexes is empty: give at least one band (1-based)")
        return idx, False

    def _as_window(self, window: Any) -> Any:
        from rasterio.windows import Window

        if isinstance(window, Window):
            return window
        if isinstance(window, (tuple, list)) and len(window) == 2:
            return Window.from_slices(*window, height=self.height, width=self.width)
        raise OptionError(f"window must be a rasterio Window or ((row_start, row_stop), (col_start, col_stop)), "
                          f"not {window!r}")  # fmt: skip

    def _window_tuple(self, window: Any) -> tuple[int, int, int, int]:
        """(row, col, height, width) in whole pixels of a window inside the image (OptionError otherwise)."""
        if window is None:
            return 0, 0, self.height, self.width
        win = self._as_window(window)
        r0, c0 = int(round(float(win.row_off))), int(round(float(win.col_off)))
        r1 = int(round(float(win.row_off) + float(win.height)))
        c1 = int(round(float(win.col_off) + float(win.width)))
        if not (0 <= r0 < r1 <= self.height and 0 <= c0 < c1 <= self.width):
            raise OptionError(
                f"window {win} does not lie inside the {self.height}x{self.width} image (boundless reads are "
                f"not supported)"
            )
        return r0, c0, r1 - r0, c1 - c0

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Release the file (or connection); further reads raise. Closing twice is harmless."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()
        closers, self._closers = self._closers, []
        for close in closers:
            close()

    def __enter__(self) -> HsimDataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # a dataset dropped without close() still releases its file
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<{state} HsimDataset name='{self.name}' mode='r'>"


def _nearest(start: int, n: int, n_out: int, f: int, n_have: int) -> np.ndarray:
    """Indexes into a level of block size ``f`` (its first row is block ``start // f``) of the pixels a
    nearest resampling of the ``n`` pixels from ``start`` to ``n_out`` picks (GDAL's rule: the pixel under
    each output pixel's centre)."""
    centres = start + (np.arange(n_out) + 0.5) * (n / n_out)
    picks = np.floor(centres).astype(np.int64) // f - start // f
    return np.clip(picks, 0, n_have - 1)


def open_dataset(
    source: Source,
    *,
    threads: int = 0,
    backend: str = "auto",
    registry: Any = None,
    limits: Limits = DEFAULT_LIMITS,
    client: str = "fsspec",
    block_size: int = remote.DEFAULT_BLOCK,
    timeout: float = remote.DEFAULT_TIMEOUT,
    storage_options: dict | None = None,
    max_download: int = MAX_DOWNLOAD,
) -> HsimDataset:
    """Open a `.hsim` file for reading with rasterio's API (exported as ``hsicodec.open``).

    ``source``: a path, ``file://`` URL, any URL fsspec reads (``https://``, ``s3://``, ``gs://``, ...;
    the ``remote`` extra, ``pip install 'hsicodec[remote]'``), the file's bytes, or a seekable binary
    file object. ``client="urllib"`` reads http(s) URLs with the standard library instead of fsspec.
    Over a URL only the header and the bytes reads need are fetched (``block_size`` bytes at open,
    ``timeout`` seconds per request; see :mod:`hsicodec.io.remote`); an untiled file of up to
    ``max_download`` bytes is fetched once, whole, since any decode of it reads every byte.
    ``threads``, ``backend`` and ``registry`` are passed to the decoder.
    """
    closers: list[Callable[[], None]] = []
    src: Any = source
    name: str
    if isinstance(source, os.PathLike):
        src = name = os.fspath(source)
    elif isinstance(source, str):
        name = source
        if remote.is_url(source):
            path = remote.local_path(source)
            if path is not None:
                src = path
            else:
                rf = remote.open_url(
                    source, client=client, block_size=block_size, timeout=timeout, storage_options=storage_options
                )
                closers.append(rf.close)
                src = rf
    elif isinstance(source, (bytes, bytearray, memoryview)):
        name = "<bytes>"
    else:
        name = str(getattr(source, "name", None) or f"<{type(source).__name__}>")
    try:
        reader = HsimReader(src, limits)
    except BaseException:
        for close in closers:
            close()
        raise
    if isinstance(src, remote.RangeFile) and not is_tiled(reader.header) and src.size <= max_download:
        try:
            src.load_all()
        except BaseException:
            reader.close()
            src.close()
            raise
    try:
        return HsimDataset(reader, name, closers=closers, threads=threads, backend=backend, registry=registry)
    except BaseException:
        reader.close()
        for close in closers:
            close()
        raise
