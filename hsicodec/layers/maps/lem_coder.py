"""The coefficient-map stream under the learned entropy model (``ec = 2``): encoder choice and decoding.

:mod:`hsicodec.layers.maps.lem` defines the codes; this module picks a file's mix weights (one per
level group, 0..4, for the fewest bits under the coder's own tables), falls back to ``ec = 1`` where the
model saves less than its header bytes, and runs the C++ coder (``map_lem_codes``, ``map_encode_codes``,
``map_decode_lem``), or the numpy reference without the extension (the same bytes).
"""

from __future__ import annotations

import functools

import numpy as np

from hsicodec.coding import entropy
from hsicodec.errors import HsimHeaderError, OptionError
from hsicodec.layers.maps import coding as cm
from hsicodec.layers.maps import lem, rans

HEADER_BYTES = 4  # msgpack of the two extra array entries, beyond their payloads (8-byte id, mix weights)


@functools.lru_cache(maxsize=1)
def _token_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(256, 64) bits of each token, the escape token R and the raw low bits s of every scale code."""
    bits = np.full((rans.CODES, rans.TOKENS), np.inf)
    esc, raw = np.zeros(rans.CODES, np.int64), np.zeros(rans.CODES, np.int64)
    for c, (freq, _cum, r, s) in enumerate(rans.tables()):
        bits[c, : len(freq)] = rans.PROB_BITS - np.log2(np.asarray(freq, np.float64))
        esc[c], raw[c] = r, s
    return bits, esc, raw


def table_bits(codes: np.ndarray, mag: np.ndarray) -> np.ndarray:
    """Bits the rANS coder spends on magnitudes ``mag`` (sign included) under scale codes ``codes``."""
    token_bits, escape, rawbits = _token_tables()
    codes, mag = np.asarray(codes, np.int64), np.asarray(mag, np.int64)
    s, r = rawbits[codes], escape[codes]
    u = mag >> s
    x = np.maximum(mag - (r << s) + (1 << s), 1)
    n = np.frexp(x.astype(np.float64))[1] - 1
    regular = token_bits[codes, np.minimum(u, r)] + s
    return np.where(u < r, regular, token_bits[codes, r] + n + rans.ESCAPE_LEN_BITS) + (mag > 0)


LUT_MAGS = 64  # magnitudes below this are priced from a (code, magnitude) table, by counting


@functools.lru_cache(maxsize=1)
def _bits_table() -> np.ndarray:
    """(CODES · LUT_MAGS,) bits of :func:`table_bits` for every scale code and magnitude below LUT_MAGS."""
    codes = np.repeat(np.arange(rans.CODES), LUT_MAGS)
    return table_bits(codes, np.tile(np.arange(LUT_MAGS), rans.CODES))


def total_bits(codes: np.ndarray, mag: np.ndarray) -> float:
    """Σ :func:`table_bits` (codes, mag): small magnitudes counted per (code, magnitude) and priced from a
    table, the others one by one. Equal to the plain sum but for the order of the float additions."""
    codes, mag = np.asarray(codes, np.int64).ravel(), np.asarray(mag, np.int64).ravel()
    small = mag < LUT_MAGS
    counts = np.bincount(codes[small] * LUT_MAGS + mag[small], minlength=rans.CODES * LUT_MAGS)
    used = np.flatnonzero(counts)
    total = float(counts[used] @ _bits_table()[used])
    if not small.all():
        total += float(table_bits(codes[~small], mag[~small]).sum())
    return total


def _native(name: str):
    return cm._native_function(name)


def _weights(model: lem.EntropyModel) -> list:
    out = []
    for w, b in model.layers:
        out += [np.ascontiguousarray(w, np.int32), np.ascontiguousarray(b, np.int32)]
    return out


def codes(sym: np.ndarray, p: cm.MapParams, model: lem.EntropyModel, mix: bytes, threads: int = 0) -> np.ndarray:
    """(k, H, W) ec = 2 scale codes of known symbols under mix weights ``mix`` (C++ or the numpy reference)."""
    nat = _native("map_lem_codes")
    if nat is None:
        q = cm.MapParams(p.k, p.q, p.levels, p.max_abs, p.base_codes, p.class_offsets, p.recon, cm.EC_LEARNED,
                         model.ident, mix)  # fmt: skip
        return lem.codes_reference(sym, q, model)
    h, w = sym.shape[1:]
    offsets = [int(o) for o in p.class_offsets]
    return nat(np.ascontiguousarray(sym, np.int64), p.base_codes, offsets, mix, *_weights(model),
               *cm._native_layout(h, w, p.levels), threads)  # fmt: skip


def choose_mix(
    sym: np.ndarray, p: cm.MapParams, model: lem.EntropyModel, threads: int = 0
) -> tuple[bytes, float, np.ndarray]:
    """The mix weight of each level group (0..4) for the fewest bits, the bits it saves over ec = 1, and the
    final (k, H, W) codes under those weights: per group :func:`lem.mixed` of the network's codes (all
    weights 4) and the ec = 1 codes (all weights 0), which is what :func:`codes` gives for them."""
    groups = p.levels + 1
    ec1 = codes(sym, p, model, bytes(groups), threads).astype(np.int64)  # all weights 0: the ec = 1 codes
    net = codes(sym, p, model, bytes([lem.MIX_DEN] * groups), threads).astype(np.int64)
    mag = np.abs(sym)
    gmap = np.zeros(sym.shape[1:], np.int64)
    for g, _, rs, cs in cm.subbands(sym.shape[1], sym.shape[2], p.levels):
        gmap[rs, cs] = g
    weights, saved = [], 0.0
    final = ec1.copy()
    for g in range(groups):
        sel = np.broadcast_to(gmap == g, sym.shape)
        c1, cn, m = ec1[sel], net[sel], mag[sel]
        base = total_bits(c1, m)
        bits = [total_bits(lem.mixed(cn, c1, wt), m) for wt in range(lem.MIX_DEN + 1)]
        best = int(np.argmin(bits))
        weights.append(best)
        saved += base - bits[best]
        final[sel] = lem.mixed(cn, c1, best)
    return bytes(weights), saved, final


def encode(sym: np.ndarray, q: int, levels: int, rho: int, model: lem.EntropyModel, threads: int = 0
           ) -> tuple[bytes, cm.MapParams]:  # fmt: skip
    """The map stream of symbols (k, H, W) under the learned model (``ec = 2``), or the ``ec = 1`` stream where
    the model would save fewer bytes than its header entries cost; returns (stream, params)."""
    k, h, w = sym.shape
    max_abs = int(np.abs(sym).max()) if sym.size else 0
    if max_abs > entropy.MAX_ABS_LIMIT:
        raise OptionError("coefficient-map step too fine for the value range")
    base, off, _ = cm.fit_codes_from_stats(*cm.cell_stats(sym, levels), float(max_abs))
    p = cm.MapParams(k, int(q), int(levels), max_abs, base, off, int(rho), cm.EC_RANS)
    if max_abs == 0:
        return cm.rans_encode(sym, p, h, w, None, threads), p
    mix, saved, final = choose_mix(sym, p, model, threads)
    if saved < 8 * (lem.ID_BYTES + levels + 1 + HEADER_BYTES):
        return cm.rans_encode(sym, p, h, w, None, threads), p
    p = cm.MapParams(k, int(q), int(levels), max_abs, base, off, int(rho), cm.EC_LEARNED, model.ident, mix)
    nat = _native("map_encode_codes")
    count = rans.substream_count(k, h, w)
    if nat is None:
        return lem.encode_reference(sym, final, levels, count), p
    data = nat(np.ascontiguousarray(sym, np.int64), np.ascontiguousarray(final, np.uint8),
               *cm._native_layout(h, w, levels), count, threads)  # fmt: skip
    return bytes(data), p


def decode(data: bytes, p: cm.MapParams, height: int, width: int, threads: int = 0) -> np.ndarray:
    """Symbols (k, H, W) of an ``ec = 2`` stream (int32 from C++, int64 from the reference); the model named by
    ``p.model_id`` comes from the registry (ModelNotFoundError names it when it is not installed)."""
    model = lem.resolve(p.model_id)
    nat = _native("map_decode_lem")
    if nat is None:
        return lem.decode_reference(data, p, height, width, model)
    offsets = [int(o) for o in p.class_offsets]
    try:
        return nat(bytes(data), p.k, height, width, p.base_codes, offsets, p.mix, *_weights(model), p.max_abs,
                   *cm._native_layout(height, width, p.levels), threads)  # fmt: skip
    except ValueError as exc:  # MapStreamError: a corrupt stream, or one that does not match the header
        raise HsimHeaderError(f"coefficient-map stream cannot be decoded: {exc}") from exc
