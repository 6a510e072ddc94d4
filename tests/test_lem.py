"""The coefficient-map layer's learned entropy model (ec = 2, spec/hsim.md 10.11): C++ == numpy reference bit
for bit (features, integer network, mixing, streams), round trips, the header keys, the model loader's checks,
damaged streams, a missing model, and the --learned-entropy flag."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import hsicodec
from hsicodec.cli.main import cli
from hsicodec.data import sample_path
from hsicodec.errors import HsicodecError, HsimHeaderError, ModelFormatError, ModelNotFoundError
from hsicodec.format import compact
from hsicodec.format.container import decode_hsim
from hsicodec.layers.maps import coding as cm
from hsicodec.layers.maps import lem, lem_coder, rans, streams
from hsicodec.layers.maps.reduced import reduced_reference
from hsicodec.models.modelfile import decode_model, encode_model

native = pytest.importorskip("hsicodec._native")
if not hasattr(native, "map_decode_lem"):  # pragma: no cover - an extension built before the learned model
    pytest.skip("the native extension has no learned entropy model", allow_module_level=True)


def random_model(hidden: int = 6, seed: int = 0, scale: int = 300) -> lem.EntropyModel:
    """A small integer model with random weights (large enough that its corrections move codes)."""
    rng = np.random.default_rng(seed)
    shapes = [(hidden, len(lem.FEATURES)), (hidden, hidden), (1, hidden)]
    layers = [(rng.integers(-scale, scale + 1, size=s), rng.integers(-4000, 4001, size=s[0])) for s in shapes]
    blob = encode_model(lem.model_arrays(layers), lem.model_config(hidden), {"alias": "test-lem"})
    return lem.from_model_file(decode_model(blob))


def symbols(k: int, h: int, w: int, scale: float, seed: int = 0) -> np.ndarray:
    """Laplace symbols whose spread shrinks towards the fine subbands, like real maps."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    spread = scale * 8.0 / (1 + (yy + xx) / 4)
    return (rng.laplace(size=(k, h, w)) * spread).round().astype(np.int64)


def params(sym: np.ndarray, model: lem.EntropyModel, mix: bytes) -> cm.MapParams:
    lv = cm.map_levels(*sym.shape[1:])
    base, off, _ = cm.fit_codes_from_stats(*cm.cell_stats(sym, lv), float(np.abs(sym).max()))
    return cm.MapParams(sym.shape[0], -40, lv, int(np.abs(sym).max()), base, off, 1, cm.EC_LEARNED, model.ident, mix)


def native_decode(data: bytes, p: cm.MapParams, h: int, w: int, model: lem.EntropyModel, threads: int = 0):
    offsets = [int(o) for o in p.class_offsets]
    return native.map_decode_lem(data, p.k, h, w, p.base_codes, offsets, p.mix, *lem_coder._weights(model),
                                 p.max_abs, *cm._native_layout(h, w, p.levels), threads)  # fmt: skip


def test_lg16_is_its_integer_definition():
    n = np.concatenate([np.arange(5000), np.array([2**20 - 1, 2**20, 9 * 2**20, 2**31, 2**39 + 12345])])
    want = []
    for v in (int(x) + 1 for x in n):
        e = v.bit_length() - 1
        t = v >> (e - 6) if e >= 6 else v << (6 - e)
        want.append(16 * e + int(lem._LG_LUT[t - 64]))
    np.testing.assert_array_equal(lem.lg16(n), want)
    assert lem.lg16(0) == 0 and lem.lg16(1) == 16 and lem.lg16(3) == 32


@pytest.mark.parametrize(
    ("k", "h", "w", "scale"), [(3, 20, 17, 1.0), (4, 33, 30, 0.3), (2, 9, 13, 5.0), (1, 16, 16, 1.0)]
)
def test_native_codes_equal_the_reference(k, h, w, scale):
    model = random_model(seed=k)
    sym = symbols(k, h, w, scale, seed=h)
    lv = cm.map_levels(h, w)
    mix = bytes(int(v) for v in np.random.default_rng(w).integers(0, 5, size=lv + 1))
    p = params(sym, model, mix)
    want = lem.codes_reference(sym, p, model)
    got = lem_coder.codes(sym, p, model, mix)
    np.testing.assert_array_equal(got, want)
    ec1 = lem.class_codes(sym, p)
    assert np.any(want != ec1), "the network never moved a code: the test would not see a wrong feature"


