"""The coefficient-map layer: k maps (H, W) ⇄ bytes in the CDF 9/7 domain with context-classed Laplace scales.

The grid codec's latents are decoded by the shared network into the scene's
normalised principal-component maps; what the network leaves (or, without
network latents, the maps themselves) is coded here as a residual layer:

1. each map takes ``levels`` 2-D CDF 9/7 levels (:func:`hsicodec.coding.wavelet.cdf97_forward`);
2. every coefficient is quantized with step Δ / √g, g the subband's synthesis
   energy, so that one Δ gives every coefficient the same weight in the
   pixel-domain squared error (equal-slope allocation across subbands and maps);
3. each symbol gets a **context class** from already-coded neighbours: its
   parent (same orientation, one level coarser), its siblings (the HL / LH
   coefficients at the same place of the same level) and the same coefficient
   of the previous map give t = |parent| + |siblings| + 2·|previous map|
   (scheme "checkerboard" adds a quarter of the four neighbours' sums of the
   parent and of the previous map's coefficient).
   Scheme "checkerboard" (grid v4, 26 classes): a subband is coded in two
   passes, first the coefficients with (row + col) even, then the others, whose
   t also adds their four decoded neighbours |N| + |S| + |W| + |E|; class =
   thresholds of :data:`FINE_EDGES` reached by t, plus 13 in the second pass.
   Scheme "plain" (grid v3, 7 classes): one pass, class = bit length of t
   capped at 6. Integer arithmetic only, so encoder and decoder agree bit for
   bit on every platform;
4. the Laplace scale of a symbol is 2^((code − 128) / 8) with code = base code of
   its (map, level group) + offset of its class, both chosen by the encoder
   for the fewest bits and stored in the header (k·(levels + 1) + 26 bytes);
5. nonzero symbols dequantize to sign(q)·(|q| − ρ/32)·step (ρ in the header,
   the encoder's least-squares reconstruction offset);
6. the symbols are entropy coded under those scales: header key ``ec`` 1 (grid v8, written by
   the encoder) by the layer's own rANS coder (:mod:`hsicodec.layers.maps.rans`, in C++ as
   ``map_encode`` / ``map_decode``: the whole stream in one call, classes computed as it decodes,
   GIL released, maps pipelined over threads); ``ec`` absent (earlier files) by constriction's ANS
   coder under ``QuantizedLaplace`` with per-symbol float scales, one pass of a subband per call; ``ec`` 2
   (optional, ``--learned-entropy``) by the same rANS coder under the learned entropy model's codes
   (:mod:`hsicodec.layers.maps.lem`, decoded through :mod:`hsicodec.layers.maps.streams`).

Symbols are coded map by map, subband by subband in :func:`hsicodec.coding.wavelet.subbands`
order, row-major inside a subband (inside each pass); a pass's classes depend
only on earlier subbands and passes, so the decoder works one pass at a time.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from hsicodec.coding import entropy
from hsicodec.coding.wavelet import (
    cdf97_forward,
    cdf97_inverse_reference,
    cdf97_subband_gain,
    native_wavelet,
    subbands,
    wavelet_levels,
)
from hsicodec.errors import HsimHeaderError, OptionError, header_int
from hsicodec.layers.maps import rans, recon
from hsicodec.layers.maps.layout import native_function as _native_function
from hsicodec.layers.maps.layout import native_layout as _native_layout
from hsicodec.layers.maps.layout import stream_layout as _stream_layout

PLAIN_EDGES = np.array([1, 2, 4, 8, 16, 32], np.int64)  # scheme "plain": t ≥ edge_i → class > i
FINE_EDGES = np.array([1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64], np.int64)  # scheme "checkerboard", per pass
PLAIN_CLASSES = PLAIN_EDGES.size + 1
CHECKER_CLASSES = 2 * (FINE_EDGES.size + 1)
N_CLASSES = CHECKER_CLASSES  # what the encoder writes
MAX_LEVELS = 8
DEFAULT_LEVELS = 5
MAX_MAPS = 255
RECON_DEN = 32  # reconstruction offset unit: ρ / 32 of a step
MAP_KEYS = frozenset({"k", "q", "wt", "ma", "ls", "co", "ro", "ec", "em", "mw", "rt"})
EC_CONSTRICTION = 0  # header key "ec" absent: constriction's ANS coder (grid v3..v7 files)
EC_RANS = 1  # the layer's own rANS coder (grid v8, spec/hsim.md 10.9): what the encoder writes
EC_LEARNED = 2  # rANS under the learned entropy model's codes (spec/hsim.md 10.11, hsicodec.layers.maps.lem)
MODEL_ID_BYTES = 8  # "em": the learned model's sha256, its first 8 bytes


@dataclass
class MapParams:
    """The validated header map of a coefficient-map layer."""

    k: int
    q: int  # step exponent: Δ = 2^(q / 8)
    levels: int
    max_abs: int
    base_codes: bytes  # k · (levels + 1)
    class_offsets: np.ndarray  # (PLAIN_CLASSES or CHECKER_CLASSES,) int, in 1/8 octaves: the context scheme
    recon: int  # ρ, 0..RECON_DEN/2; with a reconstruction table, the table's shift + 8
    coder: int = EC_RANS  # header key "ec": the stream's entropy coder (absent in a header: EC_CONSTRICTION)
    model_id: bytes = b""  # ec = 2: header key "em", the learned entropy model's id (sha256 prefix)
    mix: bytes = b""  # ec = 2: header key "mw", one mix weight 0..4 per level group
    recon_table: int = 0  # header key "rt": the trained reconstruction table (0: none, one offset ρ)

    @property
    def checker(self) -> bool:
        """Context scheme "checkerboard" (two passes per subband), else "plain"."""
        return len(self.class_offsets) == CHECKER_CLASSES

    def to_header(self) -> dict:
        out = {
            "k": self.k,
            "q": self.q,
            "wt": self.levels,
            "ma": self.max_abs,
            "ls": self.base_codes,
            "co": bytes(int(o) + 128 for o in self.class_offsets),
            "ro": self.recon,
        }
        if self.coder != EC_CONSTRICTION:
            out["ec"] = self.coder
        if self.coder == EC_LEARNED:
            out["em"], out["mw"] = self.model_id, self.mix
        if self.recon_table:
            out["rt"] = self.recon_table
        return out

    @property
    def step(self) -> float:
        return entropy.step_from_exponent(self.q, STEPS_PER_OCTAVE)


STEPS_PER_OCTAVE = 32  # step = 2^(q / 32): 0.19 dB apart, fine enough to land close under a byte budget


def parse_params(m, height: int, width: int, max_maps: int) -> MapParams:
    """Validate a header's coefficient-map layer (``codec.rl``); HsimHeaderError names the bad key."""
    if not isinstance(m, dict):
        raise HsimHeaderError("header key 'codec.rl': expected a map")
    unknown = sorted(str(key) for key in m if key not in MAP_KEYS)
    if unknown:
        raise HsimHeaderError(f"header key 'codec.rl': unknown key(s) {', '.join(unknown)}")

    def integer(key, lo, hi):
        return header_int(m, "codec.rl", key, lo, hi)

    k = integer("k", 1, max_maps)
    q = integer("q", -512, 512)
    lv = integer("wt", 0, MAX_LEVELS)
    if lv != wavelet_levels(height, width, lv):
        raise HsimHeaderError(f"header key 'codec.rl.wt': {lv} levels do not fit a {height}x{width} map")
    ma = integer("ma", 0, entropy.MAX_ABS_LIMIT)
    ro = integer("ro", 0, RECON_DEN // 2)
    ls, co = m.get("ls"), m.get("co")
    if not isinstance(ls, bytes) or len(ls) != k * (lv + 1):
        raise HsimHeaderError(f"header key 'codec.rl.ls': expected {k * (lv + 1)} scale codes")
    if not isinstance(co, bytes) or len(co) not in (PLAIN_CLASSES, CHECKER_CLASSES):
        raise HsimHeaderError(
            f"header key 'codec.rl.co': expected {CHECKER_CLASSES} (or {PLAIN_CLASSES}) class offsets"
        )
    ec = integer("ec", EC_CONSTRICTION, EC_LEARNED) if "ec" in m else EC_CONSTRICTION
    if ec != EC_CONSTRICTION and len(co) != CHECKER_CLASSES:
        raise HsimHeaderError("header key 'codec.rl.ec': the rANS coder needs the checkerboard scheme (26 offsets)")
    em, mw = m.get("em", b""), m.get("mw", b"")
    if ec == EC_LEARNED and not (isinstance(em, bytes) and len(em) == MODEL_ID_BYTES):
        raise HsimHeaderError(f"header key 'codec.rl.em': expected {MODEL_ID_BYTES} bytes (the model's id)")
    if ec == EC_LEARNED and not (isinstance(mw, bytes) and len(mw) == lv + 1 and max(mw) <= 4):
        raise HsimHeaderError(f"header key 'codec.rl.mw': expected {lv + 1} mix weights in 0..4")
    if ec != EC_LEARNED and ("em" in m or "mw" in m):
        raise HsimHeaderError("header keys 'codec.rl.em' / 'mw' belong to the learned entropy model (ec = 2)")
    rt = integer("rt", 0, max(recon.TABLES)) if "rt" in m else 0
    return MapParams(k, q, lv, ma, ls, np.frombuffer(co, np.uint8).astype(np.int64) - 128, ro, ec, em, mw, rt)


def map_levels(height: int, width: int) -> int:
    """CDF 9/7 levels used for an ``height`` × ``width`` map."""
    return wavelet_levels(height, width, DEFAULT_LEVELS)


# -- contexts ----------------------------------------------------------------------------------


def _gather(a: np.ndarray, rows: int, cols: int, scale: int) -> np.ndarray:
    """a[..., r // scale, c // scale] for an (rows, cols) target, indices clipped to a's shape."""
    if a.shape[-1] == 0 or a.shape[-2] == 0:
        return np.zeros(a.shape[:-2] + (rows, cols), np.int64)
    ri = np.minimum(np.arange(rows) // scale, a.shape[-2] - 1)
    ci = np.minimum(np.arange(cols) // scale, a.shape[-1] - 1)
    return a[..., ri, :][..., ci]


def activity(absq: np.ndarray, comps: slice, bands: list, parents: dict, b: int, checker: bool = True) -> np.ndarray:
    """t (n, rows, cols) of subband ``b`` of maps ``comps`` (a slice) from the |q| already coded (absq:
    (k, H, W) int64; earlier subbands and maps only): 2|previous map| + |parent| + |siblings|, and with
    ``checker`` (scheme "checkerboard") also ⌊Σ4 neighbours of the previous map's symbol / 4⌋ and
    ⌊Σ4 neighbours of the parent / 4⌋."""
    grp, ori, rs, cs = bands[b]
    rows, cols = rs.stop - rs.start, cs.stop - cs.start
    start, stop, _ = comps.indices(absq.shape[0])
    t = np.zeros((stop - start, rows, cols), np.int64)
    if stop > max(start, 1):  # previous map, same coefficient
        first = max(start, 1)
        prev = absq[first - 1 : stop - 1, rs, cs]
        t[first - start :] += 2 * prev + (neighbours(prev) // 4 if checker else 0)
    if b in parents:
        _, _, prs, pcs = bands[parents[b]]
        par = absq[comps, prs, pcs]
        t += _gather(par + neighbours(par) // 4 if checker else par, rows, cols, 2)
    if ori >= 2:  # LH: its HL sibling; HH: both
        for sib in range(b - ori + 1, b):
            _, _, srs, scs = bands[sib]
            t += _gather(absq[comps, srs, scs], rows, cols, 1)
    return np.minimum(t, 1 << 30)


def subband_classes(absq: np.ndarray, comps: slice, bands: list, parents: dict, b: int) -> np.ndarray:
    """Scheme "plain" context classes (n, rows, cols) of subband ``b`` of maps ``comps``."""
    return np.searchsorted(PLAIN_EDGES, activity(absq, comps, bands, parents, b, checker=False), side="right")


def second_pass(rows: int, cols: int) -> np.ndarray:
    """(rows, cols) bool: the coefficients of a subband's second pass, (row + col) odd."""
    return (np.arange(rows)[:, None] + np.arange(cols)[None, :]) % 2 == 1


def neighbours(absq_sub: np.ndarray) -> np.ndarray:
    """|N| + |S| + |W| + |E| inside a subband (..., rows, cols); outside counts 0."""
    out = np.zeros_like(absq_sub)
    out[..., 1:, :] += absq_sub[..., :-1, :]
    out[..., :-1, :] += absq_sub[..., 1:, :]
    out[..., :, 1:] += absq_sub[..., :, :-1]
    out[..., :, :-1] += absq_sub[..., :, 1:]
    return out


_FINE_LUT = np.searchsorted(FINE_EDGES, np.arange(int(FINE_EDGES[-1]) + 1), side="right")  # class of t ≤ last edge


def checker_classes(t: np.ndarray, absq_sub: np.ndarray) -> np.ndarray:
    """Scheme "checkerboard" classes of a whole subband: first-pass coefficients by t alone, second-pass
    ones by t plus their four (first-pass) neighbours, offset by 13. ``absq_sub`` holds the subband's |q|
    (only its first-pass values are read where they matter)."""
    late = second_pass(*t.shape[-2:])
    first = np.where(late, 0, absq_sub)
    tt = np.where(late, t + neighbours(first), t)
    return _FINE_LUT[np.minimum(tt, FINE_EDGES[-1])] + late * (FINE_EDGES.size + 1)


def _symbol_codes(p: MapParams, group, classes: np.ndarray) -> np.ndarray:
    """Scale codes of symbols of (map · level) group(s) ``group`` (int or array, map j's level group g is
    j · (levels + 1) + g) and context classes ``classes``."""
    base = np.frombuffer(p.base_codes, np.uint8).astype(np.int64)[group]
    return np.clip(base + p.class_offsets[classes], 0, 255)


_SCALE_TABLE = np.maximum(2.0 ** ((np.arange(256) - 128) / entropy.SCALE_CODE_STEPS), entropy.MIN_SCALE)


# -- quantization -------------------------------------------------------------------------------


def _step_map(height: int, width: int, levels: int, step: float) -> np.ndarray:
    """Per-coefficient quantizer step Δ/√g."""
    out = np.empty((height, width), np.float64)
    for grp, ori, rs, cs in subbands(height, width, levels):
        out[rs, cs] = step / np.sqrt(cdf97_subband_gain(grp, ori, levels))
    return out


@dataclass
class Transformed:
    """The maps' CDF 9/7 coefficients (computed once per scene and reused across steps)."""

    coeffs: np.ndarray  # (k, H, W)
    levels: int

    @classmethod
    def of(cls, maps: np.ndarray, levels: int, overwrite: bool = False) -> Transformed:
        """The coefficients of maps (H, W, k) (``overwrite``: the caller gives ``maps`` up to hold them)."""
        m = np.asarray(maps, np.float64)  # (H, W, k): all maps in one pass, each element as on its own
        return cls(_planes(cdf97_forward(m, levels, overwrite=overwrite)), levels)


def _planes(a: np.ndarray, rows: int = 8) -> np.ndarray:
    """(H, W, k) → a C-contiguous (k, H, W) copy, a few rows at a time (twice as fast as one strided copy: each
    block's reads stay in cache)."""
    out = np.empty((a.shape[2], a.shape[0], a.shape[1]), a.dtype)
    for r in range(0, a.shape[0], rows):
        out[:, r : r + rows, :] = a[r : r + rows].transpose(2, 0, 1)
    return out


def quantize(
    tr: Transformed, q: int, k: int, deadzone: float = 0.5, magnitudes: bool = True
) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Integers of the first k maps at step exponent q; rounding threshold ``deadzone`` (0.5 = nearest).

    Returns (symbols (k, H, W) int64, |coefficient| / step, least-squares reconstruction offset ρ); with
    ``magnitudes`` False the second is None (C++ ``quantize_maps`` then skips it; same values as numpy's).
    Under a reconstruction table the header's ``ro`` is fitted from :func:`quantize_sums` instead
    (:func:`hsicodec.layers.maps.recon.table_shift`)."""
    sym, a, total, n = quantize_sums(tr, q, k, deadzone, magnitudes)
    return sym, a, _recon_offset(total, n)


def quantize_sums(
    tr: Transformed, q: int, k: int, deadzone: float = 0.5, magnitudes: bool = True
) -> tuple[np.ndarray, np.ndarray | None, float, int]:
    """:func:`quantize`'s symbols and magnitudes with Σ (|q| − |c| / step) over the n nonzeros and n, what the
    header's ``ro`` is fitted from."""
    _, h, w = tr.coeffs.shape
    steps = _step_map(h, w, tr.levels, entropy.step_from_exponent(q, STEPS_PER_OCTAVE))
    nat = _native_function("quantize_maps")
    if nat is not None and k > 0:
        sym, excess, a = nat(np.ascontiguousarray(tr.coeffs[:k]), steps, float(deadzone), bool(magnitudes))
        total, n = float(np.sum(excess)), len(excess)
    else:
        u = tr.coeffs[:k] / steps
        a = np.abs(u)
        mag = np.floor(a + deadzone)
        sym = (np.sign(u) * mag).astype(np.int64)
        nz = mag > 0
        total, n = float(np.sum(mag[nz] - a[nz])), int(np.count_nonzero(nz))
    return sym, a, total, n


def _recon_offset(excess: float, nonzeros: int) -> int:
    """Least-squares reconstruction offset ρ (units of 1/RECON_DEN step) from Σ (|q| − a) over the nonzeros."""
    return int(min(max(np.round(RECON_DEN * excess / nonzeros), 0), RECON_DEN // 2)) if nonzeros else 0


def rdoq(
    sym: np.ndarray, a: np.ndarray, rho: int, levels: int, weight: float, lam: float, iterations: int = 2
) -> np.ndarray:
    """Rate–distortion optimised quantization (encoder only; the stream format is unchanged).

    Lowers |symbol| by one wherever the bits it saves under the context model the
    encoder would fit, times ``lam`` (squared error per bit), outweigh the squared
    error it adds, ``weight`` × ((a − new)² − (a − old)²) with a = |coefficient| /
    step (``weight`` = squared error of one step-unit², e.g. (σ Δ)²). Each pass
    refits the classes and scale codes; neighbours' context changes are not
    followed within a pass (greedy).
    """
    sym = sym.copy()
    k = sym.shape[0]
    for _ in range(iterations):
        cls, grp = all_classes(sym, levels)
        base, off, _ = fit_codes(sym, cls, grp, k * (levels + 1))
        b = _SCALE_TABLE[np.clip(np.frombuffer(base, np.uint8).astype(np.int64)[grp] + off[cls], 0, 255)]
        m = np.abs(sym)
        l0, l1, per_unit = _code_lengths(b)
        d_bits = np.where(m >= 2, -per_unit, l0 - l1 - per_unit)  # bits saved by |q| − 1
        old = np.where(m > 0, m - rho / RECON_DEN, 0.0)
        new = np.where(m > 1, m - 1 - rho / RECON_DEN, 0.0)
        lower = (m > 0) & (weight * ((a - new) ** 2 - (a - old) ** 2) + lam * d_bits < 0)
        if not lower.any():
            break
        sym = np.where(lower, sym - np.sign(sym), sym)
    return sym


def offset_codes(sym: np.ndarray, p: MapParams, levels: int | None = None, threads: int = 0) -> np.ndarray | None:
    """The reconstruction table's offset code of every symbol (k, H, W) (spec/hsim.md 10.13; ``levels``: of
    the symbols' layout, when they are a coarse corner), or None for a layer with one offset ρ."""
    if not p.recon_table:
        return None
    lv = p.levels if levels is None else levels
    return recon.table_codes(sym, lv, recon.table(p.recon_table).codes, p.recon, threads)


def offsets(sym: np.ndarray, p: MapParams, levels: int | None = None) -> int | np.ndarray:
    """What :func:`dequantized` takes as ``recon`` for symbols of layer ``p``: ρ, or each symbol's offset
    (its table code − 8, in 1/32 of a step)."""
    codes = offset_codes(sym, p, levels)
    return p.recon if codes is None else codes.astype(np.int64) - recon.CODE_ZERO


def dequantize(sym: np.ndarray, p: MapParams, height: int, width: int, codes: np.ndarray | None = None) -> np.ndarray:
    """Maps (H, W, k) from the symbols (k, H, W): sign(q)·(|q| − offset)·step (offset ρ/32, or the reconstruction
    table's), then the CDF 9/7 synthesis, fused in C++ when the extension has it (the same roundings as
    :func:`dequantize_reference`). ``codes``: the table's :func:`offset_codes` of ``sym`` where the caller has
    them already (an encoder that fitted ``ro`` from them)."""
    steps = _step_map(height, width, p.levels, p.step)
    nat = native_wavelet("cdf97_dequantize_inverse")
    if nat is None or sym.ndim != 3:
        return dequantize_reference(sym, p, height, width)
    if sym.dtype not in (np.int32, np.int64):  # the decoder's int32 and the encoder's int64 go as they are
        sym = sym.astype(np.int64)
    sym = np.ascontiguousarray(sym)
    return nat(sym, steps, p.recon / RECON_DEN, p.levels, 0, offset_codes(sym, p) if codes is None else codes)


def dequantized(sym: np.ndarray, recon: int | np.ndarray, steps) -> np.ndarray:
    """The coefficients symbols stand for, before any synthesis: sign(q)·(|q| − ρ/32)·step (0 for q = 0), with
    ``steps`` the per-coefficient steps and ``recon`` ρ or each symbol's offset (:func:`offsets`), both
    broadcast against sym."""
    mag = np.abs(sym).astype(np.float64)
    return np.sign(sym) * np.where(mag > 0, mag - recon / RECON_DEN, 0.0) * steps


def dequantize_reference(sym: np.ndarray, p: MapParams, height: int, width: int) -> np.ndarray:
    """:func:`dequantize` in numpy."""
    val = dequantized(sym, offsets(sym, p), _step_map(height, width, p.levels, p.step))
    return cdf97_inverse_reference(np.moveaxis(val, 0, 2), p.levels)  # (H, W, k), all maps in one pass


# -- scale codes ------------------------------------------------------------------------------


def _code_lengths(b: np.ndarray) -> tuple:
    """Bits of a symbol under a quantized Laplace of scale b: (for 0, for |q| ≥ 1 before its magnitude,
    per unit of |q|), i.e. |q| = m ≥ 1 costs l1 + m·lt (sign included)."""
    return -np.log2(-np.expm1(-0.5 / b)), -np.log2(np.sinh(0.5 / b)), 1.0 / (b * np.log(2))


def fit_codes(
    sym: np.ndarray,
    classes: np.ndarray,
    groups: np.ndarray,
    n_groups: int,
    iterations: int = 3,
    n_classes: int = N_CLASSES,
) -> tuple[bytes, np.ndarray, float]:
    """Base code per group and offset per class that code the symbols in the fewest bits
    (coordinate descent on exact ideal code lengths). Returns (base codes, offsets, bits)."""
    a = np.abs(sym).ravel()
    stats = _cell_counts(groups.ravel() * n_classes + classes.ravel(), a, n_groups, n_classes)
    return fit_codes_from_stats(*stats, float(a.max(initial=0)), iterations)


def _cell_counts(
    cell: np.ndarray, a: np.ndarray, n_groups: int, n_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(count, zero count, sum of |q|) per cell, each (n_groups, n_classes), from flat cell indices and |q|."""
    size = n_groups * n_classes
    nz = np.bincount(2 * cell + (a > 0), minlength=2 * size).reshape(n_groups, n_classes, 2).astype(np.float64)
    return nz.sum(axis=2), nz[..., 0], np.bincount(cell, a, size).reshape(n_groups, n_classes)


def cell_stats(sym: np.ndarray, levels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per (map · level group, class) cell of scheme "checkerboard": symbol count, zero count and sum of
    |q|, each (k · (levels + 1), CHECKER_CLASSES) — all :func:`fit_codes_from_stats` needs."""
    k, h, w = sym.shape
    absq = np.abs(sym)
    nat = _native_stats()
    if nat is None or not absq.size or int(absq.max()) >= 2**31:
        cls, grp = all_classes(sym, levels)
        return _cell_counts((grp * N_CLASSES + cls).ravel(), absq.ravel(), k * (levels + 1), N_CLASSES)
    n, n0, tot = nat(absq.astype(np.int32), *_native_layout(h, w, levels), levels + 1)
    return n.reshape(-1, N_CLASSES), n0.reshape(-1, N_CLASSES), tot.reshape(-1, N_CLASSES)


def fit_codes_from_stats(
    n: np.ndarray, n0: np.ndarray, tot: np.ndarray, max_abs: float, iterations: int = 3
) -> tuple[bytes, np.ndarray, float]:
    """:func:`fit_codes` from the cells' statistics: counts ``n``, zero counts ``n0`` and sums of |q| ``tot``,
    each (groups, classes); ``max_abs`` the largest |q|. The C++ twin (``fit_scale_codes``) does the same
    arithmetic in the same order, so both give the same codes and bits."""
    codes = _code_window(n, tot, max_abs)
    l0, l1, lt = _code_lengths(_SCALE_TABLE[codes])
    nat = _native_function("fit_scale_codes")
    if nat is None:
        base, off, group_bits = _fit_window(n, n0, tot, l0, l1, lt, iterations)
    else:
        base, off, group_bits = nat(n, n0, tot, l0, l1, lt, _FIT_PAD, iterations)
    return codes[base].astype(np.uint8).tobytes(), off, float(np.sum(group_bits))  # codes are 0..255


_FIT_PAD = 48  # class offsets tried: -pad..pad


def _code_window(n: np.ndarray, tot: np.ndarray, max_abs: float) -> np.ndarray:
    """The scale codes worth trying for these cells."""
    # codes below the MIN_SCALE floor all mean the same scale; above max|q| + 1 they only lose
    lo = int(np.searchsorted(_SCALE_TABLE, entropy.MIN_SCALE, side="right")) - 1
    hi = min(entropy.scale_code(max_abs + 1.0) + entropy.SCALE_CODE_STEPS, 255)
    full = n > 0
    if full.any():  # no cell is best coded 3 octaves away from its own mean |q|: search only that window
        ml = 128 + entropy.SCALE_CODE_STEPS * np.log2(np.maximum(tot[full] / n[full], entropy.MIN_SCALE))
        lo = max(lo, int(np.floor(ml.min())) - 3 * entropy.SCALE_CODE_STEPS)
        hi = max(min(hi, int(np.ceil(ml.max())) + 3 * entropy.SCALE_CODE_STEPS), lo)
    lo, hi = min(lo, 255), min(hi, 255)  # a cell whose mean |q| is past the largest scale: the largest code
    return np.arange(lo, hi + 1)


def _fit_window(
    n: np.ndarray, n0: np.ndarray, tot: np.ndarray, l0: np.ndarray, l1: np.ndarray, lt: np.ndarray, iterations: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coordinate descent over base code indices per group and class offsets (the numpy reference of
    ``fit_scale_codes``) → (base index per group, offset per class, each group's bits)."""
    n_groups, n_classes = n.shape
    m, pad = l0.size, _FIT_PAD
    # the table over indices -pad..m-1+pad, edge-replicated: index clipping becomes plain slicing
    table = n0[..., None] * l0 + (n - n0)[..., None] * l1 + tot[..., None] * lt
    table = np.pad(table, ((0, 0), (0, 0), (pad, pad)), mode="edge")  # (G, C, m + 2 pad)
    windows = np.lib.stride_tricks.sliding_window_view(table, 2 * pad + 1, axis=2)  # (G, C, m, 2 pad + 1)
    g_idx = np.arange(n_groups)
    off = np.zeros(n_classes, np.int64)
    used = n.sum(axis=0) > 0

    def base_costs(off):  # (G, m): every group's cost at each base index, offsets fixed
        return sum(table[:, c, pad + off[c] : pad + off[c] + m] for c in range(n_classes))

    for _ in range(iterations):
        base = np.argmin(base_costs(off), axis=1)
        cost = windows[g_idx, :, base, :].sum(axis=0)  # (C, 2 pad + 1): each class's cost at each offset
        off = np.where(used, np.argmin(cost, axis=1) - pad, 0)
    cost = base_costs(off)
    base = np.argmin(cost, axis=1)
    # offsets were found in index space, clipped at the ends: the stored code is base + offset, clipped to 0..255
    return base, off, cost[g_idx, base]


# -- coding -----------------------------------------------------------------------------------


def all_classes(sym: np.ndarray, levels: int, checker: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Context class and (map, level group) of every symbol, in the symbols' (k, H, W) layout
    (scheme "checkerboard", or "plain" with ``checker=False``)."""
    k, h, w = sym.shape
    bands, parents = _stream_layout(h, w, levels)
    absq = np.abs(sym)
    gmap = np.zeros((h, w), np.int64)
    for g, _, rs, cs in bands:
        gmap[rs, cs] = g
    grp = (np.arange(k) * (levels + 1))[:, None, None] + gmap
    nat = _native_classes()
    if checker and nat is not None and absq.size and int(absq.max()) < 2**31:
        return nat(absq.astype(np.int32), *_native_layout(h, w, levels)).astype(np.int64), grp
    cls = np.zeros(sym.shape, np.int64)
    for b, (_g, _, rs, cs) in enumerate(bands):
        if checker:
            cls[:, rs, cs] = checker_classes(activity(absq, slice(0, k), bands, parents, b), absq[:, rs, cs])
        else:
            cls[:, rs, cs] = subband_classes(absq, slice(0, k), bands, parents, b)
    return cls, grp


def _native_classes():
    """The C++ twin of the checkerboard classes (csrc/context_classes.cpp), or None without the extension."""
    return _native_function("checker_classes_all")


def _native_stats():
    """The C++ checkerboard cell statistics (classes and counts in one pass), or None without the extension."""
    return _native_function("checker_cell_stats")


@functools.lru_cache(maxsize=16)
def coding_order(height: int, width: int, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Scheme "checkerboard" stream order of one map: (flat indices of the (H, W) coefficients, each one's
    level group), subband by subband, each subband's first pass then its second, row-major inside a pass."""
    idx = np.arange(height * width).reshape(height, width)
    perm, groups = [], []
    for g, _, rs, cs in subbands(height, width, levels):
        sub = idx[rs, cs]
        rows, cols = sub.shape
        for m in _passes(rows, cols, True):
            perm.append(sub[m])
            groups.append(np.full(perm[-1].size, g, np.int64))
    perm_a, groups_a = np.concatenate(perm), np.concatenate(groups)
    perm_a.setflags(write=False)
    groups_a.setflags(write=False)
    return perm_a, groups_a


def _passes(rows: int, cols: int, checker: bool) -> list:
    """Boolean masks of a subband's coding passes, in coding order."""
    if not checker:
        return [np.ones((rows, cols), bool)]
    late = second_pass(rows, cols)
    return [~late, late]


def encode_symbols(
    sym: np.ndarray, q: int, levels: int, rho: int, coder: int = EC_RANS, threads: int = 0, stats: tuple | None = None
) -> tuple[bytes, MapParams]:
    """Entropy code (k, H, W) symbols with entropy coder ``coder`` (header key ``ec``); returns the stream
    and the layer's header params. ``threads`` (≤ 0: all cores) never changes the bytes. ``stats``: the
    symbols' :func:`cell_stats` and largest |q| where the caller has them (a rate search's pricing of the
    same symbols), which spares a pass over them."""
    k, h, w = sym.shape
    if stats is None:
        max_abs = max(int(sym.max()), -int(sym.min())) if sym.size else 0
    else:
        max_abs = int(stats[3])
    if max_abs > entropy.MAX_ABS_LIMIT:
        raise OptionError("coefficient-map step too fine for the value range")
    if coder == EC_RANS and _native_function("map_encode") is not None:  # classes never leave C++
        n, n0, tot = cell_stats(sym, levels) if stats is None else stats[:3]
        base, off, _ = fit_codes_from_stats(n, n0, tot, float(max_abs))
        p = MapParams(k, int(q), int(levels), max_abs, base, off, int(rho), coder)
        return rans_encode(sym, p, h, w, None, threads), p
    cls, grp = all_classes(sym, levels)
    base, off, _ = fit_codes(sym, cls, grp, k * (levels + 1))
    p = MapParams(k, int(q), int(levels), max_abs, base, off, int(rho), coder)
    if coder == EC_RANS:
        return rans_encode(sym, p, h, w, cls, threads), p
    perm, groups = coding_order(h, w, levels)  # one map's coefficients in stream order
    order = sym.reshape(k, h * w)[:, perm]
    grp = np.arange(k)[:, None] * (levels + 1) + groups[None, :]
    scales = _SCALE_TABLE[_symbol_codes(p, grp, cls.reshape(k, h * w)[:, perm])]
    data = entropy.laplace_encode(order.ravel(), scales.ravel(), max_abs)
    return data, p


def code_bits(sym: np.ndarray, levels: int) -> float:
    """Ideal code length (bits) of the symbols with the codes :func:`encode_symbols` would choose."""
    return fit_codes_from_stats(*cell_stats(sym, levels), float(np.abs(sym).max(initial=0)))[2]


def rans_encode_reference(sym: np.ndarray, classes: np.ndarray, p: MapParams, count: int | None = None) -> bytes:
    """The ``ec = 1`` stream of symbols (k, H, W) whose checkerboard classes are ``classes``, in ``count``
    substreams (default :func:`hsicodec.layers.maps.rans.substream_count`): the slow reference of
    ``map_encode``. Empty when every symbol is zero."""
    k, h, w = sym.shape
    if not sym.size or not np.any(sym):
        return b""
    count = rans.substream_count(k, h, w) if count is None else count
    perm, groups = coding_order(h, w, p.levels)
    codes = rans.code_tables(p.base_codes, p.class_offsets, k, p.levels + 1)
    parts = []
    for i in range(count):
        enc = rans.Encoder()
        for j in reversed(rans.substream_maps(k, count, i)):
            q = sym[j].ravel()[perm].tolist()
            c = codes[j * (p.levels + 1) + groups, classes[j].ravel()[perm]].tolist()
            for n in range(len(q) - 1, -1, -1):
                enc.symbol(q[n], c[n])
        parts.append(enc.finish())
    return rans.join_substreams(parts)


def rans_decode_reference(data: bytes, p: MapParams, height: int, width: int, stop: int | None = None) -> np.ndarray:
    """Symbols (k, H, W) int64 of an ``ec = 1`` stream, classes computed pass by pass as they decode (numpy
    :func:`activity`): the slow reference of ``map_decode``. HsimHeaderError on any defect.

    ``stop``: only the first ``stop`` subbands of each map where the stream allows it
    (:func:`hsicodec.layers.maps.rans.subbands_needed`; the others are left 0), as ``map_decode`` with ``stop``."""
    sym = np.zeros((p.k, height, width), np.int64)
    if p.max_abs == 0 or not sym.size:
        if data:
            raise HsimHeaderError("coefficient-map stream has bytes but declares every symbol zero")
        return sym
    ranges = rans.split_substreams(data, p.k)
    bands, parents = _stream_layout(height, width, p.levels)
    stop = len(bands) if stop is None or not 0 <= stop <= len(bands) else stop
    need = rans.subbands_needed(p.k, len(ranges), len(bands), stop)
    codes = rans.code_tables(p.base_codes, p.class_offsets, p.k, p.levels + 1)
    absq = np.zeros_like(sym)
    for i, (start, end) in enumerate(ranges):
        dec = rans.Decoder(data, start, end)
        for j in rans.substream_maps(p.k, len(ranges), i):
            for b, (g, _, rs, cs) in enumerate(bands[: need[j]]):
                t = activity(absq, slice(j, j + 1), bands, parents, b)[0]
                sub, out, late = absq[j, rs, cs], sym[j, rs, cs], second_pass(*t.shape)
                for second in (False, True):
                    tt = t + neighbours(sub) if second else t  # the late symbols are still 0 in sub
                    cls = _FINE_LUT[np.minimum(tt, FINE_EDGES[-1])] + second * (FINE_EDGES.size + 1)
                    cc = codes[j * (p.levels + 1) + g]
                    for r, c in zip(*np.nonzero(late == second)):
                        out[r, c] = v = dec.symbol(int(cc[cls[r, c]]), p.max_abs)
                        sub[r, c] = abs(v)
        if need[rans.substream_maps(p.k, len(ranges), i)[-1]] == len(bands):  # stopped early: bytes are left
            dec.finish()
    return sym


def rans_encode(sym: np.ndarray, p: MapParams, height: int, width: int, classes: np.ndarray | None = None,
                threads: int = 0, count: int | None = None) -> bytes:  # fmt: skip
    """The ``ec = 1`` stream of symbols (k, H, W) under params ``p`` in ``count`` substreams (default
    :func:`hsicodec.layers.maps.rans.substream_count`) (C++ ``map_encode``; without the extension
    :func:`rans_encode_reference` on ``classes``, the same bytes)."""
    k = sym.shape[0]
    nat = _native_function("map_encode")
    count = rans.substream_count(k, height, width) if count is None else count
    if nat is not None:
        offsets = [int(o) for o in p.class_offsets]
        return bytes(nat(sym, p.base_codes, offsets, *_native_layout(height, width, p.levels), count, threads))
    return rans_encode_reference(sym, all_classes(sym, p.levels)[0] if classes is None else classes, p, count)


def rans_decode(
    data: bytes, p: MapParams, height: int, width: int, threads: int = 0, stop: int | None = None
) -> np.ndarray:
    """Symbols (k, H, W) of an ``ec = 1`` stream: int32 from C++ ``map_decode``, else int64 from the reference.

    ``stop``: only the first ``stop`` subbands of each map (the coarse levels, :func:`subbands` order), as the
    (k, rows, cols) box at the origin they tile; the stream is decoded only as far as they need."""
    nat = _native_function("map_decode")
    if nat is None:
        sym = rans_decode_reference(data, p, height, width, stop)
        if stop is None:
            return sym
        rows, cols = _leading_box(height, width, p.levels, stop)
        return sym[:, :rows, :cols]
    offsets = [int(o) for o in p.class_offsets]
    layout = _native_layout(height, width, p.levels)
    args = (bytes(data), p.k, height, width, p.base_codes, offsets, p.max_abs, *layout, threads)
    try:
        return nat(*args) if stop is None else nat(*args, stop=int(stop))
    except ValueError as exc:  # MapStreamError: a corrupt stream, or one that does not match the header
        raise HsimHeaderError(f"coefficient-map stream cannot be decoded: {exc}") from exc


def _leading_box(height: int, width: int, levels: int, stop: int) -> tuple[int, int]:
    """(rows, cols) of the box at the origin the first ``stop`` subbands tile."""
    bands = subbands(height, width, levels)[: max(stop, 0)]
    return max((rs.stop for _, _, rs, _ in bands), default=0), max((cs.stop for _, _, _, cs in bands), default=0)


def decode_symbols(data: bytes, p: MapParams, height: int, width: int, threads: int = 0) -> np.ndarray:
    """Inverse of :func:`encode_symbols` → (k, H, W) integers (either context scheme, either coder): int64, or
    int32 from the C++ rANS decoder (|symbols| ≤ 2^20; a third of the memory to write)."""
    import constriction

    if p.coder == EC_RANS:
        return rans_decode(data, p, height, width, threads)
    if p.coder == EC_LEARNED:  # the learned entropy model: hsicodec.layers.maps.streams dispatches to it
        raise HsimHeaderError("a learned-entropy-model stream (ec = 2): decode it with hsicodec.layers.maps.streams")
    sym = np.zeros((p.k, height, width), np.int64)
    if p.max_abs == 0:
        if data:
            raise HsimHeaderError("coefficient-map stream has bytes but declares every symbol zero")
        return sym
    if len(data) % 4 or not data:  # ma > 0: some symbol is nonzero, so the stream cannot be empty
        raise HsimHeaderError(f"coefficient-map stream length {len(data)} is not a positive multiple of 4")
    bands, parents = _stream_layout(height, width, p.levels)
    absq = np.zeros_like(sym)
    model = entropy._model(p.max_abs)
    try:
        coder = constriction.stream.stack.AnsCoder(np.frombuffer(data, "<u4").astype(np.uint32))
        for comp in range(p.k):
            one = slice(comp, comp + 1)
            for b, (g, _, rs, cs) in enumerate(bands):
                t = activity(absq, one, bands, parents, b, p.checker)[0]
                sub = absq[comp, rs, cs]  # a view: decoded magnitudes land here pass by pass
                scale_of_class = _SCALE_TABLE[
                    _symbol_codes(p, comp * (p.levels + 1) + g, np.arange(len(p.class_offsets)))
                ]
                rows, cols = t.shape
                for i, m in enumerate(_passes(rows, cols, p.checker)):
                    if not p.checker:
                        cls = np.searchsorted(PLAIN_EDGES, t[m], side="right")
                    elif i == 0:  # first pass: t alone
                        cls = _FINE_LUT[np.minimum(t[m], FINE_EDGES[-1])]
                    else:  # second pass: the late symbols are still 0 in sub, so its sums are the first pass's
                        cls = _FINE_LUT[np.minimum(t[m] + neighbours(sub)[m], FINE_EDGES[-1])] + FINE_EDGES.size + 1
                    sc = scale_of_class[cls]
                    out = np.asarray(coder.decode(model, np.zeros(sc.size), sc), np.int64)
                    sym[comp, rs, cs][m] = out
                    sub[m] = np.abs(out)
        left = 0 if coder.is_empty() else max(int(coder.num_words()), 1)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # constriction raises (or panics) on invalid streams
        raise HsimHeaderError(f"coefficient-map stream cannot be decoded: {exc}") from exc
    if left:
        raise HsimHeaderError(
            f"coefficient-map stream of {len(data)} bytes does not end after its symbols "
            f"({left} word(s) left): corrupt or does not match the header"
        )
    return sym


def encode_maps(maps: np.ndarray, q: int, levels: int, deadzone: float = 0.5) -> tuple[bytes, MapParams, np.ndarray]:
    """Code (H, W, k) maps at step exponent q; returns (stream, params, decoded maps (H, W, k))."""
    h, w, k = maps.shape
    tr = Transformed.of(maps, levels)
    sym, _, rho = quantize(tr, q, k, deadzone, magnitudes=False)
    data, p = encode_symbols(sym, q, levels, rho)
    return data, p, dequantize(sym, p, h, w)


def decode_maps(data: bytes, p: MapParams, height: int, width: int, threads: int = 0) -> np.ndarray:
    """Maps (H, W, k) float64 from a layer's stream and params."""
    return dequantize(decode_symbols(data, p, height, width, threads), p, height, width)
