"""The coefficient-map layer's trained reconstruction table (``rl.rt = 1``, spec/hsim.md 10.13): numpy reference.

A dead-zone quantizer's symbol s ≠ 0 stands for the coefficients in its interval; the best value to put back
is their mean, which sits closer to the interval's lower edge where the coefficients are sparse (a steep
Laplacian) and nearer its middle where they are dense. Without a table the file codes one offset ρ for all
symbols (``ro``, 0..16/32 of a step). With ``rt = 1`` the offset of each nonzero symbol is read from a table of
24 offsets trained on the training scenes (``tools/train_recon_table.py``), indexed by |s| (1, 2, ≥ 3) and by
how busy the symbol's decoded neighbourhood is, *all* of it (the decoder has every symbol when it
dequantizes, so the context need not be causal):

    u = Σ |s| of the 8 neighbours in the subband + 2·|parent| + |s| at the same place in maps j − 1 and j + 1
    cell = 8 · (min(|s|, 3) − 1) + (number of the thresholds 1, 2, 3, 5, 8, 12, 18 that u reaches)
    code = clip(T[cell] + ro − 8, 0, 24)        offset = (code − 8) / 32 of the symbol's step

so offsets run from −1/4 to +1/2 of a step (ρ: 0 to 1/2; where the neighbourhood is busy the coefficients
of a bin sit above its lower edge by more than the dead zone leaves, and the best offset is below zero).
``ro`` − 8 is the file's one adaptation of the shared table (least squares, coded where ρ was), so a table
that fits a scene badly is shifted back. The table is a model file in the registry (kind
:data:`KIND`); ``rt`` names it through :data:`TABLES`, a list the spec fixes (packed into the compact header's coder
entry, so no header byte instead of an 8-byte id: the table gains a few hundredths of a dB, which an 8-byte
id would cost at 0.01 bpppb on a 100 × 100 scene).

The C++ twin (``recon_offset_codes`` in csrc/recon_table.cpp, called by :func:`table_codes`) is tested
against :func:`offset_codes_reference` exactly.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from hsicodec.errors import HsimHeaderError, ModelFormatError
from hsicodec.layers.maps.layout import native_function, native_layout, stream_layout

KIND = "map-recon-table"
EDGES = np.array([1, 2, 3, 5, 8, 12, 18], np.int64)  # u reaching edge i → bucket > i
BUCKETS = EDGES.size + 1
MAG_BINS = 3  # |s| = 1, 2, ≥ 3
CELLS = MAG_BINS * BUCKETS
SHIFT_ZERO = 8  # ro − 8 shifts the table
CODE_ZERO = 8  # an offset code c stands for (c − 8) / 32 of a step
MAX_CODE = 24  # offsets −8..16 / 32 of a step
DEFAULT_ALIAS = "hsi-recon-v1"
#: ``rt`` → the sha256 of the table's model file (spec/hsim.md 10.13 fixes this list)
TABLES = {1: "26398fa13dd00433a06fef296c904fb785581f43bebc398de53093393d1e224b"}
NAMES = {1: DEFAULT_ALIAS}  # ``rt`` → the table's alias, for people


@dataclass(frozen=True)
class ReconTable:
    """A validated reconstruction table: 24 offset codes (0..24: (code − 8) / 32 of a step) and its model file's
    sha256."""

    codes: np.ndarray
    sha256: str


def model_config() -> dict:
    return {"kind": KIND, "edges": EDGES.tolist(), "mag_bins": MAG_BINS, "code_zero": CODE_ZERO, "max_code": MAX_CODE}


def from_model_file(mf) -> ReconTable:
    """Validate a model file as a reconstruction table (ModelFormatError if it is not one this decoder reads)."""
    if mf.config != model_config():
        raise ModelFormatError(f"model {mf.sha256[:12]}: not a {KIND} model this decoder reads")
    codes = mf.arrays.get("codes")
    if codes is None or codes.dtype != np.uint8 or codes.shape != (CELLS,) or int(codes.max()) > MAX_CODE:
        raise ModelFormatError(f"model {mf.sha256[:12]}: 'codes' must be {CELLS} uint8 in 0..{MAX_CODE}")
    return ReconTable(np.array(codes, np.int64), mf.sha256)


@functools.lru_cache(maxsize=4)
def table(rt: int) -> ReconTable:
    """The table ``rt`` names (registry lookup by its sha256; HsimHeaderError for an ``rt`` not in the list)."""
    if rt not in TABLES:
        raise HsimHeaderError(f"header key 'codec.rl.rt': unknown reconstruction table {rt}")
    from hsicodec.models.registry import default_registry

    return from_model_file(default_registry().load(TABLES[rt]))


def context(absq: np.ndarray, levels: int) -> np.ndarray:
    """u (k, H, W) of every coefficient from the magnitudes |s| (k, H, W): its 8 neighbours in its subband,
    twice its parent (same orientation, one level coarser, at (⌊r/2⌋, ⌊c/2⌋) clipped; none for the lowpass
    and the coarsest details) and the same place in the maps before and after it."""
    a = np.asarray(absq, np.int64)
    k, h, w = a.shape
    u = np.zeros_like(a)
    u[1:] += a[:-1]
    u[:-1] += a[1:]
    bands, parents = stream_layout(h, w, levels)
    for i, (_, _, rs, cs) in enumerate(bands):
        sub = a[:, rs, cs]
        rows, cols = sub.shape[1:]
        pad = np.pad(sub, ((0, 0), (1, 1), (1, 1)))
        u[:, rs, cs] += sum(pad[:, 1 + dr : 1 + dr + rows, 1 + dc : 1 + dc + cols] for dr in (-1, 0, 1)
                            for dc in (-1, 0, 1)) - sub  # fmt: skip
        par = a[:, bands[parents[i]][2], bands[parents[i]][3]] if i in parents else a[:, :0, :0]
        if par.shape[1] and par.shape[2]:  # a parent, not empty
            ri = np.minimum(np.arange(rows) // 2, par.shape[1] - 1)
            ci = np.minimum(np.arange(cols) // 2, par.shape[2] - 1)
            u[:, rs, cs] += 2 * par[:, ri][:, :, ci]
    return u


def cells(sym: np.ndarray, levels: int) -> np.ndarray:
    """Each symbol's table cell (k, H, W) int64, −1 for zeros."""
    a = np.abs(np.asarray(sym, np.int64))
    cell = (np.minimum(a, MAG_BINS) - 1) * BUCKETS + np.searchsorted(EDGES, context(a, levels), side="right")
    return np.where(a > 0, cell, -1)


