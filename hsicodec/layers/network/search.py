"""The network layer's rate search: the number of components k and the latent step for a target."""

from __future__ import annotations

import numpy as np

from hsicodec.coding.spectral import Analysis, encode_spectral, matched_exponents, reconstruct, reconstruct_bands
from hsicodec.errors import OptionError
from hsicodec.format.container import encode_hsim
from hsicodec.format.grid import CODEC_NAME
from hsicodec.layers.base import Encoded, Target, psnr_of
from hsicodec.layers.network.decode import synthesize
from hsicodec.layers.network.fit import TRAIN_CROP_PIXELS
from hsicodec.layers.network.layout import STEPS_PER_OCTAVE
from hsicodec.layers.network.model import CodecModel
from hsicodec.layers.network.quantize import (
    LATENT_WAVELET,
    LatentCoding,
    latent_coding,
    level_step_offsets,
    quantize_latents,
)

K_CANDIDATES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
PLAIN_CODING_PIXELS = 64 * 64  # below this many pixels the plain latent coding is tried too
LATENT_CODINGS = {"haar+klt": (LATENT_WAVELET, True), "haar": (LATENT_WAVELET, False), "plain": (0, False)}


STEP_GRID = list(range(6 * STEPS_PER_OCTAVE, -14 * STEPS_PER_OCTAVE - 1, -1))  # step exponents, coarse → fine


