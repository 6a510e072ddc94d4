"""The network layer's stream layout: what its encoder and decoder agree on (spec/hsim.md section 10).

The latent grids of every level are coded level by level, row-major, channel last; each
level's channels may be rotated onto their principal axes (``ct``: 8-bit Givens angles)
and its grid taken through ``wt`` Haar levels; every symbol's Laplace scale comes from one
code per (level, channel, subband group), lowpass first.
"""

from __future__ import annotations

import numpy as np

from hsicodec.coding import entropy
from hsicodec.coding.wavelet import subband_groups, wavelet_levels
from hsicodec.layers.network.model import CodecModel
from hsicodec.layers.network.rotation import n_angles, rotation_from_codes

NAME = "network"
#: header ``codec`` keys of the network layer: components k, step exponent q and per-level offsets qo,
#: largest symbol ma, scale codes ls, Haar levels wt, channel rotation angles ct
KEYS = frozenset({"k", "q", "qo", "ma", "ls", "wt", "ct"})
SECTION = "l"
STEPS_PER_OCTAVE = 8  # latent quantization step = 2^(q / 8)
MAX_WAVELET_LEVELS = 8  # codec key "wt": Haar levels applied to each latent grid before quantization


def level_rotations(model: CodecModel, codes: bytes) -> list:
    """Each latent level's channel rotation from the header's angle bytes (level by level);
    None for a level too wide to be rotated."""
    out, pos = [], 0
    for lv in model.layout.levels:
        n = n_angles(lv.channels)
        out.append(rotation_from_codes(codes[pos : pos + n], lv.channels) if n or lv.channels == 1 else None)
        pos += n
    return out


def n_scale_codes(model: CodecModel, height: int, width: int, wavelet: int) -> int:
    """Number of latent scale codes: one per (level, channel, subband group)."""
    return sum(
        lv.channels * (wavelet_levels(*model.layout.grid_shape(i, height, width), wavelet) + 1)
        for i, lv in enumerate(model.layout.levels)
    )


def symbol_scales(model: CodecModel, codes: bytes, height: int, width: int, wavelet: int = 0) -> np.ndarray:
    """Per-symbol Laplace scales in stream order (level, row, col, channel).

    Codes run level by level, channel by channel, and within a channel over its
    subband groups 0..J (lowpass first; J = 0 without the wavelet).
    """
    out, pos = [], 0
    for i, lv in enumerate(model.layout.levels):
        gh, gw = model.layout.grid_shape(i, height, width)
        j = wavelet_levels(gh, gw, wavelet)
        n = lv.channels * (j + 1)
        s = np.array([entropy.scale_from_code(b) for b in codes[pos : pos + n]], np.float64).reshape(lv.channels, j + 1)
        out.append(s.T[subband_groups(gh, gw, j)].ravel())
        pos += n
    return np.concatenate(out) if out else np.zeros(0)
