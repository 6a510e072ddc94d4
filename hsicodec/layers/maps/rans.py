"""The coefficient-map layer's own entropy coder (``ec = 1``, spec/hsim.md 10.9): the pure Python reference.

A byte-wise rANS coder (32-bit state in [2^23, 2^31), 16-bit frequencies) with one fixed
frequency table per scale code (:mod:`hsicodec.layers.maps.ec_tables`, shipped constants):
a symbol's magnitude m is split into a token ⌊m / 2^s⌋ (s = the code's raw low bits) coded with
the table, the s low bits and the sign coded raw, and magnitudes past the table's last bin sent
after an escape token as an Exp-Golomb-like (length, bits) pair. The stream is cut into
independent substreams of whole maps, so the C++ coder (csrc/map_coder.cpp) decodes them in
parallel; contexts still cross substreams (a map's classes read the previous map), so it
pipelines them subband by subband.

This module and the stream functions built on it (:func:`hsicodec.layers.maps.coding.rans_encode_reference`,
:func:`~hsicodec.layers.maps.coding.rans_decode_reference`) are slow (one Python step per symbol) and are
what the C++ coder is tested against, bit for bit; the codec uses them only when the extension is missing.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import zlib

import numpy as np

from hsicodec.errors import HsimHeaderError
from hsicodec.layers.maps import ec_tables

PROB_BITS = 16
RANS_L = 1 << 23  # the state's lower bound; states lie in [RANS_L, 256 · RANS_L)
TOKENS = 64
CODES = 256
ESCAPE_LEN_BITS = 5  # the escape's length field
MAX_ESCAPE_BITS = 20  # an escape never needs more bits (|q| ≤ 2^20)
SUBSTREAM_VALUES = 1 << 18  # the encoder's substreams: about one per 2^18 symbols, at most one per map
MAX_VARINT_BYTES = 5


@functools.lru_cache(maxsize=1)
def tables() -> tuple:
    """Per scale code: (frequencies of tokens 0..R (R the escape), cumulative starts, R, raw low bits s)."""
    raw = zlib.decompress(base64.b64decode("".join(ec_tables.BLOB)))
    if hashlib.sha256(raw).hexdigest() != ec_tables.SHA256 or len(raw) != 2 * CODES * TOKENS:
        raise RuntimeError("the coefficient-map coder's tables are damaged")  # pragma: no cover
    f = np.frombuffer(raw, "<u2").reshape(CODES, TOKENS)
    out = []
    for code in range(CODES):
        freq = [int(v) for v in f[code] if v]
        cum = [0]
        for v in freq:
            cum.append(cum[-1] + v)
        out.append((freq, cum, len(freq) - 1, raw_bits(code)))
    return tuple(out)


def table_bytes() -> bytes:
    """The canonical table (256 × 64 uint16 little-endian), whose sha256 the spec names."""
    return zlib.decompress(base64.b64decode("".join(ec_tables.BLOB)))


def raw_bits(code: int) -> int:
    """Low magnitude bits sent raw under scale code ``code``."""
    return max(0, ((code - 128) >> 3) - 2)


def substream_count(k: int, height: int, width: int) -> int:
    """Substreams the encoder writes for k maps of height × width: ⌊k·H·W / 2^18⌋, clamped to 1..k."""
    return int(min(k, max(1, (k * height * width) // SUBSTREAM_VALUES)))


def substream_maps(k: int, count: int, i: int) -> range:
    """The maps of substream ``i`` of ``count``."""
    return range(i * k // count, (i + 1) * k // count)


def subbands_needed(k: int, count: int, n_bands: int, stop: int) -> list[int]:
    """Subbands each of k maps (in ``count`` substreams) must decode so that every map gives its first ``stop``
    (a reduced-resolution read): a map followed by another in its substream is decoded whole (the rANS state
    runs on through it), and a map decodes at least as many subbands as the next map's classes read of it."""
    need = [n_bands] * k
    nxt = stop
    for j in range(k - 1, -1, -1):
        last = any(j == (i + 1) * k // count - 1 for i in range(count))
        need[j] = max(stop, nxt) if last else n_bands
        nxt = need[j]
    return need


# -- varints ------------------------------------------------------------------------------------


def put_varint(out: bytearray, v: int) -> None:
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)


def get_varint(data: bytes, pos: int) -> tuple[int, int]:
    """(value, next position) of the LEB128 varint at ``pos``; canonical, at most 5 bytes."""
    v = 0
    for i in range(MAX_VARINT_BYTES):
        if pos + i >= len(data):
            raise HsimHeaderError("coefficient-map stream: its substream index ends early")
        b = data[pos + i]
        v |= (b & 0x7F) << (7 * i)
        if not b & 0x80:
            if b == 0 and i > 0:
                raise HsimHeaderError("coefficient-map stream: a non-canonical length in its substream index")
            return v, pos + i + 1
    raise HsimHeaderError("coefficient-map stream: a length of more than 5 bytes in its substream index")


