"""Invalid-value masks: nodata, NaN and ±Inf values survive a round trip exactly as a mask.

The mask (one bit per value, C order, band fastest) travels losslessly in
section ``m`` as zlib-compressed packed bits; masked values decode to the
header's ``mask.fill`` (the raster's nodata value, or NaN). The codec itself
only ever sees valid values: masked ones are replaced by their band's mean of
valid values before fitting.
"""

from __future__ import annotations

import zlib

import numpy as np

from hsicodec.errors import HsimError, OptionError


def invalid_mask(cube: np.ndarray, nodata: float | None = None) -> np.ndarray | None:
    """Boolean mask of NaN, ±Inf and nodata values, or None when every value is valid."""
    mask = np.zeros(cube.shape, bool)
    if cube.dtype.kind == "f":
        mask |= ~np.isfinite(cube)
    if nodata is not None and np.isfinite(nodata):
        mask |= cube == nodata
    elif nodata is not None and cube.dtype.kind == "f" and np.isnan(nodata):
        pass  # NaN nodata is already covered
    return mask if mask.any() else None


def fill_invalid(cube: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """float64 copy of the cube with masked values replaced by their band's mean of valid values."""
    vals = np.asarray(cube, np.float64).copy()
    if mask.all():
        raise OptionError("every value of the cube is nodata/NaN/Inf: nothing to compress")
    valid = ~mask
    counts = valid.sum(axis=(0, 1))
    sums = np.where(valid, vals, 0.0).sum(axis=(0, 1))
    overall = float(sums.sum() / counts.sum())
    means = np.where(counts > 0, sums / np.maximum(counts, 1), overall)
    vals[mask] = np.broadcast_to(means, vals.shape)[mask]
    return vals


def encode_mask(mask: np.ndarray) -> bytes:
    """Lossless, compact bytes of a boolean mask (packed bits, zlib level 9)."""
    return zlib.compress(np.packbits(mask.ravel()).tobytes(), 9)


def decode_mask(data: bytes, shape: tuple) -> np.ndarray:
    """Inverse of :func:`encode_mask`; never inflates beyond the size the shape allows."""
    n = int(np.prod(shape))
    want = (n + 7) // 8
    d = zlib.decompressobj()
    try:
        raw = d.decompress(data, want)
        if d.unconsumed_tail or len(raw) != want or not d.eof:
            raise HsimError(f"section 'm': mask stream does not hold exactly {want} bytes")
    except zlib.error as exc:
        raise HsimError(f"section 'm': corrupt mask stream ({exc})") from exc
    return np.unpackbits(np.frombuffer(raw, np.uint8), count=n).astype(bool).reshape(shape)


def fill_value(fill) -> float:
    """Validated fill value of a header's ``mask`` map."""
    if isinstance(fill, bool) or not isinstance(fill, (int, float)):
        raise HsimError(f"header key 'mask.fill': expected a number, got {fill!r}")
    return float(fill)
