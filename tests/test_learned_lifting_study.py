"""tools/study_learned_lifting.py (issue #21; offline): its subband plumbing, closed loop and predictor."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from hsicodec.coding import entropy
from hsicodec.coding.wavelet import cdf97_forward_reference
from hsicodec.layers.maps import coding as cm

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import study_learned_lifting as sl  # noqa: E402

LEVELS = 3


def _coeffs(seed: int = 0, k: int = 3, h: int = 27, w: int = 22) -> np.ndarray:
    """CDF 9/7 coefficients (k, h, w) of smooth random maps whose map j ≥ 1 is ± map 0 by quadrant."""
    rng = np.random.default_rng(seed)
    base = np.cumsum(np.cumsum(rng.normal(size=(h, w)), 0), 1) / 4.0
    sign = np.where((np.arange(h)[:, None] < h // 2) ^ (np.arange(w)[None, :] < w // 2), -1.0, 1.0)
    maps = np.stack([base] + [sign * base * (0.5 if j % 2 else -0.3) for j in range(1, k)], axis=2)
    return np.moveaxis(cdf97_forward_reference(maps, LEVELS), 2, 0)


@pytest.mark.parametrize("i", range(LEVELS))
def test_details_round_trip_and_lowpass_is_the_coarse_synthesis(i):
    c = _coeffs()[0]
    d = sl._details(c, LEVELS, i)
    back = np.zeros_like(c)
    sl._put_details(back, d, LEVELS, i)
    h, w = sl._regions(*c.shape, LEVELS)[i]
    lh, lw = (h + 1) // 2, (w + 1) // 2
    mask = np.zeros(c.shape, bool)
    mask[:h, :w] = True
    mask[:lh, :lw] = False
    np.testing.assert_array_equal(back[mask], c[mask])  # exactly the level's three detail subbands
    assert np.count_nonzero(back[~mask]) == 0
    low = sl._lowpass(c, LEVELS, i)
    assert low.shape == (lh, lw)
    if i == LEVELS - 1:
        np.testing.assert_array_equal(low, c[:lh, :lw])


def test_features_have_no_reference_for_map_0():
    c = _coeffs()
    x0, x2 = sl.features(c, 0, LEVELS, 0, 0.1), sl.features(c, 2, LEVELS, 0, 0.1)
    assert x0.shape == x2.shape == (sl.N_FEATURES,) + sl._lowpass(c[0], LEVELS, 0).shape
    assert not x0[1:].any() and x2[1:].any()


def test_closed_loop_without_a_predictor_is_todays_quantizer():
    c = _coeffs()
    q = -40
    sym, dec = sl.closed_loop(None, c, q, LEVELS, 6)
    steps = cm._step_map(*c.shape[1:], LEVELS, entropy.step_from_exponent(q, cm.STEPS_PER_OCTAVE))
    want = (np.sign(c) * np.floor(np.abs(c) / steps + sl.DEADZONE)).astype(np.int64)
    np.testing.assert_array_equal(sym, want)
    mag = np.abs(want)
    np.testing.assert_allclose(dec, np.sign(want) * np.where(mag > 0, mag - 6 / cm.RECON_DEN, 0) * steps)


@pytest.mark.parametrize("hidden", [0, 8])
def test_the_decoder_rebuilds_what_the_encoders_closed_loop_decoded(hidden):
    torch = pytest.importorskip("torch")
    torch.manual_seed(hidden)
    net = sl._network(hidden)
    for p in net.parameters():  # any weights: the loop must be decodable whatever the predictor says
        torch.nn.init.normal_(p, std=0.1)
    c = _coeffs(5)
    sym, dec = sl.closed_loop(net, c, -40, LEVELS, 6)
    assert np.array_equal(sl.decode_loop(net, sym, -40, LEVELS, 6), dec)
    assert not np.array_equal(sym, sl.closed_loop(None, c, -40, LEVELS, 6)[0])  # the prediction did something


def test_a_trained_predictor_codes_correlated_maps_in_fewer_symbols():
    pytest.importorskip("torch")
    q = -40
    data = []
    for seed in range(6):
        c = _coeffs(seed)
        step = entropy.step_from_exponent(q, cm.STEPS_PER_OCTAVE)
        _, dec = sl.closed_loop(None, c, q, LEVELS, 0)
        for j in range(c.shape[0]):
            for i in range(LEVELS):
                s = sl._steps(LEVELS, i, step)[:, None, None]
                valid = sl._details(np.ones_like(c[j]), LEVELS, i)
                x, t = sl.features(dec, j, LEVELS, i, step), sl._details(c[j], LEVELS, i) / s
                data.append((x.astype(np.float32), t.astype(np.float32), valid.astype(np.float32)))
    net = sl.train(data, 40, hidden=8)
    c = _coeffs(99)
    today, _ = sl.closed_loop(None, c, q, LEVELS, 0)
    learned, _ = sl.closed_loop(net, c, q, LEVELS, 0)
    # map 1 and 2 follow map 0's details with a local sign: their residuals shrink
    assert np.abs(learned[1:]).sum() < 0.8 * np.abs(today[1:]).sum()
    assert sl.macs_per_pixel(8) > sl.macs_per_pixel(0) > 0
