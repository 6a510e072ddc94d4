"""The layer protocol: a layer defined here, registered with one line, is chosen, rate-controlled and decoded
by the codec through the protocol alone; the built-in layers follow it too."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

import hsicodec
from hsicodec.coding.spectral import encode_spectral, matched_exponents, reconstruct
from hsicodec.data import sample_path
from hsicodec.errors import HsimError, OptionError
from hsicodec.format.grid import CODEC_NAME
from hsicodec.layers import registry
from hsicodec.layers.base import DecodeContext, Decoded, Encoded, Layer, Scene, Target, psnr_of, search_step


class TinyEncoder:
    """Uniform quantization of the first k principal-component maps, int16 symbols compressed by zlib."""

    K = 4

    def __init__(self, scene: Scene):
        self.scene = scene
        an = scene.analysis
        fit = an.fit
        self.k = min(self.K, fit.basis.shape[0])
        me, be = matched_exponents(fit, self.k, max(fit.dropped_variance(self.k) / scene.shape[2], 1e-12))
        self.sdata, self.sparams, self.mean, self.basis = encode_spectral(fit.mean, fit.basis[: self.k], me, be)
        self.maps = an.targets[..., : self.k].astype(np.float64)

    def build(self, q: int) -> Encoded:
        step = 2.0 ** (q / 4)
        sym = np.clip(np.round(self.maps / step), -32768, 32767).astype("<i2")
        codec = {"id": CODEC_NAME, "norm": self.scene.analysis.norm, "sp": self.sparams, "tq": q, "tk": self.k}
        data = self.scene.file(codec, [("s", self.sdata), ("x", zlib.compress(sym.tobytes(), 9))], model=False)
        rec = reconstruct(sym * step, self.scene.analysis.norm, self.mean, self.basis, (0, self.scene.shape[2]))
        return Encoded(data, self.k, q, psnr_of(self.scene.analysis.values, rec, self.scene.valid), layer="tiny")

    def encode(self, target: Target) -> Encoded:
        return search_step(self.build, target, self.scene.n_values, coarse=0, fine=-40)

    def improve(self, target: Target, best: Encoded):
        return None

    def estimate(self, target: Target):
        return None


class TinyLayer:
    name = "tiny"
    keys = frozenset({"tq", "tk"})
    needs_model = False
    cost = 0.5  # cheaper than the map layer: below effort max it goes first
    requires = "a PCA spectral stage"
    alone_options = None
    output = "coefficients"
    bounds_error = False

    def applicable(self, scene: Scene) -> bool:
        return scene.analysis.mode == "pca" and not scene.analysis.constant

    def encoder(self, scene: Scene) -> TinyEncoder:
        return TinyEncoder(scene)

    def parse(self, codec: dict, header: dict, model):
        if "tq" not in codec:
            return None
        if type(codec.get("tk")) is not int or not 1 <= codec["tk"] <= header["shape"][2]:
            raise HsimError("header key 'codec.tk': bad")
        return (codec["tq"], codec["tk"])

    def components(self, params) -> int:
        return params[1]

    def describe(self, params) -> dict:
        return {"step_exponent": params[0], "components": params[1]}

    def decode_bytes(self, params, ctx: DecodeContext) -> int:
        return 8 * ctx.shape[0] * ctx.shape[1] * params[1]

    def decode(self, params, ctx: DecodeContext, window: tuple) -> Decoded:
        q, k = params
        h, w, _ = ctx.shape
        data = zlib.decompress(ctx.read_section("x"))
        if len(data) != 2 * h * w * k:
            raise HsimError("section 'x': wrong size")
        sym = np.frombuffer(data, "<i2").reshape(h, w, k)
        r0, c0, hh, ww = window
        return Decoded(coeffs=sym[r0 : r0 + hh, c0 : c0 + ww] * 2.0 ** (q / 4))


@pytest.fixture
def tiny():
    layer = registry.register(TinyLayer())  # the one registration line a new layer needs
    yield layer
    registry.unregister("tiny")


@pytest.fixture(scope="module")
def cube():
    return np.ascontiguousarray(np.load(sample_path())[:32, :40, :60])


def test_the_built_in_layers_follow_the_protocol():
    for name in ("maps", "network"):
        layer = registry.get_layer(name)
        assert isinstance(layer, Layer) and layer.name == name and layer.keys


def test_a_layer_defined_in_a_test_codes_and_decodes_through_the_protocol(tiny, cube):
    stats: dict = {}
    data = hsicodec.compress(cube, layer="tiny", bpppb=0.3, stats=stats)
    assert stats["layer"] == "tiny" and len(data) * 8 <= 0.3 * cube.size
    header = hsicodec.HsimReader(data).header
    assert "tq" in header["codec"] and "model" not in header  # a layer that needs no model names none
    out, _ = hsicodec.decompress(data)
    assert out.shape == cube.shape and out.dtype == cube.dtype
    assert abs(hsicodec.psnr(cube, out) - stats["psnr"]) < 0.05  # the layer measured what the codec decodes
    part, _ = hsicodec.decompress(data, window=(3, 5, 10, 12), bands=(7, 20))
    assert np.array_equal(part, out[3:13, 5:17, 7:20])


def test_rate_control_works_on_the_new_layer(tiny, cube):
    sizes = []
    for rate in (0.1, 0.2, 0.4):
        st: dict = {}
        data = hsicodec.compress(cube, layer="tiny", bpppb=rate, stats=st)
        assert 8 * len(data) <= rate * cube.size
        sizes.append((len(data), st["psnr"]))
    assert sizes[0][1] < sizes[1][1] < sizes[2][1]
    st = {}
    hsicodec.compress(cube, layer="tiny", psnr=45.0, stats=st)
    assert st["psnr"] >= 45.0 and 8 * st["bytes"] < 0.4 * cube.size


def test_best_of_the_layers_includes_the_new_layer(tiny, cube):
    st: dict = {}
    hsicodec.compress(cube, bpppb=0.2, stats=st)  # default effort: cheapest layer first, tiny meets the target
    assert st["layer"] == "tiny" and st["first_wins"]
    st = {}
    hsicodec.compress(cube, bpppb=0.05, stats=st)  # tiny's files cannot get this small: the next layer codes it
    assert st["layer"] == "maps"
    st = {}
    hsicodec.compress(cube, bpppb=0.2, stats=st, latent_codings=("maps",))
    assert st["layer"] == "maps" and st["psnr"] > 45.0


def test_without_its_registration_the_new_layers_files_are_refused(cube):
    registry.register(TinyLayer())
    try:
        data = hsicodec.compress(cube, layer="tiny", bpppb=0.3)
    finally:
        registry.unregister("tiny")
    with pytest.raises(HsimError, match="unknown key"):
        hsicodec.decompress(data)
    with pytest.raises(OptionError, match="unknown layer 'tiny'"):
        hsicodec.compress(cube, layer="tiny", bpppb=0.3)


def test_targets_compare_files_the_way_the_codec_keeps_them():
    small, big = Encoded(b"x" * 10, 1, 0, 30.0), Encoded(b"x" * 20, 1, 0, 40.0)
    assert Target(bpppb=1.0).better(big, small) and not Target(bpppb=1.0).better(small, big)
    assert Target(psnr=30.0).better(small, big) and not Target(psnr=30.0).better(big, small)
    with pytest.raises(OptionError):
        Target()


def test_at_effort_max_every_layer_encodes_and_the_best_file_wins(tiny, cube):
    st: dict = {}
    hsicodec.compress(cube, bpppb=0.2, effort="max", model="hsi-grid-v1", stats=st)
    assert st["layer"] == "maps" and not st["first_wins"]  # tiny goes first but loses by ~7 dB
