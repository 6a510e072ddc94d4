"""The coefficient-map layer behind the layer protocol (:mod:`hsicodec.layers.base`)."""

from __future__ import annotations

from hsicodec.coding.reduce import aligned_window
from hsicodec.errors import HsimHeaderError
from hsicodec.layers.base import DecodeContext, Decoded, LayerEncoder, Scene
from hsicodec.layers.maps import recon
from hsicodec.layers.maps.coding import EC_LEARNED, EC_RANS, MAX_MAPS, MapParams, parse_params
from hsicodec.layers.maps.reduced import decode_maps_reduced
from hsicodec.layers.maps.stages import apply_stages, stages_description, with_stages
from hsicodec.layers.maps.streams import decode_maps

NAME = "maps"
KEYS = frozenset({"rl", "ns", "pf"})  # parameters and code tables (a map, or an array in the compact form), stages
SECTION = "r"  # its stream (in the compact form: the tail of section "c")
BYTES_PER_COEFFICIENT = 32  # the decoder's symbols, classes, dequantized coefficients and temporaries


class MapLayer:
    """The scene's principal-component maps coded directly: CDF 9/7 wavelet, one step for all maps and
    subbands, context-classed Laplace scales (:mod:`hsicodec.layers.maps.coding`). Needs no base model."""

    name = NAME
    keys = KEYS
    needs_model = False
    cost = 1.0
    requires = "a model with a PCA spectral stage and a non-constant cube"
    output = "coefficients"
    bounds_error = False
    alone_options = None
    # a reduced read (ctx.reduce = n) gives the 2^n block means of what the maps' coarse subbands synthesise,
    # decoded from those subbands only (hsicodec.layers.maps.reduced; no post filter at reduced resolution)
    reduces = True

    def applicable(self, scene: Scene) -> bool:
        return scene.analysis.mode == "pca" and not scene.analysis.constant

    def encoder(self, scene: Scene) -> LayerEncoder:
        from hsicodec.layers.maps.encode import MapEncoder

        return MapEncoder(scene)

    def parse(self, codec: dict, header: dict, model: object) -> MapParams | None:
        if "rl" not in codec:
            stray = sorted({"ns", "pf"} & set(codec))
            if stray:
                raise HsimHeaderError(f"header key 'codec.{stray[0]}': a stage of the maps without maps ('codec.rl')")
            return None
        if codec["sp"].get("m", "pca") != "pca":
            raise HsimHeaderError("header key 'codec.rl': a coefficient-map layer needs the PCA spectral stage")
        h, w, c = header["shape"]
        return with_stages(parse_params(codec["rl"], h, w, min(c, MAX_MAPS)), codec)  # optional "ns", "pf"

    def components(self, params: MapParams) -> int:
        return params.k

    def describe(self, params: MapParams) -> dict:
        return (
            {
                "maps": params.k,
                "wavelet_levels": params.levels,
                "step": float(f"{params.step:.6g}"),
                "contexts": "checkerboard" if params.checker else "plain",
                "entropy_coder": {EC_RANS: "rans", EC_LEARNED: "rans, learned entropy model"}.get(
                    params.coder, "constriction"
                ),
                "reconstruction": (
                    f"trained table {recon.NAMES[params.recon_table]}" if params.recon_table else "one offset"
                ),
            }
            | stages_description(params)
            | ({"entropy_model": params.model_id.hex()} if params.coder == EC_LEARNED else {})
        )

    def decode_bytes(self, params: MapParams, ctx: DecodeContext) -> int:
        return BYTES_PER_COEFFICIENT * ctx.shape[0] * ctx.shape[1] * params.k

    def decode(self, params: MapParams, ctx: DecodeContext, window: tuple) -> Decoded:
        key = (NAME, ctx.reduce)  # the whole file's maps at that resolution, kept in ctx.memo for the next window
        maps = ctx.memo.get(key) if ctx.memo is not None else None
        if ctx.reduce:  # the block-mean estimate from the maps' coarse subbands only
            r0, c0, h, w = aligned_window(window, ctx.shape[:2], ctx.reduce)[1]
            if maps is None:
                maps = decode_maps_reduced(
                    ctx.read_section(SECTION), params, ctx.shape[0], ctx.shape[1], ctx.reduce, ctx.threads
                )
        else:
            r0, c0, h, w = window
            if maps is None:
                maps = decode_maps(ctx.read_section(SECTION), params, ctx.shape[0], ctx.shape[1], ctx.threads)
                maps = apply_stages(maps, params)
        if ctx.memo is not None:
            ctx.memo[key] = maps
        return Decoded(coeffs=maps[r0 : r0 + h, c0 : c0 + w])
