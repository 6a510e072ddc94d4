"""Tests of the .hsmodel base-model file format (hsicodec.models.modelfile)."""

from __future__ import annotations

import pickle
import struct
import sys

import msgpack
import numpy as np
import pytest

import hsicodec.models.modelfile as mf
from hsicodec.errors import ModelFormatError, ModelNotFoundError, OutputExistsError
from hsicodec.models.modelfile import (
    ALIGN,
    MAGIC,
    ModelLimits,
    decode_model,
    encode_model,
    load_model,
    save_model,
    sha256_bytes,
)


def _arrays():
    rng = np.random.default_rng(0)
    return {
        "layers.0.weight": rng.standard_normal((5, 3)).astype(np.float32),
        "layers.0.bias": rng.standard_normal(5).astype(np.float16),
        "counts": np.arange(-3, 4, dtype=np.int32),
        "scalar": np.array(2.5, dtype=np.float32),
        "empty": np.zeros((0, 7), dtype=np.float32),
        "bytes": np.arange(3, dtype=np.uint8),
    }


CONFIG = {"width": 64, "depth": 3, "omega0": 30.0, "modulation": "shift-outside", "bands": [1, 2, 3]}
CARD = {"alias": "test-model", "description": "unit test", "scenes": ["a", "b"]}


def _small():
    return encode_model(
        {"a": np.arange(3, dtype=np.float32), "b": np.ones((2, 2), dtype=np.int32)}, {"k": 1}, {"alias": "s"}
    )


