"""Tests of the .hsim container (hsicodec.format.container)."""

from __future__ import annotations

import dataclasses
import io
import os
import struct
import tracemalloc

import crc32c
import msgpack
import pytest

from hsicodec.errors import (
    HsimChecksumError,
    HsimError,
    HsimHeaderError,
    HsimLimitError,
    HsimMagicError,
    HsimTruncatedError,
    HsimVersionError,
    OutputExistsError,
)
from hsicodec.format import container as C
from hsicodec.format.container import (
    DEFAULT_LIMITS,
    MAGIC,
    PREAMBLE_SIZE,
    TRAILER_SIZE,
    VERSION,
    Hsim,
    HsimReader,
    HsimTrailingDataError,
    Limits,
    decode_hsim,
    encode_hsim,
    read_hsim,
    validate_header,
)
from hsicodec.io.hsimfile import write_hsim

MODEL = "0123456789abcdef" * 4


def small_header(**extra):
    h = {"shape": [4, 5, 3], "dtype": "uint16", "model": MODEL, "codec": {"q": 0.5}}
    h.update(extra)
    return h


SMALL_SECTIONS = [("a", b"hello"), ("b", b"\x00\x01\x02\x03\x04\x05\x06"), ("e", b"")]


@pytest.fixture(scope="module")
def small() -> bytes:
    """A ~170-byte valid file with three sections (one empty)."""
    data = encode_hsim(small_header(), SMALL_SECTIONS)
    assert 120 < len(data) < 220
    return data


def full_header():
    return {
        "shape": [64, 32, 100],
        "dtype": "float32",
        "model": MODEL,
        "codec": {"patch": [16, 16], "latent_dim": 32, "step": [0.1, 0.2], "coder": "rans", "nested": {"x": None}},
        "geo": {
            "crs_wkt": 'PROJCS["WGS 84 / UTM zone 33N"]',
            "transform": [500000.0, 30.0, 0.0, 4000000.0, 0.0, -30.0],
            "nodata": -9999.0,
            "band_names": [f"B{i}" for i in range(3)],
            "wavelengths": [450.5, 550.25, 650.0],
            "fwhm": [10.0, 10.0, 10.0],
            "units": "nm",
        },
        "tags": {"sensor": "AVIRIS", "scene": "f180601t01"},
        "created_by": "hsicodec 0.1.0",
    }


def build_raw(header, payload: bytes, version=VERSION, hbytes: bytes | None = None, trailer=True) -> bytes:
    """Assemble a file around an arbitrary (unvalidated) header, with correct checksums."""
    if hbytes is None:
        hbytes = msgpack.packb(header, use_bin_type=True)
    out = struct.pack("<8sHHII", MAGIC, version[0], version[1], len(hbytes), crc32c.crc32c(hbytes))
    out += hbytes + payload
    if trailer:
        out += struct.pack("<I", crc32c.crc32c(out))
    return out


def fix_trailer(data: bytes) -> bytes:
    body = data[:-TRAILER_SIZE]
    return body + struct.pack("<I", crc32c.crc32c(body))


def patch(data: bytes, offset: int, new: bytes, fix=True) -> bytes:
    out = data[:offset] + new + data[offset + len(new) :]
    return fix_trailer(out) if fix else out


def raw_with_sections(index, payload: bytes, **extra) -> bytes:
    h = small_header(**extra)
    h["sections"] = index
    return build_raw(h, payload)


# --------------------------------------------------------------------------- basics


def test_crc32c_is_castagnoli():
    assert crc32c.crc32c(b"123456789") == 0xE3069283


def test_preamble_layout(small):
    magic, major, minor, hlen, hcrc = struct.unpack_from("<8sHHII", small)
    assert magic == b"\x89HSIM\r\n\x1a" == MAGIC
    assert (major, minor) == VERSION == (1, 0)
    assert PREAMBLE_SIZE + hlen + 5 + 7 + 0 + TRAILER_SIZE == len(small)
    assert hcrc == crc32c.crc32c(small[PREAMBLE_SIZE : PREAMBLE_SIZE + hlen])
    assert struct.unpack("<I", small[-4:])[0] == crc32c.crc32c(small[:-4])
    # the payload is the sections concatenated, no padding
    assert small[PREAMBLE_SIZE + hlen : -4] == b"hello\x00\x01\x02\x03\x04\x05\x06"


