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

import os
from collections.abc import Callable

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
    even, odd = a[0 : n - 1 : 2], a[1::2]
    lo, hi = (even + odd) * _R2, (even - odd) * _R2
    if n % 2:
        lo = np.concatenate([lo, a[n - 1 : n]], axis=0)
    return np.moveaxis(np.concatenate([lo, hi], axis=0), 0, axis)


def _merge(c: np.ndarray, axis: int) -> np.ndarray:
    n = c.shape[axis]
    c = np.moveaxis(c, axis, 0)
    n_lo, n_pairs = (n + 1) // 2, n // 2
    lo, hi = c[:n_pairs], c[n_lo:]
    out = np.empty_like(c)
    out[0 : 2 * n_pairs : 2] = (lo + hi) * _R2
    out[1 : 2 * n_pairs : 2] = (lo - hi) * _R2
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


# ---------------------------------------------------------------------------
# CDF 9/7 (the JPEG 2000 irreversible wavelet), used by the coefficient-map layer
# ---------------------------------------------------------------------------

#: lifting constants of the CDF 9/7 wavelet (JPEG 2000 Part 1, Annex F)
CDF97_LIFTING = (-1.586134342059924, -0.052980118572961, 0.882911075530934, 0.443506852043971)
CDF97_K = 1.230174104914001
#: energy of one synthesis basis function per 1-D level: lowpass, highpass (this normalisation)
CDF97_GAIN = (1.9659073145753025, 0.520217981897461)


def _next_even(s: np.ndarray, nd: int) -> np.ndarray:
    """s[i + 1] for i < nd, whole-sample symmetric at the right end."""
    return s[1 : nd + 1] if s.shape[0] > nd else np.concatenate([s[1:], s[-1:]], 0)


def _odd_pair(d: np.ndarray, ns: int) -> np.ndarray:
    """d[i − 1] + d[i] for i < ns, whole-sample symmetric at both ends."""
    prev = np.concatenate([d[:1], d[: ns - 1]], 0)
    cur = d if ns == d.shape[0] else np.concatenate([d, d[-1:]], 0)
    return prev + cur


def _cdf97_split(x: np.ndarray) -> np.ndarray:
    """One 1-D analysis level along axis 0: lowpass half (ceil) first, then highpass."""
    if x.shape[0] < 2:
        return x.copy()
    a, b, g, d = CDF97_LIFTING
    s, t = x[0::2].copy(), x[1::2].copy()
    ns, nd = s.shape[0], t.shape[0]
    t += a * (s[:nd] + _next_even(s, nd))
    s += b * _odd_pair(t, ns)
    t += g * (s[:nd] + _next_even(s, nd))
    s += d * _odd_pair(t, ns)
    return np.concatenate([s / CDF97_K, t * CDF97_K], 0)


