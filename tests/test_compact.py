"""The compact header of map-layer files (grid v5): tables as predicted, Exp-Golomb coded residuals."""

import numpy as np
import pytest

from hsicodec.errors import HsimHeaderError
from hsicodec.format import compact


def _tables(rng, k, wt):
    rl = {
        "k": k,
        "q": int(rng.integers(-512, 513)),
        "wt": wt,
        "ma": int(rng.integers(0, 5000)),
        "ro": 3,
        "ls": bytes(rng.integers(0, 256, k * (wt + 1)).tolist()),
        "co": bytes(rng.integers(0, 256, 26).tolist()),
    }
    sp = {
        "me": -5,
        "be": -40,
        "ma": 77,
        "sc": bytes(rng.integers(0, 256, k + 1).tolist()),
        "bd": bytes(rng.integers(0, 256, k).tolist()),
    }
    return sp, rl


@pytest.mark.parametrize("k,wt", [(1, 0), (3, 5), (16, 5), (32, 8)])
def test_tables_round_trip_exactly_even_when_random(k, wt):
    rng = np.random.default_rng(k * 10 + wt)
    sp, rl = _tables(rng, k, wt)
    codec = {"id": "grid", "norm": 12768, "sp": sp, "rl": rl}
    packed = compact.pack_codec(codec, 321)
    assert compact.is_compact(packed) and packed["sp"][3] == 321 and len(packed["rl"]) == 6
    back, n = compact.unpack_codec(packed, 255, 8)
    assert n == 321 and back == codec


@pytest.mark.parametrize("seed", range(6))
def test_sizing_gives_tables_of_the_packed_length(seed):
    """``sizing`` (the rate search's header estimates) counts the bits instead of packing them: zero bytes of
    exactly the packed tables' length, random tables and smooth ones (short codes) alike."""
    rng = np.random.default_rng(seed)
    k, wt = int(rng.integers(1, 40)), int(rng.integers(0, 9))
    sp, rl = _tables(rng, k, wt)
    if seed % 2:  # smooth: residuals of 0 and ±1, codes of 1–3 bits
        rl["ls"] = bytes([100 + (i % 2) for i in range(k * (wt + 1))])
        sp["sc"], sp["bd"] = bytes([128] * (k + 1)), bytes(k)
    codec = {"id": "grid", "norm": 3, "sp": sp, "rl": rl}
    real, sized = compact.pack_codec(codec, 99), compact.pack_codec(codec, 99, sizing=True)
    for key in ("sp", "rl"):
        t = next(v for v in real[key] if isinstance(v, bytes))
        u = next(v for v in sized[key] if isinstance(v, bytes))
        assert len(u) == len(t) and u == bytes(len(t))
        assert [v for v in real[key] if not isinstance(v, bytes)] == [v for v in sized[key] if not isinstance(v, bytes)]


def test_smooth_tables_take_fewer_bytes_than_raw():
    """Typical tables (codes falling by level, class offsets rising by class) shrink to about half."""
    k, wt = 8, 5
    ls = bytes(int(v) for v in (170 - 6 * np.arange(k)[:, None] - 9 * np.arange(wt + 1)[None, :]).ravel())
    co = bytes(list(range(110, 149, 3)) + list(range(112, 151, 3)))
    rl = {"k": k, "q": -100, "wt": wt, "ma": 300, "ro": 1, "ls": ls, "co": co}
    t = compact.pack_maps(rl)[5]
    assert len(t) < 0.5 * (len(ls) + len(co))


def test_worked_example_of_the_bit_layout():
    """sc = [128, 130], bd = [0]: residuals 0 (order 2: '100'), +2 (zigzag 4, order 2: u = 8 → '01000'),
    0 (order 0: '1') → 100 01000 1 → 0b10001000, 0b10000000."""
    sp = {"me": 0, "be": 0, "ma": 1, "sc": bytes([128, 130]), "bd": bytes([0])}
    arr = compact.pack_spectral(sp, 1, 9)
    assert arr == [0, 0, 1, 9, bytes([0b10001000, 0b10000000])]
    assert compact.unpack_spectral(arr, 1) == (sp, 9)


@pytest.mark.parametrize(
    "t,match",
    [
        (b"", "end early"),  # no bits at all
        (bytes([0b10001000, 0b10000000, 0]), "trailing"),  # an extra byte
        (bytes([0b10001000, 0b10000001]), "trailing"),  # nonzero padding
        (bytes([0, 0, 0, 0]), "out of range"),  # a prefix of more than MAX_PREFIX zeros
        (bytes([0b00000001, 0b11111111, 0b11111111]), "outside 0..255"),  # sc[0] = 128 + a big residual
    ],
)
def test_bad_table_bits_are_refused(t, match):
    with pytest.raises(HsimHeaderError, match=match):
        compact.unpack_spectral([0, 0, 1, 9, t], 1)


@pytest.mark.parametrize(
    "arr", [None, [0, 0, 1, 9], [0, 0, 1, -1, b"\x88\x80"], [0, 0, 1, 9, "x"], [0, 0, 1, True, b"\x88\x80"]]
)
def test_malformed_spectral_arrays_are_refused(arr):
    with pytest.raises(HsimHeaderError, match="codec.sp"):
        compact.unpack_spectral(arr, 1)


@pytest.mark.parametrize(
    "arr",
    [
        [0, 0, 5, 1, 0, b""],
        [300, 0, 5, 1, 0, b""],
        [2, 0, 9, 1, 0, b""],
        [2, 0, 5, 1, 0],
        [2, 0, 5, 1, 0, [1]],
        ["2", 0, 5, 1, 0, b""],
    ],
)
def test_malformed_map_arrays_are_refused(arr):
    with pytest.raises(HsimHeaderError, match="codec.rl"):
        compact.unpack_maps(arr, 255, 8)


def test_v4_maps_pass_through_unchanged():
    codec = {"id": "grid", "norm": 1.0, "sp": {"me": 0}, "rl": {"k": 1}}
    assert compact.unpack_codec(codec, 255, 8) == (codec, None)


def test_only_the_checkerboard_scheme_has_a_compact_form():
    rl = {"k": 1, "q": 0, "wt": 0, "ma": 1, "ro": 0, "ls": b"\x80", "co": bytes(7)}
    with pytest.raises(ValueError, match="checkerboard"):
        compact.pack_maps(rl)