def test_limits_frozen_and_defaults():
    assert DEFAULT_LIMITS.max_header_bytes == 1 << 20
    assert DEFAULT_LIMITS.max_sections == 65536
    assert DEFAULT_LIMITS.max_section_bytes == 1 << 30
    assert DEFAULT_LIMITS.max_file_bytes == 1 << 32
    assert DEFAULT_LIMITS.max_values == 2**34
    assert DEFAULT_LIMITS.max_dim == 2**20
    assert DEFAULT_LIMITS.max_bands == 2**16
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_LIMITS.max_sections = 1  # type: ignore[misc]


def test_round_trip_full_header():
    sections = [("lat0", os.urandom(300)), ("empty", b""), ("lat1", b"xyz"), ("side info", b"\xff" * 17)]
    data = encode_hsim(full_header(), sections)
    got = decode_hsim(data)
    assert isinstance(got, Hsim)
    assert got.version == (1, 0)
    assert list(got.sections) == ["lat0", "empty", "lat1", "side info"]
    assert got.sections == dict(sections)
    expected = full_header()
    expected["sections"] = [[n, len(b), crc32c.crc32c(b)] for n, b in sections]
    assert got.header == expected
    assert list(got.header) == list(expected)  # key order kept, index last


def test_round_trip_mapping_sections_and_bytes_like():
    data = encode_hsim(small_header(), {"x": bytearray(b"12"), "y": memoryview(b"345")})
    got = decode_hsim(bytearray(data))
    assert got.sections == {"x": b"12", "y": b"345"}
    assert all(type(v) is bytes for v in got.sections.values())


def test_zero_sections():
    got = decode_hsim(encode_hsim(small_header(), []))
    assert got.sections == {} and got.header["sections"] == []


def test_reencode_is_byte_identical():
    sections = [("lat0", b"abc" * 10), ("e", b""), ("lat1", b"q")]
    a = encode_hsim(full_header(), sections)
    assert encode_hsim(full_header(), sections) == a
    d = decode_hsim(a)
    # the decoded header carries its "sections" index: it is replaced, not duplicated
    assert encode_hsim(d.header, d.sections) == a
    assert encode_hsim(d.header, list(d.sections.items())) == a


def test_caller_sections_key_replaced():
    h = small_header(sections=[["bogus", 99, 1]])
    got = decode_hsim(encode_hsim(h, [("a", b"1")]))
    assert got.header["sections"] == [["a", 1, crc32c.crc32c(b"1")]]


def test_tuples_and_numpy_values_normalised():
    np = pytest.importorskip("numpy")
    h = small_header(shape=(np.int64(4), 5, np.int32(3)), codec={"step": np.float32(0.5), "w": np.arange(3)})
    got = decode_hsim(encode_hsim(h, [("a", b"")]))
    assert got.header["shape"] == [4, 5, 3]
    assert got.header["codec"] == {"step": 0.5, "w": [0, 1, 2]}


def test_unknown_optional_key_tolerated():
    h = small_header(future_key={"anything": [1, 2.5, None, b"raw"]}, another=7)
    got = decode_hsim(encode_hsim(h, SMALL_SECTIONS))
    assert got.header["future_key"] == {"anything": [1, 2.5, None, b"raw"]}
    assert got.header["another"] == 7


# --------------------------------------------------------------------------- versions / magic


@pytest.mark.parametrize("major", [0, 2, 65535])
def test_unknown_major_refused(small, major):
    bad = patch(small, 8, struct.pack("<H", major))
    with pytest.raises(HsimVersionError) as ei:
        decode_hsim(bad)
    msg = str(ei.value)
    assert f"{major}.0" in msg and "1." in msg
    with pytest.raises(HsimVersionError):
        HsimReader(bad)


