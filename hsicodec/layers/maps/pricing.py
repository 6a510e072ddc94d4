"""Pricing of the coefficient-map layer's rate search: what k maps quantized at one step cost and lose.

Map j's symbols, classes and cell statistics depend only on maps j − 1 and j (spec/hsim.md 10.5), so a step's
price is a sum over maps: :func:`price_maps` prices a run of maps, a search keeps each step's maps priced so
far (:class:`MapPrices`, extended as k grows) and :func:`price_of` sums the first k of them — the same numbers
as pricing the k maps at once (:func:`price`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hsicodec.coding import entropy
from hsicodec.layers.maps import coding as coefmaps
from hsicodec.layers.maps.coding import N_CLASSES, RECON_DEN, STEPS_PER_OCTAVE, Transformed, cell_stats, quantize


@dataclass
class Price:
    """What pricing the first k maps at one step needs: the cell statistics of their symbols, the
    reconstruction offset, the squared error in step units² (Σ (a − reconstruction)²) and the largest |q|."""

    n: np.ndarray
    n0: np.ndarray
    tot: np.ndarray
    rho: int
    sq_error: float
    max_abs: int


@dataclass
class MapPrices:
    """Each map's share of a :class:`Price` at one step, for maps 0..maps − 1: cell rows (maps · groups,
    classes), per map [nonzeros, Σ (|q| − a) and Σ (|q| − a)² over them, Σ a² over the zeros] and the
    largest |q|, a = |coefficient| / step."""

    n: np.ndarray
    n0: np.ndarray
    tot: np.ndarray
    sums: np.ndarray  # (maps, 4)
    max_abs: np.ndarray  # (maps,)

    @property
    def maps(self) -> int:
        return len(self.sums)

    def extended(self, more: MapPrices) -> MapPrices:
        """These maps followed by ``more`` (the maps after them)."""
        return MapPrices(
            *(np.concatenate([a, b]) for a, b in zip((self.n, self.n0, self.tot, self.sums, self.max_abs),
                                                      (more.n, more.n0, more.tot, more.sums, more.max_abs)))
        )  # fmt: skip


def price_maps(tr: Transformed, q: int, start: int, stop: int, deadzone: float = 0.5) -> MapPrices:
    """Maps start..stop − 1 priced at step exponent q (map ``start`` − 1, which their classes read, is
    quantized along and dropped): the dead-zone quantizer and the cell statistics fused in C++
    (``checker_price``) when built, the same sums in numpy otherwise."""
    first = max(start - 1, 0)
    drop = start - first
    _, h, w = tr.coeffs.shape
    rows = tr.levels + 1  # cell rows (level groups) per map
    nat = coefmaps._native_function("checker_price")
    if nat is not None and stop > start:
        steps = coefmaps._step_map(h, w, tr.levels, entropy.step_from_exponent(q, STEPS_PER_OCTAVE))
        try:
            n, n0, tot, sums, max_abs = nat(
                tr.coeffs[first:stop], steps, float(deadzone), *coefmaps._native_layout(h, w, tr.levels), rows
            )
        except OverflowError:  # |q| past the context arithmetic's int32: the numpy path
            pass
        else:
            cells = (-1, N_CLASSES)
            return MapPrices(
                n.reshape(cells)[drop * rows :], n0.reshape(cells)[drop * rows :], tot.reshape(cells)[drop * rows :],
                sums[drop:], np.asarray(max_abs, np.int64)[drop:],
            )  # fmt: skip
    sym, a, _ = quantize(Transformed(tr.coeffs[first:stop], tr.levels), q, stop - first, deadzone)
    assert a is not None
    mag = np.abs(sym)
    nz = mag > 0
    e = np.where(nz, mag - a, 0.0)
    sums = np.stack(
        [nz.sum(axis=(1, 2)), e.sum(axis=(1, 2)), (e * e).sum(axis=(1, 2)), np.where(nz, 0.0, a * a).sum(axis=(1, 2))],
        axis=1,
    ).astype(np.float64)
    n, n0, tot = cell_stats(sym, tr.levels) if len(sym) else (np.zeros((0, N_CLASSES)),) * 3
    return MapPrices(
        n[drop * rows :], n0[drop * rows :], tot[drop * rows :], sums[drop:], mag.max(axis=(1, 2), initial=0)[drop:]
    )


def price_of(parts: MapPrices, k: int) -> Price:
    """The :class:`Price` of the first k maps of ``parts`` (which holds at least k)."""
    rows = len(parts.n) // max(parts.maps, 1)
    nnz, e1, e2, z2 = (float(v) for v in parts.sums[:k].sum(axis=0))
    rho = coefmaps._recon_offset(e1, int(nnz))
    r = rho / RECON_DEN  # Σ over nonzeros of (a − (|q| − r))² = Σ e² − 2 r Σ e + nnz r², e = |q| − a
    return Price(
        parts.n[: k * rows], parts.n0[: k * rows], parts.tot[: k * rows], rho,
        e2 - 2.0 * r * e1 + nnz * r * r + z2, int(parts.max_abs[:k].max(initial=0)),
    )  # fmt: skip


def price(tr: Transformed, q: int, k: int, deadzone: float = 0.5) -> Price:
    """The first k maps at step exponent q priced at once: :func:`price_of` of :func:`price_maps`."""
    return price_of(price_maps(tr, q, 0, k, deadzone), k)
