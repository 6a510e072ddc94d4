"""The network layer's encoder behind the layer protocol: fit the latents once, search a file for the target,
and at effort max refine it (longer inner loops, then a rate–distortion refinement of the latents)."""

from __future__ import annotations

import time

import numpy as np

from hsicodec.coding import entropy
from hsicodec.layers.base import Encoded, Scene, Target
from hsicodec.layers.network.fit import fit_latents, rd_refine
from hsicodec.layers.network.layout import NAME, STEPS_PER_OCTAVE
from hsicodec.layers.network.search import RateSearch, search_codings

MAX_INNER_STEPS = (24, 48)  # effort max also tries these longer inner loops and keeps the best file


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
        refinement of the best fit's latents at its operating point."""
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
        progress = s.progress
        if progress:
            progress(0.3)
        offsets = search.offsets
        assert offsets is not None  # a search over latents (grids) measures the per-level steps
        refined = rd_refine(
            self.model,
            grids,
            self.an.targets,
            search.channel_weight(best.k),
            best.step,
            offsets,
            search.slope(best.k, best.step),
            s.adam_steps,
            threads=s.threads,
            backend=self.sbackend,
            progress=(lambda f: progress(0.3 + 0.6 * f)) if progress else None,
            coding=search.coding,
        )
        search2 = RateSearch(
            self.model, self.an, refined, s.base_header, s.threads, self.sbackend, offsets, s.extra_sections,
            search.coding, s.valid,
        )  # fmt: skip
        if target.bpppb is not None:
            cand = search2.for_bpppb(target.bpppb)
        else:
            assert target.psnr is not None  # a Target sets exactly one of them
            cand = search2.for_psnr(target.psnr)
        return self._encoded(cand) if target.better(cand, best) else best

    def estimate(self, target: Target) -> float | None:
        return None  # no cheap prediction: below effort max this layer codes only when it goes first