def test_newer_minor_accepted(small):
    newer = patch(small, 10, struct.pack("<H", 7))
    got = decode_hsim(newer)
    assert got.version == (1, 7)
    assert got.sections == dict(SMALL_SECTIONS)
    with HsimReader(newer) as r:
        assert r.version == (1, 7)
        r.verify()


def test_bad_magic(small):
    with pytest.raises(HsimMagicError):
        decode_hsim(b"\x89PNG\r\n\x1a\n" + small[8:])
    with pytest.raises(HsimMagicError):
        decode_hsim(b"GIF89a")
    with pytest.raises(HsimMagicError):
        HsimReader(b"x" * 100)


def test_non_bytes_input():
    with pytest.raises(TypeError):
        decode_hsim("not bytes")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- corruption, exhaustive


def test_every_truncation_raises(small):
    for n in range(len(small)):
        with pytest.raises(HsimError):
            decode_hsim(small[:n])
        with pytest.raises(HsimError):
            with HsimReader(small[:n]) as r:
                r.verify()
    assert isinstance(_err(small[: len(small) - 1]), HsimTruncatedError)
    assert isinstance(_err(small[:10]), HsimTruncatedError)


def _err(data: bytes) -> HsimError:
    try:
        decode_hsim(data)
    except HsimError as exc:
        return exc
    raise AssertionError("no error")


def test_every_byte_flip_raises(small):
    masks = [1 << b for b in range(8)] + [0xFF]
    for i in range(len(small)):
        for m in masks:
            bad = bytearray(small)
            bad[i] ^= m
            bad = bytes(bad)
            with pytest.raises(HsimError):
                decode_hsim(bad)
            with pytest.raises(HsimError):
                with HsimReader(bad) as r:
                    r.verify()


def test_trailing_garbage_refused(small):
    for extra in (b"\x00", b"garbage", small):
        with pytest.raises(HsimTrailingDataError):
            decode_hsim(small + extra)
        with pytest.raises(HsimTrailingDataError):
            HsimReader(small + extra)


def test_payload_longer_than_index_refused():
    # checksums all correct, but the payload has one byte more than the index declares
    data = raw_with_sections([["a", 2, crc32c.crc32c(b"ab")]], b"abc")
    with pytest.raises(HsimTrailingDataError, match="unexpected byte"):
        decode_hsim(data)


def test_payload_shorter_than_index_refused():
    data = raw_with_sections([["a", 2, crc32c.crc32c(b"ab")], ["b", 50, 0]], b"ab" + b"c" * 10)
    with pytest.raises(HsimTruncatedError, match=r"section 'b' \(at byte \d+\) declares 50 bytes, 14 remain"):
        decode_hsim(data)


def test_section_checksum_message(small):
    bad = bytearray(small)
    bad[-4 - 7 - 1] ^= 0x10  # inside section 'a' ("hello")
    with pytest.raises(HsimChecksumError, match=r"checksum mismatch in section 'a' \(bytes \d+\.\.\d+\)"):
        decode_hsim(bytes(bad))


def test_header_checksum_message(small):
    with pytest.raises(HsimChecksumError, match=r"checksum mismatch in header \(bytes 20\.\.\d+\)"):
        decode_hsim(patch(small, 16, b"\0\0\0\0"))


def test_trailer_checksum(small):
    with pytest.raises(HsimChecksumError, match="trailer"):
        decode_hsim(small[:-1] + bytes([small[-1] ^ 1]))


# --------------------------------------------------------------------------- limits


ABSURD = [10**6, 10**6, 10**4]


def test_absurd_shape_refused():
    with pytest.raises(HsimLimitError, match="values exceeds"):
        validate_header(small_header(shape=ABSURD, sections=[]))
    with pytest.raises(HsimLimitError):
        encode_hsim(small_header(shape=ABSURD), [])
    with pytest.raises(HsimLimitError):
        decode_hsim(raw_with_sections([], b"", shape=ABSURD))
    with pytest.raises(HsimLimitError, match="rows/columns"):
        validate_header(small_header(shape=[2**20 + 1, 1, 1], sections=[]))
    with pytest.raises(HsimLimitError, match="bands"):
        validate_header(small_header(shape=[1, 1, 2**16 + 1], sections=[]))
    # a caller can lower the limits
    with pytest.raises(HsimLimitError):
        validate_header(small_header(sections=[]), Limits(max_values=59))
    validate_header(small_header(sections=[]), Limits(max_values=60))


