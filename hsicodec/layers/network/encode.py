"""The network layer's encoder behind the layer protocol: fit the latents once, search a file for the target,
and at effort max refine it (longer inner loops, then a rate–distortion refinement of the latents)."""

from __future__ import annotations

import time

import numpy as np

from hsicodec.coding import entropy
from hsicodec.errors import OptionError
from hsicodec.layers.base import Encoded, Scene, Target
from hsicodec.layers.network.fit import fit_latents, rd_refine
from hsicodec.layers.network.layout import NAME, STEPS_PER_OCTAVE
from hsicodec.layers.network.search import STEP_GRID, RateSearch, search_codings

MAX_INNER_STEPS = (24, 48)  # effort max also tries these longer inner loops and keeps the best file
REFINE_PROBES = 3  # RD refinements at most (at a few steps and λ), sharing the effort's Adam steps
REFINE_SAVING = 0.8  # the refinement's file at a step, over the unrefined one's (measured 0.70–0.83)
REFINE_LAMBDA_UP = 8.0  # a step whose file was over the budget by x: a second probe at λ × (1 + 8x), ≤ 1.5


class NetworkEncoder:
    """One scene's network-layer encoder. ``codings``: the latent codings it may choose from (names of
    :data:`hsicodec.layers.network.search.LATENT_CODINGS`; None: by image size)."""

    def __init__(self, scene: Scene, codings: tuple | None = None):
        if scene.model is None:
            raise ValueError("the network layer needs a base model")
        self.scene, self.model, self.an = scene, scene.model, scene.analysis
        self.codings = codings
        self.cw = None  # plain models: only the outputs that carry a band count in the loss
        if self.an.mode == "id":
            self.cw = np.zeros(self.model.n_out, np.float32)
            self.cw[self.an.bands] = 1.0
        self.sbackend = "numpy" if scene.backend == "torch" else scene.backend  # the search runs without torch
        self.grids: list | None = None
        self.search: RateSearch | None = None
        self.inner_steps = scene.inner_steps
        self.fit_seconds = 0.0

    def _fit(self) -> list:
        if self.grids is None:
            s, progress = self.scene, self.scene.progress
            t0 = time.perf_counter()
            self.grids = (
                fit_latents(
                    self.model,
                    self.an.targets,
                    s.inner_steps,
                    self.cw,
                    threads=s.threads,
                    progress=(lambda f: progress(0.2 * f)) if progress else None,
                    backend=s.backend,
                )
                if not self.an.constant
                else []
            )
            self.fit_seconds = time.perf_counter() - t0
        return self.grids

    def _search(self, grids: list, target: Target) -> tuple[Encoded, RateSearch]:
        s = self.scene
        return search_codings(
            self.model, self.an, grids, s.base_header, s.threads, self.sbackend, s.extra_sections, target.bpppb,
            target.psnr, s.valid, self.codings,
        )  # fmt: skip

    def _encoded(self, cand: Encoded) -> Encoded:
        cand.layer = NAME
        cand.stats = {
            "step": entropy.step_from_exponent(cand.step, STEPS_PER_OCTAVE),
            "inner_steps": self.inner_steps,
            "fit_seconds": self.fit_seconds,
        }
        return cand

    def encode(self, target: Target) -> Encoded:
        best, self.search = self._search(self._fit(), target)
        return self._encoded(best)

    def improve(self, target: Target, best: Encoded) -> Encoded | None:
        """Longer inner loops from the fit (kept where they give a better file), then the rate–distortion
        refinement of the best fit's latents (:meth:`_refine_for`); the better file for the target."""
        s, grids, search = self.scene, self.grids, self.search
        if not s.adam_steps or not grids or not best.k or search is None:
            return None
        g, done = grids, self.inner_steps
        for n in (n for n in MAX_INNER_STEPS if n > self.inner_steps):
            g = fit_latents(self.model, self.an.targets, n - done, self.cw, threads=s.threads, backend=self.sbackend,
                            start=g)  # fmt: skip
            done = n
            cand, s_n = self._search(g, target)
            if cand.k and target.better(cand, best):
                self.inner_steps = n
                best, grids, search = self._encoded(cand), g, s_n
        if s.progress:
            s.progress(0.3)
        refined = self._refine_for(target, best, grids, search)
        return self._encoded(refined) if refined is not None and target.better(refined, best) else best

    def _refine_for(self, target: Target, best: Encoded, grids: list, search: RateSearch) -> Encoded | None:
        """The best file for the target from latents refined for D + λ·R (:func:`rd_refine`) at a few steps.

        The refinement saves rate at its step Δ (about a fifth of the latent bytes, for a little more
        distortion), so the file that meets the target sits at a finer step than ``best``'s: a rate target
        starts where the unrefined file is a fifth over the budget and walks from there (over the budget:
        a larger λ at the same step, then one step coarser; under it at λ = slope: one step finer); a quality target
        first refines at ``best``'s step to measure the PSNR the refinement costs. The refined latents lie
        on their step's lattice, so each probe's file is measured at its own step (re-quantizing them on
        another step loses the gain). None when no probe meets the target."""
        s, k, q = self.scene, best.k, best.step
        n_probe = max(s.adam_steps // REFINE_PROBES, 1)
        probes: dict[tuple[int, float], Encoded | None] = {}
        progress = s.progress

        def probe(qq: int, lam_factor: float = 1.0) -> Encoded | None:
            if (qq, lam_factor) not in probes:
                offsets = search.offsets
                assert offsets is not None  # a search over latents (grids) measures the per-level steps
                done = len(probes)
                refined = rd_refine(
                    self.model, grids, self.an.targets, search.channel_weight(k), qq, offsets,
                    lam_factor * search.slope(k, qq), n_probe, threads=s.threads, backend=self.sbackend,
                    coding=search.coding,
                    progress=(lambda f: progress(0.3 + 0.6 * (done + f) / REFINE_PROBES)) if progress else None,
                )  # fmt: skip
                rs = RateSearch(self.model, self.an, refined, s.base_header, s.threads, self.sbackend, offsets,
                                s.extra_sections, search.coding, s.valid)  # fmt: skip
                try:
                    probes[qq, lam_factor] = rs.measure(k, qq)
                except OptionError:  # step too fine for the latent range
                    probes[qq, lam_factor] = None
            return probes[qq, lam_factor]

        if target.bpppb is not None:
            budget = target.budget(s.n_values)
            start = search.finest_step(k, int(budget / REFINE_SAVING))
            qq, lam_factor = (q if start is None else min(start, q)), 1.0
            while len(probes) < REFINE_PROBES and (qq, lam_factor) not in probes:
                e = probe(qq, lam_factor)
                if e is not None and len(e.data) <= budget:
                    if lam_factor != 1.0:  # one step finer was over the budget at λ = slope
                        break
                    qq -= 1
                elif lam_factor == 1.0 and e is not None:  # a larger λ by the overshoot, at the same step
                    lam_factor = float(np.clip(1.0 + REFINE_LAMBDA_UP * (len(e.data) / budget - 1.0), 1.05, 1.5))
                else:
                    qq, lam_factor = qq + 1, 1.0
        else:
            psnr = target.psnr
            assert psnr is not None  # a Target sets exactly one of them
            first = probe(q)
            loss = best.psnr - first.psnr if first is not None else 0.0
            qq = q
            while qq > STEP_GRID[-1] and search.predicted_psnr(k, qq) < psnr + loss:
                qq -= 1
            while len(probes) < REFINE_PROBES and qq > STEP_GRID[-1]:
                e = probe(qq)
                if e is not None and e.psnr >= psnr:
                    break
                qq -= 1  # under the target: one step finer
        met = [e for e in probes.values() if e is not None and target.met(e, s.n_values)]
        if not met:
            return None
        out = met[0]
        for e in met[1:]:
            if target.better(e, out):
                out = e
        return out

    def estimate(self, target: Target) -> float | None:
        return None  # no cheap prediction: below effort max this layer codes only when it goes first
