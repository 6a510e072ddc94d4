"""Compact integer vector coding (the PCA basis and mean): quantisation with a
1-byte log step code, prediction orders 0/1/2 and Exp-Golomb codes."""

from __future__ import annotations

import math

import numpy as np


def _zigzag(v: np.ndarray) -> np.ndarray:
    v = v.astype(np.int64)
    return np.where(v >= 0, 2 * v, -2 * v - 1)


def _unzigzag(u: int) -> int:
    return (u >> 1) if not u & 1 else -((u + 1) >> 1)


def _residuals(q: np.ndarray, order: int) -> np.ndarray:
    r = q.astype(np.int64).copy()
    for _ in range(order):
        r[1:] = np.diff(r) if len(r) > 1 else r[1:]
    return r


def _unresiduals(r: list, order: int) -> np.ndarray:
    q = np.asarray(r, dtype=np.int64)
    for _ in range(order):
        q = np.cumsum(q)
    return q


def _eg_bits(u: np.ndarray, k: int) -> int:
    """Total length of the order-k Exp-Golomb codes of the non-negative ints u."""
    v = (u >> k) + 1
    nb = np.floor(np.log2(v.astype(np.float64))).astype(np.int64)
    return int(np.sum(2 * nb + 1 + k))


class _BitWriter:
    def __init__(self):
        self.acc = 0
        self.n = 0

    def write(self, value: int, nbits: int):
        if nbits:
            self.acc = (self.acc << nbits) | int(value)
            self.n += nbits

    def write_eg(self, u: int, k: int):
        v = (int(u) >> k) + 1
        nb = v.bit_length()
        self.write(0, nb - 1)
        self.write(v, nb)
        self.write(int(u) & ((1 << k) - 1), k)

    def getvalue(self) -> bytes:
        pad = (-self.n) % 8
        acc = self.acc << pad
        return acc.to_bytes((self.n + pad) // 8, "big") if self.n else b""


class _BitReader:
    def __init__(self, data: bytes):
        self.bits = "".join(f"{b:08b}" for b in data)
        self.pos = 0

    def read(self, nbits: int) -> int:
        if nbits == 0:
            return 0
        s = self.bits[self.pos : self.pos + nbits]
        if len(s) < nbits:
            raise ValueError("bitstream truncated")
        self.pos += nbits
        return int(s, 2)

    def read_eg(self, k: int) -> int:
        one = self.bits.find("1", self.pos)
        if one < 0:
            raise ValueError("bitstream truncated")
        z = one - self.pos
        self.pos = one
        v = self.read(z + 1)
        return ((v - 1) << k) | self.read(k)


def _step_code(step: float, ref: float) -> int:
    """1-byte log2 code of a quantiser step relative to ``ref``: step = ref * 2**(-e/8)."""
    e = round(-8.0 * math.log2(max(step, 1e-300) / ref))
    return int(min(255, max(0, e)))


def _step_value(e: int, ref: float) -> float:
    return float(ref) * 2.0 ** (-e / 8.0)


def _encode_vectors(vectors: list, steps: list, ref: list, writer: _BitWriter) -> list:
    """Quantise each vector with its step (1-byte log code), pick the best of
    prediction orders 0/1/2 and Exp-Golomb orders 0..24, write everything.

    Per vector: 8-bit step code, 2-bit prediction order, 5-bit EG order, codes.
    Returns the dequantised vectors (what the decoder will see).
    """
    out = []
    for v, step, r in zip(vectors, steps, ref):
        e = _step_code(step, r)
        d = _step_value(e, r)
        q = np.rint(np.asarray(v, np.float64) / d).astype(np.int64)
        best: tuple[int, int, int, np.ndarray] | None = None  # (bits, order, k, codes)
        for order in (0, 1, 2):
            u = _zigzag(_residuals(q, order))
            for k in range(25):
                bits = _eg_bits(u, k)
                if best is None or bits < best[0]:
                    best = (bits, order, k, u)
        assert best is not None  # 3 x 25 candidates were tried
        _, order, k, u = best
        writer.write(e, 8)
        writer.write(order, 2)
        writer.write(k, 5)
        for x in u.tolist():
            writer.write_eg(x, k)
        out.append(q.astype(np.float64) * d)
    return out


def _decode_vectors(reader: _BitReader, n_vectors: int, length: int, ref: list) -> list:
    out = []
    for i in range(n_vectors):
        e = reader.read(8)
        order = reader.read(2)
        k = reader.read(5)
        r = [_unzigzag(reader.read_eg(k)) for _ in range(length)]
        out.append(_unresiduals(r, order).astype(np.float64) * _step_value(e, ref[i]))
    return out
