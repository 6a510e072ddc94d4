"""The equal-bits decision of the coefficient-map layer's optional stages (:mod:`hsicodec.layers.maps.stages`):
a file with the stages asked for against the file without them, at the same byte budget.

The synthesis is fitted by :mod:`hsicodec.layers.maps.synthfit`, the post filter by
:mod:`hsicodec.layers.maps.postfit`; here the file is rebuilt for the budget less their bytes and kept
only where it measures better.
"""

from __future__ import annotations

import numpy as np

from hsicodec.coding.spectral import decode_spectral
from hsicodec.errors import OptionError
from hsicodec.format import compact
from hsicodec.format.container import decode_hsim, encode_hsim
from hsicodec.layers.base import Encoded, Target
from hsicodec.layers.maps import coding as coefmaps
from hsicodec.layers.maps import postfilter as pf
from hsicodec.layers.maps import streams
from hsicodec.layers.maps.postfit import fit_filter
from hsicodec.layers.maps.synthfit import fit_synthesis

RETRIES = 3


def with_post_bytes(data: bytes, keys: dict) -> bytes:
    """A map-layer file with the header keys ``keys`` of ``codec`` set (everything else byte for byte as it was)."""
    hs = decode_hsim(data)
    header = {key: v for key, v in hs.header.items() if key != "sections"}
    header["codec"] = {**header["codec"], **keys}
    return encode_hsim(header, list(hs.sections.items()))


def decoded_parts(data: bytes, c: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float] | None:
    """(maps (H, W, k), mean, basis, norm) a map-layer file decodes to; None for one on a shared spectral stage."""
    hs = decode_hsim(data)
    h, w = (int(v) for v in hs.header["shape"][:2])
    codec, split = compact.unpack_codec(hs.header["codec"], coefmaps.MAX_MAPS, coefmaps.MAX_LEVELS)
    if "x" in codec["sp"]:
        return None
    p = coefmaps.parse_params(codec["rl"], h, w, min(c, coefmaps.MAX_MAPS))
    if split is None:
        sdata, rdata = hs.sections.get("s", b""), hs.sections.get("r", b"")
    else:
        body = hs.sections["c"]
        sdata, rdata = body[:split], body[split:]
    maps = streams.decode_maps(rdata, p, h, w)
    mean, basis = decode_spectral(sdata, codec["sp"], c, p.k)
    return maps, mean, basis, float(codec["norm"])


def _filtered(search, enc: Encoded, stages: tuple[str, ...], synthesis_model=None) -> tuple[bytes, float] | None:
    """(the file with the best of each stage asked for, its PSNR), or None where none pays on it. The
    synthesis (``synthesis_model``, default the bundled network) is fitted first; the post filter then filters
    the maps it corrected, as the decoder does."""
    parts = decoded_parts(enc.data, search.c)
    if parts is None:
        return None
    maps, mean, basis, norm = parts
    lam = search.slope(enc.k, enc.step)
    keys = {}
    if "synthesis" in stages:
        synth = fit_synthesis(maps, search.an.values, mean, basis, norm, lam, search.valid, synthesis_model)
        if synth is not None:
            keys["ns"] = synth.data
            maps = synth.synth.apply(maps)
    if "post_filter" in stages:
        fit = fit_filter(maps, search.an.values, mean, basis, norm, lam, search.valid)
        if fit is not None:
            keys[pf.KEY] = fit.data
            maps = fit.post.apply(maps)
    if not keys:
        return None
    return with_post_bytes(enc.data, keys), search.psnr_of(maps, mean, basis)


def post_filtered(
    search, target: Target, best: Encoded, stages: tuple[str, ...] = ("post_filter",), synthesis_model=None
) -> Encoded:
    """The better at equal bits of ``best`` (the file without stages, for a rate target) and a file with the
    ``stages`` (of :data:`hsicodec.layers.maps.stages.STAGES`) within the same byte budget (the maps coded
    for the budget less the stages' bytes). Quality targets and files on a shared spectral stage are
    returned as they are."""
    if target.bpppb is None:
        return best
    n = search.h * search.w * search.c
    budget = int(np.floor(target.bpppb * n / 8.0))
    first = _filtered(search, best, stages, synthesis_model)
    if first is None:
        return best
    extra = len(first[0]) - len(best.data)
    cand: tuple[bytes, float] | None = None
    for _ in range(RETRIES):
        try:
            enc = search.for_bpppb((budget - extra) * 8.0 / n)
        except OptionError:
            return best
        cand = _filtered(search, enc, stages, synthesis_model)
        if cand is None:
            return best
        if len(cand[0]) <= budget:
            break
        extra += len(cand[0]) - budget
        cand = None
    if cand is None or not cand[1] > best.psnr:
        return best
    return Encoded(cand[0], enc.k, enc.step, cand[1], best.layer, dict(best.stats))
