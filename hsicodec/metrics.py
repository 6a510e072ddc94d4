"""Quality and rate metrics exactly as defined in docs/metrics.md."""

from __future__ import annotations

import numpy as np


def bpppb(n_bytes: int, shape: tuple) -> float:
    """Bits per pixel per band of a file of ``n_bytes`` holding a cube of ``shape`` (H, W, C)."""
    h, w, c = shape
    return 8.0 * n_bytes / float(h * w * c)


def psnr(original: np.ndarray, decoded: np.ndarray, valid: np.ndarray | None = None) -> float:
    """10 log10(R² / MSE), R = max − min of the original and MSE over the valid values, original units.

    The valid values are those where ``valid`` (a boolean array of the cube's shape) is True
    and the original is finite; with ``valid=None``, every finite value of the original.
    ``hsicodec compress`` (the encoder, :func:`hsicodec.layers.base.psnr_of`) and ``batch``
    leave out NaN, ±Inf and the raster's nodata value (:func:`hsicodec.codec.mask.invalid_mask`).
    An exact reconstruction is ``inf`` dB; R = 0 (a constant original) is taken as R = 1.
    """
    a = np.asarray(original, np.float64)
    b = np.asarray(decoded, np.float64)
    if valid is not None:
        keep = np.asarray(valid, bool)
        if keep.shape != a.shape:
            raise ValueError(f"valid mask of shape {keep.shape} for a cube of shape {a.shape}")
        if not keep.all():
            a, b = a[keep], b[keep]
    finite = np.isfinite(a)
    if finite.all():  # the usual case: no masked copies
        rng = float(a.max() - a.min()) if a.size else 0.0
        d = (a - b).ravel()
        mse = float(np.dot(d, d)) / d.size if d.size else 0.0
    else:
        rng = float(a[finite].max() - a[finite].min()) if finite.any() else 0.0
        mse = float(np.mean((a[finite] - b[finite]) ** 2)) if finite.any() else 0.0
    if mse == 0.0:
        return float("inf")
    if rng == 0.0:
        rng = 1.0
    return 10.0 * np.log10(rng * rng / mse)


def sam_degrees(original: np.ndarray, decoded: np.ndarray) -> float:
    """Mean spectral angle between original and decoded spectra, in degrees."""
    a = np.asarray(original, np.float64).reshape(-1, original.shape[-1])
    b = np.asarray(decoded, np.float64).reshape(-1, decoded.shape[-1])
    num = np.sum(a * b, axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    ok = den > 0
    cos = np.clip(num[ok] / den[ok], -1.0, 1.0)
    return float(np.degrees(np.mean(np.arccos(cos)))) if ok.any() else 0.0


def max_abs_error(original: np.ndarray, decoded: np.ndarray) -> float:
    """Largest absolute difference, in original units."""
    return float(np.max(np.abs(np.asarray(original, np.float64) - np.asarray(decoded, np.float64))))


def quality_report(original: np.ndarray, decoded: np.ndarray, n_bytes: int) -> dict:
    """bpppb, PSNR, SAM and max abs error of a decoded cube, as one dict."""
    return {
        "bpppb": bpppb(n_bytes, original.shape),
        "psnr": psnr(original, decoded),
        "sam": sam_degrees(original, decoded),
        "max_abs_error": max_abs_error(original, decoded),
        "bytes": int(n_bytes),
    }
