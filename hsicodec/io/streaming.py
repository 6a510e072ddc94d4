"""Windowed (streaming) reading and writing of scenes larger than memory.

:func:`open_cube_reader` gives a :class:`CubeReader` that reads one window at a time;
:func:`open_cube_writer` creates an output raster written window by window through a
:class:`CubeWriter`, atomically.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from hsicodec.errors import OptionError, RasterError
from hsicodec.io.atomic import atomic_path, check_writable
from hsicodec.io.checks import PathLike, _check_dtype, _native, _require_file, _wrap
from hsicodec.io.envi import _envi_dataset, _envi_paths_for_write
from hsicodec.io.formats import SUPPORTED_DTYPES, write_format
from hsicodec.io.geo import GeoInfo
from hsicodec.io.geotiff import _gtiff_profile, _gtiff_tags
from hsicodec.io.matlab import _info_mat, _mat_entries, _pick_mat_var, _read_mat
from hsicodec.io.npy import _info_npy
from hsicodec.io.rio import _check_geo_for, _gdal_write_env, _rio_dtype, _rio_open
from hsicodec.io.rio_read import _geo_from_dataset, _rio_target

__all__ = ["CubeReader", "CubeWriter", "open_cube_reader", "open_cube_writer", "STREAM_CACHE_MB"]


#: GDAL block cache (MB) while streaming; GDAL's own default (5 % of the RAM) would let the
#: cache, not the scene window, set the peak memory.
STREAM_CACHE_MB = 256


def _stream_env():
    import rasterio

    return rasterio.Env(GDAL_CACHEMAX=STREAM_CACHE_MB)


class CubeReader:
    """Windowed reads of a raster that may not fit in memory (see :func:`open_cube_reader`).

    ``shape`` ``(rows, cols, bands)``, ``dtype`` and ``geo`` are known without reading
    pixels; :meth:`read` returns one window as a C-contiguous ``(h, w, bands)`` cube in
    native byte order. ``windowed`` is False when the format cannot be read by windows
    (MATLAB v5 ``.mat``): the whole array is then loaded once, on the first read.
    """

    def __init__(
        self,
        path: Path,
        shape: tuple[int, int, int],
        dtype: np.dtype,
        geo: GeoInfo,
        read_window,
        close=None,
        windowed: bool = True,
    ) -> None:
        self.path = path
        self.shape = tuple(int(v) for v in shape)
        self.dtype = np.dtype(dtype)
        self.geo = geo
        self.windowed = windowed
        self._read = read_window
        self._close = close

    def read(self, row: int, col: int, height: int, width: int) -> np.ndarray:
        """Pixels ``[row:row+height, col:col+width, :]``."""
        rows, cols, _ = self.shape
        if not (0 <= row and 0 <= col and height >= 1 and width >= 1 and row + height <= rows and col + width <= cols):
            raise OptionError(
                f"window ({row}, {col}, {height}, {width}) does not fit the {rows}x{cols} raster {os.fspath(self.path)}"
            )
        if self._read is None:
            raise RasterError(f"{os.fspath(self.path)}: reader is closed")
        with _wrap("read", self.path):
            block = self._read(int(row), int(col), int(height), int(width))
            return np.ascontiguousarray(_native(np.asarray(block)))

    def close(self) -> None:
        if self._close is not None:
            self._close()
        self._close = self._read = None

    def __enter__(self) -> CubeReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CubeReader({os.fspath(self.path)!r}, shape={self.shape}, dtype={self.dtype.name})"


def _npy_window_reader(p: Path, band_first: bool):
    def read(r0: int, c0: int, h: int, w: int) -> np.ndarray:
        # a fresh memory map per window: its pages are released with it, so resident memory
        # stays one window however large the file is
        m = np.load(p, mmap_mode="r", allow_pickle=False)
        try:
            if m.ndim == 2:
                return np.array(m[r0 : r0 + h, c0 : c0 + w])[:, :, np.newaxis]
            if band_first:
                return np.array(m[:, r0 : r0 + h, c0 : c0 + w]).transpose(1, 2, 0)
            return np.array(m[r0 : r0 + h, c0 : c0 + w, :])
        finally:
            mm = getattr(m, "_mmap", None)
            del m
            if mm is not None:
                with contextlib.suppress(Exception):
                    mm.close()

    return read


def open_cube_reader(path: PathLike, var: str | None = None, band_first: bool = False) -> CubeReader:
    """Open a raster for windowed reading (use as a context manager, or call ``close()``).

    rasterio formats (GeoTIFF, ENVI, ...) read each window with one GDAL call (the GDAL block
    cache is held to :data:`STREAM_CACHE_MB` meanwhile); ``.npy`` reads through a memory map
    opened per window; MATLAB v7.3 (HDF5) ``.mat`` reads the window's hyperslab; MATLAB v5
    ``.mat`` cannot be read by parts and is loaded whole on the first read.
    """
    p = _require_file(path)
    ext = p.suffix.lower()
    if ext == ".npy":
        shape, dtype = _info_npy(p, band_first)
        return CubeReader(p, shape, dtype, GeoInfo(), _npy_window_reader(p, band_first))
    if ext == ".mat":
        shape, dtype = _info_mat(p, var, band_first)
        with _wrap("read", p):
            v73, entries = _mat_entries(p)
            name = _pick_mat_var(p, entries, var)[0]
        if v73:
            import h5py

            f = h5py.File(p, "r")
            ds = f[name]

            def read_h5(r0: int, c0: int, h: int, w: int) -> np.ndarray:
                # h5py sees MATLAB's column-major array transposed: (C, W, H), or (W, H, C) band-first
                if band_first:
                    return np.asarray(ds[c0 : c0 + w, r0 : r0 + h, :]).T.transpose(1, 2, 0)
                if ds.ndim == 2:
                    return np.asarray(ds[c0 : c0 + w, r0 : r0 + h]).T[:, :, np.newaxis]
                return np.asarray(ds[:, c0 : c0 + w, r0 : r0 + h]).T

            return CubeReader(p, shape, dtype, GeoInfo(), read_h5, f.close)
        whole: dict = {}

        def read_v5(r0: int, c0: int, h: int, w: int) -> np.ndarray:
            if "cube" not in whole:
                whole["cube"] = _read_mat(p, var, band_first)
            return whole["cube"][r0 : r0 + h, c0 : c0 + w]

        return CubeReader(p, shape, dtype, GeoInfo(), read_v5, whole.clear, windowed=False)

    from rasterio.windows import Window

    src = _rio_target(p)
    stack = contextlib.ExitStack()
    with _wrap("read", p):
        try:
            stack.enter_context(_stream_env())
            ds = stack.enter_context(_rio_open(src, var))
            dtype = _rio_dtype(ds, p)
            shape = (ds.height, ds.width, ds.count)
            if 0 in shape:
                raise RasterError(f"{p}: empty raster ({shape[0]}x{shape[1]}x{shape[2]})")
            geo = _geo_from_dataset(ds)
        except BaseException:
            stack.close()
            raise

    def read_rio(r0: int, c0: int, h: int, w: int) -> np.ndarray:
        return ds.read(window=Window(c0, r0, w, h)).transpose(1, 2, 0)

    return CubeReader(p, shape, dtype, geo, read_rio, stack.close)


class CubeWriter:
    """Windowed writes of a cube into an output raster (see :func:`open_cube_writer`)."""

    def __init__(self, path: Path, shape: tuple[int, int, int], dtype: np.dtype, write_window) -> None:
        self.path = path
        self.shape = tuple(int(v) for v in shape)
        self.dtype = np.dtype(dtype)
        self._write = write_window

    def write(self, row: int, col: int, block: np.ndarray) -> None:
        """Write ``block`` ``(h, w, bands)`` (all the output's bands) at ``[row, col]``."""
        block = np.asarray(block)
        if block.ndim == 2:
            block = block[:, :, np.newaxis]
        rows, cols, n = self.shape
        h, w = block.shape[:2]
        if block.ndim != 3 or block.shape[2] != n or row < 0 or col < 0 or row + h > rows or col + w > cols:
            raise OptionError(
                f"block {block.shape} at ({row}, {col}) does not fit the {rows}x{cols}x{n} output "
                f"{os.fspath(self.path)}"
            )
        if block.dtype != self.dtype:
            raise OptionError(f"block dtype {block.dtype} differs from the output's {self.dtype}")
        with _wrap("write", self.path):
            self._write(int(row), int(col), block)


def _check_out_shape(p: Path, shape: Sequence[int], dtype: np.dtype) -> tuple[int, int, int]:
    shape = tuple(int(v) for v in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise RasterError(f"cannot write {p}: expected a (rows, cols, bands) shape of positive sizes, got {shape}")
    _check_dtype(dtype, p)
    return shape  # type: ignore[return-value]


@contextlib.contextmanager
def open_cube_writer(
    path: PathLike,
    shape: Sequence[int],
    dtype,
    geo: GeoInfo | None = None,
    *,
    format: str | None = None,
    force: bool = False,
    compress: str | None = None,
    options: Mapping[str, str] | None = None,
) -> Iterator[CubeWriter]:
    """Create a ``(rows, cols, bands)`` raster and write it window by window, atomically.
    ``options``: checked GDAL GeoTIFF creation options over the default layout (GeoTIFF only).

    Yields a :class:`CubeWriter`; the file appears under ``path`` only when the ``with``
    block ends without an exception (like :func:`write_cube`, whose formats, GeoTIFF
    layout and metadata it shares: CRS, transform, nodata, band names, wavelengths, FWHM,
    units). Windows never written hold zeros. GeoTIFF writes go through a GDAL block
    cache of :data:`STREAM_CACHE_MB`; ``.npy`` writes each window row with one ``pwrite``.
    """
    p = Path(path)
    fmt = write_format(p, format)
    dtype = np.dtype(dtype)
    shape = _check_out_shape(p, shape, dtype)
    rows, cols, n = shape
    geo = geo if geo is not None else GeoInfo()

    if fmt == "npy":
        check_writable(p, force)
        le = dtype.newbyteorder("<")
        with atomic_path(p, force) as tmp:
            with _wrap("write", p):
                f = open(tmp, "w+b")
            try:
                with _wrap("write", p):
                    np.lib.format.write_array_header_1_0(
                        f, {"descr": np.lib.format.dtype_to_descr(le), "fortran_order": False, "shape": shape}
                    )
                    f.flush()
                    base = f.tell()
                    f.truncate(base + rows * cols * n * dtype.itemsize)
                fd = f.fileno()
                row_bytes = cols * n * dtype.itemsize

                def write_npy(r0: int, c0: int, block: np.ndarray) -> None:
                    data = np.ascontiguousarray(block, dtype=le)
                    for i in range(data.shape[0]):
                        off = base + (r0 + i) * row_bytes + c0 * n * dtype.itemsize
                        buf = memoryview(data[i]).cast("B")
                        while len(buf):
                            done = os.pwrite(fd, buf, off)
                            buf, off = buf[done:], off + done

                yield CubeWriter(p, shape, dtype, write_npy)
                with _wrap("write", p):
                    os.fsync(fd)
            finally:
                f.close()
        return

    if dtype not in SUPPORTED_DTYPES:
        raise RasterError(
            f"cannot write {p}: {fmt} does not support {dtype} pixels "
            f"(supported: {', '.join(d.name for d in SUPPORTED_DTYPES)})"
        )
    _check_geo_for(geo, n, p)

    def write_rio(ds):
        from rasterio.windows import Window

        def write(r0: int, c0: int, block: np.ndarray) -> None:
            h, w = block.shape[:2]
            ds.write(np.ascontiguousarray(block.transpose(2, 0, 1)), window=Window(c0, r0, w, h))

        return write

    if fmt == "gtiff":
        import rasterio

        check_writable(p, force)
        prof, _ = _gtiff_profile(shape, dtype, geo, compress, options)
        with atomic_path(p, force) as tmp:
            stack = contextlib.ExitStack()
            with _wrap("write", p):
                stack.enter_context(_gdal_write_env())
                stack.enter_context(_stream_env())
                ds = stack.enter_context(rasterio.open(tmp, "w", **prof))
                _gtiff_tags(ds, geo, n)
            try:
                yield CubeWriter(p, shape, dtype, write_rio(ds))
            except BaseException:
                with contextlib.suppress(Exception):
                    stack.close()
                raise
            with _wrap("write", p):
                stack.close()
        return

    data, hdr = _envi_paths_for_write(p, force)
    with _envi_dataset(data, hdr, shape, dtype, geo, force, env={"GDAL_CACHEMAX": STREAM_CACHE_MB}) as ds:
        yield CubeWriter(data, shape, dtype, write_rio(ds))
