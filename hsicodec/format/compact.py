"""The compact header of map-layer files (grid v5): positional arrays and Exp-Golomb coded tables.

A file without network latents spends most of its header on the parameters of
its two streams: at 0.01 bpppb on a 100 × 100 scene the map form of grid v4
(key names, one-byte table entries, two sections) took ~200 of ~2500 bytes.
Grid v5 writes them as

    codec = {"id": "grid", "norm": σ, "sp": [me, be, ma, n, t], "rl": [k, q, wt, ma, ro, t]}

(grid v8 appends the map layer's entropy coder: ``rl = [k, q, wt, ma, ro, t, ec]``, ``ec`` = 1; with the
learned entropy model, ``ec`` = 2, also its id and mix weights: ``rl = [k, q, wt, ma, ro, t, 2, em, mw]``;
grid v9 packs the reconstruction table ``rt`` into that entry as ``ec + 4·rt``, so a file with the table
has a header no longer than one without)

with one section ``"c"`` holding the spectral stream (its first n bytes) and
the map stream (the rest). Each ``t`` packs the layer's byte tables as
residuals from a prediction, signed Exp-Golomb coded (spec/hsim.md §10.6):

* ``sp.t``: the k + 1 Laplace scale codes ``sc`` (order 2; each predicted by
  the previous one, the first by 128), then the k basis step offsets ``bd``
  (order 0; predicted by the previous one, the first by 0);
* ``rl.t``: the k·(wt + 1) base codes ``ls`` as a k × (wt + 1) matrix (order 2;
  planar prediction ``up + left − up-left``, the first row and column from
  their one neighbour, the corner by 128), then the 26 class offset codes
  ``co`` as two passes of 13 (order 1; second-order prediction
  ``2 v[j−1] − v[j−2]`` inside a pass, the second entry by the first, the
  first entry of pass 0 by 128 and of pass 1 by the first of pass 0).

:func:`pack_codec` turns the v4 dictionaries into this form and
:func:`unpack_codec` back, validating as it goes, so that everything after it
reads one form.
"""

from __future__ import annotations

import numpy as np

from hsicodec.errors import HsimHeaderError

SC_ORDER, BD_ORDER, LS_ORDER, CO_ORDER = 2, 0, 2, 1
CO_PASS = 13  # class offsets per checkerboard pass
MAX_PREFIX = 12  # an Exp-Golomb prefix longer than this cannot code a byte table residual
EC_RT = 4  # the compact coder entry: ec + EC_RT · rt


# -- signed Exp-Golomb -------------------------------------------------------------------------


def _unzigzag(u: int) -> int:
    return u // 2 if u % 2 == 0 else -(u + 1) // 2


def _code_values(values: np.ndarray, order: int) -> np.ndarray:
    """The numbers u whose bits the signed Exp-Golomb codes of ``order`` write: each value zigzagged (2v, or
    -2v - 1 below zero) plus 2^order."""
    return np.where(values >= 0, 2 * values, -2 * values - 1) + (1 << order)


class _BitWriter:
    """Bits as a string of '0' and '1' (the tables are a few hundred bits; the rate search packs thousands)."""

    def __init__(self):
        self.parts: list[str] = []

    def signed_many(self, values: np.ndarray, order: int) -> None:
        """Each of ``values`` (integers) in turn as a signed Exp-Golomb code of ``order``: u (:func:`_code_values`)
        written in 2 bitlen(u) - 1 - order bits (leading zeros, then u)."""
        u = _code_values(values, order)
        self.parts.extend(format(x, f"0{2 * x.bit_length() - 1 - order}b") for x in u.tolist())

    def tobytes(self) -> bytes:
        bits = "".join(self.parts)
        bits += "0" * (-len(bits) % 8)
        return int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""


