"""Integers ⇄ bytes under a zero-mean quantized Laplace prior (constriction ANS coder).

Each symbol has its own scale (the caller expands per-channel scales); symbols
must lie in [-max_abs, max_abs]. The compressed stream is the ANS coder's
32-bit words, little-endian.
"""

from __future__ import annotations

import math

import numpy as np

from hsicodec.errors import HsimError

MIN_SCALE = 0.05
MAX_ABS_LIMIT = 1 << 20


def _model(max_abs: int):
    import constriction

    return constriction.stream.model.QuantizedLaplace(-int(max_abs), int(max_abs))


def laplace_encode(symbols: np.ndarray, scales: np.ndarray, max_abs: int) -> bytes:
    """Entropy code int symbols with per-symbol Laplace scales; returns the byte stream."""
    import constriction

    sym = np.ascontiguousarray(symbols, np.int32).ravel()
    if sym.size == 0:
        return b""
    if int(np.abs(sym).max()) > max_abs:
        raise ValueError("symbol outside [-max_abs, max_abs]")
    if max_abs == 0:
        return b""  # every symbol is zero: nothing to code
    sc = np.maximum(np.ascontiguousarray(scales, np.float64).ravel(), MIN_SCALE)
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(sym, _model(max_abs), np.zeros(sym.size), sc)
    return coder.get_compressed().astype("<u4").tobytes()


def laplace_decode(data: bytes, scales: np.ndarray, max_abs: int) -> np.ndarray:
    """Inverse of :func:`laplace_encode`; ``scales`` gives the symbol count."""
    import constriction

    sc = np.maximum(np.ascontiguousarray(scales, np.float64).ravel(), MIN_SCALE)
    if sc.size == 0:
        if data:
            raise HsimError("latent stream has bytes but declares no symbols")
        return np.zeros(0, np.int32)
    if len(data) % 4:
        raise HsimError(f"latent stream length {len(data)} is not a multiple of 4")
    if not 0 <= max_abs <= MAX_ABS_LIMIT:
        raise HsimError(f"latent symbol bound {max_abs} out of range")
    if max_abs == 0:
        if data:
            raise HsimError("latent stream has bytes but declares every symbol zero")
        return np.zeros(sc.size, np.int32)
    words = np.frombuffer(data, "<u4").astype(np.uint32)
    try:
        coder = constriction.stream.stack.AnsCoder(words)
        out = coder.decode(_model(max_abs), np.zeros(sc.size), sc)
        left = 0 if coder.is_empty() else max(int(coder.num_words()), 1)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # constriction raises (or panics) on invalid streams
        raise HsimError(f"latent stream cannot be decoded: {exc}") from exc
    if left:  # a valid stream ends exactly after its last symbol
        raise HsimError(
            f"entropy stream of {len(data)} bytes does not end after its {sc.size} symbols "
            f"({left} word(s) left): corrupt or does not match the header"
        )
    return np.asarray(out, np.int32)


def laplace_bits(symbols: np.ndarray, scales: np.ndarray, max_abs: int) -> float:
    """Ideal code length in bits (−Σ log2 p) of the symbols under the same prior."""
    sym = np.asarray(symbols, np.float64).ravel()
    sc = np.maximum(np.asarray(scales, np.float64).ravel(), MIN_SCALE)
    cdf = lambda x: np.where(x < 0, 0.5 * np.exp(x / sc), 1 - 0.5 * np.exp(-x / sc))  # noqa: E731
    p = cdf(sym + 0.5) - cdf(sym - 0.5)
    return float(-np.sum(np.log2(np.maximum(p, 1e-12))))


SCALE_CODE_STEPS = 8  # scale codes are 1/8 octave apart


def scale_code(scale: float) -> int:
    """One-byte code of a Laplace scale: scale ≈ 2^((code − 128) / 8), code in 0..255 (rounded half to even,
    as numpy's round; plain floats: the rate searches ask for thousands)."""
    c = round(SCALE_CODE_STEPS * math.log2(max(float(scale), 1e-30))) + 128
    return min(max(c, 0), 255)


def best_scale_codes(symbols: np.ndarray, group_ids: np.ndarray, n_groups: int) -> bytes:
    """Per group, the scale code under which its symbols cost the fewest bits (ideal code length).

    The mean-|q| estimate of :func:`fit_scale` is far off for sparse groups (mostly
    zeros and a few ±1): the best Laplace there has a much larger zero mass than
    the floor scale leaves room for. The quantized Laplace's code length depends
    on a group only through its zero count n0, nonzero count n1 and Σ|q|:
    −n0 log2(1 − e^(−1/2b)) − n1 log2 sinh(1/2b) + Σ|q| / (b ln 2), so every
    candidate code of every group is scored at once.
    """
    a = np.abs(np.asarray(symbols, np.float64)).ravel()
    gid = np.asarray(group_ids, np.int64).ravel()
    lo = scale_code(MIN_SCALE)
    if a.size == 0 or not a.any():
        return bytes([lo] * n_groups)
    n = np.bincount(gid, minlength=n_groups).astype(np.float64)
    n0 = np.bincount(gid, (a == 0).astype(np.float64), n_groups)
    total = np.bincount(gid, a, n_groups)
    codes = np.arange(lo, min(scale_code(float(a.max()) + 1.0) + SCALE_CODE_STEPS, 255) + 1)
    b = np.maximum(2.0 ** ((codes - 128) / SCALE_CODE_STEPS), MIN_SCALE)[:, None]
    bits = (
        -n0[None, :] * np.log2(-np.expm1(-0.5 / b))
        - (n - n0)[None, :] * np.log2(np.sinh(0.5 / b))
        + total[None, :] / (b * np.log(2))
    )
    return bytes(int(c) for c in codes[np.argmin(bits, axis=0)])


def scale_from_code(code: int) -> float:
    """Inverse of :func:`scale_code`."""
    return float(2.0 ** ((int(code) - 128) / SCALE_CODE_STEPS))


def step_from_exponent(e: int, per_octave: int) -> float:
    """Quantization steps are stored as integer exponents: step = 2^(e / per_octave)."""
    return float(2.0 ** (int(e) / per_octave))


def fit_scale(symbols: np.ndarray) -> float:
    """Maximum-likelihood-ish Laplace scale of quantized symbols (mean |q|, floored)."""
    s = np.asarray(symbols, np.float64)
    return float(max(np.mean(np.abs(s)) if s.size else 0.0, MIN_SCALE))


def fit_scales(rows: np.ndarray) -> list[float]:
    """:func:`fit_scale` of each row of a 2-D array of symbols, at once (the same values: each row's mean is
    numpy's over that row)."""
    r = np.asarray(rows, np.float64)
    if not r.shape[1]:
        return [MIN_SCALE] * len(r)
    return np.maximum(np.abs(r).mean(axis=1), MIN_SCALE).tolist()
