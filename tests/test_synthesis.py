"""The map layer's optional nonlinear synthesis (codec.ns): the bundled network, the torch-free encoder's
gradient (against finite differences and torch), its wire format, round trips with and without it, and
malformed parameters refused with clear errors."""

from __future__ import annotations

import numpy as np
import pytest

import hsicodec
from hsicodec.codec.cube import compress
from hsicodec.coding.spectral import reconstruct
from hsicodec.errors import HsimHeaderError, ModelError, ModelFormatError
from hsicodec.format.container import decode_hsim, encode_hsim
from hsicodec.layers.maps import synthesis as ns
from hsicodec.layers.maps import synthfit
from hsicodec.layers.maps.stagefit import decoded_parts, with_post_bytes
from hsicodec.models.modelfile import ModelFile


@pytest.fixture(scope="module")
def model() -> ns.SynthesisModel:
    return ns.default_model()


def _set_ns(data: bytes, value) -> bytes:
    hs = decode_hsim(data)
    header = {k: v for k, v in hs.header.items() if k != "sections"}
    header["codec"] = {**header["codec"], "ns": value}
    return encode_hsim(header, list(hs.sections.items()))


def _small_model(seed: int = 0, k_in: int = 3, width: int = 5, d: int = 2, s: int = 3) -> ns.SynthesisModel:
    rng = np.random.default_rng(seed)
    a = lambda *shape: np.asarray(rng.normal(0, 0.5, shape), np.float32)  # noqa: E731
    return ns.SynthesisModel(a(width, k_in), a(width), a(width, width), a(width), a(d, width), a(d), a(2 * width, s),
                             np.full(s, -1.0, np.float32), w0=3.0, sha256="0" * 64)  # fmt: skip


def test_bundled_model_card(model):
    from hsicodec.models.registry import default_registry

    mf = default_registry().load(ns.DEFAULT_ALIAS)
    assert mf.card["alias"] == ns.DEFAULT_ALIAS and mf.sha256 == model.sha256
    assert not set(mf.card["train_scenes"]) & set(mf.card["val_scenes"])  # validation scenes never trained on
    assert {r["scene"] for r in mf.card["validation"]} == set(mf.card["val_scenes"])  # and its validation RD
    assert (model.k_in, model.n_features, model.n_shifts) == (8, 8, 8)


def test_gradient_matches_finite_differences():
    m = _small_model()
    rng = np.random.default_rng(1)
    u, r, s = rng.normal(size=(200, 3)), rng.normal(size=(200, 4)), rng.normal(0, 0.3, 3)
    _, grad = synthfit.loss_and_gradient(m, u, r, s)
    eps = 1e-6
    num = [(synthfit.loss_and_gradient(m, u, r, s + eps * e)[0] - synthfit.loss_and_gradient(m, u, r, s - eps * e)[0])
           / (2 * eps) for e in np.eye(3)]  # fmt: skip
    np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-8)


def test_loss_matches_torch_training_loss():
    torch = pytest.importorskip("torch")
    m = _small_model(2)
    rng = np.random.default_rng(3)
    u, r, s = rng.normal(size=(150, 3)), rng.normal(size=(150, 4)), rng.normal(0, 0.3, 3)
    t = {n: torch.tensor(np.asarray(getattr(m, n), np.float64)) for n in ("w1", "b1", "w2", "b2", "w3", "b3", "mod")}
    st = torch.tensor(s, requires_grad=True)
    mod = t["mod"] @ st
    h = torch.sin(3.0 * (torch.tensor(u) @ t["w1"].T + t["b1"] + mod[:5]))
    f = torch.sin(h @ t["w2"].T + t["b2"] + mod[5:]) @ t["w3"].T + t["b3"]
    f = f - f.mean(dim=0)
    g = f.T @ f
    g = g + synthfit.RIDGE * (torch.trace(g) / 2 + 1e-12) * torch.eye(2, dtype=torch.float64)
    rt = torch.tensor(r)
    fr = f.T @ rt
    loss = torch.log(((rt * rt).sum() - (fr * torch.linalg.solve(g, fr)).sum()) / (rt * rt).sum())
    loss.backward()
    ours, grad = synthfit.loss_and_gradient(m, u, r, s)
    assert ours == pytest.approx(float(loss.detach()), rel=1e-10)
    np.testing.assert_allclose(grad, st.grad.numpy(), rtol=1e-8, atol=1e-12)


def test_wire_round_trip(model):
    ident = bytes.fromhex(model.sha256[:16])
    readout = np.arange(-13, 14).reshape(9, 3)
    data = ns.encode_synthesis(ident, np.array([0, 1, -1, 127, -127, 5, 0, 2]), readout, 9)
    syn = ns.parse_synthesis(data, k=4)
    assert syn.m == 3 and syn.exponent == 9 and syn.model.sha256 == model.sha256
    np.testing.assert_array_equal(syn.shifts, np.array([0, 1, -1, 127, -127, 5, 0, 2]) / 32)
    np.testing.assert_array_equal(syn.readout, readout * 2.0**-4.5)


