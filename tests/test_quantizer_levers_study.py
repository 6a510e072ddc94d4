"""tools/study_quantizer_levers.py (issue #21; offline): the rotation's side information, the per-map steps and
the per-class offsets."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from hsicodec.layers.maps import coding as cm

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import study_quantizer_levers as ql  # noqa: E402


def test_givens_angles_rebuild_the_rotation_and_stay_orthogonal_when_quantized():
    r = np.linalg.qr(np.random.default_rng(0).normal(size=(6, 6)))[0]
    angles, signs = ql.givens(r)
    assert angles.size == 15 and np.allclose(ql.from_givens(angles, signs), r, atol=1e-12)
    q = ql.from_givens(ql.quantized_angles(angles, 8), signs)
    assert np.allclose(q @ q.T, np.eye(6), atol=1e-12)  # what the decoder inverts exactly
    assert 1e-4 < np.abs(q - r).max() < 0.05


def test_the_level_rotation_decorrelates_the_rotated_levels_and_inverts():
    rng = np.random.default_rng(1)
    k, h, w, levels = 3, 64, 64, 2
    mix = np.array([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.5, 0.5, 0.7]])
    c = np.einsum("ij,jhw->ihw", mix, rng.normal(size=(k, h, w)))
    rotations, side = ql.level_rotations(c, levels, min_coeffs=500, bits=10)
    assert rotations and side == len(rotations) * 3 * 10
    r = ql.rotate(c, levels, rotations)
    assert np.allclose(ql.rotate(r, levels, rotations, inverse=True), c, atol=1e-9)
    boxes = ql._level_boxes(h, w, levels)[levels]  # the finest level is rotated
    x = np.concatenate([r[:, rs, cs].reshape(k, -1) for rs, cs in boxes], axis=1)
    cov = x @ x.T
    assert np.abs(cov - np.diag(np.diag(cov))).max() < 0.02 * cov.max()
    assert np.all(np.diff(np.diag(cov)) < 0)  # sorted by energy


def test_greedy_steps_lower_the_objective_where_the_maps_differ():
    rng = np.random.default_rng(2)
    c = rng.laplace(0, 1.0, (3, 32, 32)) * np.array([4.0, 1.0, 0.3])[:, None, None]
    exps = ql.greedy_steps(c, -20, 2, lam=0.5)
    assert len(exps) == 3 and exps != [-20] * 3
    assert ql.steps_cost(c, -20, 2, 0.5, exps) < ql.steps_cost(c, -20, 2, 0.5, [-20] * 3)


def test_per_class_offsets_are_the_cells_means_and_dequantize_with_them():
    sym = np.array([[[1, 1, 2, 0], [3, -1, 0, 0]]], np.int64)
    a = np.array([[[0.7, 0.9, 2.0, 0.1], [2.8, 0.8, 0.0, 0.0]]])
    cells = np.where(sym != 0, (np.minimum(np.abs(sym), 3) - 1) * 1000, -1)
    table = ql.fit_offsets(cells, sym, a)
    assert table == {0: round(32 * np.mean([0.3, 0.1, 0.2])), 1000: 0.0, 2000: round(32 * 0.2)}
    steps = np.ones(sym.shape)
    dec = ql.with_offsets(sym, steps, cells, table, 5)
    assert dec[0, 0, 0] == 1 - table[0] / 32 and dec[0, 1, 1] == -(1 - table[0] / 32) and dec[0, 0, 3] == 0
    assert np.array_equal(cm.dequantized(sym, 5, steps)[sym == 0], dec[sym == 0])


def test_striped_columns_raise_the_stripe_share_and_white_noise_does_not():
    rng = np.random.default_rng(3)
    white = rng.normal(size=(60, 50, 8))
    cols, rows = ql.stripe_share(white, maps=4)
    assert cols.max() < 5 * 0.8 / 60 and rows.max() < 5 * 0.8 / 50
    striped = white + rng.normal(size=(1, 50, 1)) * rng.normal(size=(1, 1, 8)) * 3
    assert ql.stripe_share(striped, maps=4)[0].max() > 0.5
