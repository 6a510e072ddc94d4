"""The map layer's post-filter encoder: least-squares taps per file and their coding by rate–distortion
(the equal-bits decision is :mod:`hsicodec.layers.maps.stagefit`'s).

See :mod:`hsicodec.layers.maps.postfilter` for what the taps do and how they travel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hsicodec.layers.maps import postfilter as pf

MAX_FILTERED = 16  # maps the fit considers (the first ones carry nearly all the gain)
FIT_PIXELS = 65536  # pixels a least-squares fit reads at most: an even subsample of larger files' valid pixels
EXPONENTS = range(4, pf.MAX_EXPONENT + 1)
KEY_OVERHEAD = 5  # msgpack bytes of the key "pf" and of its bin header


@dataclass
class Fit:
    """A coded post filter: its ``codec.pf`` bytes, the filter, and the predicted squared-error saving."""

    data: bytes
    post: pf.PostFilter
    saving: float


def normal_equations(
    maps: np.ndarray, resid_b: np.ndarray, gram: np.ndarray, norm: float, m: int, rows
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A, b of the least squares min ‖R − Σ_a θ_a σ f_a B_{j(a)}‖² over the features of the first m maps
    (own rings, then the rings of map 0 for maps 1..m−1); returns (A, b, map of each feature, is-cross)."""
    h, w, _ = maps.shape
    feats = pf.ring_features(maps[..., :m])
    cols, owner, is_cross = [], [], []
    for j in range(m):
        for f in feats:
            cols.append(f[..., j].reshape(-1)[rows])
            owner.append(j)
            is_cross.append(False)
    for j in range(1, m):
        for f in feats:
            cols.append(f[..., 0].reshape(-1)[rows])
            owner.append(j)
            is_cross.append(True)
    f_mat = np.stack(cols, axis=1)
    jo = np.array(owner)
    a = norm**2 * (f_mat.T @ f_mat) * gram[np.ix_(jo, jo)]
    b = norm * np.einsum("na,na->a", f_mat, resid_b[:, jo])
    return a, b, jo, np.array(is_cross)


def fit_pixels(rows: np.ndarray) -> tuple[np.ndarray, float]:
    """The pixels (flat indices) a stage's least squares is fitted on: every valid pixel (``rows``, bool) up to
    :data:`FIT_PIXELS`, else every s-th of them; and the factor that scales its sums to all valid pixels."""
    idx = np.flatnonzero(rows)
    stride = -(-len(idx) // FIT_PIXELS) if len(idx) > FIT_PIXELS else 1
    sub = idx[::stride]
    return sub, len(idx) / max(len(sub), 1)


def fit_residual(
    maps: np.ndarray, x: np.ndarray, mean: np.ndarray, basis: np.ndarray, norm: float, valid=None
) -> tuple[np.ndarray, float, np.ndarray] | None:
    """What a stage is fitted to: the pixels of :func:`fit_pixels` (flat indices), the factor to all valid
    pixels, and the residual (n, C) x − ((maps σ) B + μ) there; None where too few pixels are valid."""
    h, w, k = maps.shape
    c = x.shape[2]
    rows = valid.reshape(-1, c).all(axis=1) if valid is not None else np.ones(h * w, bool)
    if k == 0 or rows.sum() < 64:
        return None
    idx, scale = fit_pixels(rows)
    return idx, scale, x.reshape(-1, c)[idx] - mean - norm * (maps.reshape(-1, k)[idx] @ basis)


def _bits(ints: np.ndarray) -> int:
    z = np.where(ints >= 0, 2 * ints, -2 * ints - 1)
    return int(np.sum(2 * np.floor(np.log2(z + 1)).astype(np.int64) + 1))


def choose(
    a_full: np.ndarray,
    b_full: np.ndarray,
    owner: np.ndarray,
    is_cross: np.ndarray,
    lam: float,
    prior: np.ndarray | None = None,
) -> tuple | None:
    """The best (net saving, saving, m, cross, e, integers) over the filtered maps m, the cross flag and the
    tap step e for normal equations (A, b) of :func:`normal_equations` (taps coded as integer multiples of
    δ = 2^(−e/2) from ``prior``, one per feature, else zero); None where nothing saves more than it costs."""
    best: tuple | None = None
    for m in range(1, int(owner.max(initial=-1)) + 2):
        for cross in (False, True) if m > 1 else (False,):
            use = (owner < m) & (cross | ~is_cross)
            a, b = a_full[np.ix_(use, use)], b_full[use]
            p0 = np.zeros(len(b)) if prior is None else prior[use]
            theta = np.linalg.solve(a + 1e-12 * max(np.trace(a), 1e-300) * np.eye(len(b)), b)
            for e in EXPONENTS:
                ints = np.round((theta - p0) / 2.0 ** (-e / 2)).astype(np.int64)
                if np.abs(ints).max(initial=0) >= 1 << 22:
                    continue
                tq = p0 + ints * 2.0 ** (-e / 2)
                saving = float(2 * tq @ b - tq @ a @ tq)
                nbytes = 2 + (_bits(ints) + 7) // 8 + KEY_OVERHEAD
                gain = saving - lam * 8 * nbytes
                if best is None or gain > best[0]:
                    best = (gain, saving, m, cross, e, ints)
    return best if best is not None and best[0] > 0 else None


def fit_filter(
    maps: np.ndarray, x: np.ndarray, mean: np.ndarray, basis: np.ndarray, norm: float, lam: float, valid=None
) -> Fit | None:
    """The post filter of decoded maps (H, W, k) that saves the most squared error of the cube x (H, W, C)
    (reconstructed as (maps σ) B + μ) net of λ per bit, over the number of filtered maps, the cross taps
    and the tap step; None where none saves more than it costs."""
    k = maps.shape[2]
    fitted = fit_residual(maps, x, mean, basis, norm, valid)
    if fitted is None:
        return None
    idx, scale, resid = fitted
    resid_b = resid @ basis.T
    gram = basis @ basis.T
    mmax = min(k, MAX_FILTERED)
    a_full, b_full, owner, is_cross = normal_equations(maps, resid_b, gram, norm, mmax, idx)
    best = choose(a_full * scale, b_full * scale, owner, is_cross, lam)
    if best is None:
        return None
    _, saving, m, cross, e, ints = best
    own = ints[: pf.N_TAPS * m].reshape(m, pf.N_TAPS)
    cr = None
    if cross:
        cr = np.zeros((m, pf.N_TAPS), np.int64)
        cr[1:] = ints[pf.N_TAPS * m :].reshape(m - 1, pf.N_TAPS)
    data = pf.encode_post(own, cr, e)
    return Fit(data, pf.parse_post(data, k, 0), saving)
