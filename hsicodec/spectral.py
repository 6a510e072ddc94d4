"""Per-scene spectral adaptation: a mean spectrum and a few principal spectra.

The network models ``k`` coefficient maps instead of all C bands, so one base
model serves any band count; the mean and basis travel in the file (quantized,
delta-coded along the bands and entropy coded — counted in the rate).

    X (N, C) ≈ (Y σ) B + μ      B: (k, C) orthonormal rows, Y (N, k) normalised coefficients
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hsicodec import entropy
from hsicodec.errors import HsimError


@dataclass
class SpectralFit:
    """PCA of a scene: mean (C,), basis (k_max, C) ordered by variance, per-component std, total std."""

    mean: np.ndarray
    basis: np.ndarray
    comp_std: np.ndarray
    total_std: float


def fit_pca(pixels: np.ndarray, k_max: int, weights: np.ndarray | None = None) -> SpectralFit:
    """PCA of (N, C) float64 pixels; at most k_max components (fewer if C or N is smaller)."""
    a = np.asarray(pixels, np.float64)
    mean = a.mean(axis=0)
    z = a - mean
    cov = (z.T @ z) / max(len(z), 1)
    ev, vec = np.linalg.eigh(cov)
    order = np.argsort(ev)[::-1]
    ev, vec = np.maximum(ev[order], 0.0), vec[:, order]
    k = min(k_max, a.shape[1])
    basis = vec[:, :k].T.copy()
    # deterministic sign: largest-magnitude entry of each vector positive
    idx = np.argmax(np.abs(basis), axis=1)
    basis *= np.sign(basis[np.arange(k), idx])[:, None]
    total = float(np.sqrt(max(ev.sum(), 1e-30)))
    return SpectralFit(mean, basis, np.sqrt(ev[:k]), total)


def _delta_code(values: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Quantize rows with ``step`` and take first differences along the last axis."""
    q = np.round(values / step).astype(np.int64)
    d = np.diff(q, axis=-1, prepend=0)
    return q, d


def encode_spectral(mean: np.ndarray, basis: np.ndarray, mean_step: float, basis_step: float) -> tuple[bytes, dict, np.ndarray, np.ndarray]:
    """Quantize and entropy code the mean (C,) and basis (k, C).

    Returns (bytes, header params, dequantized mean, dequantized basis). The
    header params hold the Laplace scales and symbol bound the decoder needs.
    """
    qm, dm = _delta_code(mean[None, :], mean_step)
    qb, db = _delta_code(basis, basis_step)
    sym = np.concatenate([dm.ravel(), db.ravel()])
    max_abs = int(np.abs(sym).max()) if sym.size else 0
    sm = entropy.fit_scale(dm[:, 1:]) if dm.shape[1] > 1 else 1.0
    sb = [entropy.fit_scale(r[1:]) if r.size > 1 else 1.0 for r in db]
    sm, sb = _round_scale(sm), [_round_scale(s) for s in sb]
    scales = _symbol_scales(mean.size, basis.shape[0], sm, sb, max_abs)
    data = entropy.laplace_encode(sym, scales, max_abs)
    params = {"mean_step": float(mean_step), "basis_step": float(basis_step), "max_abs": max_abs,
              "mean_scale": sm, "basis_scales": sb}
    return data, params, (qm[0] * mean_step), (qb * basis_step)


def _round_scale(s: float) -> float:
    return float(np.float16(s))


def _symbol_scales(n_bands: int, k: int, sm: float, sb: list, max_abs: int) -> np.ndarray:
    # the first symbol of each row is an absolute value, give it a flat prior
    flat = max(max_abs / 2.0, 1.0)
    rows = [np.full(n_bands, sm)] + [np.full(n_bands, s) for s in sb]
    for r in rows:
        r[0] = flat
    return np.concatenate(rows) if rows else np.zeros(0)


def decode_spectral(data: bytes, params: dict, n_bands: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`encode_spectral` → (mean (C,), basis (k, C)) float64."""
    try:
        mean_step = float(params["mean_step"])
        basis_step = float(params["basis_step"])
        max_abs = int(params["max_abs"])
        sm = float(params["mean_scale"])
        sb = [float(s) for s in params["basis_scales"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise HsimError(f"header key 'codec.spectral': malformed ({exc})") from exc
    if len(sb) != k:
        raise HsimError(f"header key 'codec.spectral.basis_scales': {len(sb)} scales for {k} components")
    if not (np.isfinite(mean_step) and np.isfinite(basis_step) and mean_step > 0 and basis_step > 0):
        raise HsimError("header key 'codec.spectral': quantization steps must be positive and finite")
    scales = _symbol_scales(n_bands, k, sm, sb, max_abs)
    sym = entropy.laplace_decode(data, scales, max_abs).astype(np.int64).reshape(k + 1, n_bands)
    q = np.cumsum(sym, axis=1)
    return q[0] * mean_step, q[1:] * basis_step
