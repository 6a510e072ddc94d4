"""Rate search of the coefficient-map layer: the number of maps k and the step Δ for a target.

The grid codec without network latents: the scene's principal-component maps
go straight to :mod:`hsicodec.coefmaps` (CDF 9/7, context-classed Laplace
scales). One quantization at step Δ serves every k (the maps' symbols and
context classes of map j depend only on maps ≤ j), so each Δ visited prices
all k at once from ideal code lengths; the distortion is predicted in the
coefficient domain (subband-gain weighted) plus the energy of the dropped
components. Only the chosen (k, Δ) is built and decoded for real.
"""

from __future__ import annotations

import copy
from typing import Optional

import numpy as np

from hsicodec import coefmaps, entropy
from hsicodec.container import encode_hsim
from hsicodec.decoder import CODEC_NAME, reconstruct
from hsicodec.encoder import Analysis, Candidate, K_CANDIDATES
from hsicodec.errors import OptionError
from hsicodec.metrics import psnr as psnr_metric
from hsicodec.model import CodecModel
from hsicodec.spectral import SpectralFit, encode_spectral, fit_pca, matched_exponents

MAP_K_MAX = 32
MAP_K_CANDIDATES = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32)
Q_COARSE, Q_FINE = 6 * coefmaps.STEPS_PER_OCTAVE, -14 * coefmaps.STEPS_PER_OCTAVE
DEADZONE = 0.4  # rounding threshold: a little dead zone pays 0.05–0.2 dB on the validation scenes


