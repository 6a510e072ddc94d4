"""The predictive layer's encoder: the error bound E for a target, the lattice, the coded indices.

A ``max_error`` target is E itself. A quality target takes the largest E whose reconstruction reaches
the PSNR (measured exactly without coding). A rate target takes the smallest E whose file fits
(bisection on real files). :meth:`PredictiveEncoder.estimate` predicts the PSNR at a rate from one
coded file, so that below effort max the codec only codes with this layer where it may win.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hsicodec.errors import OptionError
from hsicodec.format.grid import CODEC_NAME
from hsicodec.io.cast import cast_to_dtype
from hsicodec.layers.base import Encoded, Scene, Target
from hsicodec.layers.predictive import coder
from hsicodec.layers.predictive.lattice import (
    NAME,
    SECTION,
    LatticeParams,
    balanced_rows,
    lattice_for,
    to_lattice_measured,
)
from hsicodec.metrics import psnr as psnr_metric

MIN_ESTIMATE_BPPPB = 0.3  # below this rate near-lossless coding does not compete: no estimate
DB_PER_BIT = 6.02  # at high rates each bit per value buys 6 dB


class PredictiveEncoder:
    """One scene's predictive-layer encoder (files cached by their lattice step)."""

    def __init__(self, scene: Scene):
        self.scene = scene
        self.values = scene.analysis.values
        self.dtype = np.dtype(scene.base_header["dtype"])
        mask = scene.base_header.get("mask")
        fill = mask.get("fill") if isinstance(mask, dict) else None
        self.avoid = float(fill) if isinstance(fill, (int, float)) and np.isfinite(fill) else None
        self.valid = scene.valid
        self._built: dict = {}
        self._lohi: tuple[float, float] | None = None

    @property
    def lohi(self) -> tuple[float, float]:
        """The values' (min, max), taken when first needed (a rate this layer does not compete at never needs
        them: two passes over a tile's values saved)."""
        if self._lohi is None:
            self._lohi = (float(self.values.min()), float(self.values.max()))
        return self._lohi

    @property
    def span(self) -> float:
        return self.lohi[1] - self.lohi[0]

    # -- one file
    def _params(self, error: float) -> LatticeParams:
        p = lattice_for(self.lohi, self.dtype, error, self.avoid)
        return dataclasses.replace(p, rows_per_block=balanced_rows(self.values.shape[0]))

    def _lattice(self, error: float) -> tuple[LatticeParams, np.ndarray, float | None]:
        """(lattice, indices, squared error of the lattice points where that is exact without a cast)."""
        p = self._params(error)
        return (p, *to_lattice_measured(self.values, p, self.dtype))

    def _stream(self, p: LatticeParams) -> tuple[bytes, float]:
        """(coded indices, PSNR) on lattice ``p``. Integer cubes go to the coder as they are: it finds the
        lattice indices and the remainders' sums (the squared error of the lattice points) itself, so no index
        copy of the cube is made."""
        s = self.scene
        lo = p.offset - p.error
        if self.dtype.kind in "iu" and self.values.dtype.kind in "iu" and float(lo).is_integer():
            info = np.iinfo(self.dtype)
            exact = info.min <= p.offset and p.offset + p.step * p.max_value <= info.max  # no point clipped
            if p.step == 1 or (exact and self.valid is None and p.step < 2**15):
                stream, s1, s2 = coder.encode_measured(
                    self.values, p.max_value, p.rows_per_block, threads=s.threads, offset=int(lo), step=int(p.step)
                )  # fmt: skip
                e, n = int(p.error), self.values.size
                return stream, self._psnr(p, None, float(s2 - 2 * e * s1 + n * e * e))
        u, sse = to_lattice_measured(self.values, p, self.dtype)
        return coder.encode(u, p.max_value, p.rows_per_block, threads=s.threads), self._psnr(p, u, sse)

    def _psnr(self, p: LatticeParams, u: np.ndarray | None, sse: float | None = None) -> float:
        if p.error == 0:  # lossless: every value back exactly
            return float("inf")
        if sse is not None and self.valid is None:  # every value counts, as metrics.psnr counts them
            mse = sse / max(self.values.size, 1)
            return float("inf") if mse == 0 else 10.0 * np.log10((self.span if self.span > 0 else 1.0) ** 2 / mse)
        if u is None:
            raise ValueError("the lattice indices are needed where the squared error is not known")
        if self.dtype.kind in "iu":  # lattice points are whole numbers: the cast only clips
            info = np.iinfo(self.dtype)
            rec = np.clip(p.values(u), float(info.min), float(info.max))
        else:
            rec = cast_to_dtype(p.values(u), self.dtype).astype(np.float64)
        return psnr_metric(self.values, rec, valid=self.valid)

    def build(self, error: float) -> Encoded:
        """The file for error bound E (its measured PSNR, over the valid values)."""
        p = self._params(error)
        if p.step not in self._built:
            stream, psnr = self._stream(p)
            codec = {"id": CODEC_NAME, **p.to_header()}
            data = self.scene.file(codec, [(SECTION, stream)], model=False)
            self._built[p.step] = Encoded(data, 0, 0, psnr, NAME, {"max_error": p.error, "step": p.step})
        return self._built[p.step]

    # -- the bound for a target
    def _errors(self) -> list[float]:
        """The bounds worth trying, finest first: whole units for integers, quarter octaves for floats."""
        if self.dtype.kind in "iu":
            whole = max(int(self.span // 2), 0)
            return sorted({0, *(int(v) for v in np.unique(np.round(np.geomspace(1, max(whole, 1), 96))))} | {whole})
        top = max(self.span / 2, float(np.finfo(np.float64).tiny))
        return [float(top * 2.0 ** (-j / 4)) for j in range(160, -1, -1)]

    def _floor(self, errors: list[float]) -> int:
        """Index of the first bound that can be coded (floats: the precision limits the finest)."""
        for i, e in enumerate(errors):
            try:
                lattice_for(self.lohi, self.dtype, e, self.avoid)
                return i
            except OptionError:
                continue
        raise OptionError("no error bound fits this cube's precision and range")

    def encode(self, target: Target) -> Encoded:
        if target.max_error is not None:
            return self.build(target.max_error)
        errors = self._errors()
        lo = self._floor(errors)
        if target.psnr is not None:  # the largest E that reaches the PSNR: exact without coding
            want = target.psnr
            if self._psnr(*self._lattice(errors[lo])) < want:
                raise OptionError(f"--psnr {want} dB is above what the predictive layer reaches on this cube")
            a, b = lo, len(errors) - 1  # errors[a] reaches
            if self._psnr(*self._lattice(errors[b])) >= want:
                return self.build(errors[b])
            while b - a > 1:
                mid = (a + b) // 2
                if self._psnr(*self._lattice(errors[mid])) >= want:
                    a = mid
                else:
                    b = mid
            return self.build(errors[a])
        budget = target.budget(self.scene.n_values)
        if len(self.build(errors[lo]).data) <= budget:
            return self.build(errors[lo])
        a, b = lo, len(errors) - 1  # errors[b] fits, if anything does
        if len(self.build(errors[b]).data) > budget:
            raise OptionError(f"--bpppb {target.bpppb} is below the smallest file of the predictive layer")
        while b - a > 1:
            mid = (a + b) // 2
            if len(self.build(errors[mid]).data) <= budget:
                b = mid
            else:
                a = mid
        return self.build(errors[b])

    def estimate(self, target: Target) -> float | None:
        """Predicted PSNR at a rate target (from one coded file near it; 6 dB per bit per value; None below
        :data:`MIN_ESTIMATE_BPPPB`), or the bytes of the file for a quality target (its bound is found
        without coding, so the file is made once)."""
        if target.psnr is not None:
            try:
                return float(len(self.encode(target).data))
            except OptionError:
                return None
        if target.bpppb is None or target.bpppb < MIN_ESTIMATE_BPPPB:
            return None
        errors = self._errors()
        lo = self._floor(errors)
        first = self.build(errors[lo])
        bits0 = 8.0 * len(first.data) / self.scene.n_values
        if bits0 <= target.bpppb:
            return first.psnr
        step_factor = 2.0 ** (bits0 - target.bpppb)  # high-rate rule: each halving of the step costs one bit
        guess = min(range(lo, len(errors)), key=lambda i: abs(np.log2(max(errors[i], 0.5) / max(errors[lo], 0.5)) -
                                                                 np.log2(step_factor)))  # fmt: skip
        near = self.build(errors[guess])
        bits = 8.0 * len(near.data) / self.scene.n_values
        return near.psnr + DB_PER_BIT * (target.bpppb - bits)

    def improve(self, target: Target, best: Encoded) -> Encoded | None:
        return None  # the rate search already measured real files
