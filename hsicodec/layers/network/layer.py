"""The network layer behind the layer protocol (:mod:`hsicodec.layers.base`)."""

from __future__ import annotations

from hsicodec.layers.base import DecodeContext, Decoded, LayerEncoder, Scene
from hsicodec.layers.network.decode import NetworkParams, decode_latents, parse_params, synthesize
from hsicodec.layers.network.layout import KEYS, NAME, SECTION
from hsicodec.layers.network.model import CodecModel

# bytes the decoder allocates per latent symbol (scales, symbols, dequantized grid, temporaries)
BYTES_PER_LATENT = 32


class NetworkLayer:
    """Latent grids of the shared, meta-learned modulated SIREN (the paper's method and its extensions).

    The network decodes each pixel's latent to its first k normalised principal-component coefficients
    (``pca`` models) or to its band values (``id`` models, the paper's plain method)."""

    name = NAME
    keys = KEYS
    needs_model = True
    cost = 10.0  # the latent fit: several network passes over the scene
    requires = "a base model"
    output = "coefficients"
    bounds_error = False
    alone_options = ("haar+klt", "plain")  # forced alone, the layer tries every coding of its latents

    def applicable(self, scene: Scene) -> bool:
        return scene.model is not None

    def encoder(self, scene: Scene) -> LayerEncoder:
        from hsicodec.layers.network.encode import NetworkEncoder

        return NetworkEncoder(scene, scene.options.get(self.name))

    def parse(self, codec: dict, header: dict, model: CodecModel | None) -> NetworkParams | None:
        p = parse_params(codec, header, model)
        return p if p.k else None

    def components(self, params: NetworkParams) -> int:
        return params.k

    def describe(self, params: NetworkParams) -> dict:
        return {
            "components": params.k,
            "latent_steps": [float(f"{s:.6g}") for s in params.steps],
            "haar_levels": params.wavelet,
            "channel_rotation": params.rotations is not None,
        }

    def decode_bytes(self, params: NetworkParams, ctx: DecodeContext) -> int:
        assert ctx.model is not None
        return BYTES_PER_LATENT * ctx.model.layout.count(ctx.shape[0], ctx.shape[1])

    def decode(self, params: NetworkParams, ctx: DecodeContext, window: tuple) -> Decoded:
        assert ctx.model is not None
        h, w, _ = ctx.shape
        grids = decode_latents(ctx.read_section(SECTION), ctx.model, params, h, w)
        k = ctx.components if ctx.codec.get("sp", {}).get("m", "pca") == "id" else params.k
        coeffs = synthesize(
            ctx.model, grids, k, h, w, window, backend=ctx.backend, threads=ctx.threads, progress=ctx.progress
        )
        return Decoded(coeffs=coeffs)
