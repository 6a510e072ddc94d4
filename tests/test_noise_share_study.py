"""tools/study_noise_share.py (issue #21; offline): the fine share and the per-map bits."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from hsicodec.layers.maps import coding as cm

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import study_noise_share as ns  # noqa: E402


def test_white_maps_put_three_quarters_in_the_finest_level_and_smooth_ones_little():
    white = ns.white_share(64, 48, 4)
    assert 0.65 < white < 0.8
    rng = np.random.default_rng(0)
    smooth = np.cumsum(np.cumsum(rng.normal(size=(64, 48, 2)), 0), 1)
    share = ns.fine_share(np.moveaxis(cm.cdf97_forward(smooth, 4), 2, 0), 4)
    assert share.shape == (2,) and (share < 0.1).all()
    assert ns.fine_share(np.zeros((1, 8, 8)), 2)[0] == 0.0


def test_map_bits_add_up_to_the_streams_ideal_bits():
    rng = np.random.default_rng(1)
    sym = np.round(rng.laplace(0, 1.5, (3, 32, 32))).astype(np.int64)
    bits = ns.map_bits(sym, 3)
    assert bits.shape == (3,) and (bits > 0).all()
    assert bits.sum() == pytest.approx(cm.code_bits(sym, 3))
    sym[2] = 0  # an all-zero map costs next to nothing
    assert ns.map_bits(sym, 3)[2] < 0.05 * bits[2]