def _peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


def test_header_length_larger_than_file_refused_without_allocating(small):
    huge = patch(small, 12, struct.pack("<I", 0xFFFFFFF0))

    def run(limits, exc):
        def f():
            with pytest.raises(exc):
                decode_hsim(huge, limits)
            with pytest.raises(exc):
                HsimReader(huge, limits)

        return f

    assert _peak_bytes(run(DEFAULT_LIMITS, HsimLimitError)) < 1 << 20
    big = Limits(max_header_bytes=2**32, max_file_bytes=2**40)
    assert _peak_bytes(run(big, HsimTruncatedError)) < 1 << 20
    with pytest.raises(HsimTruncatedError, match="header declares 1000 bytes"):
        decode_hsim(patch(small, 12, struct.pack("<I", 1000)))


def test_header_over_limit_on_encode():
    with pytest.raises(HsimLimitError, match="header is"):
        encode_hsim(small_header(tags={"big": "x" * 2000}), [], limits=Limits(max_header_bytes=1000))


def test_section_length_over_limit_refused_without_allocating():
    data = raw_with_sections([["a", 2**31, 0]], b"ab")
    assert _peak_bytes(lambda: pytest.raises(HsimLimitError, decode_hsim, data)) < 1 << 20
    with pytest.raises(HsimLimitError, match="section limit"):
        HsimReader(data)
    # allowed by the limits but not present in the file: truncated, still no allocation
    lim = Limits(max_section_bytes=2**32)
    assert _peak_bytes(lambda: pytest.raises(HsimTruncatedError, decode_hsim, data, lim)) < 1 << 20


def test_sum_of_section_lengths_over_file_limit():
    index = [[f"s{i}", 2**30, 0] for i in range(5)]  # 5 GiB in total, each within the 1 GiB limit
    with pytest.raises(HsimLimitError, match="payload bytes exceeds the file limit"):
        decode_hsim(raw_with_sections(index, b""))


def test_section_count_over_limit():
    index = [[f"s{i}", 0, 0] for i in range(65537)]
    data = raw_with_sections(index, b"")
    with pytest.raises(HsimLimitError, match="65537 sections"):
        decode_hsim(data)
    three = encode_hsim(small_header(), SMALL_SECTIONS)
    with pytest.raises(HsimLimitError):
        decode_hsim(three, Limits(max_sections=2))
    decode_hsim(three, Limits(max_sections=3))


def test_file_over_limit(small):
    with pytest.raises(HsimLimitError):
        decode_hsim(small, Limits(max_file_bytes=len(small) - 1))
    with pytest.raises(HsimLimitError):
        encode_hsim(small_header(), SMALL_SECTIONS, limits=Limits(max_file_bytes=len(small) - 1))


# --------------------------------------------------------------------------- header validation


def test_duplicate_section_names():
    with pytest.raises(HsimHeaderError, match="duplicate section name 'a'"):
        encode_hsim(small_header(), [("a", b"1"), ("a", b"2")])
    c = crc32c.crc32c(b"1")
    with pytest.raises(HsimHeaderError, match="duplicate"):
        decode_hsim(raw_with_sections([["a", 1, c], ["a", 1, c]], b"11"))


@pytest.mark.parametrize(
    "model",
    [
        MODEL.upper(),
        MODEL[:-1],
        MODEL + "0",
        "g" * 64,
        MODEL[:-1] + "\n",
        12345,
        None,
        MODEL.encode(),
    ],
)
def test_bad_model_hash(model):
    with pytest.raises(HsimHeaderError, match="'model'"):
        encode_hsim(small_header(model=model), [])
    h = small_header(model=model)
    h["sections"] = []
    with pytest.raises(HsimHeaderError, match="'model'"):
        decode_hsim(build_raw(h, b""))


