"""Reduced-resolution decoding of the coefficient-map layer: only the coarse wavelet levels.

A read 2^n times smaller (:mod:`hsicodec.coding.reduce`) of a map layer uses only the maps' CDF 9/7 low
band at level L = min(n, levels), which the coarse subbands give: level groups 0..levels − L, the
(ceil(H / 2^L), ceil(W / 2^L)) corner of the Mallat layout. So the layer

1. entropy-decodes only those subbands of each map (the stream codes each map coarse levels first; the
   rANS coder stops a substream after its last map's coarse subbands, :func:`rans_decode` with ``stop``;
   a map followed by another in its substream, i.e. maps of fewer than 2^18 coefficients, and the older
   constriction streams are decoded whole first: they save only the steps below),
2. dequantizes them and runs levels − L synthesis levels (the full decode's steps and kernels, on 4^L times
   fewer coefficients): the low band of the decoded maps at level L, exactly (the 9/7 is invertible),
3. gives the 2^n block means of the maps that low band synthesises with every finer detail taken as zero
   (:func:`hsicodec.coding.coarse.coarse_block_means`: on the geo transform's grid, a constant map stays that
   constant).

This estimates the block means of the full decode; it is not equal to them (what the skipped details add
to a block's mean is missing). The optional post filter (``codec.pf``: ring Laplacians at full resolution,
zero on constants) is not applied at reduced resolution.
"""

from __future__ import annotations

import numpy as np

from hsicodec.coding.coarse import coarse_block_means
from hsicodec.coding.reduce import block_mean, reduced_size
from hsicodec.coding.wavelet import cdf97_forward, cdf97_inverse, cdf97_inverse_reference, native_wavelet
from hsicodec.layers.maps.coding import (
    EC_RANS,
    RECON_DEN,
    MapParams,
    _step_map,
    dequantized,
    offset_codes,
    offsets,
    rans_decode,
)
from hsicodec.layers.maps.streams import decode_symbols


def coarse_subbands(levels: int, level: int) -> int:
    """Subbands of level groups 0..levels − ``level`` (:func:`hsicodec.coding.wavelet.subbands` order): the
    low band and three detail subbands per level coarser than ``level``."""
    return 1 + 3 * (levels - level)


def decode_coarse_symbols(
    data: bytes, p: MapParams, height: int, width: int, level: int, threads: int = 0
) -> np.ndarray:
    """Symbols (k, ceil(H / 2^level), ceil(W / 2^level)) of the subbands coarser than ``level`` (0 ≤ level ≤
    ``p.levels``): the rANS stream decoded only as far as they need, an older stream or one of the learned
    entropy model (``ec = 2``) whole, then cropped."""
    rows, cols = reduced_size(height, level), reduced_size(width, level)  # the low band's sides at that level
    if p.coder == EC_RANS:
        return rans_decode(data, p, height, width, threads, stop=coarse_subbands(p.levels, level))
    return decode_symbols(data, p, height, width, threads)[:, :rows, :cols]


def dequantize_coarse(
    sym: np.ndarray, p: MapParams, height: int, width: int, level: int, threads: int = 0
) -> np.ndarray:
    """The maps' low band (ceil(H / 2^level), ceil(W / 2^level), k) float64 at level ``level`` from the coarse
    symbols (k, rows, cols): dequantized with the full decode's steps, then levels − ``level`` synthesis levels
    (C++ where the extension has it, else numpy: the same roundings as :func:`coding.dequantize`)."""
    k, rows, cols = sym.shape
    steps = np.ascontiguousarray(_step_map(height, width, p.levels, p.step)[:rows, :cols])
    nat = native_wavelet("cdf97_dequantize_inverse")
    if nat is not None:
        sym = np.ascontiguousarray(sym, np.int64)
        codes = offset_codes(sym, p, p.levels - level, threads)  # the corner's subbands are the full layout's
        return nat(sym, steps, p.recon / RECON_DEN, p.levels - level, threads, codes)
    off = offsets(sym, p, p.levels - level)
    return cdf97_inverse_reference(np.moveaxis(dequantized(sym, off, steps), 0, 2), p.levels - level)


def decode_maps_reduced(
    data: bytes, p: MapParams, height: int, width: int, reduce: int, threads: int = 0
) -> np.ndarray:
    """The 2^reduce block-mean estimate (ceil(H / 2^reduce), ceil(W / 2^reduce), k) float64 of the maps a layer
    stream decodes to, from their coarse subbands only (this module's docstring); ``reduce`` ≥ 1."""
    level = min(int(reduce), p.levels)
    sym = decode_coarse_symbols(data, p, height, width, level, threads)
    low = dequantize_coarse(sym, p, height, width, level, threads)
    return coarse_block_means(low, height, width, level, int(reduce))


def reduced_reference(full: np.ndarray, n: int, levels: int) -> np.ndarray:
    """What a reduce-n read of maps estimates, from their full decode ``full`` (H, W, ...) alone (the slow
    reference of :func:`decode_maps_reduced`): the CDF 9/7 low band at min(n, levels), every finer detail set to
    zero, synthesised at full resolution, then the 2^n block means."""
    lv = min(n, levels)
    c = cdf97_forward(np.asarray(full, np.float64), lv)
    h, w = reduced_size(full.shape[0], lv), reduced_size(full.shape[1], lv)
    z = np.zeros_like(c)
    z[:h, :w] = c[:h, :w]
    return block_mean(cdf97_inverse(z, lv), n)