class RateSearch:
    """Chooses (k, Δ) for a rate or quality target from one latent fit.

    Latent bytes depend only on Δ and spectral bytes only on k, so both are
    tabulated; the distortion of every k at a given Δ comes from one network
    evaluation, in coefficient space (the basis is orthonormal, so the band-space
    error is the coefficient error plus the energy of the dropped components).
    Only the chosen candidate is decoded and measured exactly.
    """

    def __init__(
        self,
        model: CodecModel,
        an: Analysis,
        grids: list,
        base_header: dict,
        threads: int = 0,
        backend: str = "auto",
        offsets: list | None = None,
        extra_sections: tuple = (),
        coding: LatentCoding | None = None,
        valid: np.ndarray | None = None,
    ):
        self.model, self.an, self.grids, self.base, self.threads = model, an, grids, base_header, threads
        self.extra_sections = list(extra_sections)
        self.backend = backend
        self.h, self.w, self.c = an.values.shape
        self._spec_cache: dict = {}
        self._coef_cache: dict = {}
        self._lat_cache: dict = {}
        self.valid = valid
        self.coding = coding if coding is not None else latent_coding(model, grids, self.h, self.w)
        self.offsets = (
            offsets
            if offsets is not None
            else (level_step_offsets(model, grids, an.targets, threads, backend) if grids else None)
        )

    # -- side information and streams
    def spectral(self, k: int):
        """Spectral side information for k components, precision matched to the PCA residual."""
        if self.an.mode == "id":
            sp = {"m": "id", "off": self.an.offset}
            if not np.array_equal(self.an.bands, np.arange(self.c)):
                sp["bm"] = [int(v) for v in self.an.bands]
            return b"", sp, None, None
        if k not in self._spec_cache:
            fit = self.an.fit
            resid = fit.dropped_variance(k) / self.c
            me, be = matched_exponents(fit, k, max(resid, (fit.total_std**2 / self.c) * 1e-5, 1e-12))
            self._spec_cache[k] = encode_spectral(fit.mean, fit.basis[:k], me, be)
        return self._spec_cache[k]

    def latents(self, step: int):
        if step not in self._lat_cache:
            self._lat_cache[step] = quantize_latents(
                self.model, self.grids, step, self.h, self.w, self.offsets, self.coding
            )
        return self._lat_cache[step]

    def build(self, k: int, step: int) -> tuple[bytes, list]:
        sdata, sparams, _, _ = self.spectral(k)
        codec = {"id": CODEC_NAME, "k": k, "norm": self.an.norm, "sp": sparams}
        sections = [("s", sdata)] if self.an.mode == "pca" else []
        deq = []
        if k:
            ldata, lparams, deq = self.latents(step)
            codec.update(lparams)
            sections.append(("l", ldata))
        else:
            codec.update({"q": 0, "qo": [0] * len(self.model.layout.levels), "ma": 0, "ls": b""})
        header = dict(self.base)
        header["codec"] = codec
        return encode_hsim(header, sections + self.extra_sections), deq

    # -- distortion
    def coef_sq_errors(self, step: int) -> np.ndarray:
        """Mean squared error of every normalised coefficient channel at step Δ (all n_out)."""
        if step not in self._coef_cache:
            try:
                deq = self.latents(step)[2]
            except OptionError:
                return np.full(self.model.n_out, np.inf)
            n = self.model.n_out
            pred = synthesize(
                self.model, deq, n, self.h, self.w, (0, 0, self.h, self.w), threads=self.threads, backend=self.backend
            )
            err = (pred.astype(np.float64) - self.an.targets) ** 2
            if self.valid is None:
                self._coef_cache[step] = np.mean(err, axis=(0, 1))
            else:  # pixels weighted by their share of valid values
                wt = self.valid.mean(axis=2)
                self._coef_cache[step] = np.tensordot(wt, err, axes=([0, 1], [0, 1])) / max(float(wt.sum()), 1e-30)
        return self._coef_cache[step]

    def predicted_psnr(self, k: int, step: int) -> float:
        if self.an.mode == "id" and k == 0:  # constant cube: the offset is exact
            return float("inf")
        if self.an.mode == "id":
            mse = self.an.scale**2 * float(np.mean(self.coef_sq_errors(step)[self.an.bands]))
        else:
            fit = self.an.fit
            mse = fit.total_std**2 * float(np.sum(self.coef_sq_errors(step)[:k])) if k else 0.0
            mse += fit.dropped_variance(k)
            mse /= self.c
        if mse <= 0:
            return float("inf")
        return 10 * np.log10(max(self.an.value_range, 1e-30) ** 2 / mse)

    def measure(self, k: int, step: int) -> Encoded:
        data, deq = self.build(k, step)
        _, _, mean, basis = self.spectral(k)
        coeffs = synthesize(
            self.model, deq, k, self.h, self.w, (0, 0, self.h, self.w), threads=self.threads, backend=self.backend
        )
        if self.an.mode == "id" and k == 0:
            rec = np.full(self.an.values.shape, self.an.offset)
        elif self.an.mode == "id":
            rec = reconstruct_bands(coeffs, self.an.scale, self.an.offset, self.an.bands, (0, self.c))
        else:
            rec = reconstruct(coeffs, self.an.fit.total_std, mean, basis, (0, self.c))
        if self.valid is not None:  # quality of the values the file keeps, not of the filled-in ones
            return Encoded(data, k, step, psnr_of(self.an.values, rec, self.valid))
        return Encoded(data, k, step, psnr_of(self.an.values, rec, None))

    # -- search
    def size(self, k: int, step: int) -> float:
        try:
            return len(self.build(k, step)[0])
        except OptionError:  # step too fine for the latent range: treat as too large
            return float("inf")

    def finest_step(self, k: int, budget: int) -> int | None:
        """Finest grid step whose file fits the budget, refined by bisection on exact sizes."""
        if not k:
            return 0 if self.size(0, 0) <= budget else None
        if self.size(k, STEP_GRID[0]) > budget:
            return None
        lo_i, hi_i = 0, len(STEP_GRID) - 1  # STEP_GRID[lo_i] fits
        if self.size(k, STEP_GRID[hi_i]) <= budget:
            return STEP_GRID[hi_i]
        while hi_i - lo_i > 1:
            mid = (lo_i + hi_i) // 2
            if self.size(k, STEP_GRID[mid]) <= budget:
                lo_i = mid
            else:
                hi_i = mid
        return STEP_GRID[lo_i]

    def for_bpppb(self, target: float) -> Encoded:
        """Best predicted quality at or under the target; among (k, Δ) choices that land within
        10 % of it when any does (so the rate asked for is the rate delivered)."""
        budget = int(np.floor(target * self.h * self.w * self.c / 8.0))
        scored = []
        for k in self.k_candidates():
            step = self.finest_step(k, budget)
            if step is not None:
                scored.append((self.predicted_psnr(k, step), k, step, self.size(k, step)))
        if not scored:
            smallest = min(self.size(k, STEP_GRID[0]) for k in self.k_candidates())
            raise OptionError(
                f"--bpppb {target} is below the smallest file this cube allows "
                f"({8 * smallest / (self.h * self.w * self.c):.5f} bpppb)"
            )
        close = [s for s in scored if s[3] >= 0.9 * budget]
        _, k, step, _ = max(close or scored)
        return self.measure(k, step)

    def for_psnr(self, target: float) -> Encoded:
        """Smallest file predicted to reach the target; the prediction is checked by a real
        decode, refining Δ (then trying the next smallest k) until it holds."""
        feasible = []
        best_seen = -np.inf
        for k in self.k_candidates():
            fine = STEP_GRID[-1]
            best_seen = max(best_seen, self.predicted_psnr(k, fine))
            if self.predicted_psnr(k, fine) < target:
                continue
            lo_i, hi_i = 0, len(STEP_GRID) - 1  # coarsest index that may reach the target
            if self.predicted_psnr(k, STEP_GRID[0]) >= target:
                hi_i = 0
            while hi_i - lo_i > 1:
                mid = (lo_i + hi_i) // 2
                if self.predicted_psnr(k, STEP_GRID[mid]) >= target:
                    hi_i = mid
                else:
                    lo_i = mid
            feasible.append((self.size(k, STEP_GRID[hi_i]), k, hi_i))
        if not feasible:
            raise OptionError(
                f"--psnr {target} dB is above what this model's latents reach on this cube (about {best_seen:.2f} dB)"
            )
        reached = -np.inf
        for _, k, i in sorted(feasible):
            cand = self.measure(k, STEP_GRID[i])
            tries = 0
            while cand.psnr < target and i + 1 < len(STEP_GRID) and tries < 8:  # the prediction is close
                i += 1
                tries += 1
                cand = self.measure(k, STEP_GRID[i])
            if cand.psnr >= target:
                return cand
            reached = max(reached, cand.psnr)
        # e.g. the side information's precision, or masked values, which the prediction leaves out
        raise OptionError(
            f"--psnr {target} dB is above what this model's latents reach on this cube (at best {reached:.2f} dB)"
        )

    def slope(self, k: int, q: int) -> float:
        """−dD/dR at (k, q) in fit units per bit (for the RD refinement's λ)."""
        n_fit = self.h * self.w / TRAIN_CROP_PIXELS
        cw = self.channel_weight(k)

        def dist(qq):
            return n_fit * float(np.sum(self.coef_sq_errors(qq) * cw))

        qa, qb = q - 2, q + 2
        dr = 8.0 * (self.size(k, qa) - self.size(k, qb))
        dd = dist(qb) - dist(qa)
        return max(dd / dr, 0.0) if np.isfinite(dr) and dr > 0 else 0.0

    def channel_weight(self, k: int) -> np.ndarray:
        cw = np.zeros(self.model.n_out)
        if self.an.mode == "id":
            cw[self.an.bands] = 1.0
        else:
            cw[:k] = 1.0
        return cw

    def k_candidates(self) -> list:
        if self.an.constant:
            return [0]
        if self.an.mode == "id":
            return [int(self.an.bands.max()) + 1]
        kmax = min(self.model.n_out, self.c, len(self.an.fit.comp_std))
        return [k for k in K_CANDIDATES if k <= kmax] or [kmax]