def _split(data: bytes):
    """(header dict, data_start) of a valid file."""
    (hlen,) = struct.unpack_from("<I", data, 12)
    header = msgpack.unpackb(data[16 : 16 + hlen], raw=False)
    return header, -(-(16 + hlen) // ALIGN) * ALIGN


def _rebuild(header: dict, payload: bytes, minor: int = 0) -> bytes:
    """Assemble a file from a (possibly hostile) header object and raw data region."""
    h = msgpack.packb(header, use_bin_type=True)
    start = -(-(16 + len(h)) // ALIGN) * ALIGN
    pre = MAGIC + struct.pack("<HHI", 1, minor, len(h)) + h
    return pre + b"\0" * (start - len(pre)) + payload


def _payload(data: bytes) -> bytes:
    return data[_split(data)[1] :]


# ------------------------------------------------------------------ round trip


def test_round_trip_all_kinds():
    arrays = _arrays()
    data = encode_model(arrays, CONFIG, CARD)
    assert data[:8] == MAGIC
    assert len(data) % ALIGN == 0
    m = decode_model(data)
    assert set(m.arrays) == set(arrays)
    for k, a in arrays.items():
        b = m.arrays[k]
        assert b.dtype == a.dtype and b.shape == a.shape, k
        np.testing.assert_array_equal(b, a)
        assert not b.flags.writeable
        assert b.dtype.isnative
    assert m.arrays["scalar"].ndim == 0
    assert m.config == CONFIG
    assert m.card == CARD
    assert m.alias == "test-model"
    assert m.sha256 == sha256_bytes(data)


def test_arrays_are_aligned_and_sorted():
    data = encode_model(_arrays(), {}, {})
    header, start = _split(data)
    assert start % ALIGN == 0
    offs = [(header["arrays"][k]["offset"], k) for k in sorted(header["arrays"]) if header["arrays"][k]["nbytes"]]
    assert all(o % ALIGN == 0 for o, _ in offs)
    assert [k for _, k in sorted(offs)] == [k for _, k in offs]  # laid out in name order


def test_deterministic_and_stable_hash():
    a = _arrays()
    d1 = encode_model(a, CONFIG, CARD)
    # different insertion order of arrays and of config/card keys -> same bytes
    d2 = encode_model(
        dict(reversed(list(a.items()))), dict(reversed(list(CONFIG.items()))), dict(reversed(list(CARD.items())))
    )
    assert d1 == d2
    assert sha256_bytes(d1) == sha256_bytes(d2) == decode_model(d2).sha256
    # a big-endian or non-contiguous input encodes the same values
    a2 = dict(a)
    a2["layers.0.weight"] = np.asfortranarray(a["layers.0.weight"]).astype(">f4")
    assert encode_model(a2, CONFIG, CARD) == d1


def test_no_alias():
    m = decode_model(encode_model({}, {}, {}))
    assert m.alias is None and m.arrays == {}


def test_save_load(tmp_path):
    p = tmp_path / "m.hsmodel"
    sha = save_model(p, _arrays(), CONFIG, CARD)
    assert sha == sha256_bytes(p.read_bytes())
    m = load_model(p)
    assert m.sha256 == sha and m.alias == "test-model"
    with pytest.raises(OutputExistsError):
        save_model(p, _arrays(), CONFIG, CARD)
    assert save_model(p, {}, {}, {}, force=True) != sha
    with pytest.raises(ModelNotFoundError):
        load_model(tmp_path / "missing.hsmodel")


def test_load_model_names_file(tmp_path):
    p = tmp_path / "bad.hsmodel"
    p.write_bytes(b"garbage")
    with pytest.raises(ModelFormatError, match="bad.hsmodel"):
        load_model(p)


# ------------------------------------------------------------------ encoder refusals


@pytest.mark.parametrize(
    "arr",
    [
        np.array([object()], dtype=object),
        np.array(["abcd"], dtype="<U4"),
        np.array([1 + 2j], dtype=np.complex64),
        np.array([True]),
    ],
)
def test_encode_rejects_dtype(arr):
    with pytest.raises(ModelFormatError, match="dtype"):
        encode_model({"x": arr}, {}, {})


def test_encode_rejects_bad_config_and_alias():
    with pytest.raises(ModelFormatError):
        encode_model({}, {"f": lambda: 0}, {})
    with pytest.raises(ModelFormatError):
        encode_model({}, {1: 2}, {})
    with pytest.raises(ModelFormatError):
        encode_model({}, [], {})
    with pytest.raises(ModelFormatError, match="alias"):
        encode_model({}, {}, {"alias": "has space"})
    with pytest.raises(ModelFormatError, match="alias"):
        encode_model({}, {}, {"alias": "deadbeef12"})  # would read as an id prefix
    with pytest.raises(ModelFormatError):
        encode_model({"": np.zeros(1, np.float32)}, {}, {})


def test_encode_respects_limits():
    lim = ModelLimits(max_total_bytes=100)
    with pytest.raises(ModelFormatError, match="limit"):
        encode_model({"x": np.zeros(100, np.float32)}, {}, {}, limits=lim)
    with pytest.raises(ModelFormatError, match="header"):
        encode_model({}, {"blob": "x" * 2000}, {}, limits=ModelLimits(max_header_bytes=1000))


# ------------------------------------------------------------------ hostile input


def test_every_truncation_fails():
    data = _small()
    for n in range(len(data)):
        with pytest.raises(ModelFormatError):
            decode_model(data[:n])


def test_trailing_garbage():
    data = _small()
    with pytest.raises(ModelFormatError, match="trailing"):
        decode_model(data + b"\0" * 64)
    with pytest.raises(ModelFormatError):
        decode_model(data + b"x")


def test_bad_magic_and_version():
    data = _small()
    with pytest.raises(ModelFormatError, match="magic"):
        decode_model(b"\x89HSIM\0\0\0" + data[8:])
    with pytest.raises(ModelFormatError, match="version 2"):
        decode_model(data[:8] + struct.pack("<H", 2) + data[10:])


def test_corrupted_header_length():
    data = _small()
    hlen = struct.unpack_from("<I", data, 12)[0]
    for bad in (0, hlen - 1, hlen + 1, hlen + 200, len(data), 0xFFFFFFFF, (1 << 20) + 1):
        with pytest.raises(ModelFormatError):
            decode_model(data[:12] + struct.pack("<I", bad) + data[16:])
    with pytest.raises(ModelFormatError, match="limit"):
        decode_model(data[:12] + struct.pack("<I", 0xFFFFFFFF) + data[16:])


def test_non_zero_padding():
    data = bytearray(_small())
    header, start = _split(bytes(data))
    hend = 16 + struct.unpack_from("<I", data, 12)[0]
    if hend < start:
        d = bytearray(data)
        d[hend] = 1
        with pytest.raises(ModelFormatError, match="padding"):
            decode_model(bytes(d))
    # padding after array "a" (12 bytes in a 64-byte slot)
    d = bytearray(data)
    d[start + 20] = 7
    with pytest.raises(ModelFormatError, match="padding"):
        decode_model(bytes(d))


def _mutate(fn):
    data = _small()
    header, _ = _split(data)
    payload = _payload(data)
    fn(header)
    return _rebuild(header, payload)


def test_overlapping_offsets():
    def f(h):
        h["arrays"]["b"]["offset"] = 0

    with pytest.raises(ModelFormatError, match="overlap"):
        decode_model(_mutate(f))


def test_misaligned_offset():
    def f(h):
        h["arrays"]["b"]["offset"] = 65

    with pytest.raises(ModelFormatError, match="multiple of 64"):
        decode_model(_mutate(f))


def test_offset_out_of_range():
    def f(h):
        h["arrays"]["b"]["offset"] = 64 * 1000

    with pytest.raises(ModelFormatError, match="past the end"):
        decode_model(_mutate(f))


def test_gap_between_arrays():
    data = _small()
    header, _ = _split(data)
    payload = _payload(data)
    header["arrays"]["b"]["offset"] = 128
    payload = payload[:64] + b"\0" * 64 + payload[64:]
    with pytest.raises(ModelFormatError, match="unreferenced"):
        decode_model(_rebuild(header, payload))


@pytest.mark.parametrize(
    "change",
    [
        {"nbytes": 12},
        {"nbytes": -16},
        {"shape": [2, 3]},
        {"shape": [2, -2]},
        {"shape": [2, 2.0]},
        {"shape": [True, 4]},
        {"shape": 4},
        {"shape": [1] * 9},
        {"shape": [1 << 40, 0]},
        {"offset": -64},
        {"offset": "64"},
    ],
)
def test_nbytes_shape_mismatch(change):
    def f(h):
        h["arrays"]["b"].update(change)

    with pytest.raises(ModelFormatError, match="'b'"):
        decode_model(_mutate(f))


@pytest.mark.parametrize("dtype", ["object", "O", "<U4", "|O", "complex64", "bool", "V8", ">f4", 5, None])
def test_dtype_not_allowed(dtype):
    def f(h):
        h["arrays"]["a"]["dtype"] = dtype

    with pytest.raises(ModelFormatError, match="dtype"):
        decode_model(_mutate(f))


def test_entry_keys_checked():
    def extra(h):
        h["arrays"]["a"]["fortran_order"] = True

    with pytest.raises(ModelFormatError, match="unknown keys"):
        decode_model(_mutate(extra))

    def missing(h):
        del h["arrays"]["a"]["nbytes"]

    with pytest.raises(ModelFormatError, match="missing"):
        decode_model(_mutate(missing))

    def not_map(h):
        h["arrays"]["a"] = [1, 2]

    with pytest.raises(ModelFormatError, match="map"):
        decode_model(_mutate(not_map))


@pytest.mark.parametrize(
    "header",
    [
        [1, 2, 3],
        "arrays",
        42,
        None,
        {"arrays": {}, "config": {}},
        {"arrays": {}, "config": [], "card": {}},
        {"arrays": [], "config": {}, "card": {}},
        {"arrays": {}, "config": {}, "card": "x"},
        {"arrays": {}, "config": {}, "card": {}, "extra": 1},
        {"arrays": {}, "config": {}, "card": {"alias": 7}},
        {"arrays": {}, "config": {}, "card": {"alias": "a/b"}},
    ],
)
def test_header_not_a_valid_map(header):
    with pytest.raises(ModelFormatError):
        decode_model(_rebuild(header, b""))


def test_minor_version_may_add_keys():
    data = _rebuild({"arrays": {}, "config": {}, "card": {}, "future": 1}, b"", minor=1)
    assert decode_model(data).arrays == {}


def test_header_msgpack_garbage():
    good = {"arrays": {}, "config": {}, "card": {}}
    h = msgpack.packb(good)
    for bad in (
        h + b"\xc0",
        b"\xc1" * 4,
        h[:-1],
        b"\x81\x01\x02",  # int map key -> strict_map_key
        msgpack.packb(msgpack.ExtType(1, b"abc")),
    ):
        start = -(-(16 + len(bad)) // 64) * 64
        pre = MAGIC + struct.pack("<HHI", 1, 0, len(bad)) + bad
        with pytest.raises(ModelFormatError, match="offset 16"):
            decode_model(pre + b"\0" * (start - len(pre)))


def test_array_count_limit():
    lim = ModelLimits(max_arrays=2)
    data = encode_model({k: np.zeros(1, np.uint8) for k in "abc"}, {}, {})
    with pytest.raises(ModelFormatError, match="limit"):
        decode_model(data, limits=lim)
    assert len(decode_model(data).arrays) == 3


def test_pickle_payload_rejected(monkeypatch):
    """A file carrying a pickle is refused, and pickle is never used to read anything."""
    assert "pickle" not in vars(mf)
    calls = []

    def boom(*a, **k):  # pragma: no cover - must never run
        calls.append(1)
        raise AssertionError("pickle used")

    monkeypatch.setattr(pickle, "loads", boom)
    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(pickle, "Unpickler", boom)

    class Evil:
        def __reduce__(self):
            return (sys.exit, (3,))

    payload = pickle.dumps(Evil(), protocol=2)  # would call sys.exit(3) if ever unpickled
    # 1) a whole file that is a pickle
    with pytest.raises(ModelFormatError):
        decode_model(payload)
    # 2) pickle bytes in place of the msgpack header
    pre = MAGIC + struct.pack("<HHI", 1, 0, len(payload)) + payload
    start = -(-len(pre) // 64) * 64
    with pytest.raises(ModelFormatError):
        decode_model(pre + b"\0" * (start - len(pre)))
    # 3) an "object" array whose data region is the pickle (numpy .npy-style)
    region = payload + b"\0" * (-len(payload) % 64)
    hdr = {
        "arrays": {"w": {"dtype": "object", "shape": [1], "offset": 0, "nbytes": len(payload)}},
        "config": {},
        "card": {},
    }
    with pytest.raises(ModelFormatError, match="dtype"):
        decode_model(_rebuild(hdr, region))
    # 4) the pickle as bytes in the config is just opaque data, never executed
    m = decode_model(encode_model({}, {"blob": payload}, {}))
    assert m.config["blob"] == payload
    assert calls == []


# --------------------------------------------------------------------------- hostile models (codec_model)


def _tiny_grid_model():
    from pathlib import Path

    return decode_model(
        (Path(__file__).resolve().parent / "fuzz" / "seeds" / "model" / "tiny_pca.hsmodel").read_bytes()
    )


@pytest.mark.parametrize(
    "name, arr, needle",
    [
        ("hidden.1.weight", np.zeros((4, 3), np.float32), "hidden layer 1"),
        ("hidden.0.weight", np.zeros((4, 2), np.float64), "float64, expected float32"),
        ("out.bias", np.zeros(7, np.float32), "output layer"),
        ("meta.weight", np.zeros((8, 5), np.float32), "skip|latent layout"),
        ("meta.bias", np.zeros(3, np.float32), "meta network"),
        ("skip.weight", np.zeros((3, 9), np.float32), "skip"),
        ("inner.lr.1", np.zeros(4, np.float32), "inner-loop"),
        ("hidden.0.weight", np.zeros(8, np.float32), "dimension"),
        ("out.weight", np.zeros((3, 4), np.int32), "int32, expected float32"),
    ],
)
def test_wrong_shapes_and_dtypes_are_clear_model_errors(name, arr, needle):
    from hsicodec.layers.network.model import codec_model

    mf = _tiny_grid_model()
    codec_model(mf)  # the unmodified model is fine
    bad = decode_model(encode_model({**mf.arrays, name: arr}, mf.config, mf.card))
    with pytest.raises(ModelFormatError, match=needle):
        codec_model(bad)


@pytest.mark.parametrize("missing", ["hidden.1.bias", "out.weight", "inner.lr.0"])
def test_missing_array_is_a_clear_model_error(missing):
    from hsicodec.layers.network.model import codec_model

    mf = _tiny_grid_model()
    arrays = {k: v for k, v in mf.arrays.items() if k != missing}
    with pytest.raises(ModelFormatError, match=missing.replace(".", r"\.")):
        codec_model(decode_model(encode_model(arrays, mf.config, mf.card)))


@pytest.mark.parametrize(
    "key, value",
    [
        ("arch", "evil"),
        ("depth", 0),
        ("depth", "3; import os"),
        ("latent", {"levels": [], "coord_cell": 0}),
        ("spectral", "lambda: 0"),
        ("shift", "sideways"),
    ],
)
def test_bad_config_is_a_clear_model_error_never_evaluated(key, value):
    from hsicodec.layers.network.model import codec_model

    mf = _tiny_grid_model()
    with pytest.raises(ModelFormatError):
        codec_model(decode_model(encode_model(mf.arrays, {**mf.config, key: value}, mf.card)))


def test_tampered_model_is_refused_by_decompress(tmp_path, monkeypatch):
    """A model whose bytes no longer hash to the id a .hsim names is never used."""
    import hsicodec
    from hsicodec.errors import ModelError
    from hsicodec.models.registry import Registry, bundled_models_dir, clear_model_cache

    src = (bundled_models_dir() / "hsi-plain-v1.hsmodel").read_bytes()
    data = hsicodec.compress(np.full((3, 3, 2), 9, np.uint16), model="hsi-plain-v1", psnr=30, layer="network")
    tampered = bytearray(src)
    tampered[-5] ^= 0x01  # one weight bit
    (tmp_path / "hsi-plain-v1.hsmodel").write_bytes(bytes(tampered))
    clear_model_cache()
    with pytest.raises(ModelError) as err:
        hsicodec.decompress(data, registry=Registry([("path", tmp_path)]))
    assert sha256_bytes(src) in str(err.value)
    clear_model_cache()
