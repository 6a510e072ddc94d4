"""The predictive layer behind the layer protocol: lossless and error-bounded coding (:mod:`hsicodec.layers.base`)."""

from __future__ import annotations

import numpy as np

from hsicodec.layers.base import DecodeContext, Decoded, LayerEncoder, Scene
from hsicodec.layers.predictive.lattice import KEYS, NAME, SECTION, LatticeParams, parse_params

BYTES_PER_INDEX = 4  # the decoded lattice indices (int32), at most the whole cube's


class PredictiveLayer:
    """Every value on a lattice of step 2E + 1 (integers; E = 0 is lossless) or about 2E (floats), the lattice
    indices coded losslessly by adaptive spatial–spectral prediction and adaptive entropy coding
    (:mod:`hsicodec.layers.predictive.coder`). It gives the band values themselves, needs no spectral stage
    and no model, and is the only layer that bounds every value's error."""

    name = NAME
    keys = KEYS
    needs_model = False
    cost = 20.0  # below effort max: after the lossy layers (it wins at high rates, where its estimate calls it)
    requires = "a cube whose values fit the lattice"
    alone_options = None
    output = "values"
    bounds_error = True

    def applicable(self, scene: Scene) -> bool:
        return scene.analysis.values.size > 0

    def encoder(self, scene: Scene) -> LayerEncoder:
        from hsicodec.layers.predictive.encode import PredictiveEncoder

        return PredictiveEncoder(scene)

    def parse(self, codec: dict, header: dict, model: object) -> LatticeParams | None:
        return parse_params(codec) if "pe" in codec else None

    def components(self, params: LatticeParams) -> int:
        return 0

    def describe(self, params: LatticeParams) -> dict:
        return {"max_error": params.error, "lossless": params.error == 0, "step": params.step}

    def decode_bytes(self, params: LatticeParams, ctx: DecodeContext) -> int:
        h, w, c = ctx.shape
        return BYTES_PER_INDEX * h * w * c

    def decode(self, params: LatticeParams, ctx: DecodeContext, window: tuple) -> Decoded:
        from hsicodec.layers.predictive import coder

        r0, c0, h, w = window
        a, b = ctx.bands
        dtype = np.dtype(ctx.header["dtype"])
        affine = params.whole_affine(dtype)
        if affine is not None:  # integer cubes: decoded straight into the output dtype
            out = np.empty((h, w, b - a), dtype)
            coder.decode_into(
                ctx.read_section(SECTION), ctx.shape, params.max_value, params.rows_per_block, out, (r0, c0, a),
                offset=affine[0], step=affine[1], threads=ctx.threads,
            )  # fmt: skip
            return Decoded(values=out)
        u = coder.decode(
            ctx.read_section(SECTION), ctx.shape, params.max_value, params.rows_per_block, rows=(r0, r0 + h),
            band_stop=b, threads=ctx.threads,
        )  # fmt: skip
        return Decoded(values=params.values(u[:, c0 : c0 + w, a:b]))