def test_model_is_optional():
    """A codec that needs no base model leaves 'model' out; when present it must be a sha256."""
    h = small_header()
    del h["model"]
    assert "model" not in decode_hsim(encode_hsim(h, [])).header
    h["model"] = "abc"
    with pytest.raises(HsimHeaderError, match="'model'"):
        encode_hsim(h, [])


@pytest.mark.parametrize("key", ["shape", "dtype", "codec"])
def test_missing_required_key(key):
    h = small_header()
    del h[key]
    with pytest.raises(HsimHeaderError, match=f"'{key}' is missing"):
        encode_hsim(h, [])


def test_missing_sections_index_in_file():
    with pytest.raises(HsimHeaderError, match="'sections' is missing"):
        decode_hsim(build_raw(small_header(), b""))


@pytest.mark.parametrize(
    "changes, key",
    [
        ({"shape": [0, 5, 5]}, "shape"),
        ({"shape": [4, 5]}, "shape"),
        ({"shape": [4, 5, 3, 1]}, "shape"),
        ({"shape": [True, 5, 3]}, "shape"),
        ({"shape": [4.0, 5, 3]}, "shape"),
        ({"shape": [float("nan"), 5, 3]}, "shape"),
        ({"shape": [-4, 5, 3]}, "shape"),
        ({"shape": "4x5x3"}, "shape"),
        ({"dtype": "float16"}, "dtype"),
        ({"dtype": 5}, "dtype"),
        ({"codec": [1, 2]}, "codec"),
        ({"codec": None}, "codec"),
        ({"geo": [1, 2]}, "geo"),
        ({"geo": "EPSG:4326"}, "geo"),
        ({"tags": {"a": 1}}, "tags"),
        ({"tags": ["a"]}, "tags"),
        ({"created_by": 3}, "created_by"),
    ],
)
def test_bad_header_values(changes, key):
    h = small_header(**changes)
    with pytest.raises(HsimHeaderError, match=f"header key '{key}'"):
        encode_hsim(h, [])
    h["sections"] = []
    with pytest.raises(HsimHeaderError, match=f"header key '{key}'"):
        decode_hsim(build_raw(h, b""))


def test_shape_message_format():
    with pytest.raises(HsimHeaderError) as ei:
        validate_header(small_header(shape=[0, 5, 5], sections=[]))
    assert str(ei.value) == "header key 'shape': expected 3 positive ints, got [0, 5, 5]"


def test_geo_nil_and_all_dtypes_accepted():
    for dt in C.DTYPES:
        validate_header(small_header(dtype=dt, geo=None, sections=[]))


@pytest.mark.parametrize("name", ["", "x" * 65, "caf\u00e9", "tab\there", "nl\n", 3, None])
def test_bad_section_names(name):
    with pytest.raises(HsimHeaderError, match="sections"):
        encode_hsim(small_header(), [(name, b"1")])


@pytest.mark.parametrize(
    "entry",
    [
        ["a", -1, 0],
        ["a", 1.0, 0],
        ["a", True, 0],
        ["a", 0, -1],
        ["a", 0, 2**32],
        ["a", 0, 0.5],
        ["a", 0],
        ["a", 0, 0, 0],
        "a",
        None,
    ],
)
def test_bad_section_entries(entry):
    with pytest.raises(HsimHeaderError, match="'sections'"):
        decode_hsim(raw_with_sections([entry], b""))


def test_sections_not_array():
    with pytest.raises(HsimHeaderError, match="'sections'"):
        decode_hsim(raw_with_sections({"a": 1}, b""))


def test_64_char_printable_name_ok():
    name = "~ !" + "z" * 61
    assert decode_hsim(encode_hsim(small_header(), [(name, b"1")])).sections == {name: b"1"}


# --------------------------------------------------------------------------- hostile msgpack


def _with_codec_bytes(codec_bytes: bytes) -> bytes:
    """A header whose 'codec' value is the given raw msgpack bytes."""
    parts = small_header()
    del parts["codec"]
    parts["sections"] = []
    body = msgpack.packb(parts, use_bin_type=True)
    n = len(parts)
    assert body[0] == 0x80 | n
    hbytes = bytes([0x80 | (n + 1)]) + body[1:] + msgpack.packb("codec") + codec_bytes
    return build_raw(None, b"", hbytes=hbytes)


