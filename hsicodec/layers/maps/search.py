"""Rate search of the coefficient-map layer: the number of maps k, the step Δ and the spectral precision β.

The grid codec without network latents: the scene's principal-component maps
go straight to :mod:`hsicodec.layers.maps.coding` (CDF 9/7, context-classed Laplace
scales). A (k, Δ) is priced from ideal code lengths (map j's symbols and
classes depend only on maps ≤ j, so k maps are quantized and classed alone);
the distortion is predicted in the coefficient domain (subband-gain weighted)
plus the spectral side information's quantization error and the variance of
the dropped components. ks are scanned coarse to fine, Δ by secant steps on
log size; only the few best points are built and decoded for real.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np

from hsicodec.coding import entropy
from hsicodec.coding.products import cross_product, rows_product
from hsicodec.coding.shared import SharedSpectral, shared_fit
from hsicodec.coding.spectral import (
    Analysis,
    SpectralFit,
    basis_steps,
    block_sums,
    encode_spectral,
    lagrangian_exponents,
    scene_pca,
    spectral_mse,
)
from hsicodec.errors import OptionError
from hsicodec.format import compact
from hsicodec.format.container import encode_hsim
from hsicodec.format.grid import CODEC_NAME
from hsicodec.layers.base import Encoded
from hsicodec.layers.maps import coding as coefmaps
from hsicodec.layers.maps import pricing, recon
from hsicodec.layers.network.model import CodecModel

MAP_K_MAX = coefmaps.MAX_MAPS  # principal components the layer may code: every one (up to 255) at high rates
MAP_K_READY = 32  # maps transformed up front; more only when a high-rate search asks for them
MAP_K_CANDIDATES = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 224, 255)
#: scanned first; then the candidates between the best one's neighbours
MAP_K_COARSE = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 255)
MAP_K_START = 8  # the coarse scan starts here and walks down (k = 2–3 at 0.005 bpppb) or up (16–32 at 0.1)
Q_COARSE, Q_FINE = 6 * coefmaps.STEPS_PER_OCTAVE, -14 * coefmaps.STEPS_PER_OCTAVE
DEADZONE = 0.4  # rounding threshold: a little dead zone pays 0.05–0.2 dB on the validation scenes
#: precisions of the spectral side information tried, as multiples β of the equal-slope steps
#: (:func:`hsicodec.coding.spectral.lagrangian_exponents`): the best β ran from 0.6 (Jasper Ridge at 0.01 bpppb)
#: to over 1.7 (at 0.1), so the search measures them instead of guessing
SPECTRAL_BETAS = (0.6, 0.85, 1.2, 1.7, 2.4)
FINER_ROOM = 0.985  # a step of q changes the size by about 2 %
PSNR_BLOCK = 1024  # pixels per block of MapSearch.psnr_of (a few MB of temporaries)
MAX_MOVE = 2 * coefmaps.STEPS_PER_OCTAVE  # the secant's largest move (sizes are not exponential far out)


def _finest_from(q: int, fits) -> int:
    """The finest step exponent (≥ :data:`Q_FINE`) that still ``fits``, from a q that does (files grow as q
    falls): strides that double while they fit, then bisection between the last fitting step and the first
    that does not."""
    stride = 1
    while q - stride >= Q_FINE and fits(q - stride):
        q, stride = q - stride, stride * 2
    lo = max(q - stride, Q_FINE - 1)  # does not fit (or past the finest step)
    while q - lo > 1:
        mid = (q + lo) // 2
        if fits(mid):
            q = mid
        else:
            lo = mid
    return q


class MapSearch:
    """Chooses (k, Δ, spectral precision β) of the coefficient-map layer for a rate or quality target.

    ``betas``: the spectral precisions to search (e.g. :data:`SPECTRAL_BETAS`, thorough); empty (the
    default): one β per k from the maps' distortion–rate slope (:meth:`best_beta`)."""

    def __init__(
        self,
        model: CodecModel | None,  # the layer needs no base model
        an: Analysis,
        base_header: dict,
        extra_sections: tuple = (),
        valid: np.ndarray | None = None,
        deadzone: float = DEADZONE,
        betas: tuple = (),
        shared: SharedSpectral | None = None,
        learned=None,  # a hsicodec.layers.maps.lem.EntropyModel: code the maps under it where it saves bytes
        fill_budget: bool = False,  # below effort max also try finer steps that still fit (with ``learned``: always)
        recon_table: int = 0,  # the reconstruction table its files use (header rt; 0: one offset ρ)
    ):
        if an.mode != "pca":
            raise OptionError("the coefficient-map layer needs a model with a PCA spectral stage")
        self.model, self.an, self.base = model, an, base_header
        self.extra_sections = list(extra_sections)
        self.valid = valid
        self.deadzone = deadzone
        self.betas = tuple(betas)
        self.h, self.w, self.c = an.values.shape
        self.shared = shared
        self.learned = learned
        self.rt = recon_table
        self.recon_codes = recon.table(recon_table).codes if recon_table else None
        self._table_codes: tuple = (None, None)  # ((k, q), the table codes of its symbols): the last ones
        self.fill_budget = fill_budget or learned is not None
        have = an.fit.basis.shape[0]
        if shared is not None:  # the maps are projections on a stage stored once for many files
            if shared.n_bands != self.c:
                raise OptionError(f"the shared spectral stage has {shared.n_bands} bands, the cube {self.c}")
            self.fit: SpectralFit = shared_fit(shared, an.values)
        elif have >= min(MAP_K_MAX, self.c):
            self.fit = an.fit
        else:
            self.fit = scene_pca(an.values.reshape(-1, self.c), MAP_K_MAX)
        self.kmax = min(MAP_K_MAX, self.fit.basis.shape[0])
        # a whole number where that is as good (3 header bytes instead of 9; the normalisation is arbitrary)
        self.norm = float(round(self.fit.total_std)) if self.fit.total_std >= 256 else float(self.fit.total_std)
        self.levels = coefmaps.map_levels(self.h, self.w)
        self.tr = coefmaps.Transformed(np.zeros((0, self.h, self.w)), self.levels)
        self._extend(min(MAP_K_READY, self.kmax))
        self.gain = np.empty((self.h, self.w))
        for grp, ori, rs, cs in coefmaps.subbands(self.h, self.w, self.levels):
            self.gain[rs, cs] = coefmaps.cdf97_subband_gain(grp, ori, self.levels)
        self._price_cache: dict = {}
        self._map_prices: dict[int, pricing.MapPrices] = {}  # step → its first maps priced
        self._log_size_slope = -1.0 / coefmaps.STEPS_PER_OCTAVE  # first guess: sizes halve per octave of step
        self._beta_hint = 1.0  # spectral precision to start each k's search from: the last k's choice
        self._build_cache: dict = {}
        self._decoded: dict = {}  # (k, q, β) → (symbols, decoded maps, side information) of decoded_psnr
        self._spec_cache: dict = {}
        self._estimates: dict = {}  # (k, q, β) → estimate's answer (the searches ask some more than once)
        self._range: float | None = None  # of the original's valid values, for psnr_of
        self._moments: tuple | None = None  # Σ ‖x − c‖² and Σ (x − c), c the PCA mean (_pixel_moments)
        self._cross: tuple | None = None  # (decoded maps, their _map_moments), the last ones asked for

    def with_deadzone(self, deadzone: float) -> MapSearch:
        """The same scene (PCA, transform, spectral side information) with another rounding threshold."""
        other = copy.copy(self)
        other.deadzone = deadzone
        other._price_cache, other._build_cache, other._map_prices, other._decoded = {}, {}, {}, {}
        other._estimates, other._table_codes = {}, (None, None)
        return other

    def principal_maps(self, start: int, stop: int) -> np.ndarray:
        """The normalised principal-component maps start..stop-1 of the scene, (H, W, stop − start)."""
        x = self.an.values.reshape(-1, self.c)
        basis = self.fit.basis[start:stop].T / max(self.norm, 1e-300)
        maps = rows_product(x, basis)  # (x − μ) B = x B − μ B: one product, no centred copy of the cube
        maps -= self.fit.mean @ basis
        return maps.reshape(self.h, self.w, stop - start)

    def _extend(self, k: int) -> None:
        """Transform the principal-component maps up to the k-th (each map's coefficients are those it has on
        its own, so maps added later match maps transformed up front)."""
        have = self.tr.coeffs.shape[0]
        if k <= have:
            return
        new = coefmaps.Transformed.of(self.principal_maps(have, k), self.levels, overwrite=True).coeffs
        self.tr = coefmaps.Transformed(np.concatenate([self.tr.coeffs, new]) if have else new, self.levels)

    # -- pricing
    def _priced(self, q: int, k: int) -> tuple[float, float]:
        """(ideal bytes of the first k maps at step q, their coefficient-domain squared error)."""
        key = (q, k)
        if key not in self._price_cache:
            self._extend(k)
            parts = self._map_prices.get(q)  # map j's symbols need only maps ≤ j: the maps priced at q so far
            have = 0 if parts is None else parts.maps
            if parts is None or have < k:
                more = pricing.price_maps(self.tr, q, have, k, self.deadzone)
                parts = self._map_prices[q] = more if parts is None else parts.extended(more)
            pr = pricing.price_of(parts, k)
            step = entropy.step_from_exponent(q, coefmaps.STEPS_PER_OCTAVE)
            # normalised units, each coefficient weighted by its synthesis energy: Σ g (Δ/√g)² e² = Δ² Σ e²
            err = (step**2) * pr.sq_error / (self.h * self.w)
            base, off, bits = coefmaps.fit_codes_from_stats(pr.n, pr.n0, pr.tot, pr.max_abs)
            params = coefmaps.MapParams(k, q, self.levels, pr.max_abs, base, off, pr.rho, recon_table=self.rt)
            self._price_cache[key] = (bits / 8.0 + 4.0, err, params.to_header())
        return self._price_cache[key][:2]

    def _priced_tables(self, q: int, k: int) -> dict:
        """The layer's header map (code tables included) the pricing of (q, k) fitted."""
        self._priced(q, k)
        return self._price_cache[(q, k)][2]

    def exponents(self, k: int, q: int, beta: float) -> tuple[int, int, bytes]:
        """Step exponents of the mean and k basis vectors: β × those at the distortion–rate slope of the maps
        coded at q (:func:`hsicodec.coding.spectral.lagrangian_exponents`)."""
        return lagrangian_exponents(
            self.fit, k, entropy.step_from_exponent(q, coefmaps.STEPS_PER_OCTAVE), self.h * self.w, beta
        )

    def spectral(self, k: int, q: int, beta: float):
        """The principal mean and k basis vectors at :meth:`exponents` (what the estimates price)
        → (bytes, header params, dequantized mean, dequantized basis, squared error per value they add)."""
        if self.shared is not None:  # no spectral bytes of its own: the shared stage, as it is
            return b"", {"x": self.shared.digest}, self.fit.mean, self.fit.basis[:k], 0.0
        me, be, bd = self.exponents(k, q, beta)
        key = (k, me, be, bd)
        if key not in self._spec_cache:
            data, params, mean, basis = encode_spectral(self.fit.mean, self.fit.basis[:k], me, be, bd)
            self._spec_cache[key] = (data, params, mean, basis, spectral_mse(self.fit, k, me, be, bd))
        return self._spec_cache[key]

    def _coding_mse(self, k: int, q: int) -> float:
        """Squared error per cube value that coding the k maps at q adds (original units)."""
        return self.norm**2 * self._priced(q, k)[1] / self.c

    def estimate(self, k: int, q: int, beta: float) -> tuple[float, float]:
        """(predicted bytes of the whole file, predicted PSNR) of (k, q, β)."""
        key = (k, q, beta)
        if key not in self._estimates:
            self._estimates[key] = self._estimate(k, q, beta)
        return self._estimates[key]

    def _estimate(self, k: int, q: int, beta: float) -> tuple[float, float]:
        map_bytes, _ = self._priced(q, k)
        cmse = self._coding_mse(k, q)
        sdata, sparams, _, _, smse = self.spectral(k, q, beta)
        over = len(self._file(k, q, sparams, b"", sdata_len=len(sdata), placeholder=True))
        mse = cmse + smse + self.fit.dropped_variance(k) / self.c
        quality = float("inf") if mse <= 0 else 10 * np.log10(max(self.an.value_range, 1e-30) ** 2 / mse)
        return over + map_bytes, quality

    # -- files
    def _file(
        self,
        k: int,
        q: int,
        sparams: dict,
        rdata: bytes,
        *,
        sdata: bytes = b"",
        sdata_len: int = 0,
        placeholder: bool = False,
        rparams: dict | None = None,
    ) -> bytes:
        if rparams is None:  # header size estimate: the tables pricing fitted
            rparams = self._priced_tables(q, k)
        norm = int(self.norm) if self.norm.is_integer() else self.norm
        codec = {"id": CODEC_NAME, "norm": norm, "sp": sparams, "rl": rparams}
        header = {key: v for key, v in self.base.items() if key != "model"}  # no network latents: no model
        n_spectral = sdata_len if placeholder else len(sdata)
        header["codec"] = compact.pack_codec(codec, n_spectral, sizing=placeholder)
        body = bytes(n_spectral + len(rdata)) if placeholder else sdata + rdata
        return encode_hsim(header, [("c", body)] + ([] if placeholder else self.extra_sections))

    def build(self, k: int, q: int, beta: float) -> tuple[bytes, np.ndarray, np.ndarray, np.ndarray]:
        """The real file of (k, q, β) → (bytes, decoded maps (H, W, k), mean, basis)."""
        if (k, q, beta) not in self._build_cache:
            self._build_cache.clear()  # keep one: the search asks for the same file twice in a row
            self._build_cache[(k, q, beta)] = self._build(k, q, beta)
        return self._build_cache[(k, q, beta)]

    def _build(self, k: int, q: int, beta: float) -> tuple[bytes, np.ndarray, np.ndarray, np.ndarray]:
        decoded = self._decoded.pop((k, q, beta), None)  # decoded_psnr's work, where it looked at this file
        sym, _, rho = decoded[0] if decoded is not None else self._symbols(k, q)
        if self.learned is not None:
            from hsicodec.layers.maps import lem_coder

            rdata, p = lem_coder.encode(sym, q, self.levels, rho, self.learned)
        elif self.betas:
            rdata, p = coefmaps.encode_symbols(sym, q, self.levels, rho)
        else:  # the symbols the pricing of (q, k) counted: its cell statistics fit the codes
            self._priced(q, k)
            pr = pricing.price_of(self._map_prices[q], k)
            rdata, p = coefmaps.encode_symbols(sym, q, self.levels, rho, stats=(pr.n, pr.n0, pr.tot, pr.max_abs))
        p = dataclasses.replace(p, recon_table=self.rt)  # the coders leave it 0
        if decoded is not None:  # the same step and ρ: the same maps and side information
            maps, (sdata, sparams, mean, basis) = decoded[1], decoded[2]
        else:
            maps = coefmaps.dequantize(sym, p, self.h, self.w, self._codes(k, q))
            sdata, sparams, mean, basis = self._side(k, q, beta, maps)
        data = self._file(k, q, sparams, rdata, sdata=sdata, rparams=p.to_header())
        return data, maps, mean, basis

    def _symbols(self, k: int, q: int) -> tuple[np.ndarray, np.ndarray | None, int]:
        """The first k maps' symbols at step q (rate–distortion optimised when thorough), their |c| / Δ, and the
        header's ``ro`` (ρ, or the reconstruction table's shift)."""
        self._extend(k)
        sym, a, excess, n = coefmaps.quantize_sums(self.tr, q, k, self.deadzone, magnitudes=bool(self.betas))
        rho = coefmaps._recon_offset(excess, n)
        if self.betas:  # thorough: rate–distortion optimised quantization at the maps' slope
            assert a is not None
            step = entropy.step_from_exponent(q, coefmaps.STEPS_PER_OCTAVE)
            sym = coefmaps.rdoq(sym, a, rho, self.levels, (self.norm * step) ** 2, self.slope(k, q))
            nz = sym != 0
            excess = float(np.sum(np.abs(sym[nz]) - a[nz]))  # for the table's shift: the symbols RDOQ left
        if self.recon_codes is not None:  # the table's shift; its codes kept for this step's dequantizing
            rho, unshifted = recon.table_shift(sym, excess, self.levels, self.recon_codes)
            self._table_codes = ((k, q), recon.shifted(unshifted, rho))
        return sym, a, rho

    def _codes(self, k: int, q: int) -> np.ndarray | None:
        """The table codes :meth:`_symbols` made for (k, q), if they are the last it made (else None: the
        dequantizer makes them again)."""
        key, codes = self._table_codes
        return codes if key == (k, q) else None

    def _side(self, k: int, q: int, beta: float, maps: np.ndarray) -> tuple[bytes, dict, np.ndarray, np.ndarray]:
        """The spectral side information of decoded maps (H, W, k): (bytes, header params, mean, basis)."""
        if self.shared is not None:  # the shared stage is fixed: no refit, nothing to code
            sdata, sparams, mean, basis, _ = self.spectral(k, q, beta)
            return sdata, sparams, mean, basis
        me, be, bd = self.exponents(k, q, beta)
        return encode_spectral(*self.refit(maps, me, be, bd), me, be, bd)

    def decoded_psnr(self, k: int, q: int, beta: float) -> float:
        """The PSNR :meth:`measure` would find for (k, q, β), without entropy coding the maps (dequantizing
        needs only the step and ρ): a runner-up that loses here is never coded."""
        symbols = self._symbols(k, q)
        p = coefmaps.MapParams(k, q, self.levels, 0, b"", np.zeros(0, np.int64), symbols[2], recon_table=self.rt)
        maps = coefmaps.dequantize(symbols[0], p, self.h, self.w, self._codes(k, q))
        side = self._side(k, q, beta, maps)
        self._decoded = {(k, q, beta): (symbols, maps, side)}  # kept for its build, if it wins
        return self.psnr_of(maps, side[2], side[3])

    def refit(self, maps: np.ndarray, mean_exp: int, basis_exp: int, offsets: bytes) -> tuple[np.ndarray, np.ndarray]:
        """Mean (C,) and basis (k, C) that reconstruct the cube best from the *decoded* maps (H, W, k).

        The principal spectra are optimal for the exact maps; once coarse subbands are kept and fine ones
        dropped, the best spectra differ a little by scale, so the basis is refit by least squares on the
        decoded maps (pixels with every band valid), quantized with the steps it will travel at, and the
        mean refit last for that quantized basis — the side information costs the same and the
        reconstruction error only falls (0.05–0.15 dB on the validation scenes at 0.1 bpppb)."""
        k = maps.shape[2]
        x = self.an.values.reshape(-1, self.c)
        every = self.valid is None
        cross: np.ndarray | None = None
        if every:  # from the maps' moments (no scaled or centred copy of them): Y = norm · maps, ȳ its mean
            if k == 0 or len(x) < 4 * (k + 1):
                return self.fit.mean, self.fit.basis[:k]
            sy, yty, ytx = self._map_moments(maps)
            n = len(x)
            ym = sy / n
            gram = yty - n * np.outer(ym, ym)  # Yᶜᵀ Yᶜ
            cross = ytx - np.outer(ym, self._sum_x())  # Yᶜᵀ X = Yᶜᵀ (X − x̄)
        else:
            rows = np.asarray(self.valid).reshape(-1, self.c).all(axis=1)  # pixels with every band valid
            y, x = maps.reshape(-1, k)[rows] * self.norm, x[rows]
            if k == 0 or len(x) < 4 * (k + 1):
                return self.fit.mean, self.fit.basis[:k]
            ym = y.mean(axis=0)
            yc = y - ym
            gram = yc.T @ yc
        basis = self.fit.basis[:k].copy()
        use = np.diag(gram) > 1e-12 * max(float(np.trace(gram)), 1e-300)  # maps decoded as all zero keep the PCA row
        if use.all() and cross is not None:
            basis = np.linalg.solve(gram + 1e-12 * np.trace(gram) * np.eye(k), cross)
        elif use.any():
            g = gram[np.ix_(use, use)]
            rhs = cross[use] if cross is not None else yc[:, use].T @ x
            basis[use] = np.linalg.solve(g + 1e-12 * np.trace(g) * np.eye(g.shape[0]), rhs)
        step = basis_steps(basis_exp, offsets, k)
        mean = (self._sum_x() / len(x) if every else x.mean(axis=0)) - ym @ (np.round(basis / step) * step)
        return mean, basis

    def _map_moments(self, maps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(Σ y, YᵀY, YᵀX) of decoded maps (H, W, k), Y = norm · maps over every pixel: what the refit and
        :meth:`psnr_of` need of them, taken once per maps (the last ones asked for are kept)."""
        if self._cross is None or self._cross[0] is not maps:
            m = maps.reshape(self.h * self.w, maps.shape[2])
            x = self.an.values.reshape(-1, self.c)
            nrm = self.norm
            self._cross = (maps, (m.sum(axis=0) * nrm, (m.T @ m) * (nrm * nrm), cross_product(m, x) * nrm))
        return self._cross[1]

    def _sum_x(self) -> np.ndarray:
        """Σ over the pixels of the original's values (C,), taken once (with :meth:`_pixel_moments`)."""
        return self._pixel_moments()[1] + self.h * self.w * self.fit.mean

    def _pixel_moments(self) -> tuple[float, np.ndarray]:
        """(Σ ‖x − c‖², Σ (x − c)) over the pixels, c the PCA mean, taken once: from the sums the float64
        conversion took about its shift s (x − c = (x − s) − d, d = c − s), else a pass of small blocks (d = 0)."""
        if self._moments is None:
            c = self.fit.mean
            sums = self.an.sums or (c, *block_sums(self.an.values.reshape(-1, self.c), c))
            shift, total, squares = sums
            n, d = self.h * self.w, c - shift
            self._moments = (squares - 2.0 * float(d @ total) + n * float(d @ d), total - n * d)
        return self._moments

    def measure(self, k: int, q: int, beta: float) -> Encoded:
        data, maps, mean, basis = self.build(k, q, beta)
        return Encoded(data, k, q, self.psnr_of(maps, mean, basis))

    def psnr_of(self, maps: np.ndarray, mean: np.ndarray, basis: np.ndarray) -> float:
        """:func:`hsicodec.metrics.psnr` (over the valid values) of the cube :func:`reconstruct` rebuilds from
        decoded maps (H, W, k), a mean and a basis, taken a block of pixels at a time: no cube-sized
        temporaries (the rate search measures a few candidate files per target)."""
        x = self.an.values.reshape(-1, self.c)
        if self.valid is None:
            sse, count = self._sse_from_moments(len(x), *self._map_moments(maps), mean, basis), x.size
        else:
            y = maps.reshape(self.h * self.w, maps.shape[2]) * self.norm
            ok = self.valid.reshape(-1, self.c)
            sse, count = 0.0, 0
            for r in range(0, len(x), PSNR_BLOCK):
                d = x[r : r + PSNR_BLOCK] - (y[r : r + PSNR_BLOCK] @ basis + mean)
                d = d[ok[r : r + PSNR_BLOCK]]
                d = d[np.isfinite(d)]
                sse += float(np.dot(d, d))
                count += d.size
        if sse == 0.0 or count == 0:
            return float("inf")
        if self._range is None:
            if self.valid is None and np.isfinite(self.an.value_range):  # every value finite: the analysis has it
                self._range = float(self.an.value_range)
            else:
                vals = self.an.values if self.valid is None else self.an.values[self.valid]
                vals = vals[np.isfinite(vals)]
                self._range = float(vals.max() - vals.min()) if vals.size else 0.0
        rng = self._range if self._range > 0 else 1.0
        return 10.0 * np.log10(rng * rng / (sse / count))

    def _sse_from_moments(
        self, n: int, sy: np.ndarray, yty: np.ndarray, ytx: np.ndarray, mean: np.ndarray, basis: np.ndarray
    ) -> float:
        """Σ ‖x_i − (y_i B + μ)‖² over the n pixels from second moments: with x and μ taken about the PCA mean
        c, ‖x − c‖² summed once per scene, then Yᵀ(X − c) (k × C, from ``ytx`` = YᵀX), YᵀY and Σ y per
        candidate. No cube-sized product or temporary; the terms cancel to the error's size, which float64
        holds to ~1e-9 of it at any PSNR this codec reaches."""
        c = self.fit.mean
        sq, sx = self._pixel_moments()  # Σ ‖x − c‖², Σ (x − c)
        ytxc = ytx - np.outer(sy, c)  # Yᵀ (X − c)
        mu = mean - c
        sse = (
            sq
            - 2.0 * float(np.sum(ytxc * basis))
            - 2.0 * float(mu @ sx)
            + float(np.sum(yty * (basis @ basis.T)))
            + 2.0 * float((sy @ basis) @ mu)
            + n * float(mu @ mu)
        )
        return max(sse, 0.0)

    def k_candidates(self) -> list:
        """The candidate ks up to the layer's limit, and the limit itself (no dropped component: any quality)."""
        ks = [k for k in MAP_K_CANDIDATES if k <= self.kmax] or [self.kmax]
        return ks + [self.kmax] if self.kmax > MAP_K_READY and ks[-1] != self.kmax else ks

    # -- targets
    def _finest_fitting(self, k: int, budget: float, beta: float, start: int | None = None) -> int | None:
        """Finest step exponent whose predicted file fits the budget. Sizes fall about exponentially as q
        grows, so secant steps on log size from ``start`` (the answer for a neighbouring k or β) land
        within a step or two in ~3 pricings; unit steps then settle the exact boundary."""

        def size(q):
            return self.estimate(k, q, beta)[0]

        if budget <= 0:
            return None
        q = int(min(max(start if start is not None else 0, Q_FINE), Q_COARSE))  # min / max: np.clip takes 12 us
        s = size(q)
        slope = self._log_size_slope  # log2 size per step, as the last search found it
        reach = MAX_MOVE if start is not None else 2 * MAX_MOVE  # from q = 0 the answer is octaves away
        for _ in range(12):
            move = int(min(max(round((np.log2(budget) - np.log2(s)) / slope), -reach), reach))
            reach = MAX_MOVE
            nq = int(min(max(q + move, Q_FINE), Q_COARSE))
            if nq == q:
                break
            ns = size(nq)
            if ns != s and (np.log2(ns) - np.log2(s)) / (nq - q) < 0:
                slope = self._log_size_slope = (np.log2(ns) - np.log2(s)) / (nq - q)
            q, s = nq, ns
        while s > budget:
            if q >= Q_COARSE:
                return None
            q += 1
            s = size(q)
        # one step finer is ~2 % bigger: only look when the file leaves that much room; galloping, then
        # bisection between the last fitting step and the first that does not fit
        if s >= FINER_ROOM * budget:
            return q
        return _finest_from(q, lambda qq: size(qq) <= budget)

    def slope(self, k: int, q: int) -> float:
        """Distortion–rate slope of the k maps around step q: squared error (original units, whole cube)
        saved per extra bit, between the nearest files priced on either side (within a quarter octave,
        usually left by the rate search; priced now when missing). Below effort max one side will do:
        q itself and the neighbour the search left (it prices the step just finer than its answer), which
        saves two pricings of every k scanned."""
        near = [qq for (qq, kk) in self._price_cache if kk == k and 0 < abs(qq - q) <= 8]
        below = max((qq for qq in near if qq < q), default=None)
        above = min((qq for qq in near if qq > q), default=None)
        if not self.betas and below is None and above is None:
            # neither side priced for k (its search landed at once): the near step whose first maps other ks
            # priced already, so that only the maps past those are priced, not all k at two new steps
            partial = [qq for qq in self._map_prices if 0 < abs(qq - q) <= 8]
            if partial:
                nb = max(partial, key=lambda qq: (min(self._map_prices[qq].maps, k), -abs(qq - q), -qq))
                below, above = (nb, q) if nb < q else (q, nb)
        if not self.betas and (below is None) != (above is None):
            below, above = (q, above) if below is None else (below, q)
        below, above = q - 4 if below is None else below, q + 4 if above is None else above
        (b1, e1), (b2, e2) = self._priced(below, k), self._priced(above, k)
        return max((e2 - e1) * self.h * self.w * self.norm**2 / max(8.0 * (b1 - b2), 1e-9), 0.0)

    def best_beta(self, k: int, q: int) -> float:
        """The β of :data:`SPECTRAL_BETAS` that minimises the spectral side information's squared error
        plus its bits times the maps' slope at (k, q) (equal-slope allocation, without a search)."""
        lam = self.slope(k, q)
        n = self.h * self.w * self.c

        def cost(beta):
            data, _, _, _, smse = self.spectral(k, q, beta)
            return n * smse + lam * 8.0 * len(data)

        return min(SPECTRAL_BETAS, key=cost)

    def _betas(self, k: int, budget: float, start: int | None) -> list:
        """(β, finest q fitting the budget) to score for k: every β of the search, or only the best one
        at the slope of the answer for the β the previous k chose."""
        if self.betas:
            out, q = [], start
            for beta in self.betas:
                q = self._finest_fitting(k, budget, beta, q if q is not None else start)
                out.append((beta, q))
            return out
        hint = self._beta_hint
        q = self._finest_fitting(k, budget, hint, start)
        if q is None:
            return [(hint, None)]
        beta = self._beta_hint = self.best_beta(k, q)
        return [(beta, q if beta == hint else self._finest_fitting(k, budget, beta, q))]

    def _scan_k(self, score) -> list:
        """Every point ``score(k)`` returns (a list of (quality, ...) tuples) over the ks worth trying:
        :data:`MAP_K_COARSE` from :data:`MAP_K_START` downwards while quality rises (or the start has no
        point), else upwards until quality fell twice or by over 0.1 dB; when no k at or below the start has
        a point, upwards from the first k that has one; then the ks between the best one's neighbours,
        walking away from it on each side while quality rises."""
        ks = self.k_candidates()
        found: dict = {}

        def best_of(k):
            if k not in found:
                found[k] = score(k)
            return max(found[k])[0] if found[k] else -np.inf

        coarse = [k for k in ks if k in MAP_K_COARSE or k == self.kmax > MAP_K_READY] or ks[:1]
        first = max((i for i, k in enumerate(coarse) if k <= MAP_K_START), default=0)
        best_k = coarse[first]
        for k in reversed(coarse[:first]):  # fewer maps, while that is better (or the start has no point)
            if best_of(best_k) == -np.inf or best_of(k) > best_of(best_k):
                best_k = k
            else:
                break
        up = coarse[first + 1 :] if best_k == coarse[first] else []
        if best_of(best_k) == -np.inf:  # nothing at or below the start (a quality target may need more maps)
            found_k = next((j for j, k in enumerate(coarse[first + 1 :]) if best_of(k) > -np.inf), None)
            if found_k is not None:
                best_k, up = coarse[first + 1 + found_k], coarse[first + 2 + found_k :]
        misses = 0
        for k in up:
            if best_of(k) > best_of(best_k):
                best_k, misses = k, 0
            else:
                misses += 1
                if misses >= 2 or best_of(k) < best_of(best_k) - 0.1:
                    break  # quality falls with k from here on: more maps only thin the bits
        i = coarse.index(best_k)
        lo_k = coarse[i - 1] if i > 0 else 0
        hi_k = coarse[i + 1] if i + 1 < len(coarse) else self.kmax + 1
        for side in (
            sorted(k for k in ks if best_k < k < hi_k),
            sorted((k for k in ks if lo_k < k < best_k), reverse=True),
        ):
            for k in side:
                if best_of(k) <= best_of(best_k):
                    break
                best_k = k
        return [p for pts in found.values() for p in pts]

    @property
    def finer_builds(self) -> bool:
        """Whether a build may go to a finer step than the estimate's (thorough, or filling the budget): then a
        candidate no better at the estimate's step may still win, finer, and must be built."""
        return bool(self.betas) or self.fill_budget

    def _finest_built(self, k: int, q: int, beta: float, budget: int) -> int | None:
        """From the estimate's q, the step whose real file fits the budget: coarser until it fits; when
        thorough also finer while it fits (the estimate was pessimistic, or quantization is RD-optimised and
        saves bytes it does not price), in growing strides, then bisection."""
        fits = lambda qq: len(self.build(k, qq, beta)[0]) <= budget  # noqa: E731
        while not fits(q):
            if q >= Q_COARSE:
                return None
            q += 1
        if not self.finer_builds:
            return q  # a step is ~2 % of the size: close enough below effort max (the learned model saves what
            # the estimate does not price: there the finer steps that still fit are tried too)
        return _finest_from(q, fits)

    def for_bpppb(self, target: float) -> Encoded:
        budget = int(np.floor(target * self.h * self.w * self.c / 8.0))
        start = [None]

        def score(k):
            here = []
            for beta, q in self._betas(k, budget, start[0]):
                if q is not None:
                    here.append((self.estimate(k, q, beta)[1], k, q, beta))
                    start[0] = q
            return here

        scored = self._scan_k(score)
        if not scored:
            raise OptionError(f"--bpppb {target} is below the smallest coefficient-map file of this cube")
        scored.sort(reverse=True)
        best = None
        # the estimate ranks close points a tenth of a dB or so off: measure the best three (thorough), or the
        # best two when the second is predicted within 0.15 dB of the first
        top = scored[:3] if self.betas else [p for p in scored[:2] if p[0] >= scored[0][0] - 0.15]
        for _, k, q, beta in top:
            if best is not None and not self.finer_builds and self.decoded_psnr(k, q, beta) <= best.psnr:
                continue  # no better at the estimate's step, so no better at a coarser one that fits: never coded
            q = self._finest_built(k, q, beta, budget)
            if q is not None:
                cand = self.measure(k, q, beta)
                if best is None or cand.psnr > best.psnr:
                    best = cand
        if best is not None:
            return best
        raise OptionError(f"--bpppb {target} is below the smallest coefficient-map file of this cube")

    def _coarsest_reaching(self, k: int, beta: float, target: float) -> int | None:
        """Coarsest step exponent whose predicted PSNR reaches the target (bisection), None if none does."""
        if self.estimate(k, Q_FINE, beta)[1] < target:
            return None
        lo, hi = Q_FINE, Q_COARSE  # estimate(lo) reaches the target
        if self.estimate(k, hi, beta)[1] >= target:
            return hi
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.estimate(k, mid, beta)[1] >= target:
                lo = mid
            else:
                hi = mid
        return lo

    def for_psnr(self, target: float) -> Encoded:
        def score(k):  # (−predicted bytes, ...) of each β reaching the target
            here = []
            for beta in self.betas or (1.0,):
                q = self._coarsest_reaching(k, beta, target)
                if q is not None and not self.betas:  # one β, at the maps' slope there
                    beta = self.best_beta(k, q)
                    q = self._coarsest_reaching(k, beta, target)
                if q is not None:
                    here.append((-self.estimate(k, q, beta)[0], k, q, beta))
            return here

        feasible = sorted(self._scan_k(score), reverse=True)
        if not feasible:
            raise OptionError(
                f"--psnr {target} dB is above what the coefficient-map layer reaches on this cube "
                f"(about {self.estimate(self.kmax, Q_FINE, 1.0)[1]:.2f} dB)"
            )
        for _, k, q, beta in feasible[:3]:
            for _ in range(8):
                cand = self.measure(k, q, beta)
                if cand.psnr >= target:
                    return cand
                q -= 1
        raise OptionError(
            f"--psnr {target} dB is above what the coefficient-map layer reaches on this cube "
            f"(about {self.estimate(self.kmax, Q_FINE, 1.0)[1]:.2f} dB)"
        )
