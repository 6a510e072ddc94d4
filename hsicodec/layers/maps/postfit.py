"""The map layer's post-filter encoder: least-squares taps per file, their coding by rate–distortion,
and the equal-bits decision (filtered file at the same byte budget, kept only where it measures better).

See :mod:`hsicodec.layers.maps.postfilter` for what the taps do and how they travel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hsicodec.coding.spectral import decode_spectral
from hsicodec.errors import OptionError
from hsicodec.format import compact
from hsicodec.format.container import decode_hsim, encode_hsim
from hsicodec.layers.base import Encoded, Target
from hsicodec.layers.maps import coding as coefmaps
from hsicodec.layers.maps import postfilter as pf
from hsicodec.layers.maps import streams

MAX_FILTERED = 16  # maps the fit considers (the first ones carry nearly all the gain)
EXPONENTS = range(4, pf.MAX_EXPONENT + 1)
KEY_OVERHEAD = 5  # msgpack bytes of the key "pf" and of its bin header
RETRIES = 3


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
    h, w, k = maps.shape
    c = x.shape[2]
    rows = valid.reshape(-1, c).all(axis=1) if valid is not None else np.ones(h * w, bool)
    if k == 0 or rows.sum() < 64:
        return None
    y = maps.reshape(-1, k)
    resid = x.reshape(-1, c)[rows] - mean - norm * (y[rows] @ basis)
    resid_b = resid @ basis.T
    gram = basis @ basis.T
    mmax = min(k, MAX_FILTERED)
    a_full, b_full, owner, is_cross = normal_equations(maps, resid_b, gram, norm, mmax, rows)
    best = choose(a_full, b_full, owner, is_cross, lam)
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


def with_post_bytes(data: bytes, post: bytes) -> bytes:
    """A map-layer file with ``codec.pf`` set (everything else byte for byte as it was)."""
    hs = decode_hsim(data)
    header = {key: v for key, v in hs.header.items() if key != "sections"}
    header["codec"] = {**header["codec"], pf.KEY: post}
    return encode_hsim(header, list(hs.sections.items()))


def decoded_parts(data: bytes, c: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float] | None:
    """(maps (H, W, k), mean, basis, norm) a map-layer file decodes to; None for one on a shared spectral stage."""
    hs = decode_hsim(data)
    h, w = (int(v) for v in hs.header["shape"][:2])
    codec, split = compact.unpack_codec(hs.header["codec"], coefmaps.MAX_MAPS, coefmaps.MAX_LEVELS)
    if "x" in codec["sp"]:
        return None
    p = coefmaps.parse_params(codec["rl"], h, w, min(c, coefmaps.MAX_MAPS))
    if split is None:
        sdata, rdata = hs.sections.get("s", b""), hs.sections.get("r", b"")
    else:
        body = hs.sections["c"]
        sdata, rdata = body[:split], body[split:]
    maps = streams.decode_maps(rdata, p, h, w)
    mean, basis = decode_spectral(sdata, codec["sp"], c, p.k)
    return maps, mean, basis, float(codec["norm"])


def _filtered(search, enc: Encoded) -> tuple[bytes, float] | None:
    """(the file with its best post filter, its PSNR), or None where no filter pays on it."""
    parts = decoded_parts(enc.data, search.c)
    if parts is None:
        return None
    maps, mean, basis, norm = parts
    lam = search.slope(enc.k, enc.step)
    fit = fit_filter(maps, search.an.values, mean, basis, norm, lam, search.valid)
    if fit is None:
        return None
    return with_post_bytes(enc.data, fit.data), search.psnr_of(fit.post.apply(maps), mean, basis)


def post_filtered(search, target: Target, best: Encoded) -> Encoded:
    """The better at equal bits of ``best`` (the unfiltered file for a rate target) and a filtered file
    within the same byte budget (the maps coded for the budget less the filter's bytes). Quality targets
    and files on a shared spectral stage are returned as they are."""
    if target.bpppb is None:
        return best
    n = search.h * search.w * search.c
    budget = int(np.floor(target.bpppb * n / 8.0))
    first = _filtered(search, best)
    if first is None:
        return best
    extra = len(first[0]) - len(best.data)
    cand: tuple[bytes, float] | None = None
    for _ in range(RETRIES):
        try:
            enc = search.for_bpppb((budget - extra) * 8.0 / n)
        except OptionError:
            return best
        cand = _filtered(search, enc)
        if cand is None:
            return best
        if len(cand[0]) <= budget:
            break
        extra += len(cand[0]) - budget
        cand = None
    if cand is None or not cand[1] > best.psnr:
        return best
    return Encoded(cand[0], enc.k, enc.step, cand[1], best.layer, dict(best.stats))