class MapSearch:
    """Chooses (k, Δ) of the coefficient-map layer for a rate or quality target."""

    def __init__(self, model: CodecModel, an: Analysis, base_header: dict, extra_sections: tuple = (),
                 valid: Optional[np.ndarray] = None, deadzone: float = DEADZONE):
        if an.mode != "pca":
            raise OptionError("the coefficient-map layer needs a model with a PCA spectral stage")
        self.model, self.an, self.base = model, an, base_header
        self.extra_sections = list(extra_sections)
        self.valid = valid
        self.deadzone = deadzone
        self.h, self.w, self.c = an.values.shape
        self.fit: SpectralFit = fit_pca(an.values.reshape(-1, self.c), MAP_K_MAX)
        self.kmax = min(MAP_K_MAX, self.fit.basis.shape[0], coefmaps.MAX_MAPS)
        self.norm = float(self.fit.total_std)
        maps = ((an.values.reshape(-1, self.c) - self.fit.mean) @ self.fit.basis[:self.kmax].T / max(self.norm, 1e-300))
        self.maps = maps.reshape(self.h, self.w, self.kmax)
        self.levels = coefmaps.map_levels(self.h, self.w)
        self.tr = coefmaps.Transformed.of(self.maps, self.levels)
        self.gain = np.empty((self.h, self.w))
        for grp, ori, rs, cs in coefmaps.subbands(self.h, self.w, self.levels):
            self.gain[rs, cs] = coefmaps.cdf97_subband_gain(grp, ori, self.levels)
        self._q_cache: dict = {}
        self._price_cache: dict = {}
        self._build_cache: dict = {}
        self._spec_cache: dict = {}

    def with_deadzone(self, deadzone: float) -> "MapSearch":
        """The same scene (PCA, transform, spectral side information) with another rounding threshold."""
        other = copy.copy(self)
        other.deadzone = deadzone
        other._q_cache, other._price_cache, other._build_cache = {}, {}, {}
        return other

    # -- pricing
    def _quantized(self, q: int):
        """Symbols, context classes and per-map weighted squared error of all kmax maps at step q."""
        if q not in self._q_cache:
            sym, a, rho = coefmaps.quantize(self.tr, q, self.kmax, self.deadzone)
            step = entropy.step_from_exponent(q, coefmaps.STEPS_PER_OCTAVE)
            mag = np.abs(sym)
            rec = np.where(mag > 0, mag - rho / coefmaps.RECON_DEN, 0.0)
            # normalised units, each coefficient weighted by its synthesis energy: Σ g (Δ/√g)² e² = Δ² Σ e²
            err = (step ** 2) * np.sum((a - rec) ** 2, axis=(1, 2)) / (self.h * self.w)
            cls, grp = coefmaps.all_classes(sym, self.levels)
            self._q_cache[q] = (sym, cls, grp, np.cumsum(err))
        return self._q_cache[q]

    def _priced(self, q: int, k: int) -> tuple[float, float]:
        """(ideal bytes of the first k maps at step q, their coefficient-domain squared error)."""
        key = (q, k)
        if key not in self._price_cache:
            sym, cls, grp, err = self._quantized(q)
            bits = coefmaps.fit_codes(sym[:k], cls[:k], grp[:k], k * (self.levels + 1))[2]
            self._price_cache[key] = (bits / 8.0 + 4.0, float(err[k - 1]))
        return self._price_cache[key]

    def spectral(self, k: int, coding_mse: float):
        """Mean and k basis vectors, their precision matched to the coding error per value."""
        me, be = matched_exponents(self.fit, k, max(coding_mse, (self.norm ** 2 / self.c) * 1e-7, 1e-12))
        key = (k, me, be)
        if key not in self._spec_cache:
            self._spec_cache[key] = encode_spectral(self.fit.mean, self.fit.basis[:k], me, be)
        return self._spec_cache[key]

    def _coding_mse(self, k: int, q: int) -> float:
        """Squared error per cube value that coding the k maps at q adds (original units)."""
        return self.norm ** 2 * self._priced(q, k)[1] / self.c

    def estimate(self, k: int, q: int) -> tuple[float, float]:
        """(predicted bytes of the whole file, predicted PSNR) of (k, q)."""
        map_bytes, _ = self._priced(q, k)
        cmse = self._coding_mse(k, q)
        sdata, sparams, _, _ = self.spectral(k, cmse)
        over = len(self._file(k, q, sparams, b"", sdata_len=len(sdata), placeholder=True))
        mse = cmse + float(np.sum(self.fit.comp_std[k:] ** 2)) / self.c
        quality = float("inf") if mse <= 0 else 10 * np.log10(max(self.an.value_range, 1e-30) ** 2 / mse)
        return over + map_bytes, quality

    # -- files
    def _file(self, k: int, q: int, sparams: dict, rdata: bytes, *, sdata: bytes = b"", sdata_len: int = 0,
              placeholder: bool = False, rparams: Optional[dict] = None) -> bytes:
        if rparams is None:  # header size estimate: codes of typical size
            rparams = {"k": k, "q": q, "wt": self.levels, "ma": 255, "ls": bytes(k * (self.levels + 1)),
                       "co": bytes(coefmaps.N_CLASSES), "ro": 8}
        codec = {"id": CODEC_NAME, "k": 0, "norm": self.norm, "sp": sparams, "rl": rparams}
        header = dict(self.base)
        header["codec"] = codec
        sections = [("s", bytes(sdata_len) if placeholder else sdata), ("r", rdata)]
        return encode_hsim(header, sections + ([] if placeholder else self.extra_sections))

    def build(self, k: int, q: int) -> tuple[bytes, np.ndarray, np.ndarray, np.ndarray]:
        """The real file of (k, q) → (bytes, decoded maps (H, W, k), mean, basis)."""
        if (k, q) not in self._build_cache:
            self._build_cache.clear()  # keep one: the search asks for the same file twice in a row
            self._build_cache[(k, q)] = self._build(k, q)
        return self._build_cache[(k, q)]

    def _build(self, k: int, q: int) -> tuple[bytes, np.ndarray, np.ndarray, np.ndarray]:
        sym, _, rho = coefmaps.quantize(self.tr, q, k, self.deadzone)
        rdata, p = coefmaps.encode_symbols(sym, q, self.levels, rho)
        sdata, sparams, mean, basis = self.spectral(k, self._coding_mse(k, q))
        data = self._file(k, q, sparams, rdata, sdata=sdata, rparams=p.to_header())
        return data, coefmaps.dequantize(sym, p, self.h, self.w), mean, basis

    def measure(self, k: int, q: int) -> Candidate:
        data, maps, mean, basis = self.build(k, q)
        rec = reconstruct(maps, self.norm, mean, basis, (0, self.c))
        if self.valid is not None:
            return Candidate(data, k, q, psnr_metric(self.an.values[self.valid], rec[self.valid]))
        return Candidate(data, k, q, psnr_metric(self.an.values, rec))

    def k_candidates(self) -> list:
        return [k for k in MAP_K_CANDIDATES if k <= self.kmax] or [self.kmax]

    # -- targets
    def _finest_fitting(self, k: int, budget: float) -> Optional[int]:
        """Finest step exponent whose predicted file fits the budget (bisection; sizes fall as q grows)."""
        lo, hi = Q_FINE, Q_COARSE
        if self.estimate(k, hi)[0] > budget:
            return None
        if self.estimate(k, lo)[0] <= budget:
            return lo
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.estimate(k, mid)[0] <= budget:
                hi = mid
            else:
                lo = mid
        return hi

    def for_bpppb(self, target: float) -> Candidate:
        budget = int(np.floor(target * self.h * self.w * self.c / 8.0))
        scored = []
        for k in self.k_candidates():
            q = self._finest_fitting(k, budget)
            if q is not None:
                scored.append((self.estimate(k, q)[1], k, q))
                if len(scored) >= 3 and scored[-1][0] < scored[-2][0] < scored[-3][0]:
                    break  # quality falls with k from here on: more maps only thin the bits
        if not scored:
            raise OptionError(f"--bpppb {target} is below the smallest coefficient-map file of this cube")
        scored.sort(reverse=True)
        best = None
        for _, k, q in scored[:2]:
            while q <= Q_COARSE and len(self.build(k, q)[0]) > budget:
                q += 1
            while q > Q_FINE and len(self.build(k, q - 1)[0]) <= budget:  # the estimate was pessimistic
                q -= 1
            if q <= Q_COARSE:
                cand = self.measure(k, q)
                if best is None or cand.psnr > best.psnr:
                    best = cand
        if best is not None:
            return best
        raise OptionError(f"--bpppb {target} is below the smallest coefficient-map file of this cube")

    def for_psnr(self, target: float) -> Candidate:
        feasible = []
        for k in self.k_candidates():
            if self.estimate(k, Q_FINE)[1] < target:
                continue
            lo, hi = Q_FINE, Q_COARSE  # estimate(lo) reaches the target
            if self.estimate(k, hi)[1] >= target:
                lo = hi
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if self.estimate(k, mid)[1] >= target:
                    lo = mid
                else:
                    hi = mid
            feasible.append((self.estimate(k, lo)[0], k, lo))
        if not feasible:
            raise OptionError(f"--psnr {target} dB is above what the coefficient-map layer reaches on this cube")
        for _, k, q in sorted(feasible)[:3]:
            for _ in range(8):
                cand = self.measure(k, q)
                if cand.psnr >= target:
                    return cand
                q -= 1
        raise OptionError(f"--psnr {target} dB is above what the coefficient-map layer reaches on this cube")