def search_codings(
    model: CodecModel,
    an: Analysis,
    grids: list,
    header: dict,
    threads: int,
    backend: str,
    extra_sections: tuple,
    bpppb: float | None,
    psnr: float | None,
    valid: np.ndarray | None = None,
    names: tuple | None = None,
) -> tuple[Encoded, RateSearch]:
    """Best file for the target over the latent codings (:data:`LATENT_CODINGS`): by default
    wavelet + rotation, and for small images also plain symbols (which win where the side
    information of the others outweighs their saving)."""
    best = None
    h, w = an.values.shape[:2]
    if names is None:
        names = ("haar+klt", "plain") if h * w < PLAIN_CODING_PIXELS else ("haar+klt",)
    codings = [latent_coding(model, grids, h, w, *LATENT_CODINGS[n]) for n in names]
    offsets = None  # the per-level steps do not depend on the coding: measured once
    for coding in codings:
        s = RateSearch(
            model,
            an,
            grids,
            header,
            threads,
            backend,
            offsets=offsets,
            extra_sections=extra_sections,
            coding=coding,
            valid=valid,
        )
        offsets = s.offsets
        try:
            if bpppb is not None:
                cand = s.for_bpppb(bpppb)
            else:
                assert psnr is not None, "give either a bpppb or a psnr target"
                cand = s.for_psnr(psnr)
        except OptionError:
            if best is None and coding is codings[-1]:
                raise
            continue
        if best is None or Target(bpppb, psnr).better(cand, best[0]):
            best = (cand, s)
    assert best is not None  # the last coding's OptionError is raised when no coding gave a file
    return best
