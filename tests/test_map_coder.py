"""The coefficient-map layer's rANS coder (ec = 1, spec/hsim.md 10.9): tables, C++ == reference bit for bit,
round trips at the edges, damaged streams, the header key and the older (constriction) streams."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hsicodec.coding.wavelet import wavelet_levels
from hsicodec.errors import HsimHeaderError
from hsicodec.format import compact
from hsicodec.layers.maps import coding as cm
from hsicodec.layers.maps import ec_tables, rans

ROOT = Path(__file__).resolve().parents[1]
#: the sha256 spec/hsim.md 10.9 names for the tables
TABLES_SHA256 = "f19ff64ded8a809347a089a808623fc56cebcdb9d2a602f25ac035653e49f3f6"

native = pytest.importorskip("hsicodec._native")
if not hasattr(native, "map_decode"):  # pragma: no cover - an extension built before the coder
    pytest.skip("the native extension has no map coder", allow_module_level=True)


def numpy_classes(sym: np.ndarray, levels: int) -> np.ndarray:
    """Checkerboard classes from the numpy reference alone (no C++)."""
    k, h, w = sym.shape
    bands, parents = cm._stream_layout(h, w, levels)
    absq = np.abs(sym)
    cls = np.zeros(sym.shape, np.int64)
    for b, (_, _, rs, cs) in enumerate(bands):
        cls[:, rs, cs] = cm.checker_classes(cm.activity(absq, slice(0, k), bands, parents, b), absq[:, rs, cs])
    return cls


def native_encode(sym: np.ndarray, p: cm.MapParams, count: int, threads: int = 0) -> bytes:
    h, w = sym.shape[1:]
    layout = cm._native_layout(h, w, p.levels)
    return bytes(native.map_encode(sym, p.base_codes, [int(o) for o in p.class_offsets], *layout, count, threads))


def symbols(k: int, h: int, w: int, kind: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "zeros":
        return np.zeros((k, h, w), np.int64)
    if kind == "sparse":
        return (rng.laplace(size=(k, h, w)) * 0.3).round().astype(np.int64)
    if kind == "laplace":
        return (rng.laplace(size=(k, h, w)) * 4).round().astype(np.int64)
    if kind == "wide":
        return (rng.laplace(size=(k, h, w)) * 3000).round().astype(np.int64)
    assert kind == "huge"  # a few magnitudes near 2^20 among small ones: escapes under small scales
    s = (rng.laplace(size=(k, h, w)) * 0.5).round().astype(np.int64)
    flat = s.reshape(-1)
    idx = rng.choice(flat.size, size=max(1, flat.size // 20), replace=False)
    flat[idx] = rng.integers(-(2**20), 2**20 + 1, size=idx.size)
    flat[idx[0]] = 2**20
    return s


SHAPES = [(1, 1, 1), (1, 1, 7), (2, 2, 2), (3, 3, 17), (2, 5, 1), (4, 17, 9), (3, 33, 30), (2, 40, 36)]


def test_tables_are_the_shipped_constants():
    raw = rans.table_bytes()
    assert hashlib.sha256(raw).hexdigest() == ec_tables.SHA256 == TABLES_SHA256
    assert bytes(native.map_code_tables()) == raw
    assert TABLES_SHA256 in (ROOT / "spec" / "hsim.md").read_text()
    for code, (freq, cum, r, s) in enumerate(rans.tables()):
        assert sum(freq) == 1 << rans.PROB_BITS and min(freq) >= 1 and len(freq) == r + 1 <= rans.TOKENS
        assert cum[-1] == 1 << rans.PROB_BITS and s == rans.raw_bits(code)


def test_the_table_script_reproduces_the_shipped_tables():
    p = subprocess.run([sys.executable, str(ROOT / "tools" / "make_map_tables.py"), "--check"], capture_output=True,
                       text=True, timeout=300)  # fmt: skip
    assert p.returncode == 0 and TABLES_SHA256 in p.stdout, p.stdout + p.stderr


@pytest.mark.parametrize("k,h,w", SHAPES)
@pytest.mark.parametrize("kind", ["zeros", "sparse", "laplace", "wide", "huge"])
def test_native_equals_reference_and_round_trips(k, h, w, kind):
    top = wavelet_levels(h, w, cm.MAX_LEVELS)
    for lv in sorted({0, min(1, top), top}):
        sym = symbols(k, h, w, kind, seed=k * h * w + lv)
        data, p = cm.encode_symbols(sym, -96, lv, 3)
        assert p.coder == cm.EC_RANS and (data == b"") == (p.max_abs == 0)
        _, p_old = cm.encode_symbols(sym, -96, lv, 3, coder=cm.EC_CONSTRICTION)  # the same tables either way
        assert p_old.base_codes == p.base_codes and (p_old.class_offsets == p.class_offsets).all()
        cls = numpy_classes(sym, lv)
        np.testing.assert_array_equal(cm.all_classes(sym, lv)[0], cls)
        for count in sorted({1, rans.substream_count(k, h, w), k}):
            ref = cm.rans_encode_reference(sym, cls, p, count)
            assert native_encode(sym, p, count, threads=2) == ref
            if count == rans.substream_count(k, h, w):
                assert ref == data
            p2 = cm.parse_params(p.to_header(), h, w, 255)
            np.testing.assert_array_equal(cm.rans_decode_reference(ref, p2, h, w), sym)
            for threads in (1, 3):
                np.testing.assert_array_equal(cm.decode_symbols(ref, p2, h, w, threads), sym)


def test_substreams_and_threads_never_change_the_result():
    sym = symbols(8, 80, 72, "laplace", seed=5)  # over the size where the C++ coder starts threads
    lv = cm.map_levels(80, 72)
    _, p = cm.encode_symbols(sym, -96, lv, 0)
    for count in (1, 3, 8):
        streams = {native_encode(sym, p, count, threads) for threads in (1, 2, 5)}
        assert len(streams) == 1
        data = streams.pop()
        assert data == cm.rans_encode_reference(sym, numpy_classes(sym, lv), p, count)
        for threads in (1, 2, 4, 0):
            np.testing.assert_array_equal(cm.rans_decode(data, p, 80, 72, threads), sym)


def test_real_stream_is_close_to_the_ideal_code_length():
    rng = np.random.default_rng(1)
    r, c = np.mgrid[0:96, 0:80]
    maps = np.stack([np.sin(r / (3 + j)) * np.cos(c / (4 + j)) / (j + 1) for j in range(4)], axis=2)
    maps += 0.02 * rng.normal(size=maps.shape)
    lv = cm.map_levels(96, 80)
    sym, _, rho = cm.quantize(cm.Transformed.of(maps, lv), -96, 4)
    data, _ = cm.encode_symbols(sym, -96, lv, rho)
    old, _ = cm.encode_symbols(sym, -96, lv, rho, coder=cm.EC_CONSTRICTION)
    ideal = cm.code_bits(sym, lv) / 8
    assert ideal <= len(data) <= 1.005 * ideal + 8
    assert abs(len(data) - len(old)) <= 0.005 * len(old) + 8


def _small_stream(k: int = 3, count: int = 3) -> tuple[bytes, cm.MapParams, np.ndarray]:
    sym = symbols(k, 12, 10, "laplace", seed=11)
    sym[0, 0, 0] = 5000  # one escape
    lv = cm.map_levels(12, 10)
    _, p = cm.encode_symbols(sym, -96, lv, 0)
    return native_encode(sym, p, count), p, sym


def _both_refuse(data: bytes, p: cm.MapParams) -> None:
    with pytest.raises(HsimHeaderError):
        cm.rans_decode_reference(data, p, 12, 10)
    for threads in (1, 3):
        with pytest.raises(HsimHeaderError):
            cm.rans_decode(data, p, 12, 10, threads)


def test_truncated_and_extended_streams_are_refused():
    data, p, sym = _small_stream()
    np.testing.assert_array_equal(cm.rans_decode(data, p, 12, 10), sym)
    for n in range(len(data)):
        _both_refuse(data[:n], p)
    for extra in (b"\x00", b"\x01\x02\x03\x04", data[-4:]):
        _both_refuse(data + extra, p)


def test_damaged_streams_fail_alike_or_decode_alike():
    data, p, _ = _small_stream()
    rng = np.random.default_rng(3)
    refused = 0
    for _ in range(150):
        bad = bytearray(data)
        for i in rng.choice(len(bad), size=int(rng.integers(1, 4)), replace=False):
            bad[i] ^= int(rng.integers(1, 256))
        try:
            ref = cm.rans_decode_reference(bytes(bad), p, 12, 10)
        except HsimHeaderError:
            refused += 1
            _both_refuse(bytes(bad), p)
            continue
        for threads in (1, 3):  # not every flip can be detected; then both decode the same symbols
            np.testing.assert_array_equal(cm.rans_decode(bytes(bad), p, 12, 10, threads), ref)
    assert refused > 120


@pytest.mark.parametrize(
    "index",
    [
        b"\x00",  # no substream
        b"\x04",  # more substreams than maps
        b"\x80\x80\x80\x80\x80\x01",  # a varint of six bytes
        b"\x02\x80\x00",  # a non-canonical length
        b"\x02\xff\xff\xff\xff\x0f",  # a length past the stream
        b"\x02\x03",  # a substream shorter than its state
    ],
)
def test_bad_substream_indexes_are_refused(index):
    data, p, _ = _small_stream()
    count, pos = rans.get_varint(data, 0)
    _both_refuse(index + data[pos:], p)


def test_a_stream_that_does_not_match_the_header_is_refused():
    data, p, _ = _small_stream()
    for bad in (
        cm.MapParams(p.k, p.q, p.levels, 4999, p.base_codes, p.class_offsets, p.recon),  # a symbol past ma
        cm.MapParams(p.k, p.q, p.levels, 0, p.base_codes, p.class_offsets, p.recon),  # every symbol zero: no bytes
        cm.MapParams(p.k, p.q, p.levels, p.max_abs, bytes(len(p.base_codes)), p.class_offsets, p.recon),
    ):
        _both_refuse(data, bad)
    _both_refuse(b"", p)


def test_header_key_ec():
    sym = symbols(2, 9, 8, "laplace")
    lv = cm.map_levels(9, 8)
    data, p = cm.encode_symbols(sym, -40, lv, 2)
    head = p.to_header()
    assert head["ec"] == cm.EC_RANS
    assert cm.parse_params(head, 9, 8, 255).coder == cm.EC_RANS
    for bad in (2, -1, True, 1.0):
        with pytest.raises(HsimHeaderError, match="ec"):
            cm.parse_params({**head, "ec": bad}, 9, 8, 255)
    with pytest.raises(HsimHeaderError, match="checkerboard"):  # the plain scheme has no rANS stream
        cm.parse_params({**head, "co": bytes([128] * cm.PLAIN_CLASSES)}, 9, 8, 255)
    # the compact form carries it as a seventh entry; a six-entry array is an older (constriction) file
    arr = compact.pack_maps(head)
    assert len(arr) == 7 and arr[6] == cm.EC_RANS
    assert cm.parse_params(compact.unpack_maps(arr, 255, 8), 9, 8, 255).to_header() == head
    old = {key: v for key, v in head.items() if key != "ec"}
    assert len(compact.pack_maps(old)) == 6
    assert cm.parse_params(compact.unpack_maps(compact.pack_maps(old), 255, 8), 9, 8, 255).coder == 0
    with pytest.raises(HsimHeaderError):
        compact.unpack_maps(arr + [0], 255, 8)
    np.testing.assert_array_equal(cm.decode_symbols(data, cm.parse_params(head, 9, 8, 255), 9, 8), sym)


def test_constriction_streams_still_decode():
    sym = symbols(3, 20, 18, "laplace", seed=2)
    lv = cm.map_levels(20, 18)
    data, p = cm.encode_symbols(sym, -96, lv, 1, coder=cm.EC_CONSTRICTION)
    head = p.to_header()
    assert "ec" not in head
    p2 = cm.parse_params(head, 20, 18, 255)
    assert p2.coder == cm.EC_CONSTRICTION
    np.testing.assert_array_equal(cm.decode_symbols(data, p2, 20, 18), sym)
    with pytest.raises(HsimHeaderError):  # a constriction stream is not a rANS one
        cm.decode_symbols(data, cm.parse_params({**head, "ec": 1}, 20, 18, 255), 20, 18)


def test_without_the_extension_the_reference_writes_and_reads_the_same_bytes(monkeypatch):
    sym = symbols(3, 20, 17, "laplace", seed=8)
    lv = cm.map_levels(20, 17)
    data, p = cm.encode_symbols(sym, -96, lv, 2)
    real = cm._native_function
    monkeypatch.setattr(cm, "_native_function", lambda name: None if name.startswith("map_") else real(name))
    again, p2 = cm.encode_symbols(sym, -96, lv, 2)
    assert again == data and p2.to_header() == p.to_header()
    np.testing.assert_array_equal(cm.decode_symbols(data, p, 20, 17), sym)
