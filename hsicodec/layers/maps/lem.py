"""The coefficient-map layer's learned entropy model (``ec = 2``, spec/hsim.md 10.11): the numpy reference.

Under ``ec = 1`` a symbol's scale code is its (map, level group)'s base code plus the offset of one of
26 context classes. Under ``ec = 2`` a small shared network (:class:`EntropyModel`, a model file named
in the header by the first 8 bytes of its sha256, trained on the training scenes by
``tools/train_entropy_model.py``) corrects that code from a wider causal context: the subband's
already coded neighbours, the same place in the previous maps, the parent and its neighbours, the
siblings, the level, orientation, pass and map index, and the coded base codes (:data:`FEATURES`).
Everything is integer arithmetic (features in 1/16 octave, weights in Q8, int32 accumulators whose
bounds the loader checks), so encoder and decoder agree bit for bit on every platform:

    code = clip(c + ((acc + 2^8) >> 9), 0, 255)     c = the ec = 1 code, acc = the network's output (Q12)
    final = (w_g · code + (4 − w_g) · c + 2) >> 2   w_g = the file's mix weight of level group g (0..4)

and symbols whose ``ec = 1`` code is below :data:`SKIP_CODE` keep it (nearly all zeros: not worth a
network evaluation). The per-file parameters are the ``ec = 1`` base codes and class offsets (the
encoder fits them as before) and one mix weight per level group (the encoder picks them for the fewest
bits; a file whose weights would all be 0 is written with ``ec = 1``).

This module is the reference the C++ coder (``map_lem_codes`` / ``map_decode_lem`` in
csrc/map_coder.cpp) is tested against; :func:`decode_reference` is slow (a feature pass per row).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from hsicodec.errors import HsimHeaderError, ModelFormatError
from hsicodec.layers.maps import coding as cm
from hsicodec.layers.maps import rans

KIND = "map-entropy-mlp"
ONE = 16  # features: integers in 1/16 octave
W_FRAC = 8  # weights in Q8, accumulators in Q12
OUT_SHIFT = W_FRAC + 4 - 3  # Q12 log2 → 1/8 octave (a scale code step)
MIX_DEN = 4
SKIP_CODE = 104  # ec = 1 codes below this (scales under 1/8) keep their code
ID_BYTES = cm.MODEL_ID_BYTES  # the header names the model by this many leading bytes of its sha256
ACT_MAX = (1 << 15) - 1
FEATURE_MAX = 1024  # |feature| bound the accumulator check assumes (features stay under 640)
N_FINE = 6
FEATURES = (
    "diag",  # lg16 of |q| at (r−1, c−1) + (r−1, c+1): same pass parity, already coded
    "far",  # lg16 of (r, c−2) + (r−2, c)
    "n4",  # second pass: lg16 of the four (first-pass) neighbours' sum; 0 in the first pass
    "n4max",  # second pass: lg16 of their max
    "prev",  # previous map, same place
    "prev4",  # previous map, its four neighbours' sum
    "prev2",  # the map before it, same place
    "prevall",  # sum over all earlier maps, same place
    "parent",  # parent (same orientation, one level coarser), at (r // 2, c // 2) clipped
    "parent9",  # the parent's 3 × 3 sum (zero outside its subband)
    "sib",  # siblings at the same place (HL for LH; HL + LH for HH), clipped
    "L",  # 2 · (base code − 128) of the (map, group)
    "Lprev",  # of the previous map, same group
    "Lparent",  # of the same map, group g − 1 (g > 0)
    "cls",  # 2 · (ec = 1 code − 128) of this symbol
    "second",  # 16 in the second pass
    "map",  # lg16(map index)
    "has_prev",
    "has_parent",
    "ori1",
    "ori2",
    "ori3",
) + tuple(f"fine{i}" for i in range(N_FINE))  # 16 at min(levels − group, 5) (the lowpass: 5)
CLS = FEATURES.index("cls")
FAR = FEATURES.index("far")
_LG_LUT = np.array(  # round(16 · log2(1 + i / 64)), i = 0..63: normative (spec/hsim.md 10.11)
    [0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 7, 7, 7, 7, 8, 8, 8, 8, 9, 9, 9, 9, 10, 10, 10]
    + [10, 11, 11, 11, 11, 11, 12, 12, 12, 12, 13, 13, 13, 13, 13, 14, 14, 14, 14, 14, 15, 15, 15, 15, 15, 15, 16, 16],
    np.int64,
)


def lg16(n) -> np.ndarray:
    """16 · log2(1 + n) of integers 0 ≤ n < 2^40, integer only: 16 · e + LUT[6 mantissa bits], e = ⌊log2(n + 1)⌋."""
    v = np.asarray(n, np.int64) + 1
    e = np.frexp(v.astype(np.float64))[1].astype(np.int64) - 1  # exact bit length − 1 for v < 2^53
    t = np.where(e >= 6, v >> np.maximum(e - 6, 0), v << np.maximum(6 - e, 0))  # in [64, 128)
    return ONE * e + _LG_LUT[t - 64]


# -- the model -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EntropyModel:
    """A validated learned entropy model: integer layers [(W (out, in) int64, bias int64)], its sha256."""

    layers: tuple
    sha256: str

    @property
    def ident(self) -> bytes:
        """What a header stores: the first :data:`ID_BYTES` bytes of the sha256."""
        return bytes.fromhex(self.sha256)[:ID_BYTES]

    @property
    def hidden(self) -> int:
        return int(self.layers[0][0].shape[0])

    @property
    def macs_per_symbol(self) -> int:
        return int(sum(w.size for w, _ in self.layers))


def model_arrays(layers: list) -> dict:
    """The model file's arrays (int32) of integer layers [(W, b), ...]."""
    out = {}
    for i, (w, b) in enumerate(layers):
        out[f"w{i}"] = np.asarray(w, np.int32)
        out[f"b{i}"] = np.asarray(b, np.int32)
    return out


