"""The coefficient-map layer's encoder behind the layer protocol: its (k, Δ, β) search for a target."""

from __future__ import annotations

from hsicodec.coding import entropy
from hsicodec.errors import OptionError
from hsicodec.layers.base import Encoded, Scene, Target
from hsicodec.layers.maps.coding import STEPS_PER_OCTAVE
from hsicodec.layers.maps.search import SPECTRAL_BETAS, MapSearch
from hsicodec.layers.maps.stages import STAGES

MAP_DEADZONES = (0.4, 0.5)  # map-layer rounding thresholds: the first at default effort, both at max (with RDOQ
# the threshold matters little: 0.35–0.5 were within 0.02 dB on Jasper Ridge and Pavia Centre)
NAME = "maps"
RECON_TABLE = 1  # the reconstruction table default files use (header rt; spec/hsim.md 10.13)


class MapEncoder:
    """One scene's coefficient-map encoder: below effort max one rounding threshold and the spectral
    precision at the maps' slope; at effort max both thresholds, a search over the spectral precision,
    rate–distortion optimised quantization, and the synthesis and post filter wherever they pay."""

    def __init__(self, scene: Scene):
        self.scene = scene

    def encode(self, target: Target) -> Encoded:
        s = self.scene
        best: Encoded | None = None
        deadzones = MAP_DEADZONES if s.thorough else MAP_DEADZONES[:1]
        opts = s.options.get(NAME) or {}
        learned = None
        if opts.get("learned_entropy"):  # the learned entropy model (ec = 2), where it saves bytes
            from hsicodec.layers.maps.lem import default_model

            learned = default_model()
        search = MapSearch(
            s.model, s.analysis, s.base_header, s.extra_sections, s.valid, betas=SPECTRAL_BETAS if s.thorough else (),
            shared=opts.get("shared"), learned=learned, fill_budget=bool(opts.get("fill_budget")),
            recon_table=RECON_TABLE if opts.get("recon_table", True) else 0,
        )  # fmt: skip
        for dz in deadzones:
            one = search.with_deadzone(dz)
            try:
                if target.bpppb is not None:
                    cand = one.for_bpppb(target.bpppb)
                else:
                    assert target.psnr is not None  # a Target sets exactly one of them
                    cand = one.for_psnr(target.psnr)
            except OptionError:
                if best is None and dz == deadzones[-1]:
                    raise
                continue
            if best is None or target.better(cand, best):
                best, best_search = cand, one
        assert best is not None
        # the synthesis and the post filter where asked for, and always at effort max; kept where they pay
        stages = tuple(name for name in STAGES if opts.get(name) or s.thorough)
        if stages:
            from hsicodec.layers.maps.stagefit import post_filtered

            best = post_filtered(best_search, target, best, stages, opts.get("synthesis_model"))
        best.layer = NAME
        best.stats = {"step": entropy.step_from_exponent(best.step, STEPS_PER_OCTAVE)}
        return best

    def improve(self, target: Target, best: Encoded) -> Encoded | None:
        return None  # effort max already searched thoroughly in encode

    def estimate(self, target: Target) -> float | None:
        return None  # no cheap prediction: below effort max this layer codes only when it goes first
