"""The network layer's decoder: header keys → latent grids → the modulated SIREN's coefficients on a window.

Never imports torch: the SIREN runs on the native kernel when built, numpy otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from hsicodec.coding import entropy
from hsicodec.coding.wavelet import haar_inverse, wavelet_levels
from hsicodec.errors import HsimHeaderError, header_int
from hsicodec.layers.network import siren
from hsicodec.layers.network.latents import local_coords, pixel_latents
from hsicodec.layers.network.layout import (
    KEYS,
    MAX_WAVELET_LEVELS,
    STEPS_PER_OCTAVE,
    level_rotations,
    n_scale_codes,
    symbol_scales,
)
from hsicodec.layers.network.model import CodecModel
from hsicodec.layers.network.rotation import n_angles

ROW_BLOCK = 64  # pixel rows evaluated per network call (bounds peak memory)


@dataclass
class NetworkParams:
    """The network layer's validated header keys."""

    k: int
    steps: list  # per level
    max_abs: int
    scale_codes: bytes  # one per (level, channel, subband group)
    wavelet: int = 0  # Haar levels of the latent grids (0: the grids are quantized directly)
    rotations: list | None = None  # per level, the channel rotation Q (coded = grid @ Q); None: identity


def parse_params(c: dict, header: dict, model: CodecModel | None) -> NetworkParams:
    """Validate the network layer's keys of a codec map; HsimHeaderError names the bad key. With k = 0 (no
    latents) its quantizer keys may be left out; without a model none of them may be there."""

    def integer(key, lo, hi):
        return header_int(c, "codec", key, lo, hi)

    if model is None:
        extra = sorted(key for key in ("q", "qo", "ma", "ls", "ct") if key in c)
        if c.get("k", 0) != 0 or extra:
            raise HsimHeaderError(
                "header key 'model' is missing: only a file without network latents "
                f"(codec.k = 0{', no ' + ', '.join(extra) if extra else ''}) decodes without one"
            )
    n_levels = len(model.layout.levels) if model is not None else 0
    k = integer("k", 0, model.n_out if model is not None else 0) if "k" in c else 0
    if k == 0:  # no network latents: their quantizer keys (and k itself) may be left out
        c = {"q": 0, "qo": [0] * n_levels, "ma": 0, "ls": b"", **c}
    q = integer("q", -512, 512)
    max_abs = integer("ma", 0, entropy.MAX_ABS_LIMIT)
    wt = c.get("wt", 0)
    if type(wt) is not int or not 0 <= wt <= MAX_WAVELET_LEVELS:
        raise HsimHeaderError(f"header key 'codec.wt': expected an int in 0..{MAX_WAVELET_LEVELS}, got {wt!r}")
    shape = header["shape"]
    codes = c.get("ls")
    n_codes = n_scale_codes(model, shape[0], shape[1], wt) if k and model is not None else 0
    if not isinstance(codes, bytes) or len(codes) != n_codes:
        raise HsimHeaderError(f"header key 'codec.ls': expected {n_codes} latent scale codes")
    qo = c.get("qo")
    if not isinstance(qo, list) or len(qo) != n_levels or any(type(o) is not int or not -64 <= o <= 64 for o in qo):
        raise HsimHeaderError(f"header key 'codec.qo': expected {n_levels} ints in -64..64")
    steps = [entropy.step_from_exponent(q + o, STEPS_PER_OCTAVE) for o in qo]
    rot = c.get("ct")
    rotations = None
    if rot is not None and model is not None:
        n_rot = sum(n_angles(lv.channels) for lv in model.layout.levels)
        if not isinstance(rot, bytes) or len(rot) != n_rot:
            raise HsimHeaderError(f"header key 'codec.ct': expected {n_rot} rotation angle bytes")
        rotations = level_rotations(model, rot)
    return NetworkParams(k, steps, max_abs, codes, wt, rotations)


def decode_latents(data: bytes, model: CodecModel, p: NetworkParams, height: int, width: int) -> list:
    """Entropy-decode and dequantize the latent grids (inverting the Haar transform and the
    channel rotation when the file uses them)."""
    sym = entropy.laplace_decode(data, symbol_scales(model, p.scale_codes, height, width, p.wavelet), p.max_abs)
    grids, pos = [], 0
    for i, lv in enumerate(model.layout.levels):
        gh, gw = model.layout.grid_shape(i, height, width)
        n = gh * gw * lv.channels
        g = (sym[pos : pos + n].astype(np.float32) * np.float32(p.steps[i])).reshape(gh, gw, lv.channels)
        if p.wavelet:
            g = haar_inverse(g, wavelet_levels(gh, gw, p.wavelet))
        if p.rotations is not None and p.rotations[i] is not None:
            g = np.asarray(g, np.float64) @ p.rotations[i].T
        grids.append(np.asarray(g, np.float32))
        pos += n
    return grids


def synthesize(
    model: CodecModel,
    grids: list,
    k: int,
    height: int,
    width: int,
    window: tuple,
    *,
    backend: str = "auto",
    threads: int = 0,
    progress: Callable[[float], None] | None = None,
) -> np.ndarray:
    """Normalised coefficients (h, w, k) of a window from dequantized grids."""
    r0, c0, h, w = window
    out = np.empty((h, w, k), np.float32)
    if k == 0:
        return out
    weights = model.truncated(k)
    for a in range(r0, r0 + h, ROW_BLOCK):
        b = min(a + ROW_BLOCK, r0 + h)
        phi = pixel_latents(model.layout, grids, height, width, a, b, c0, c0 + w)
        x = local_coords(model.layout, a, b, c0, c0 + w, height, width)
        out[a - r0 : b - r0] = siren.forward(weights, x, phi, backend=backend, threads=threads).reshape(b - a, w, k)
        if progress is not None:
            progress((b - r0) / h)
    return out


__all__ = ["KEYS", "NetworkParams", "parse_params", "decode_latents", "synthesize", "ROW_BLOCK"]