def model_config(hidden: int) -> dict:
    return {"kind": KIND, "features": list(FEATURES), "hidden": hidden, "one": ONE, "w_frac": W_FRAC,
            "skip_code": SKIP_CODE, "mix_den": MIX_DEN}  # fmt: skip


def from_model_file(mf) -> EntropyModel:
    """Validate a :class:`hsicodec.models.modelfile.ModelFile` as an entropy model (ModelFormatError if not):
    its kind, feature list and constants as this decoder knows them, 3 layers F → H → H → 1, and every
    accumulator provably inside int32."""
    cfg = mf.config
    if cfg.get("kind") != KIND:
        raise ModelFormatError(f"model {mf.sha256[:12]}: not a {KIND} model (kind {cfg.get('kind')!r})")
    want = model_config(int(cfg.get("hidden", 0)))
    for key in ("features", "one", "w_frac", "skip_code", "mix_den"):
        if cfg.get(key) != want[key]:
            raise ModelFormatError(f"model {mf.sha256[:12]}: config {key!r} differs from this decoder's")
    layers = []
    n_in, bound = len(FEATURES), FEATURE_MAX
    for i in range(3):
        w, b = mf.arrays.get(f"w{i}"), mf.arrays.get(f"b{i}")
        n_out = 1 if i == 2 else want["hidden"]
        if w is None or b is None or w.dtype != np.int32 or b.dtype != np.int32:
            raise ModelFormatError(f"model {mf.sha256[:12]}: layer {i} needs int32 arrays w{i} and b{i}")
        if w.shape != (n_out, n_in) or b.shape != (n_out,) or n_out < 1:
            raise ModelFormatError(f"model {mf.sha256[:12]}: layer {i} has shape {w.shape}, {b.shape}")
        w64, b64 = w.astype(np.int64), b.astype(np.int64)
        if int((np.abs(w64).sum(axis=1) * bound + np.abs(b64)).max()) >= 1 << 30:
            raise ModelFormatError(f"model {mf.sha256[:12]}: layer {i} could overflow its int32 accumulator")
        layers.append((w64, b64))
        n_in, bound = n_out, ACT_MAX
    return EntropyModel(tuple(layers), mf.sha256)


@functools.lru_cache(maxsize=4)
def _resolve(ident: bytes) -> EntropyModel:
    from hsicodec.models.registry import load_by_id_prefix

    return from_model_file(load_by_id_prefix(ident, "learned entropy model"))


def resolve(ident: bytes) -> EntropyModel:
    """The model a header names (registry: bundled, user directory, HSICODEC_MODEL_PATH)."""
    return _resolve(bytes(ident))


DEFAULT_ALIAS = "hsi-lem-v1"


def default_model() -> EntropyModel:
    """The bundled model the encoder uses (``hsicodec/models/hsi-lem-v1.hsmodel``)."""
    from hsicodec.models.registry import default_registry

    return from_model_file(default_registry().load(DEFAULT_ALIAS))


# -- features and codes ----------------------------------------------------------------------------


def _shift(a: np.ndarray, dr: int, dc: int) -> np.ndarray:
    """a[..., r + dr, c + dc], zero outside."""
    out = np.zeros_like(a)
    rows, cols = a.shape[-2:]
    r0, r1, c0, c1 = max(0, -dr), min(rows, rows - dr), max(0, -dc), min(cols, cols - dc)
    if r1 > r0 and c1 > c0:
        out[..., r0:r1, c0:c1] = a[..., r0 + dr : r1 + dr, c0 + dc : c1 + dc]
    return out


