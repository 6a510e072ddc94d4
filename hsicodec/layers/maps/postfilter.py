"""The coefficient-map layer's optional post filter: a few coded 2-D taps over the decoded maps.

Header key ``codec.pf`` (bytes; spec/hsim.md, "coefficient-map layer: post filter"). After the
maps (H, W, k) are decoded, the first m of them are corrected by symmetric 5 × 5 taps of their own
and, with the cross flag, by taps over the decoded first map:

    Ŷ'_j = Ŷ_j + Σ_t θ_{j,t} L_t(Ŷ_j) + [j ≥ 1 and cross] Σ_t κ_{j,t} L_t(Ŷ_0),   j < m

where L_t (t = 0..4) is the ring Laplacian of orbit t of :data:`ORBITS`: the sum of the map at the
offsets (±a, ±b) and (±b, ±a) minus their count times the map itself (so a constant map is left as
it is), outside the map by half-sample symmetric extension (numpy's "symmetric" pad). The taps are
``prior + n · δ`` with n signed integers (zigzag, order-0 Exp-Golomb, most significant bit first),
δ = 2^(−e/2), and the prior the shared filter ``prior id`` names (0: none, all zero).

The encoder fits the taps per file by least squares against the original cube and keeps the filter
only where it pays at equal bits (:mod:`hsicodec.layers.maps.postfit`). Decoding costs ~25 multiply-
adds per pixel and filtered map, in float64 and a fixed order (deterministic on every platform numpy
computes IEEE doubles on; the C++ kernel ``post_filter_apply`` in csrc/post_filter.cpp keeps that order).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hsicodec.errors import HsimHeaderError
from hsicodec.layers.maps.coding import _native_function

KEY = "pf"
ORBITS = ((0, 1), (1, 1), (0, 2), (1, 2), (2, 2))  # (a, b): the offsets (±a, ±b) and (±b, ±a)
N_TAPS = len(ORBITS)
RADIUS = 2
MAX_EXPONENT = 31  # δ = 2^(−e/2), e = 0..31
MAX_PREFIX = 24  # Exp-Golomb: at most 24 leading zeros (|n| < 2^23)
CROSS_FLAG = 0x20
PRIOR_SHIFT = 6


@dataclass(frozen=True)
class PostFilter:
    """Validated post-filter parameters: own taps (m, 5) and cross taps (m, 5) (row 0 and, without
    the cross flag, all rows zero)."""

    own: np.ndarray
    cross: np.ndarray
    exponent: int
    prior: int = 0
    has_cross: bool = False

    @property
    def m(self) -> int:
        """Maps filtered: the first m."""
        return int(self.own.shape[0])

    def apply(self, maps: np.ndarray) -> np.ndarray:
        """The filtered maps (H, W, k) float64 (a new array)."""
        return apply_taps(maps, self.own, self.cross if self.has_cross else None)


def _offsets(a: int, b: int) -> list[tuple[int, int]]:
    """The distinct offsets (±a, ±b), (±b, ±a) of an orbit, ascending."""
    return sorted(
        {(sa * a, sb * b) for sa in (1, -1) for sb in (1, -1)} | {(sa * b, sb * a) for sa in (1, -1) for sb in (1, -1)}
    )


def _rings(planes: np.ndarray) -> list[np.ndarray]:
    """Ring Laplacians of (n, H, W) planes (contiguous), each (n, H, W)."""
    h, w = planes.shape[1:]
    pad = np.pad(planes, ((0, 0), (RADIUS, RADIUS), (RADIUS, RADIUS)), mode="symmetric")
    out = []
    for a, b in ORBITS:
        offsets = _offsets(a, b)
        acc = np.zeros_like(planes)
        for dy, dx in offsets:
            acc += pad[:, RADIUS + dy : RADIUS + dy + h, RADIUS + dx : RADIUS + dx + w]
        acc -= len(offsets) * planes
        out.append(acc)
    return out


def ring_features(maps: np.ndarray) -> list[np.ndarray]:
    """The ring Laplacians L_t (H, W, n) of (H, W, n) maps, t over :data:`ORBITS`, in a fixed summation order."""
    planes = np.ascontiguousarray(np.moveaxis(np.asarray(maps, np.float64), 2, 0))
    return [np.moveaxis(f, 0, 2) for f in _rings(planes)]


CHUNK = 4  # maps filtered together: fewer numpy calls, a bounded number of temporary planes


def apply_taps(maps: np.ndarray, own: np.ndarray, cross: np.ndarray | None, backend: str = "auto") -> np.ndarray:
    """Maps (H, W, k) with the first m = len(own) corrected by own taps (m, 5) and cross taps (m, 5) over map 0:
    by the C++ kernel (``post_filter_apply``, equal bit for bit) where built, else by this numpy reference,
    :data:`CHUNK` maps at a time (map 0's rings kept for the cross taps): besides the result, a few planes each."""
    maps = np.ascontiguousarray(maps, np.float64)
    out = maps.copy()
    m = min(own.shape[0], maps.shape[2])
    if m == 0 or maps.size == 0:
        return out
    native = _native_function("post_filter_apply") if backend != "numpy" else None
    if native is not None:  # reads maps, writes the first m maps of out
        native(maps, out, np.ascontiguousarray(own[:m], np.float64),
               None if cross is None else np.ascontiguousarray(cross[:m], np.float64))  # fmt: skip
        return out
    first: list[np.ndarray] = []
    for j0 in range(0, m, CHUNK):
        j1 = min(j0 + CHUNK, m)
        planes = np.ascontiguousarray(np.moveaxis(maps[..., j0:j1], 2, 0))  # (n, H, W)
        feats = _rings(planes)
        if j0 == 0:
            first = [f[:1].copy() for f in feats]
        for t, f in enumerate(feats):
            f *= own[j0:j1, t, None, None]
            planes += f
        if cross is not None:
            lo = max(j0, 1)
            for t, f in enumerate(first):
                planes[lo - j0 :] += f * cross[lo:j1, t, None, None]
        out[..., j0:j1] = np.moveaxis(planes, 0, 2)
    return out


# -- wire format ---------------------------------------------------------------------------------


def _zigzag(n: np.ndarray) -> np.ndarray:
    return np.where(n >= 0, 2 * n, -2 * n - 1)


def pack(ints: np.ndarray) -> bytes:
    """Signed integers → zigzag order-0 Exp-Golomb bits, most significant first, zero-padded to a byte."""
    bits: list[str] = []
    for z in _zigzag(np.asarray(ints, np.int64).ravel()):
        v = int(z) + 1
        bits.append("0" * (v.bit_length() - 1) + format(v, "b"))
    s = "".join(bits)
    s += "0" * (-len(s) % 8)
    return int(s, 2).to_bytes(len(s) // 8, "big") if s else b""


def unpack(data: bytes, count: int, where: str) -> np.ndarray:
    """Inverse of :func:`pack`: exactly ``count`` integers that use every byte (zero padding); else HsimHeaderError."""
    s = "".join(format(b, "08b") for b in data)
    pos, out = 0, []
    for _ in range(count):
        zeros = 0
        while pos < len(s) and s[pos] == "0":
            zeros, pos = zeros + 1, pos + 1
            if zeros > MAX_PREFIX:
                raise HsimHeaderError(f"header key '{where}': a tap code is too long")
        if pos + zeros + 1 > len(s):
            raise HsimHeaderError(f"header key '{where}': the taps end early")
        v = int(s[pos : pos + zeros + 1], 2) - 1
        pos += zeros + 1
        out.append(v // 2 if v % 2 == 0 else -(v + 1) // 2)
    if len(s) - pos >= 8 or "1" in s[pos:]:
        raise HsimHeaderError(f"header key '{where}': bytes left after the taps")
    return np.array(out, np.int64)


def n_coded(m: int, has_cross: bool) -> int:
    """Integers coded for m filtered maps: 5 own taps each, and 5 cross taps for each map after the first."""
    return N_TAPS * m + (N_TAPS * (m - 1) if has_cross else 0)


def prior_taps(prior: int, m: int, q: int) -> tuple[np.ndarray, np.ndarray]:
    """The shared filter's (own, cross) taps for m maps at step exponent q (prior 0: zeros)."""
    if prior == 0:
        return np.zeros((m, N_TAPS)), np.zeros((m, N_TAPS))
    raise ValueError(f"unknown shared filter id {prior}")


def encode_post(ints_own: np.ndarray, ints_cross: np.ndarray | None, exponent: int, prior: int = 0) -> bytes:
    """The ``codec.pf`` bytes of integer taps (m, 5) (and cross (m, 5), row 0 not coded) at δ = 2^(−e/2)."""
    m = int(ints_own.shape[0])
    if not (1 <= m <= 255 and 0 <= exponent <= MAX_EXPONENT and 0 <= prior <= 3):
        raise ValueError("post filter: m in 1..255, exponent in 0..31, prior in 0..3")
    flags = exponent | (CROSS_FLAG if ints_cross is not None else 0) | (prior << PRIOR_SHIFT)
    ints = [ints_own.ravel()] + ([ints_cross[1:].ravel()] if ints_cross is not None else [])
    return bytes([m, flags]) + pack(np.concatenate(ints))


def parse_post(value: object, k: int, q: int) -> PostFilter:
    """Validate ``codec.pf`` of a k-map file at step exponent q; HsimHeaderError names what is wrong."""
    where = f"codec.{KEY}"
    if not isinstance(value, bytes) or len(value) < 2:
        raise HsimHeaderError(f"header key '{where}': expected at least 2 bytes")
    m, flags = value[0], value[1]
    if not 1 <= m <= k:
        raise HsimHeaderError(f"header key '{where}': filters {m} maps, the file has {k}")
    exponent, has_cross, prior = flags & 0x1F, bool(flags & CROSS_FLAG), flags >> PRIOR_SHIFT
    ints = unpack(value[2:], n_coded(m, has_cross), where)
    delta = 2.0 ** (-exponent / 2)
    try:
        own0, cross0 = prior_taps(prior, m, q)
    except (KeyError, ValueError) as exc:
        raise HsimHeaderError(f"header key '{where}': {exc}") from None
    own = own0 + ints[: N_TAPS * m].reshape(m, N_TAPS) * delta
    cross = cross0.copy()
    if has_cross and m > 1:
        cross[1:] += ints[N_TAPS * m :].reshape(m - 1, N_TAPS) * delta
    return PostFilter(own, cross, exponent, prior, has_cross)