def _cdf97_merge(c: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_cdf97_split`."""
    n = c.shape[0]
    if n < 2:
        return c.copy()
    a, b, g, d = CDF97_LIFTING
    ns, nd = (n + 1) // 2, n // 2
    s, t = c[:ns] * CDF97_K, c[ns:] / CDF97_K
    s -= d * _odd_pair(t, ns)
    t -= g * (s[:nd] + _next_even(s, nd))
    s -= b * _odd_pair(t, ns)
    t -= a * (s[:nd] + _next_even(s, nd))
    x = np.empty_like(c)
    x[0::2], x[1::2] = s, t
    return x


def cdf97_forward_reference(grid: np.ndarray, levels: int) -> np.ndarray:
    """CDF 9/7 coefficients of an (H, W, ...) array after ``levels`` 2-D levels (Mallat layout): numpy."""
    c = np.array(grid, dtype=np.float64, copy=True)
    for h, w in _regions(c.shape[0], c.shape[1], levels):
        blk = _cdf97_split(c[:h, :w])
        c[:h, :w] = np.swapaxes(_cdf97_split(np.swapaxes(blk, 0, 1)), 0, 1)
    return c


def cdf97_inverse_reference(coeffs: np.ndarray, levels: int) -> np.ndarray:
    """The array whose :func:`cdf97_forward_reference` is ``coeffs``: numpy."""
    g = np.array(coeffs, dtype=np.float64, copy=True)
    for h, w in reversed(_regions(g.shape[0], g.shape[1], levels)):
        blk = np.swapaxes(_cdf97_merge(np.swapaxes(g[:h, :w], 0, 1)), 0, 1)
        g[:h, :w] = _cdf97_merge(blk)
    return g


#: set to "0" to run the numpy reference instead of the C++ kernels (benchmarks, bisecting)
NATIVE_ENV = "HSICODEC_NATIVE_WAVELET"
#: native and reference agree to this relative tolerance (of the largest magnitude); the default build
#: (no FMA contraction) makes the same roundings in the same order and agrees bit for bit
NATIVE_RTOL = 1e-12
_NATIVE_MAX_LEVELS = 32


def native_wavelet(name: str) -> Callable | None:
    """The C++ kernel ``name`` of ``hsicodec._native`` (csrc/wavelet97.cpp), or None without the extension
    or with the environment variable ``HSICODEC_NATIVE_WAVELET=0``."""
    if os.environ.get(NATIVE_ENV, "").strip() == "0":
        return None
    try:
        from hsicodec import _native  # type: ignore[attr-defined]
    except ImportError:
        return None
    return getattr(_native, name, None)


def _native_transform(
    name: str, a: np.ndarray, levels: int, threads: int, overwrite: bool = False
) -> np.ndarray | None:
    """``a`` as a fresh C-contiguous float64 copy (``overwrite``: ``a`` itself where it is one), transformed in
    place by the C++ kernel ``name``; None where the kernel is missing or the input is not one it takes (the
    caller uses the reference)."""
    nat = native_wavelet(name)
    a = np.asarray(a)
    if nat is None or a.ndim < 2 or not 0 <= levels <= _NATIVE_MAX_LEVELS:
        return None
    own = overwrite and a.dtype == np.float64 and a.flags.c_contiguous and a.flags.writeable
    c = a if own else np.array(a, dtype=np.float64, copy=True, order="C")
    if c.size:
        nat(c.reshape(c.shape[0], c.shape[1], -1), int(levels), int(threads))
    return c


def cdf97_forward(grid: np.ndarray, levels: int, threads: int = 0, overwrite: bool = False) -> np.ndarray:
    """CDF 9/7 coefficients of an (H, W, ...) array after ``levels`` 2-D levels (Mallat layout).

    C++ (multithreaded, ``threads`` ≤ 0: all cores) when the extension has it, else
    :func:`cdf97_forward_reference`; both agree within :data:`NATIVE_RTOL` (bit for bit in the default build).
    ``overwrite``: ``grid`` (a C-contiguous float64 array the caller gives up) may hold the result."""
    out = _native_transform("cdf97_forward_inplace", grid, levels, threads, overwrite)
    return cdf97_forward_reference(grid, levels) if out is None else out


def cdf97_inverse(coeffs: np.ndarray, levels: int, threads: int = 0) -> np.ndarray:
    """The array whose :func:`cdf97_forward` is ``coeffs`` (C++ or :func:`cdf97_inverse_reference`)."""
    out = _native_transform("cdf97_inverse_inplace", coeffs, levels, threads)
    return cdf97_inverse_reference(coeffs, levels) if out is None else out


def subbands(height: int, width: int, levels: int) -> list:
    """The subbands in coding order: the final lowpass, then HL, LH, HH of each level from
    the coarsest to the finest. Each entry: (level group, orientation 0..3, row slice, col slice),
    level group 0 for the lowpass and 1..levels from the coarsest detail level."""
    regions = _regions(height, width, levels)
    if levels:
        lh, lw = (regions[-1][0] + 1) // 2, (regions[-1][1] + 1) // 2
    else:
        lh, lw = int(height), int(width)
    out = [(0, 0, slice(0, lh), slice(0, lw))]
    for i in reversed(range(levels)):
        h, w = regions[i]
        lh, lw = (h + 1) // 2, (w + 1) // 2
        grp = levels - i
        out += [
            (grp, 1, slice(0, lh), slice(lw, w)),
            (grp, 2, slice(lh, h), slice(0, lw)),
            (grp, 3, slice(lh, h), slice(lw, w)),
        ]
    return out


def cdf97_subband_gain(group: int, orientation: int, levels: int) -> float:
    """Approximate synthesis energy of one coefficient of a subband (its weight in the
    pixel-domain squared error): lowpass gain per level along each axis, then the
    subband's own pair of filters."""
    gl, gh = CDF97_GAIN
    if group == 0:
        return gl ** (2 * levels)
    above = levels - group  # lowpass levels above this detail level
    return gl ** (2 * above) * (gl * gh if orientation in (1, 2) else gh * gh)