def band_features(absq: np.ndarray, j: int, b: int, bands: list, parents: dict, levels: int, base: np.ndarray,
                  cls_codes: np.ndarray) -> np.ndarray:  # fmt: skip
    """(rows, cols, F) int64 features of subband ``b`` of map ``j`` from |q| (k, H, W) (only causal places
    are read), base codes (k, levels + 1) and the subband's ec = 1 codes ``cls_codes`` (rows, cols)."""
    g, ori, rs, cs = bands[b]
    a = absq[j, rs, cs]
    rows, cols = a.shape
    late = cm.second_pass(rows, cols)
    f = np.zeros((rows, cols, len(FEATURES)), np.int64)
    ix = {n: i for i, n in enumerate(FEATURES)}
    lcode = 2 * (base.astype(np.int64) - 128)
    f[..., ix["diag"]] = lg16(_shift(a, -1, -1) + _shift(a, -1, 1))
    f[..., ix["far"]] = lg16(_shift(a, 0, -2) + _shift(a, -2, 0))
    n4 = np.stack([_shift(a, -1, 0), _shift(a, 1, 0), _shift(a, 0, -1), _shift(a, 0, 1)])
    f[..., ix["n4"]] = np.where(late, lg16(n4.sum(axis=0)), 0)
    f[..., ix["n4max"]] = np.where(late, lg16(n4.max(axis=0)), 0)
    if j >= 1:
        p1 = absq[j - 1, rs, cs]
        f[..., ix["prev"]] = lg16(p1)
        f[..., ix["prev4"]] = lg16(cm.neighbours(p1))
        f[..., ix["prevall"]] = lg16(absq[:j, rs, cs].sum(axis=0))
        f[..., ix["Lprev"]] = lcode[j - 1, g]
        f[..., ix["has_prev"]] = ONE
    if j >= 2:
        f[..., ix["prev2"]] = lg16(absq[j - 2, rs, cs])
    if b in parents:
        _, _, prs, pcs = bands[parents[b]]
        par = absq[j, prs, pcs]
        box = np.sum([_shift(par, dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1)], axis=0)
        f[..., ix["parent"]] = lg16(cm._gather(par, rows, cols, 2))
        f[..., ix["parent9"]] = lg16(cm._gather(box, rows, cols, 2))
        f[..., ix["has_parent"]] = ONE
    if g > 0:
        f[..., ix["Lparent"]] = lcode[j, g - 1]
    if ori >= 2:
        sib = np.zeros((rows, cols), np.int64)
        for s_ in range(b - ori + 1, b):
            sib += cm._gather(absq[j, bands[s_][2], bands[s_][3]], rows, cols, 1)
        f[..., ix["sib"]] = lg16(sib)
    if ori:
        f[..., ix[f"ori{ori}"]] = ONE
    f[..., ix[f"fine{min(levels - g if g else N_FINE - 1, N_FINE - 1)}"]] = ONE
    f[..., ix["L"]] = lcode[j, g]
    f[..., ix["cls"]] = 2 * (cls_codes.astype(np.int64) - 128)
    f[..., ix["second"]] = ONE * late
    f[..., ix["map"]] = lg16(j)
    return f


