"""tools/study_cross_map.py (issue #21; offline): its window sums, sign code lengths and zero estimate."""

from __future__ import annotations

import sys
from math import log2
from pathlib import Path

import numpy as np
import pytest

from hsicodec.layers.maps import coding as cm

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import study_cross_map as sc  # noqa: E402


def test_box_is_the_window_sum():
    x = np.random.default_rng(0).normal(size=(7, 9))
    got = sc.box(x, 2)
    p = np.pad(x, 2)
    want = np.array([[p[r : r + 5, c : c + 5].sum() for c in range(9)] for r in range(7)])
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_kt_length_is_the_sequential_code_length():
    bits = [1, 1, 0, 1, 0, 0, 0, 1, 1, 1, 1]
    c, total = [0.5, 0.5], 0.0
    for b in bits:
        total -= log2(c[b] / sum(c))
        c[b] += 1
    assert sc._kt_length(sum(bits), len(bits) - sum(bits)) == pytest.approx(total)


def _maps(seed: int = 0, k: int = 3, n: int = 32, levels: int = 3) -> np.ndarray:
    """Symbols of k maps whose map j ≥ 1 is ± map 0 by quadrant (locally correlated, globally not)."""
    rng = np.random.default_rng(seed)
    base = np.round(rng.laplace(0, 2, (n, n))).astype(np.int64)
    sign = np.ones((n, n), np.int64)
    sign[: n // 2, n // 2 :] = sign[n // 2 :, : n // 2] = -1  # each subband's quadrants flip too
    for _, _, rs, cs in cm.subbands(n, n, levels):
        h, w = rs.stop - rs.start, cs.stop - cs.start
        s = np.ones((h, w), np.int64)
        s[: h // 2, w // 2 :] = s[h // 2 :, : w // 2] = -1
        sign[rs, cs] = s
    return np.stack([base] + [sign * base * (1 if j % 2 else -1) for j in range(1, k)])


def test_signs_that_follow_the_earlier_maps_cost_far_less_than_a_bit():
    sym = _maps()
    n, bits = sc.sign_bits(sym, 3)
    assert n == np.count_nonzero(sym[1:]) and bits < 0.5 * n
    rng = np.random.default_rng(1)  # independent signs: no saving (the adaptive code costs a little more)
    noise = np.abs(sym) * np.where(rng.random(sym.shape) < 0.5, -1, 1)
    n2, bits2 = sc.sign_bits(noise, 3)
    assert n2 == n and bits2 > 0.97 * n2


def test_signs_without_a_prediction_cost_a_bit_each():
    """Where the earlier maps are zero the prediction is 0: such signs are a coin (they once counted as free)."""
    rng = np.random.default_rng(3)
    sym = np.zeros((2, 32, 32), np.int64)
    sym[1] = np.round(rng.laplace(0, 3, (32, 32))).astype(np.int64)
    n, bits = sc.sign_bits(sym, 3)
    assert n == np.count_nonzero(sym[1]) and bits > 0.97 * n


def test_the_zero_estimate_lowers_the_error_of_correlated_maps_only():
    rng = np.random.default_rng(2)
    a = rng.normal(0, 1, (32, 32))
    coeffs = np.stack([a, 0.2 * a + 0.01 * rng.normal(size=a.shape)])  # map 1 is mostly below the zero bin
    q = 0
    step = cm._step_map(32, 32, 3, 1.0)
    sym = np.trunc(coeffs / step + np.sign(coeffs) * 0.4).astype(np.int64)
    before, after, bits = sc.zero_estimate(sym, coeffs, 0, q, 3, near=False)
    assert after < 0.95 * before and bits == sc.FACTOR_BITS * 4  # map 0 keeps its own quantization error
    unrelated = np.stack([a, 0.2 * rng.normal(0, 1, a.shape)])
    sym2 = np.trunc(unrelated / step + np.sign(unrelated) * 0.4).astype(np.int64)
    before2, after2, _ = sc.zero_estimate(sym2, unrelated, 0, q, 3, near=False)
    assert after2 <= before2 and after2 > 0.97 * before2  # the encoder's factor turns a useless estimate off
