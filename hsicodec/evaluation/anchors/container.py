"""The anchors' file container: shape/dtype header, varints and the dtype a decoder writes.

Every anchor file (and the paper baselines' and the INR files) starts with
:func:`_pack_header`: the shape as three varints and a 1-byte dtype code.
"""

from __future__ import annotations

import numpy as np

_DTYPES = [
    np.dtype(t) for t in ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64", "float16")
]
_DTYPE_CODE = {dt: i for i, dt in enumerate(_DTYPES)}


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _read_varint(buf: bytes, pos: int):
    n = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, pos


def _pack_header(shape, dtype) -> bytes:
    """Shape (3 varints) + dtype code (1 byte): 4-7 bytes."""
    h, w, c = shape
    return _varint(h) + _varint(w) + _varint(c) + bytes([_DTYPE_CODE[np.dtype(dtype)]])


def _unpack_header(buf: bytes, pos: int = 0):
    h, pos = _read_varint(buf, pos)
    w, pos = _read_varint(buf, pos)
    c, pos = _read_varint(buf, pos)
    dtype = _DTYPES[buf[pos]]
    return (h, w, c), dtype, pos + 1


def _to_dtype(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """What a decoder writes: rounded and clipped for integer dtypes."""
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        return np.clip(np.rint(x), info.min, info.max).astype(dtype)
    return np.asarray(x, dtype=dtype)