def network_codes(model: EntropyModel, x: np.ndarray) -> np.ndarray:
    """Scale codes (N,) the network gives features (N, F): the ec = 1 code plus its rounded correction."""
    h = np.asarray(x, np.int64)
    acc = np.zeros((len(h), 1), np.int64)
    for i, (w, b) in enumerate(model.layers):
        acc = h @ w.T + b
        if i + 1 < len(model.layers):
            h = np.clip((acc + (1 << (W_FRAC - 1))) >> W_FRAC, 0, ACT_MAX)
    delta = (acc[:, 0] + (1 << (OUT_SHIFT - 1))) >> OUT_SHIFT
    return np.clip(np.asarray(x, np.int64)[:, CLS] // 2 + 128 + delta, 0, 255)


def mixed(net: np.ndarray, cls: np.ndarray, w: np.ndarray | int) -> np.ndarray:
    """The final codes: (w · net + (4 − w) · cls + 2) >> 2, and cls where cls < SKIP_CODE."""
    out = (w * net + (MIX_DEN - w) * cls + MIX_DEN // 2) >> 2
    return np.where(cls < SKIP_CODE, cls, out)


def class_codes(sym: np.ndarray, p: cm.MapParams) -> np.ndarray:
    """(k, H, W) ec = 1 scale codes of every symbol (classes, base codes and offsets of ``p``)."""
    cls, grp = cm.all_classes(sym, p.levels)
    return cm._symbol_codes(p, grp, cls)


def codes_reference(sym: np.ndarray, p: cm.MapParams, model: EntropyModel) -> np.ndarray:
    """(k, H, W) final ec = 2 codes of known symbols under ``p``'s mix weights (the encoder's view)."""
    k, h, w = sym.shape
    absq = np.abs(sym).astype(np.int64)
    cc = class_codes(sym, p)
    bands, parents = cm._stream_layout(h, w, p.levels)
    base = np.frombuffer(p.base_codes, np.uint8).astype(np.int64).reshape(k, p.levels + 1)
    weights = np.frombuffer(p.mix, np.uint8).astype(np.int64)
    out = cc.copy()
    for j in range(k):
        for b, (g, _, rs, cs) in enumerate(bands):
            c = cc[j, rs, cs]
            use = c >= SKIP_CODE
            if not use.any():
                continue
            x = band_features(absq, j, b, bands, parents, p.levels, base, c)[use]
            out[j, rs, cs][use] = mixed(network_codes(model, x), c[use], weights[g])
    return out


# -- streams ---------------------------------------------------------------------------------------


def encode_reference(sym: np.ndarray, codes: np.ndarray, levels: int, count: int | None = None) -> bytes:
    """The stream of symbols (k, H, W) under per-symbol scale codes (k, H, W) in stream order (the slow
    twin of ``map_encode_codes``; the substream layout of ec = 1)."""
    k, h, w = sym.shape
    if not sym.size or not np.any(sym):
        return b""
    count = rans.substream_count(k, h, w) if count is None else count
    perm, _ = cm.coding_order(h, w, levels)
    parts = []
    for i in range(count):
        enc = rans.Encoder()
        for j in reversed(rans.substream_maps(k, count, i)):
            q, c = sym[j].ravel()[perm].tolist(), codes[j].ravel()[perm].tolist()
            for n in range(len(q) - 1, -1, -1):
                enc.symbol(q[n], c[n])
        parts.append(enc.finish())
    return rans.join_substreams(parts)


def decode_reference(data: bytes, p: cm.MapParams, height: int, width: int, model: EntropyModel) -> np.ndarray:
    """Symbols (k, H, W) int64 of an ec = 2 stream, codes formed row by row as they decode (slow reference of
    ``map_decode_lem``). HsimHeaderError on any defect."""
    sym = np.zeros((p.k, height, width), np.int64)
    if p.max_abs == 0 or not sym.size:
        if data:
            raise HsimHeaderError("coefficient-map stream has bytes but declares every symbol zero")
        return sym
    ranges = rans.split_substreams(data, p.k)
    bands, parents = cm._stream_layout(height, width, p.levels)
    codes = rans.code_tables(p.base_codes, p.class_offsets, p.k, p.levels + 1)
    base = np.frombuffer(p.base_codes, np.uint8).astype(np.int64).reshape(p.k, p.levels + 1)
    weights = np.frombuffer(p.mix, np.uint8).astype(np.int64)
    absq = np.zeros_like(sym)
    for i, (start, end) in enumerate(ranges):
        dec = rans.Decoder(data, start, end)
        for j in rans.substream_maps(p.k, len(ranges), i):
            for b, (g, _, rs, cs) in enumerate(bands):
                t = cm.activity(absq, slice(j, j + 1), bands, parents, b)[0]
                sub, out, late = absq[j, rs, cs], sym[j, rs, cs], cm.second_pass(*t.shape)
                for second in (False, True):
                    tt = t + cm.neighbours(sub) if second else t  # the late symbols are still 0 in sub
                    cls = cm._FINE_LUT[np.minimum(tt, cm.FINE_EDGES[-1])] + second * (cm.FINE_EDGES.size + 1)
                    cc = codes[j * (p.levels + 1) + g][cls]
                    for r in range(t.shape[0]):
                        cols = np.nonzero(late[r] == second)[0]
                        if not cols.size:
                            continue
                        row = cc[r, cols]
                        feats = band_features(absq, j, b, bands, parents, p.levels, base, cc)[r]
                        for c, code in zip(cols.tolist(), row.tolist()):
                            if code >= SKIP_CODE and weights[g]:
                                x = feats[c].copy()  # (r, c − 2) was decoded after the row's features were taken
                                x[FAR] = lg16((sub[r, c - 2] if c >= 2 else 0) + (sub[r - 2, c] if r >= 2 else 0))
                                code = int(mixed(network_codes(model, x[None]), np.array([code]), weights[g])[0])
                            out[r, c] = v = dec.symbol(int(code), p.max_abs)
                            sub[r, c] = abs(v)
        dec.finish()
    return sym
