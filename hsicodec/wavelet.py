"""Orthonormal 2-D Haar transform of latent grids, in place (Mallat layout).

The latent grids of a scene are smooth images; coding them as independent
symbols wastes the bits their spatial correlation could save. The encoder
quantizes their Haar coefficients instead, each subband group with its own
Laplace scale, and the decoder inverts the transform after dequantization.
The transform is orthonormal, so a quantization error has the same energy in
both domains and gradients map across by the forward transform itself.

Odd lengths: of ``n`` samples the ``n // 2`` pairs give a lowpass and a
highpass value each, (a + b)/√2 and (a − b)/√2; an unpaired last sample joins
the lowpass half unchanged. Along one axis the lowpass half comes first.
Coefficient arrays have the grid's shape (H, W, C); axes 0 and 1 are transformed.
"""

from __future__ import annotations

import numpy as np

_R2 = np.sqrt(0.5)


def wavelet_levels(height: int, width: int, max_levels: int) -> int:
    """Haar levels used for an ``height`` × ``width`` grid: at most ``max_levels``,
    and none beyond the point where both sides are down to one sample."""
    n = max(int(height), int(width))
    j = 0
    while j < max_levels and n >= 2:
        n = (n + 1) // 2
        j += 1
    return j


def _split(a: np.ndarray, axis: int) -> np.ndarray:
    n = a.shape[axis]
    a = np.moveaxis(a, axis, 0)
    even, odd = a[0:n - 1:2], a[1::2]
    lo, hi = (even + odd) * _R2, (even - odd) * _R2
    if n % 2:
        lo = np.concatenate([lo, a[n - 1:n]], axis=0)
    return np.moveaxis(np.concatenate([lo, hi], axis=0), 0, axis)


def _merge(c: np.ndarray, axis: int) -> np.ndarray:
    n = c.shape[axis]
    c = np.moveaxis(c, axis, 0)
    n_lo, n_pairs = (n + 1) // 2, n // 2
    lo, hi = c[:n_pairs], c[n_lo:]
    out = np.empty_like(c)
    out[0:2 * n_pairs:2] = (lo + hi) * _R2
    out[1:2 * n_pairs:2] = (lo - hi) * _R2
    if n % 2:
        out[n - 1] = c[n_pairs]
    return np.moveaxis(out, 0, axis)


def _regions(height: int, width: int, levels: int) -> list:
    """(h, w) of the region each level splits, finest level first."""
    out, h, w = [], int(height), int(width)
    for _ in range(levels):
        out.append((h, w))
        h, w = (h + 1) // 2, (w + 1) // 2
    return out


def haar_forward(grid: np.ndarray, levels: int) -> np.ndarray:
    """Coefficients of an (H, W, ...) grid after ``levels`` Haar levels (same shape)."""
    c = np.array(grid, dtype=np.float64, copy=True)
    for h, w in _regions(c.shape[0], c.shape[1], levels):
        c[:h, :w] = _split(_split(c[:h, :w], 0), 1)
    return c


def haar_inverse(coeffs: np.ndarray, levels: int) -> np.ndarray:
    """The grid whose :func:`haar_forward` is ``coeffs`` (exact inverse)."""
    g = np.array(coeffs, dtype=np.float64, copy=True)
    for h, w in reversed(_regions(g.shape[0], g.shape[1], levels)):
        g[:h, :w] = _merge(_merge(g[:h, :w], 1), 0)
    return g


def subband_groups(height: int, width: int, levels: int) -> np.ndarray:
    """(H, W) int map of each coefficient's group: 0 for the final lowpass region,
    j (1..levels) for the detail coefficients of the j-th coarsest level."""
    groups = np.zeros((int(height), int(width)), np.int64)
    regions = _regions(height, width, levels)
    for i, (h, w) in enumerate(regions):
        lh, lw = (h + 1) // 2, (w + 1) // 2
        band = np.zeros((h, w), bool)
        band[lh:, :] = True
        band[:, lw:] = True
        groups[:h, :w][band] = levels - i
    return groups