class _BitCounter(_BitWriter):
    """A :class:`_BitWriter` that only counts: :meth:`tobytes` gives zero bytes of the packed bits' length, all
    a header's size needs (the rate search sizes thousands of headers and writes a few)."""

    def __init__(self):
        self.n = 0

    def signed_many(self, values: np.ndarray, order: int) -> None:
        u = _code_values(values, order)
        if u.size:  # 2 bitlen(u) - 1 - order bits each; u < 2^52, so frexp's exponent is bitlen(u) exactly
            self.n += int(2 * np.frexp(u.astype(np.float64))[1].sum()) - u.size * (1 + order)

    def tobytes(self) -> bytes:
        return bytes(-(-self.n // 8))


class _BitReader:
    def __init__(self, data: bytes, key: str):
        self.key, self.pos = key, 0
        self.bits = format(int.from_bytes(data, "big"), f"0{8 * len(data)}b") if data else ""

    def _bit(self) -> int:
        if self.pos >= len(self.bits):
            raise HsimHeaderError(f"header key '{self.key}': table bits end early")
        self.pos += 1
        return 1 if self.bits[self.pos - 1] == "1" else 0

    def signed(self, order: int) -> int:
        zeros = 0
        while self._bit() == 0:
            zeros += 1
            if zeros > MAX_PREFIX:
                raise HsimHeaderError(f"header key '{self.key}': table residual out of range")
        u = 1
        for _ in range(zeros + order):
            u = (u << 1) | self._bit()
        return _unzigzag(u - (1 << order))

    def finish(self) -> None:
        """The bits end in the last byte and its padding is zero."""
        if (self.pos + 7) // 8 != len(self.bits) // 8 or any(self._bit() for _ in range(-self.pos % 8)):
            raise HsimHeaderError(f"header key '{self.key}': trailing table bits")


def _byte(v: int, key: str) -> int:
    if not 0 <= v <= 255:
        raise HsimHeaderError(f"header key '{key}': table entry {v} outside 0..255")
    return v


# -- predictors (shared by writer and reader: entries are produced in order) --------------------


def _ls_prediction(ls, i: int, j: int) -> int:  # ls, co: nested lists or 2-D arrays
    if i == 0 and j == 0:
        return 128
    if i == 0:
        return int(ls[0][j - 1])
    if j == 0:
        return int(ls[i - 1][0])
    return int(ls[i - 1][j] + ls[i][j - 1] - ls[i - 1][j - 1])


def _co_prediction(co, p: int, j: int) -> int:
    if j == 0:
        return 128 if p == 0 else int(co[0][0])
    if j == 1:
        return int(co[p][0])
    return int(2 * co[p][j - 1] - co[p][j - 2])


# -- the layers --------------------------------------------------------------------------------


def pack_spectral(sp: dict, k: int, stream_len: int, sizing: bool = False) -> list:
    """grid v4 ``codec.sp`` (me, be, ma, sc, bd) → v5 array, with the spectral stream's length; a shared
    stage's reference ``{"x": digest}`` → ``[digest]`` (no stream: ``stream_len`` is 0). ``sizing``: the
    table as zero bytes of its length (:class:`_BitCounter`)."""
    if "x" in sp:
        return [bytes(sp["x"])]
    w = _BitCounter() if sizing else _BitWriter()  # each entry less the one before (the first less 128, or 0)
    sc = np.frombuffer(bytes(sp["sc"]), np.uint8).astype(np.int64)
    w.signed_many(np.diff(sc, prepend=128), SC_ORDER)
    bd = np.frombuffer(bytes(sp.get("bd", bytes(k))), np.uint8).astype(np.int64)
    w.signed_many(np.diff(bd, prepend=0), BD_ORDER)
    return [sp["me"], sp["be"], sp["ma"], int(stream_len), w.tobytes()]


def unpack_spectral(arr, k: int) -> tuple[dict, int]:
    """v5 ``codec.sp`` array → (the v4 map, spectral stream length in section "c")."""
    key = "codec.sp"
    if isinstance(arr, list) and len(arr) == 1:  # a shared stage's reference (grid v7)
        if not isinstance(arr[0], bytes) or len(arr[0]) != 8:
            raise HsimHeaderError(f"header key '{key}': a shared stage's reference is 8 bytes")
        return {"x": arr[0]}, 0
    if not isinstance(arr, list) or len(arr) != 5:
        raise HsimHeaderError(f"header key '{key}': expected [me, be, ma, n, t]")
    me, be, ma, n, t = arr
    if type(n) is not int or n < 0:
        raise HsimHeaderError(f"header key '{key}': stream length n must be a non-negative int")
    if not isinstance(t, bytes):
        raise HsimHeaderError(f"header key '{key}': t must be bytes")
    r = _BitReader(t, key + ".t")
    sc: list = []
    for _ in range(k + 1):
        sc.append(_byte((sc[-1] if sc else 128) + r.signed(SC_ORDER), key + ".t"))
    bd: list = []
    for _ in range(k):
        bd.append(_byte((bd[-1] if bd else 0) + r.signed(BD_ORDER), key + ".t"))
    r.finish()
    return {"me": me, "be": be, "ma": ma, "sc": bytes(sc), "bd": bytes(bd)}, n


def pack_maps(rl: dict, sizing: bool = False) -> list:
    """grid v4 ``codec.rl`` (checkerboard scheme) → v5 array (``sizing``: the table as zero bytes of its
    length, :class:`_BitCounter`)."""
    k, lv = rl["k"], rl["wt"]
    ls = np.frombuffer(rl["ls"], np.uint8).astype(np.int64).reshape(k, lv + 1)
    co_codes = np.frombuffer(rl["co"], np.uint8).astype(np.int64)
    if co_codes.size != 2 * CO_PASS:
        raise ValueError("the compact header codes the checkerboard scheme only")
    co = co_codes.reshape(2, CO_PASS)
    w = _BitCounter() if sizing else _BitWriter()  # the residuals of the predictions, all entries at once
    pred = np.empty_like(ls)
    pred[0, 0] = 128
    pred[0, 1:] = ls[0, :-1]
    pred[1:, 0] = ls[:-1, 0]
    pred[1:, 1:] = ls[:-1, 1:] + ls[1:, :-1] - ls[:-1, :-1]
    w.signed_many((ls - pred).ravel(), LS_ORDER)
    pred = np.empty_like(co)
    pred[:, 0] = (128, co[0, 0])
    pred[:, 1] = co[:, 0]
    pred[:, 2:] = 2 * co[:, 1:-1] - co[:, :-2]
    w.signed_many((co - pred).ravel(), CO_ORDER)
    out = [k, rl["q"], lv, rl["ma"], rl["ro"], w.tobytes()]
    coder = rl.get("ec", 0) + EC_RT * rl.get("rt", 0)  # grid v9: the reconstruction table shares the entry
    if rl.get("ec", 0) == 2:  # the learned entropy model: its id and mix weights follow
        return out + [coder, rl["em"], rl["mw"]]
    return out + [coder] if coder else out  # grid v8: the entropy coder, when not constriction


def unpack_maps(arr, max_maps: int, max_levels: int) -> dict:
    """v5 ``codec.rl`` array → the v4 map (its ints are checked again by the map layer's parser); a
    seventh entry (grid v8) is the entropy coder ``ec`` plus 4 times the reconstruction table ``rt`` (grid v9),
    and with ``ec`` = 2 an eighth and ninth its ``em``, ``mw``."""
    key = "codec.rl"
    coder = arr[6] if isinstance(arr, list) and len(arr) >= 7 else 0
    if type(coder) is not int or coder < 0:
        raise HsimHeaderError(f"header key '{key}': the coder entry must be a non-negative int")
    learned = coder % EC_RT == 2
    if not isinstance(arr, list) or len(arr) not in (6, 7, 9) or (len(arr) == 9) != learned:
        raise HsimHeaderError(
            f"header key '{key}': expected [k, q, wt, ma, ro, t], [k, q, wt, ma, ro, t, ec] or [..., 2, em, mw]"
        )
    k, q, lv, ma, ro, t = arr[:6]
    if type(k) is not int or not 1 <= k <= max_maps:
        raise HsimHeaderError(f"header key '{key}': k must be an int in 1..{max_maps}")
    if type(lv) is not int or not 0 <= lv <= max_levels:
        raise HsimHeaderError(f"header key '{key}': wt must be an int in 0..{max_levels}")
    if not isinstance(t, bytes):
        raise HsimHeaderError(f"header key '{key}': t must be bytes")
    r = _BitReader(t, key + ".t")
    ls = np.zeros((k, lv + 1), np.int64)
    for i in range(k):
        for j in range(lv + 1):
            ls[i, j] = _byte(_ls_prediction(ls, i, j) + r.signed(LS_ORDER), key + ".t")
    co = np.zeros((2, CO_PASS), np.int64)
    for p in range(2):
        for j in range(CO_PASS):
            co[p, j] = _byte(_co_prediction(co, p, j) + r.signed(CO_ORDER), key + ".t")
    r.finish()
    out = {
        "k": k,
        "q": q,
        "wt": lv,
        "ma": ma,
        "ro": ro,
        "ls": bytes(int(v) for v in ls.ravel()),
        "co": bytes(int(v) for v in co.ravel()),
    }
    if len(arr) >= 7:
        out["ec"] = coder % EC_RT
    if coder >= EC_RT:
        out["rt"] = coder // EC_RT
    if learned:
        out["em"], out["mw"] = arr[7], arr[8]
    return out


def is_compact(codec) -> bool:
    """A grid v5 map-layer codec map (array-valued ``sp`` and ``rl``)."""
    return isinstance(codec, dict) and isinstance(codec.get("rl"), list)


def pack_codec(codec: dict, stream_len: int, sizing: bool = False) -> dict:
    """A v4 map-layer-only codec map → v5 (``stream_len``: bytes of the spectral stream in section "c").
    ``sizing``: its bit tables as zero bytes of their lengths, for a header of the same size (a size estimate)."""
    out = {key: v for key, v in codec.items() if key not in ("sp", "rl")}
    out["sp"] = pack_spectral(codec["sp"], codec["rl"]["k"], stream_len, sizing)
    out["rl"] = pack_maps(codec["rl"], sizing)
    return out


def unpack_codec(codec: dict, max_maps: int, max_levels: int) -> tuple[dict, int | None]:
    """A v5 codec map → (its v4 form, spectral stream length); a v4 map passes through with None."""
    if not is_compact(codec):
        return codec, None
    rl = unpack_maps(codec["rl"], max_maps, max_levels)
    sp, n = unpack_spectral(codec.get("sp"), rl["k"])
    return {**codec, "sp": sp, "rl": rl}, n