def test_round_trip_with_synthesis(crop_cube, crop_plain, model):
    maps, mean, basis, norm = decoded_parts(crop_plain, crop_cube.shape[2])
    fit = synthfit.fit_synthesis(maps, crop_cube, mean, basis, norm, lam=0.0)
    assert fit is not None and fit.saving > 0
    data = with_post_bytes(crop_plain, {"ns": fit.data})
    assert len(data) == len(crop_plain) + len(fit.data) + 5  # the key and its bytes, nothing else changed
    one = hsicodec.decompress(data)[0]
    np.testing.assert_array_equal(one, hsicodec.decompress(data)[0])
    want = reconstruct(fit.synth.apply(maps), norm, mean, basis, (0, crop_cube.shape[2]))
    np.testing.assert_allclose(one, want, rtol=0, atol=1e-9 * float(np.abs(crop_cube).max()))
    np.testing.assert_array_equal(hsicodec.decompress(data, window=(5, 7, 20, 11))[0], one[5:25, 7:18])
    err = lambda rec: float(np.mean((rec - crop_cube) ** 2))  # noqa: E731
    assert err(one) < err(hsicodec.decompress(crop_plain)[0])  # a least-squares readout only lowers the error
    from hsicodec.codec.decode import describe

    layer = describe(decode_hsim(data).header, None)["layers"]["maps"]
    assert layer["synthesis_model"] == model.sha256 and layer["synthesis_maps"] == fit.synth.m


def test_nothing_pays_at_a_steep_price(crop_cube, crop_plain):
    maps, mean, basis, norm = decoded_parts(crop_plain, crop_cube.shape[2])
    assert synthfit.fit_synthesis(maps, crop_cube, mean, basis, norm, lam=1e30) is None


def test_files_without_synthesis_unchanged(crop_cube, crop_plain):
    assert "ns" not in decode_hsim(crop_plain).header["codec"]
    assert compress(crop_cube, bpppb=0.05, layer="maps", synthesis=False) == crop_plain


def test_compress_with_synthesis_at_equal_bits(crop_cube, crop_plain):
    data = compress(crop_cube, bpppb=0.05, layer="maps", synthesis=True, post_filter=True)
    assert len(data) <= int(0.05 * crop_cube.size / 8)
    mse = lambda r: float(np.mean((r - crop_cube) ** 2))  # noqa: E731
    assert mse(hsicodec.decompress(data)[0]) <= mse(hsicodec.decompress(crop_plain)[0])  # kept only where it pays


def test_model_validation(model):
    from hsicodec.models.registry import default_registry

    mf = default_registry().load(ns.DEFAULT_ALIAS)
    for config, arrays in (
        ({**mf.config, "kind": "other"}, mf.arrays),
        ({**mf.config, "act": "gelu"}, mf.arrays),
        ({**mf.config, "width": 0}, mf.arrays),
        (mf.config, {**mf.arrays, "l2.weight": np.zeros((3, 3), np.float32)}),
        (mf.config, {**mf.arrays, "out.bias": np.full(8, np.nan, np.float32)}),
    ):
        with pytest.raises(ModelFormatError):
            ns.from_model_file(ModelFile(config, mf.card, arrays, mf.sha256))


@pytest.mark.parametrize(
    "value",
    [
        b"",  # too short
        b"\x01\x04",  # no model id
        bytes([9, 4]) + b"\x00" * 8,  # corrects more maps than the file has
        bytes([1, 40]) + b"\x00" * 8,  # readout exponent too large
        "text",  # not bytes
    ],
)
def test_malformed_synthesis_refused(crop_plain, value):
    with pytest.raises(HsimHeaderError):
        hsicodec.decompress(_set_ns(crop_plain, value))


def test_truncated_and_unknown_model(crop_plain, model):
    ident = bytes.fromhex(model.sha256[:16])
    with pytest.raises(HsimHeaderError):  # the shifts end early
        hsicodec.decompress(_set_ns(crop_plain, bytes([1, 4]) + ident + b"\x00\x00"))
    with pytest.raises(HsimHeaderError):  # the readout ends early
        hsicodec.decompress(_set_ns(crop_plain, bytes([1, 4]) + ident + b"\x00" * 8))
    with pytest.raises(ModelError):
        hsicodec.decompress(_set_ns(crop_plain, bytes([1, 4]) + b"\xee" * 8 + b"\x00" * 8 + b"\xff\xff"))


def test_native_features_match_numpy(model):
    pytest.importorskip("hsicodec._native")
    rng = np.random.default_rng(4)
    u = rng.normal(size=(3000, model.k_in)).astype(np.float32)
    s = rng.integers(-40, 40, model.n_shifts) * ns.SHIFT_STEP
    native, ref = model.features(u, s, backend="native"), model.features(u, s, backend="numpy")
    np.testing.assert_allclose(native, ref, rtol=0, atol=2e-5)  # float32, the kernel's sine within ~1e-7