def test_hostile_msgpack_headers():
    ok = _with_codec_bytes(msgpack.packb({}))
    assert decode_hsim(ok).header["codec"] == {}
    cases = {
        "deep nesting": b"\x91" * 40 + b"\x01",
        "deep maps": (b"\x81\xa1k") * 40 + b"\x01",
        "int key": b"\x81\x01\x02",
        "bin key": b"\x81\xc4\x01k\x02",
        "duplicate key": b"\x82\xa1a\x01\xa1a\x02",
        "ext type": b"\xd4\x01\x00",
        "timestamp": b"\xd6\xff\x00\x00\x00\x01",
        "bad utf-8": b"\xa2\xff\xfe",
        "reserved byte": b"\xc1",
        "str longer than header": b"\xdb\xff\xff\xff\xf0abc",
        "array longer than header": b"\xdd\xff\xff\xff\xf0",
    }
    for what, raw in cases.items():
        with pytest.raises(HsimHeaderError):
            decode_hsim(_with_codec_bytes(raw))
            pytest.fail(what)


def test_header_not_a_map_and_extra_bytes():
    with pytest.raises(HsimHeaderError, match="expected a map"):
        decode_hsim(build_raw(None, b"", hbytes=msgpack.packb([1, 2, 3])))
    good = msgpack.packb(dict(small_header(), sections=[]), use_bin_type=True)
    with pytest.raises(HsimHeaderError, match="extra bytes"):
        decode_hsim(build_raw(None, b"", hbytes=good + b"\x00"))
    with pytest.raises(HsimHeaderError, match="ends early"):
        decode_hsim(build_raw(None, b"", hbytes=good[:-1]))
    with pytest.raises(HsimHeaderError):
        decode_hsim(build_raw(None, b"", hbytes=b""))


def test_encode_rejects_unstorable_values():
    with pytest.raises(HsimHeaderError, match="cannot be stored"):
        encode_hsim(small_header(codec={"f": object()}), [])
    with pytest.raises(HsimHeaderError, match="not a string"):
        encode_hsim(small_header(codec={1: 2}), [])
    with pytest.raises(HsimHeaderError, match="nesting"):
        deep: dict = {}
        d = deep
        for _ in range(40):
            d["k"] = {}
            d = d["k"]
        encode_hsim(small_header(codec=deep), [])
    with pytest.raises(HsimHeaderError, match="msgpack"):
        encode_hsim(small_header(codec={"big": 2**70}), [])
    with pytest.raises(TypeError):
        encode_hsim(small_header(), [("a", "text")])  # type: ignore[list-item]


# --------------------------------------------------------------------------- HsimReader


class CountingIO(io.BytesIO):
    def __init__(self, data: bytes):
        super().__init__(data)
        self.bytes_read = 0

    def read(self, n=-1):
        out = super().read(n)
        self.bytes_read += len(out)
        return out


def test_reader_reads_only_requested_section():
    big = os.urandom(50_000)
    data = encode_hsim(small_header(), [("big0", big), ("small", b"tiny"), ("big1", big)])
    f = CountingIO(data)
    r = HsimReader(f)
    header_bytes = f.bytes_read
    assert header_bytes < 300
    assert r.section("small") == b"tiny"
    assert f.bytes_read == header_bytes + 4
    assert r.section_names == ["big0", "small", "big1"]
    assert "small" in r and "nope" not in r
    off, length = r.section_spans["small"]
    assert data[off : off + length] == b"tiny"
    r.close()
    assert not f.closed  # a caller's stream is not closed


def test_reader_detects_corruption_in_one_section(small):
    with HsimReader(small) as r:
        off_b, len_b = r.section_spans["b"]
    bad = bytearray(small)
    bad[off_b + 3] ^= 0x40
    with HsimReader(bytes(bad)) as r:  # the header is intact: opening works
        assert r.section("a") == b"hello"
        assert r.section("e") == b""
        with pytest.raises(HsimChecksumError, match=rf"section 'b' \(bytes {off_b}\.\.{off_b + len_b}\)"):
            r.section("b")
        with pytest.raises(HsimChecksumError, match="section 'b'"):
            r.verify()


