"""Reduced-resolution reads: the image 2^n times smaller on each side, as quick looks and overviews need.

The reduced image of a file at level n has one pixel per 2^n × 2^n block of pixels (partial blocks at the
right and bottom edges: ceil(H / 2^n) × ceil(W / 2^n) pixels), on the geo transform's grid scaled by 2^n,
and estimates the mean of the decoded values over the block (before the cast to the file's dtype):

* files whose layers all give their reduced part themselves (``Layer.reduces``: the coefficient-map layer,
  the default) decode only what that needs: the map layer decodes only its coarse wavelet levels
  (:mod:`hsicodec.layers.maps.reduced`) and gives the block means of the image those levels synthesise,
  an estimate of the full decode's block means, not equal to them (what the finer levels add to a block's
  mean is missing; on a real scene at n = 2 about 31 dB PSNR from the original's block means, where the
  full decode's block means are at 49 dB), for 4^n times less work;
* files of other layers (network, predictive, or a mix) are decoded at full resolution and averaged: the
  exact block means. Layers whose coefficients go through the spectral stage are averaged as
  coefficients, and the spectral stage (affine per pixel, so the means commute with it) then runs on 4^n
  times fewer pixels; layers that give band values are averaged as values.

Either way the spectral stage, the bulk of a full decode's arithmetic on scenes of many bands, runs at the
reduced size.

A window is given in full-resolution pixels; it is widened to whole blocks, so the reduced window starts
at (row >> n, col >> n) and ends at the ceiling of its far edge / 2^n.
"""

from __future__ import annotations

import numpy as np

from hsicodec.errors import OptionError

MAX_REDUCE = 16  # 2^16 pixels per block side: past any scene


def check_reduce(reduce: int) -> int:
    """The reduction level as an int 0..:data:`MAX_REDUCE`; OptionError otherwise."""
    if isinstance(reduce, bool) or not isinstance(reduce, (int, np.integer)) or not 0 <= reduce <= MAX_REDUCE:
        raise OptionError(f"reduce must be a whole number 0..{MAX_REDUCE}, not {reduce!r}")
    return int(reduce)


def reduced_size(n_pixels: int, reduce: int) -> int:
    """Pixels along one side of the reduced image: ceil(n / 2^reduce)."""
    return -(-int(n_pixels) // (1 << reduce))


def aligned_window(window: tuple, shape: tuple, reduce: int) -> tuple[tuple, tuple]:
    """(full-resolution window widened to whole 2^n blocks, its reduced window), both (row, col, h, w)."""
    r0, c0, h, w = (int(v) for v in window)
    rows, cols = int(shape[0]), int(shape[1])
    rr0, cr0 = r0 >> reduce, c0 >> reduce
    rr1, cr1 = reduced_size(r0 + h, reduce), reduced_size(c0 + w, reduce)
    a0, b0 = rr0 << reduce, cr0 << reduce
    full = (a0, b0, min(rr1 << reduce, rows) - a0, min(cr1 << reduce, cols) - b0)
    return full, (rr0, cr0, rr1 - rr0, cr1 - cr0)


def block_mean(a: np.ndarray, reduce: int) -> np.ndarray:
    """Means of 2^n × 2^n blocks over the first two axes (partial blocks at the ends: over what they hold)."""
    if reduce == 0:
        return np.asarray(a, np.float64)
    f = 1 << reduce
    h, w = a.shape[0], a.shape[1]
    rows, cols = np.arange(0, h, f), np.arange(0, w, f)
    s = np.add.reduceat(np.add.reduceat(np.asarray(a, np.float64), rows, axis=0), cols, axis=1)
    nr = np.minimum(rows + f, h) - rows
    nc = np.minimum(cols + f, w) - cols
    count = np.outer(nr, nc).reshape((len(rows), len(cols)) + (1,) * (a.ndim - 2))
    return s / count


def block_all(mask: np.ndarray, reduce: int) -> np.ndarray:
    """True where every value of a 2^n × 2^n block is True (a reduced nodata mask)."""
    if reduce == 0:
        return mask
    f = 1 << reduce
    rows, cols = np.arange(0, mask.shape[0], f), np.arange(0, mask.shape[1], f)
    return np.logical_and.reduceat(np.logical_and.reduceat(mask, rows, axis=0), cols, axis=1)