def _shift(codes: np.ndarray, ro: int) -> np.ndarray:
    """Codes shifted by the file's ``ro``: clip(code + ro − 8, 0, 24), uint8."""
    return np.clip(np.asarray(codes, np.int64) + int(ro) - SHIFT_ZERO, 0, MAX_CODE).astype(np.uint8)


def offset_codes_reference(sym: np.ndarray, levels: int, codes: np.ndarray, ro: int) -> np.ndarray:
    """Offset code (k, H, W) uint8 of every symbol: clip(T[cell] + ro − 8, 0, 24), 8 (no offset) for zeros."""
    c = cells(sym, levels)
    shifted = _shift(codes, ro)
    return np.where(c >= 0, shifted[np.maximum(c, 0)], CODE_ZERO).astype(np.uint8)


def shift(excess: float, table_total: float, n: int) -> int:
    """``ro`` (0..16) for n nonzero symbols whose Σ (|s| − |c|/step) is ``excess`` and whose table codes sum to
    ``table_total``: the least-squares shift of the table, Σ (|s| − a − (T + δ − 8) / 32) = 0, clipped (the
    clip of each cell to 0..24 is left out; it rarely binds)."""
    if n == 0:
        return SHIFT_ZERO
    delta = (32.0 * excess - table_total) / n + CODE_ZERO
    return int(np.clip(np.round(delta), -SHIFT_ZERO, SHIFT_ZERO)) + SHIFT_ZERO


def table_codes(sym: np.ndarray, levels: int, codes: np.ndarray, ro: int, threads: int = 0) -> np.ndarray:
    """:func:`offset_codes_reference`, in C++ where the extension has it (the same codes)."""
    nat = native_function("recon_offset_codes")
    if nat is None or sym.ndim != 3 or sym.dtype not in (np.int32, np.int64):
        return offset_codes_reference(sym, levels, codes, ro)
    shifted = _shift(codes, ro)
    _, h, w = sym.shape
    return nat(np.ascontiguousarray(sym), shifted, *native_layout(h, w, levels), int(threads))


def table_shift(sym: np.ndarray, excess: float, levels: int, codes: np.ndarray) -> tuple[int, np.ndarray]:
    """(the header's ``ro``, :func:`shifted` needs) under a table of 24 ``codes`` for symbols whose
    Σ (|s| − |c|/step) over the nonzeros is ``excess``: :func:`shift`, and the symbols' unshifted codes."""
    n = int(np.count_nonzero(sym))
    unshifted = table_codes(sym, levels, codes, SHIFT_ZERO)  # T[cell] of each nonzero, 8 for the zeros
    return shift(excess, float(unshifted.sum(dtype=np.int64)) - CODE_ZERO * (unshifted.size - n), n), unshifted


def shifted(unshifted: np.ndarray, ro: int) -> np.ndarray:
    """:func:`table_codes` at ``ro`` from the codes at ro = 8 (no second pass over the contexts), but for the
    zero symbols, whose codes no dequantizer reads."""
    return _shift(np.arange(256), ro)[unshifted]