def split_substreams(data: bytes, k: int) -> list:
    """The substreams' (start, end) byte ranges, every count and length checked against ``data`` and k."""
    count, pos = get_varint(data, 0)
    if not 1 <= count <= k:
        raise HsimHeaderError(f"coefficient-map stream: {count} substreams for {k} maps")
    lengths = []
    for _ in range(count - 1):
        n, pos = get_varint(data, pos)
        lengths.append(n)
    rest = len(data) - pos - sum(lengths)
    if rest < 0:
        raise HsimHeaderError("coefficient-map stream: its substreams overrun the stream")
    out = []
    for n in lengths + [rest]:
        if n < 4:
            raise HsimHeaderError("coefficient-map stream: a substream shorter than its 4-byte state")
        out.append((pos, pos + n))
        pos += n
    return out


def join_substreams(parts: list) -> bytes:
    out = bytearray()
    put_varint(out, len(parts))
    for p in parts[:-1]:
        put_varint(out, len(p))
    return bytes(out) + b"".join(parts)


def code_tables(base_codes: bytes, offsets: np.ndarray, k: int, groups: int) -> np.ndarray:
    """(k · groups, classes) scale codes: clip(base of (map, group) + class offset, 0, 255)."""
    base = np.frombuffer(base_codes, np.uint8).astype(np.int64)[: k * groups]
    return np.clip(base[:, None] + np.asarray(offsets, np.int64)[None, :], 0, 255)


# -- rANS ---------------------------------------------------------------------------------------


class Encoder:
    """rANS encoder: symbols are put in reverse order; :meth:`finish` gives the substream."""

    def __init__(self) -> None:
        self.x = RANS_L
        self.out = bytearray()  # emitted bytes, last-read first

    def put(self, start: int, freq: int, bits: int) -> None:
        x_max = ((RANS_L >> bits) << 8) * freq
        while self.x >= x_max:
            self.out.append(self.x & 0xFF)
            self.x >>= 8
        self.x = ((self.x // freq) << bits) + self.x % freq + start

    def raw(self, value: int, bits: int) -> None:
        if bits:
            self.put(value, 1, bits)

    def symbol(self, q: int, code: int) -> None:
        """Put one symbol (the reverse of :meth:`Decoder.symbol`)."""
        freq, cum, r, s = tables()[code]
        m = abs(q)
        if m:
            self.raw(int(q < 0), 1)
        u = m >> s
        if u < r:
            self.raw(m & ((1 << s) - 1), s)
        else:
            x = m - (r << s) + (1 << s)
            n = x.bit_length() - 1
            y = x - (1 << n)
            if n > 16:
                self.raw(y & 0xFFFF, 16)
                self.raw(y >> 16, n - 16)
            else:
                self.raw(y, n)
            self.raw(n - s, ESCAPE_LEN_BITS)
            u = r
        self.put(cum[u], freq[u], PROB_BITS)

    def finish(self) -> bytes:
        return self.x.to_bytes(4, "little") + bytes(reversed(self.out))


class Decoder:
    """rANS decoder over ``data[start:end]``; every read is bounded by ``end``."""

    def __init__(self, data: bytes, start: int, end: int):
        self.data, self.pos, self.end = data, start + 4, end
        self.x = int.from_bytes(data[start : start + 4], "little")
        if not RANS_L <= self.x < RANS_L << 8:
            raise HsimHeaderError("coefficient-map stream: a substream's initial state is out of range")

    def _advance(self, start: int, freq: int, bits: int) -> None:
        x = freq * (self.x >> bits) + (self.x & ((1 << bits) - 1)) - start
        while x < RANS_L:
            if self.pos >= self.end:
                raise HsimHeaderError("coefficient-map stream: a substream ends early")
            x = (x << 8) | self.data[self.pos]
            self.pos += 1
        self.x = x

    def raw(self, bits: int) -> int:
        if not bits:
            return 0
        v = self.x & ((1 << bits) - 1)
        self._advance(v, 1, bits)
        return v

    def symbol(self, code: int, max_abs: int) -> int:
        freq, cum, r, s = tables()[code]
        slot = self.x & ((1 << PROB_BITS) - 1)
        u = 0
        while cum[u + 1] <= slot:
            u += 1
        self._advance(cum[u], freq[u], PROB_BITS)
        if u < r:
            m = (u << s) | self.raw(s)
        else:
            n = self.raw(ESCAPE_LEN_BITS) + s
            if n > MAX_ESCAPE_BITS:
                raise HsimHeaderError("coefficient-map stream: an escape longer than any symbol needs")
            y = (self.raw(n - 16) << 16) | self.raw(16) if n > 16 else self.raw(n)
            m = (r << s) + (1 << n) + y - (1 << s)
        if m > max_abs:
            raise HsimHeaderError(f"coefficient-map stream: a symbol of magnitude {m} past the bound {max_abs}")
        return -m if m and self.raw(1) else m

    def finish(self) -> None:
        if self.pos != self.end or self.x != RANS_L:
            raise HsimHeaderError(
                "coefficient-map stream: a substream does not end after its symbols: corrupt or does not match "
                "the header"
            )
