"""Decode a coefficient-map stream with whichever entropy coder its header names (``ec`` 0, 1 or 2).

:mod:`hsicodec.layers.maps.coding` decodes ``ec`` 0 and 1; the learned entropy model (``ec = 2``) lives in
:mod:`hsicodec.layers.maps.lem_coder`, which builds on ``coding``: this module sits above both, so that the
layer and the post filter's encoder decode every file the same way.
"""

from __future__ import annotations

import numpy as np

from hsicodec.layers.maps import coding, lem_coder


def decode_symbols(data: bytes, p: coding.MapParams, height: int, width: int, threads: int = 0) -> np.ndarray:
    """Symbols (k, H, W) of a map stream under any entropy coder."""
    if p.coder == coding.EC_LEARNED:
        return lem_coder.decode(data, p, height, width, threads)
    return coding.decode_symbols(data, p, height, width, threads)


def decode_maps(data: bytes, p: coding.MapParams, height: int, width: int, threads: int = 0) -> np.ndarray:
    """Maps (H, W, k) float64 of a map stream under any entropy coder."""
    return coding.dequantize(decode_symbols(data, p, height, width, threads), p, height, width)