def test_reader_verify_detects_trailer_only_damage(small):
    bad = small[:-1] + bytes([small[-1] ^ 0x80])
    with HsimReader(bad) as r:
        for n in r.section_names:
            r.section(n)
        with pytest.raises(HsimChecksumError, match="trailer"):
            r.verify()


def test_reader_unknown_section(small):
    with HsimReader(small) as r:
        with pytest.raises(HsimHeaderError, match="no section named 'zz'"):
            r.section("zz")


def test_reader_on_path_bytes_and_stream(tmp_path, small):
    p = tmp_path / "x.hsim"
    p.write_bytes(small)
    for src in (p, str(p), small, bytearray(small), io.BytesIO(small)):
        with HsimReader(src) as r:
            assert r.file_size == len(small)
            assert r.version == (1, 0)
            assert r.header == decode_hsim(small).header
            assert {n: r.section(n) for n in r.section_names} == dict(SMALL_SECTIONS)
            r.verify()
    r = HsimReader(p)
    f = r._f
    r.close()
    assert f.closed


def test_reader_stream_with_offset(small):
    f = io.BytesIO(b"PREFIX" + small)
    f.seek(6)
    with HsimReader(f) as r:
        assert r.file_size == len(small)
        assert r.section("a") == b"hello"
        r.verify()


def test_reader_verify_chunked(monkeypatch):
    monkeypatch.setattr(C, "_CHUNK", 7)
    data = encode_hsim(small_header(), [("a", os.urandom(100)), ("b", os.urandom(33)), ("c", b"")])
    with HsimReader(data) as r:
        r.verify()
    bad = bytearray(data)
    bad[-20] ^= 1
    with HsimReader(bytes(bad)) as r:
        with pytest.raises(HsimChecksumError, match="section 'b'"):
            r.verify()


def test_reader_rejects_bad_source():
    with pytest.raises(TypeError):
        HsimReader(12345)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- files


def test_write_and_read_file(tmp_path):
    p = tmp_path / "cube.hsim"
    n = write_hsim(p, full_header(), [("lat0", b"abc"), ("e", b"")])
    assert n == p.stat().st_size
    got = read_hsim(p)
    assert got.sections == {"lat0": b"abc", "e": b""}
    assert got.header["tags"] == full_header()["tags"]
    assert p.read_bytes() == encode_hsim(full_header(), [("lat0", b"abc"), ("e", b"")])


def test_write_refuses_existing_without_force(tmp_path):
    p = tmp_path / "cube.hsim"
    p.write_bytes(b"precious")
    with pytest.raises(OutputExistsError):
        write_hsim(p, small_header(), SMALL_SECTIONS)
    assert p.read_bytes() == b"precious"
    write_hsim(p, small_header(), SMALL_SECTIONS, force=True)
    assert read_hsim(p).sections == dict(SMALL_SECTIONS)
    assert sorted(os.listdir(tmp_path)) == ["cube.hsim"]


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    p = tmp_path / "cube.hsim"

    def boom(fd):
        raise OSError("disk full")

    import hsicodec.io.atomic as fileio

    monkeypatch.setattr(fileio.os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        write_hsim(p, small_header(), SMALL_SECTIONS)
    assert os.listdir(tmp_path) == []
    monkeypatch.undo()
    # an invalid header fails before any file is created
    with pytest.raises(HsimHeaderError):
        write_hsim(p, small_header(model="nope"), SMALL_SECTIONS)
    assert os.listdir(tmp_path) == []


def test_read_file_over_limit(tmp_path, small):
    p = tmp_path / "x.hsim"
    p.write_bytes(small)
    with pytest.raises(HsimLimitError):
        read_hsim(p, Limits(max_file_bytes=10))
    with pytest.raises(HsimLimitError):
        HsimReader(p, Limits(max_file_bytes=10))
