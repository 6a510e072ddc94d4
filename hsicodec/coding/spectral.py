"""Per-scene spectral adaptation: a mean spectrum and a few principal spectra.

The network models ``k`` coefficient maps instead of all C bands, so one base
model serves any band count; the mean and basis travel in the file (quantized,
delta-coded along the bands and entropy coded — counted in the rate).

    X (N, C) ≈ (Y σ) B + μ      B: (k, C) orthonormal rows, Y (N, k) normalised coefficients
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from hsicodec.coding import entropy
from hsicodec.coding.products import in_threads
from hsicodec.errors import HsimError, OptionError


@dataclass
class SpectralFit:
    """PCA of a scene: mean (C,), basis (k_max, C) ordered by variance, per-component std, total std."""

    mean: np.ndarray
    basis: np.ndarray
    comp_std: np.ndarray
    total_std: float

    def dropped_variance(self, k: int) -> float:
        """Variance (summed over bands) the components after the first k hold, including those past k_max."""
        if self.total_std**2 <= 1e-30:  # a constant scene (fit_pca floors the total there)
            return 0.0
        return max(self.total_std**2 - float(np.sum(self.comp_std[:k] ** 2)), 0.0)


#: pixels a block of :func:`fit_pca`'s covariance: centred copies of a few tens of MB, not of the scene
PCA_BLOCK = 32768
#: pixels a block of :func:`scene_pca` and of the encoder's other passes over a cube: a few MB, which the
#: allocator keeps and reuses (blocks over 32 MB are mapped afresh, and their pages faulted in, every time)
SCAN_BLOCK = 4096
#: :func:`scene_pca` estimates the covariance from at most about this many pixels (an even stride over the
#: scene): a 512² tile's spectra are as well described by a quarter of them, at a quarter of the cost
PCA_SAMPLE = 1 << 16


def fit_pca(pixels: np.ndarray, k_max: int) -> SpectralFit:
    """PCA of (N, C) float64 pixels; at most k_max components (fewer if C or N is smaller). Every pixel,
    in the arithmetic training has always used (its models reproduce bit for bit); the encoder uses
    :func:`scene_pca`."""
    a = np.asarray(pixels, np.float64)
    mean = a.mean(axis=0)
    cov = np.zeros((a.shape[1], a.shape[1]))
    for r in range(0, len(a), PCA_BLOCK):
        z = a[r : r + PCA_BLOCK] - mean
        cov += z.T @ z
    cov /= max(len(a), 1)
    return pca_of_moments(mean, cov, k_max)


def pca_stride(n: int) -> int:
    """The stride of the pixels (every ``stride``-th, from the first) whose covariance :func:`scene_pca`
    takes: at most about :data:`PCA_SAMPLE` of the n."""
    return max(-(-n // PCA_SAMPLE), 1)


def scene_pca(pixels: np.ndarray, k_max: int, moments: tuple | None = None) -> SpectralFit:
    """The encoder's PCA of (N, C) float64 pixels: mean and covariance in one pass of small blocks, taken
    about the first pixel (no cancellation where values sit far from zero), over an even stride of at
    most about :data:`PCA_SAMPLE` pixels (:func:`pca_stride`); the blocks' products on up to 4 threads,
    added in block order. ``moments``: (shift, Σ zᵀz, Σ z, count) over those pixels, z = x − shift, where a
    pass of the caller's took them (:func:`block_moments`; exactly these sums in any order where every
    one is an integer below 2^53, as for the 8- and 16-bit cubes it takes them of)."""
    a = np.asarray(pixels, np.float64)
    n, c = a.shape
    if n == 0:
        return pca_of_moments(np.zeros(c), np.zeros((c, c)), k_max)
    if moments is not None:
        shift, gram, total, m = moments
    else:
        stride = pca_stride(n)
        shift = a[0].copy()

        def block(r: int) -> tuple[np.ndarray, np.ndarray]:
            z = a[r : r + SCAN_BLOCK * stride : stride] - shift
            return z.T @ z, z.sum(axis=0)

        parts = in_threads(block, range(0, n, SCAN_BLOCK * stride))  # summed below in block order: the same bits
        gram, total = np.zeros((c, c)), np.zeros(c)
        for g, t in parts:
            gram += g
            total += t
        m = len(range(0, n, stride))
    d = total / m
    return pca_of_moments(shift + d, gram / m - np.outer(d, d), k_max)


def block_sums(x: np.ndarray, shift: np.ndarray) -> tuple[np.ndarray, float]:
    """(Σ (x − s), Σ ‖x − s‖²) over the rows of (N, C) pixels x, s = ``shift``: a block of
    :data:`SCAN_BLOCK` pixels at a time (no centred copy of them all)."""
    total, squares, _, _ = block_moments(x, shift)
    return total, squares


def block_moments(
    x: np.ndarray, shift: np.ndarray, stride: int = 0, first: int = 0
) -> tuple[np.ndarray, float, np.ndarray | None, np.ndarray | None]:
    """:func:`block_sums` of (N, C) pixels x and, with a ``stride`` > 0, (Σ zᵀz, Σ z) of the rows
    ``first``, ``first`` + stride, ... (z = x − s; :func:`scene_pca`'s moments of them) from the same
    centred blocks, else (None, None)."""
    total, squares = np.zeros(x.shape[1]), 0.0
    gram = np.zeros((x.shape[1], x.shape[1])) if stride else None
    sampled = np.zeros(x.shape[1]) if stride else None
    for r in range(0, len(x), SCAN_BLOCK):
        z = x[r : r + SCAN_BLOCK] - shift
        squares += float(np.vdot(z, z))
        total += z.sum(axis=0)
        if gram is not None and sampled is not None:
            zs = z[(first - r) % stride :: stride]
            gram += zs.T @ zs
            sampled += zs.sum(axis=0)
    return total, squares, gram, sampled


def pca_of_moments(mean: np.ndarray, cov: np.ndarray, k_max: int) -> SpectralFit:
    """The SpectralFit of a mean (C,) and covariance (C, C): at most k_max principal vectors, each signed
    so that its largest-magnitude entry is positive (deterministic)."""
    ev, vec = np.linalg.eigh((cov + cov.T) / 2)  # exactly cov where it is exactly symmetric
    order = np.argsort(ev)[::-1]
    ev, vec = np.maximum(ev[order], 0.0), vec[:, order]
    k = min(k_max, mean.size)
    basis = vec[:, :k].T.copy()
    idx = np.argmax(np.abs(basis), axis=1)
    basis *= np.sign(basis[np.arange(k), idx])[:, None]
    return SpectralFit(mean, basis, np.sqrt(ev[:k]), float(np.sqrt(max(ev.sum(), 1e-30))))


def _delta_code(values: np.ndarray, step: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Quantize rows with ``step`` (one step, or one per row as a column) and take first differences along the
    last axis."""
    q = np.round(values / step).astype(np.int64)
    d = q.copy()
    d[..., 1:] -= q[..., :-1]
    return q, d


MEAN_STEPS_PER_OCTAVE = 4
BASIS_STEPS_PER_OCTAVE = 4


def matched_exponents(fit: SpectralFit, k: int, target_mse: float) -> tuple[int, int]:
    """(mean, basis) step exponents whose quantization error per value is about ``target_mse``:
    the basis step scaled by the variance of the k components it multiplies."""
    var_k = float(np.sum(fit.comp_std[:k] ** 2)) if k else 0.0
    basis_step = min(np.sqrt(1.2 * target_mse / max(var_k, 1e-30)), 0.25) if k else 0.25
    mean_step = max(np.sqrt(1.2 * target_mse), (float(np.abs(fit.mean).max()) + 1e-30) / 2**18)
    be = int(np.clip(np.floor(BASIS_STEPS_PER_OCTAVE * np.log2(basis_step)), -256, 256))
    me = int(np.clip(np.floor(MEAN_STEPS_PER_OCTAVE * np.log2(mean_step)), -256, 256))
    return me, be


def lagrangian_exponents(
    fit: SpectralFit, k: int, map_step: float, n_pixels: int, beta: float = 1.0
) -> tuple[int, int, bytes]:
    """(mean exponent, basis exponent, per-vector exponent offsets) at the distortion–rate slope of maps
    coded with step ``map_step`` (normalised units, coefficient-domain): an error δ in a mean entry costs
    N δ² of squared error, in entry j of basis vector i N σ_i² δ², in a map coefficient σ² Δ²/12 per
    coefficient at step Δ (σ = total std) — equal slopes give the mean step σΔ/√N and the basis steps
    σΔ/(√N σ_i), one per vector."""
    root = beta * fit.total_std * map_step / np.sqrt(max(n_pixels, 1))
    mean_step = max(root, (float(np.abs(fit.mean).max()) + 1e-30) / 2**18)
    me = int(min(max(np.floor(MEAN_STEPS_PER_OCTAVE * np.log2(mean_step)), -256), 256))
    if not k:
        return me, 0, b""
    steps = np.minimum(np.maximum(root / np.maximum(fit.comp_std[:k], 1e-300), 2.0**-18), 0.25)
    ex = np.minimum(np.maximum(np.floor(BASIS_STEPS_PER_OCTAVE * np.log2(steps)).astype(np.int64), -256), 256)
    be = int(ex.min())
    return me, be, np.minimum(ex - be, 255).astype(np.uint8).tobytes()


def spectral_mse(fit: SpectralFit, k: int, mean_exp: int, basis_exp: int, offsets: bytes) -> float:
    """Expected squared error per value that quantizing the mean and the k basis vectors adds
    (uniform errors of step²/12; a basis entry's error is multiplied by its component's std)."""
    mean_step = entropy.step_from_exponent(mean_exp, MEAN_STEPS_PER_OCTAVE)
    steps = basis_steps(basis_exp, offsets, k).ravel()
    return float(mean_step**2 + np.sum((fit.comp_std[:k] * steps) ** 2)) / 12.0


def encode_spectral(
    mean: np.ndarray, basis: np.ndarray, mean_exp: int, basis_exp: int, offsets: bytes = b""
) -> tuple[bytes, dict, np.ndarray, np.ndarray]:
    """Quantize and entropy code the mean (C,) and basis (k, C).

    Steps are 2^(mean_exp/4) and 2^(basis_exp/4) — for basis vector i
    2^((basis_exp + offsets[i])/4) when ``offsets`` (k bytes) are given; values are quantized, first
    differences along the bands are coded under Laplace priors whose scales
    travel as one-byte codes. Returns (bytes, header params, dequantized mean,
    dequantized basis).
    """
    mean_step = entropy.step_from_exponent(mean_exp, MEAN_STEPS_PER_OCTAVE)
    basis_step = basis_steps(basis_exp, offsets, basis.shape[0])
    qm, dm = _delta_code(mean[None, :], mean_step)
    qb, db = _delta_code(basis, basis_step)
    sym = np.concatenate([dm.ravel(), db.ravel()])
    max_abs = int(np.abs(sym).max()) if sym.size else 0
    if max_abs > entropy.MAX_ABS_LIMIT:
        raise OptionError("spectral quantization step too fine for the value range")
    rows = np.concatenate([dm, db])  # each row's first difference is absolute; the others fit its scale
    fits = entropy.fit_scales(rows[:, 1:]) if rows.shape[1] > 1 else [1.0] * len(rows)
    codes = [entropy.scale_code(v) for v in fits]
    scales = _symbol_scales(mean.size, codes, max_abs)
    data = entropy.laplace_encode(sym, scales, max_abs)
    params = {"me": int(mean_exp), "be": int(basis_exp), "ma": max_abs, "sc": bytes(codes)}
    if offsets:
        params["bd"] = bytes(offsets)
    return data, params, (qm[0] * mean_step), (qb * basis_step)


def basis_steps(basis_exp: int, offsets: bytes, k: int) -> np.ndarray:
    """(k, 1) quantization steps of the basis vectors."""
    ex = basis_exp + (np.frombuffer(offsets, np.uint8).astype(np.int64) if offsets else np.zeros(k, np.int64))
    return np.array([entropy.step_from_exponent(int(e), BASIS_STEPS_PER_OCTAVE) for e in ex]).reshape(k, 1)


def _symbol_scales(n_bands: int, codes, max_abs: int) -> np.ndarray:
    # the first symbol of each row is an absolute value: give it a flat prior
    rows = np.repeat(np.array([entropy.scale_from_code(c) for c in codes], np.float64)[:, None], n_bands, axis=1)
    rows[:, :1] = max(max_abs / 2.0, 1.0)
    return rows.ravel()


def decode_spectral(data: bytes, params: dict, n_bands: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`encode_spectral` → (mean (C,), basis (k, C)) float64."""
    try:
        me, be, max_abs, codes = params["me"], params["be"], params["ma"], params["sc"]
    except (KeyError, TypeError) as exc:
        raise HsimError(f"header key 'codec.sp': missing {exc}") from exc
    for key, v, lo, hi in (("me", me, -256, 256), ("be", be, -256, 256), ("ma", max_abs, 0, entropy.MAX_ABS_LIMIT)):
        if type(v) is not int or not lo <= v <= hi:
            raise HsimError(f"header key 'codec.sp.{key}': expected an int in {lo}..{hi}, got {v!r}")
    if not isinstance(codes, bytes) or len(codes) != k + 1:
        raise HsimError(f"header key 'codec.sp.sc': expected {k + 1} scale codes")
    offsets = params.get("bd", b"")
    if not isinstance(offsets, bytes) or ("bd" in params and len(offsets) != k):
        raise HsimError(f"header key 'codec.sp.bd': expected {k} basis step offsets")
    scales = _symbol_scales(n_bands, codes, max_abs)
    sym = entropy.laplace_decode(data, scales, max_abs).astype(np.int64).reshape(k + 1, n_bands)
    q = np.cumsum(sym, axis=1)
    mean_step = entropy.step_from_exponent(me, MEAN_STEPS_PER_OCTAVE)
    return q[0] * mean_step, q[1:] * basis_steps(be, offsets, k)


@dataclass
class Analysis:
    """A cube prepared for fitting: float64 values, spectral stage, normalised targets.

    ``mode`` "pca": targets are the scene's normalised principal-component maps.
    ``mode`` "id" (the paper's plain method): targets are the bands themselves,
    scaled to [0, 1] and placed on the model outputs given by ``band_map``.
    """

    values: np.ndarray  # (H, W, C) float64 (mode "values": integer cubes as they are)
    pca: SpectralFit | None
    _targets: np.ndarray | Callable[[], np.ndarray]  # (H, W, n_out) float32, or what makes them on first use
    value_range: float
    mode: str = "pca"
    offset: float = 0.0
    scale: float = 1.0
    band_map: np.ndarray | None = None  # (C,) model output of every band ("id" mode)
    #: (shift s (C,), Σ (x − s) (C,), Σ ‖x − s‖²) over every pixel, where the float64 conversion took them
    sums: tuple | None = None

    @property
    def targets(self) -> np.ndarray:
        """The normalised targets (H, W, n_out) float32 of the network layer, made when first asked for (the
        coefficient-map layer, which codes most files, never needs them)."""
        if callable(self._targets):
            self._targets = self._targets()
        return self._targets

    @property
    def fit(self) -> SpectralFit:
        """The PCA fit, which the "pca" mode always has."""
        if self.pca is None:
            raise ValueError(f"an analysis in mode {self.mode!r} has no PCA fit")
        return self.pca

    @property
    def bands(self) -> np.ndarray:
        """The band map (the model output of every band), which the "id" mode always has."""
        if self.band_map is None:
            raise ValueError(f"an analysis in mode {self.mode!r} has no band map")
        return self.band_map

    @property
    def norm(self) -> float:
        return float(self.fit.total_std) if self.mode == "pca" else self.scale

    @property
    def constant(self) -> bool:
        """No variation worth a latent: the mean spectrum (or the offset) says it all."""
        if self.mode == "pca":
            return self.value_range == 0.0 or self.norm <= 1e-9 * (float(np.abs(self.fit.mean).max()) + 1e-30)
        return self.value_range == 0.0


def reconstruct(coeffs: np.ndarray, norm: float, mean: np.ndarray, basis: np.ndarray, bands: tuple) -> np.ndarray:
    """Band values (h, w, nb) float64 from normalised coefficients, for bands [a, b)."""
    a, b = bands
    h, w, k = coeffs.shape
    flat = coeffs.reshape(h * w, k).astype(np.float64) * norm
    vals = flat @ basis[:, a:b] + mean[a:b] if k else np.broadcast_to(mean[a:b], (h * w, b - a)).copy()
    return vals.reshape(h, w, b - a)


def reconstruct_bands(
    coeffs: np.ndarray, scale: float, offset: float, band_map: np.ndarray, bands: tuple
) -> np.ndarray:
    """Band values (h, w, nb) float64 for the plain method: outputs picked by the band map, rescaled."""
    a, b = bands
    return coeffs[..., band_map[a:b]].astype(np.float64) * scale + offset