def test_network_codes_follow_the_integer_recipe():
    model = random_model(hidden=3, seed=5)
    rng = np.random.default_rng(1)
    x = rng.integers(-200, 400, size=(50, len(lem.FEATURES)))
    got = lem.network_codes(model, x)
    for row, code in zip(x, got):
        h = [int(v) for v in row]
        for i, (w, b) in enumerate(model.layers):
            acc = [sum(int(a) * int(c) for a, c in zip(wr, h)) + int(bb) for wr, bb in zip(w, b)]
            if i < 2:
                h = [min(max((a + 128) >> 8, 0), 32767) for a in acc]
        want = min(max(int(row[lem.CLS]) // 2 + 128 + ((acc[0] + 256) >> 9), 0), 255)
        assert code == want


@pytest.mark.parametrize(("k", "h", "w", "scale"), [(3, 20, 17, 1.0), (2, 24, 20, 0.2), (2, 12, 11, 40.0)])
def test_streams_native_equal_reference_and_round_trip(k, h, w, scale):
    model = random_model(seed=7)
    sym = symbols(k, h, w, scale, seed=k + h)
    lv = cm.map_levels(h, w)
    p = params(sym, model, bytes([4, 3, 2, 4, 1, 4, 4, 4, 4][: lv + 1]))
    codes = lem.codes_reference(sym, p, model)
    for count in range(1, k + 1):
        want = lem.encode_reference(sym, codes, lv, count)
        got = bytes(native.map_encode_codes(sym, codes.astype(np.uint8), *cm._native_layout(h, w, lv), count, 0))
        assert got == want
        np.testing.assert_array_equal(native_decode(got, p, h, w, model), sym)
        np.testing.assert_array_equal(lem.decode_reference(got, p, h, w, model), sym)


def test_threads_and_substreams_never_change_the_symbols():
    model = random_model(seed=3)
    sym = symbols(6, 96, 90, 1.0, seed=2)
    lv = cm.map_levels(96, 90)
    p = params(sym, model, bytes([4] * (lv + 1)))
    codes = lem_coder.codes(sym, p, model, p.mix, threads=1)
    np.testing.assert_array_equal(lem_coder.codes(sym, p, model, p.mix, threads=4), codes)
    for count in (1, 3, 6):
        data = bytes(native.map_encode_codes(sym, codes, *cm._native_layout(96, 90, lv), count, 4))
        for threads in (1, 2, 6):
            np.testing.assert_array_equal(native_decode(data, p, 96, 90, model, threads), sym)


def test_encoder_round_trip_and_fallback(monkeypatch):
    model = random_model(seed=11, scale=20)  # small corrections
    monkeypatch.setattr(lem, "resolve", lambda ident: model)
    sym = symbols(4, 40, 36, 1.0, seed=4)
    lv = cm.map_levels(40, 36)
    data, p = lem_coder.encode(sym, -40, lv, 1, model)
    np.testing.assert_array_equal(streams.decode_symbols(data, p, 40, 36), sym)
    if p.coder == cm.EC_LEARNED:  # then it saves at least its header bytes
        ec1, _ = cm.encode_symbols(sym, -40, lv, 1)
        assert len(data) + lem.ID_BYTES + lv + 1 < len(ec1)
    zero = np.zeros((2, 16, 16), np.int64)
    data, p = lem_coder.encode(zero, 0, cm.map_levels(16, 16), 0, model)
    assert data == b"" and p.coder == cm.EC_RANS


def test_without_the_extension_the_same_bytes(monkeypatch):
    model = random_model(seed=2, scale=60)
    monkeypatch.setattr(lem, "resolve", lambda ident: model)
    sym = symbols(3, 24, 22, 1.0, seed=9)
    lv = cm.map_levels(24, 22)
    p = params(sym, model, bytes([4] * (lv + 1)))
    data = bytes(native.map_encode_codes(sym, lem_coder.codes(sym, p, model, p.mix), *cm._native_layout(24, 22, lv),
                                         rans.substream_count(3, 24, 22), 0))  # fmt: skip
    real = cm._native_function
    monkeypatch.setattr(cm, "_native_function", lambda name: None if name.startswith("map_") else real(name))
    np.testing.assert_array_equal(lem_coder.codes(sym, p, model, p.mix), lem.codes_reference(sym, p, model))
    np.testing.assert_array_equal(lem_coder.decode(data, p, 24, 22), sym)


def test_damaged_streams_are_refused_or_decode_alike(monkeypatch):
    model = random_model(seed=4)
    monkeypatch.setattr(lem, "resolve", lambda ident: model)
    sym = symbols(2, 20, 18, 1.0, seed=1)
    lv = cm.map_levels(20, 18)
    p = params(sym, model, bytes([4] * (lv + 1)))
    data = lem.encode_reference(sym, lem.codes_reference(sym, p, model), lv)
    with pytest.raises(HsimHeaderError):
        lem_coder.decode(data[:-3], p, 20, 18)
    with pytest.raises(HsimHeaderError):
        lem_coder.decode(data + b"\0", p, 20, 18)
    rng = np.random.default_rng(0)
    for _ in range(20):
        bad = bytearray(data)
        bad[int(rng.integers(1, len(bad)))] ^= 1 << int(rng.integers(0, 8))
        try:
            got = lem_coder.decode(bytes(bad), p, 20, 18)
        except HsimHeaderError:
            with pytest.raises(HsimHeaderError):
                lem.decode_reference(bytes(bad), p, 20, 18, model)
        else:
            np.testing.assert_array_equal(lem.decode_reference(bytes(bad), p, 20, 18, model), got)


def test_a_missing_model_is_named(isolated_registry):
    p = cm.MapParams(1, 0, 2, 3, bytes(3), np.zeros(26, np.int64), 0, cm.EC_LEARNED, bytes(range(8)), bytes(3))
    with pytest.raises(ModelNotFoundError, match="0001020304050607"):
        lem_coder.decode(b"\x01\0\0\0\0", p, 8, 8)


def test_header_keys():
    head = {"k": 1, "q": 0, "wt": 2, "ma": 3, "ls": bytes(3), "co": bytes(26), "ro": 0}
    p = cm.parse_params({**head, "ec": 2, "em": bytes(8), "mw": bytes([4, 0, 2])}, 8, 8, 255)
    assert p.coder == cm.EC_LEARNED and p.mix == bytes([4, 0, 2]) and p.to_header()["em"] == bytes(8)
    for bad in (
        {**head, "ec": 2, "mw": bytes(3)},  # no model id
        {**head, "ec": 2, "em": bytes(7), "mw": bytes(3)},
        {**head, "ec": 2, "em": bytes(8), "mw": bytes(2)},
        {**head, "ec": 2, "em": bytes(8), "mw": bytes([5, 0, 0])},
        {**head, "ec": 1, "em": bytes(8)},
        {**head, "ec": 3},
    ):
        with pytest.raises(HsimHeaderError):
            cm.parse_params(bad, 8, 8, 255)
    full = {**head, "ec": 2, "em": bytes(range(8)), "mw": bytes([4, 1, 0])}
    arr = compact.pack_maps(full)
    assert arr[6:] == [2, bytes(range(8)), bytes([4, 1, 0])]
    back = compact.unpack_maps(arr, 255, 8)
    assert back["em"] == full["em"] and back["mw"] == full["mw"] and back["ec"] == 2
    with pytest.raises(HsimHeaderError):
        compact.unpack_maps(arr[:6] + [1, b"x", b"y"], 255, 8)


def test_the_loader_refuses_models_it_cannot_run():
    good = random_model()
    layers = [(w, b) for w, b in good.layers]
    cfg = lem.model_config(good.hidden)

    def load(arrays, config):
        return lem.from_model_file(decode_model(encode_model(arrays, config, {})))

    with pytest.raises(ModelFormatError, match="kind"):
        load(lem.model_arrays(layers), {**cfg, "kind": "modsiren"})
    with pytest.raises(ModelFormatError, match="features"):
        load(lem.model_arrays(layers), {**cfg, "features": cfg["features"][::-1]})
    with pytest.raises(ModelFormatError, match="overflow"):
        load(lem.model_arrays([(layers[0][0] * 4000, layers[0][1])] + layers[1:]), cfg)
    with pytest.raises(ModelFormatError, match="shape"):
        load(lem.model_arrays([(layers[0][0][:, :5], layers[0][1])] + layers[1:]), cfg)
    arrays = lem.model_arrays(layers)
    arrays["w1"] = arrays["w1"].astype(np.float32)
    with pytest.raises(ModelFormatError, match="int32"):
        load(arrays, cfg)


def test_the_shipped_model_loads_and_is_named_by_its_hash(isolated_registry):
    model = lem.default_model()
    assert model.hidden >= 1 and len(model.ident) == lem.ID_BYTES
    assert lem.resolve(model.ident).sha256 == model.sha256


def test_the_shipped_card_gives_its_scenes_and_validation_rd(isolated_registry):
    from hsicodec.models.registry import default_registry

    card = default_registry().load(lem.DEFAULT_ALIAS).card
    assert card["train_scenes"] and not set(card["train_scenes"]) & set(card["val_scenes"])
    rows = card["validation"]  # tools/train_entropy_model.py --validate: every validation scene at its rates
    assert {r["scene"] for r in rows} == set(card["val_scenes"]) and len(rows) >= 3 * len(card["val_scenes"])
    for r in rows:  # the same symbols coded by the model: the same PSNR, a rate no higher (ec = 1 where it loses)
        assert r["psnr"] > 20 and 0 < r["learned_bpppb"] <= r["bpppb"] <= 1.05 * r["rate"]


def _scene(h: int = 48, w: int = 48, c: int = 40) -> np.ndarray:
    """A smooth synthetic cube of a few spectral endmembers with spatial texture."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w] / 8.0
    ab = np.stack([np.sin(yy + i) * np.cos(xx * (i + 1) / 2) + rng.normal(0, 0.2, (h, w)) for i in range(4)], -1)
    spectra = np.abs(rng.normal(1, 0.5, (4, c))).cumsum(axis=1)
    return (1000 + 300 * ab @ spectra).astype(np.uint16)


def test_the_flag_codes_with_the_learned_model_and_decodes(isolated_registry):
    cube = _scene()
    plain = hsicodec.compress(cube, bpppb=0.2)
    learned = hsicodec.compress(cube, bpppb=0.2, learned_entropy=True)
    budget = 0.2 * cube.size / 8
    assert len(plain) <= budget and len(learned) <= budget
    rl = decode_hsim(learned).header["codec"]["rl"]
    assert rl[6] % compact.EC_RT == cm.EC_LEARNED and rl[7] == lem.default_model().ident
    assert decode_hsim(plain).header["codec"]["rl"][6] % compact.EC_RT == cm.EC_RANS
    out, _ = hsicodec.decompress(learned)
    assert out.shape == cube.shape
    err = np.abs(out.astype(np.float64) - cube).mean()
    assert err < np.abs(hsicodec.decompress(plain)[0].astype(np.float64) - cube).mean() * 1.2
    assert isinstance(ModelNotFoundError("x"), HsicodecError)


def test_a_reduced_read_of_a_learned_file(isolated_registry):
    """ec = 2 streams are decoded whole for a reduced read (no early stop there): the same coarse estimate as
    from the full decode (a real crop lifted off 0, so that no value clips and the estimate is linear)."""
    cube = np.load(sample_path())[:, :, ::4].astype(np.uint16) + 1000
    data = hsicodec.compress(cube, bpppb=0.2, learned_entropy=True)
    assert decode_hsim(data).header["codec"]["rl"][6] % compact.EC_RT == cm.EC_LEARNED
    full, _ = hsicodec.decompress(data)
    small, _ = hsicodec.decompress(data, reduce=1)
    assert small.shape == (32, 32, cube.shape[2])
    near = reduced_reference(full.astype(np.float64), 1, cm.map_levels(64, 64))
    assert np.abs(small - near).max() <= 2.0  # the two decodes' roundings


def test_the_cli_flag_and_info(isolated_registry):
    np.save("cube.npy", _scene())
    r = CliRunner().invoke(cli, ["compress", "cube.npy", "lem.hsim", "--bpppb", "0.2", "--learned-entropy", "-q"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["info", "lem.hsim", "--json"])
    assert r.exit_code == 0, r.output
    assert lem.default_model().sha256.startswith(json.loads(r.stdout)["coding"]["layers"]["maps"]["entropy_model"])
    r = CliRunner().invoke(cli, ["decompress", "lem.hsim", "back.npy", "-q"])
    assert r.exit_code == 0, r.output
    assert np.load("back.npy").shape == _scene().shape
    assert "--learned-entropy" in CliRunner().invoke(cli, ["compress", "--help"]).output


def test_total_bits_is_the_sum_of_table_bits():
    from hsicodec.layers.maps import lem_coder

    rng = np.random.default_rng(7)
    codes = rng.integers(60, 256, 5000)
    mag = np.concatenate([rng.geometric(0.2, 4900) - 1, rng.integers(60, 5000, 100)])  # some over the table
    want = float(lem_coder.table_bits(codes, mag).sum())
    assert lem_coder.total_bits(codes, mag) == pytest.approx(want, rel=1e-12)


def test_choose_mix_final_codes_are_the_codes_of_its_weights():
    model = random_model(seed=3)
    sym = symbols(4, 33, 30, 0.3, seed=5)
    lv = cm.map_levels(33, 30)
    p = params(sym, model, bytes(lv + 1))
    mix, _, final = lem_coder.choose_mix(sym, p, model)
    np.testing.assert_array_equal(final, lem_coder.codes(sym, p, model, mix))
