"""The coefficient-map layer's optional stages after the maps are decoded, in decoding order: the nonlinear
synthesis (``codec.ns``, :mod:`hsicodec.layers.maps.synthesis`), then the post filter (``codec.pf``,
:mod:`hsicodec.layers.maps.postfilter`). Each is kept by the encoder only where it pays at equal bits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hsicodec.layers.maps import postfilter as pf
from hsicodec.layers.maps import synthesis as ns
from hsicodec.layers.maps.coding import MapParams

STAGES = ("synthesis", "post_filter")  # the encoder's option names, in decoding order


@dataclass
class StagedMapParams(MapParams):
    """A map layer's parameters with its synthesis and post filter, where the file has them."""

    synth: ns.Synthesis | None = None
    post: pf.PostFilter | None = None


def with_stages(params: MapParams, codec: dict) -> MapParams:
    """The map layer's parameters with the stages the file has (``codec.ns``, ``codec.pf``), else as they are."""
    if ns.KEY not in codec and pf.KEY not in codec:
        return params
    synth = ns.parse_synthesis(codec[ns.KEY], params.k) if ns.KEY in codec else None
    post = pf.parse_post(codec[pf.KEY], params.k, params.q) if pf.KEY in codec else None
    return StagedMapParams(**vars(params), synth=synth, post=post)


def apply_stages(maps: np.ndarray, params: MapParams) -> np.ndarray:
    """Decoded maps (H, W, k) through the file's synthesis and post filter, where it has them."""
    synth, post = getattr(params, "synth", None), getattr(params, "post", None)
    if synth is not None:
        maps = synth.apply(maps)
    return maps if post is None else post.apply(maps)


def stages_description(params: MapParams) -> dict:
    """The stages' entries of the layer's description (``hsicodec info``): {} without any."""
    synth, post = getattr(params, "synth", None), getattr(params, "post", None)
    out: dict = {}
    if synth is not None:
        out |= {"synthesis_maps": synth.m, "synthesis_model": synth.model.sha256}
    if post is not None:
        out |= {"post_filter_maps": post.m, "post_filter_cross": post.has_cross}
    return out
