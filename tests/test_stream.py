"""Tiled `.hsim` files (format 1.1, hsicodec.codec.tiled): streamed compress/decompress of large scenes.

Small cubes with --tile 32 so there are partial edge tiles. No timing or memory
thresholds here: those are measured by tools/bench_stream.py.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import hsicodec
from hsicodec import metrics
from hsicodec.codec import api as codec
from hsicodec.codec import cube as cube_codec
from hsicodec.codec import tiled as stream
from hsicodec.codec import tiledecode
from hsicodec.errors import HsimChecksumError, HsimError, HsimHeaderError, HsimLimitError, OptionError
from hsicodec.format.container import HsimReader, encode_hsim
from hsicodec.io import raster
from hsicodec.io.raster import GeoInfo, open_cube_reader, open_cube_writer, read_cube, write_cube

MODEL = "hsi-grid-v1"  # one model (not auto) keeps the tests fast
WKT = (
    'PROJCS["WGS 84 / UTM zone 11N",GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563]],'
    'PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],PROJECTION["Transverse_Mercator"],'
    'PARAMETER["latitude_of_origin",0],PARAMETER["central_meridian",-117],PARAMETER["scale_factor",0.9996],'
    'PARAMETER["false_easting",500000],PARAMETER["false_northing",0],UNIT["metre",1],AUTHORITY["EPSG","32611"]]'
)


def smooth_cube(h: int, w: int, c: int, seed: int = 0) -> np.ndarray:
    """A low-rank mixture of smooth abundance maps plus noise, uint16."""
    rng = np.random.default_rng(seed)
    rr, cc = np.mgrid[0:h, 0:w].astype(np.float64)
    maps = np.stack([np.sin(rr / (7 + 3 * k) + k) * np.cos(cc / (9 + 2 * k) - k) + 1.2 for k in range(3)], -1)
    spectra = np.stack(
        [np.linspace(0.2 + 0.2 * k, 1.0 - 0.1 * k, c) + 0.1 * np.sin(np.arange(c) / (2 + k)) for k in range(3)]
    )
    cube = maps @ spectra * 1500 + rng.normal(0, 5, (h, w, c)) + 200
    return np.clip(np.rint(cube), 0, 65535).astype(np.uint16)


@pytest.fixture(scope="module")
def cube():
    return smooth_cube(70, 90, 12)


@pytest.fixture(scope="module")
def geo():
    return GeoInfo(
        crs_wkt=WKT,
        transform=(30.0, 0.0, 500000.0, 0.0, -30.0, 4100000.0),
        wavelengths=[400.0 + 50 * i for i in range(12)],
        fwhm=[10.0] * 12,
        band_names=[f"B{i}" for i in range(12)],
        wavelength_units="Nanometers",
        units="DN",
    )


@pytest.fixture(scope="module")
def tiled(cube, geo):
    st: dict = {}
    data = stream.compress_tiled(cube, tile=32, geo=geo, bpppb=2.0, effort="fast", model=MODEL, stats=st)
    return data, st


@pytest.fixture(scope="module")
def full(tiled):
    return hsicodec.decompress(tiled[0])


def _rebuild(header: dict, sections: list) -> bytes:
    return encode_hsim(header, sections)


def _sections(data: bytes) -> tuple[dict, list]:
    with HsimReader(data) as r:
        header = {k: v for k, v in r.header.items() if k != "sections"}
        return header, [(n, r.section(n)) for n in r.section_names]


# --------------------------------------------------------------------------- format


def test_tiled_file_layout(tiled, cube):
    data, st = tiled
    with HsimReader(data) as r:
        assert r.version == (1, 1)
        h = r.header
        assert h["codec"] == {"id": "tiled"} and h["shape"] == [70, 90, 12] and h["dtype"] == "uint16"
        assert h["tiles"] == {"size": [32, 32], "grid": [3, 3]}
        assert r.section_names == [f"t{i}" for i in range(9)]
        for i in range(9):
            with HsimReader(r.section(f"t{i}")) as t:  # every tile is a complete, valid .hsim
                r0, c0, th, tw = stream.TileGrid(70, 90, 12, 32, 32).bounds(i)
                assert t.header["shape"] == [th, tw, 12] and t.header["dtype"] == "uint16"
                assert "geo" not in t.header and t.header["codec"]["id"] == "grid"
                t.verify()
    assert st["tiles"] == {"size": [32, 32], "grid": [3, 3], "count": 9, "empty": 0}


def test_untiled_files_are_unchanged_by_default(cube, tmp_path):
    src = tmp_path / "small.npy"
    np.save(src, cube[:20, :24])
    codec.compress_file(src, tmp_path / "small.hsim", bpppb=1.0, effort="fast", model=MODEL)
    with HsimReader(tmp_path / "small.hsim") as r:
        assert r.version == (1, 0) and r.header["codec"]["id"] == "grid" and "tiles" not in r.header


# --------------------------------------------------------------------------- round trip


def test_round_trip_shape_dtype_geo(full, cube, geo):
    out, g = full
    assert out.shape == cube.shape and out.dtype == cube.dtype
    assert g.crs_wkt == geo.crs_wkt and g.transform == geo.transform and g.wavelengths == geo.wavelengths
    assert g.band_names == geo.band_names and g.fwhm == geo.fwhm and g.units == geo.units
    assert metrics.psnr(cube, out) > 30


def test_each_tile_decodes_as_its_own_compress(tiled, full, cube):
    """A tile of the tiled file is exactly compress(tile) at the tile's recorded rate target."""
    _, st = tiled
    out, _ = full
    for i in (0, 4, 8):  # interior and partial edge tiles
        rec = st["per_tile"][i]
        r0, c0, h, w = rec["window"]
        alone = hsicodec.compress(cube[r0 : r0 + h, c0 : c0 + w], bpppb=rec["bpppb_target"], effort="fast", model=MODEL)
        assert len(alone) == rec["bytes"]
        dec, _ = hsicodec.decompress(alone)
        assert np.array_equal(out[r0 : r0 + h, c0 : c0 + w], dec)


def test_psnr_target_applies_per_tile(cube):
    st: dict = {}
    data = stream.compress_tiled(cube[:40, :64], tile=32, psnr=34.0, effort="fast", model=MODEL, stats=st)
    out, _ = hsicodec.decompress(data)
    for rec in st["per_tile"]:
        r0, c0, h, w = rec["window"]
        assert metrics.psnr(cube[r0 : r0 + h, c0 : c0 + w], out[r0 : r0 + h, c0 : c0 + w]) >= 34.0


def test_whole_file_rate_lands_near_the_target():
    cube = smooth_cube(64, 96, 12, seed=3)  # full tiles only
    st: dict = {}
    data = stream.compress_tiled(cube, tile=32, bpppb=1.5, effort="fast", model=MODEL, stats=st)
    rate = metrics.bpppb(len(data), cube.shape)
    assert st["bpppb"] == pytest.approx(rate)
    assert 0.85 * 1.5 <= rate <= 1.5


def test_window_across_tile_boundaries_equals_crop(tiled, full, geo):
    out, _ = full
    part, g = hsicodec.decompress(tiled[0], window=(20, 25, 30, 40), bands=(2, 9))
    assert np.array_equal(part, out[20:50, 25:65, 2:9])
    assert g.transform == (30.0, 0.0, 500000.0 + 25 * 30.0, 0.0, -30.0, 4100000.0 - 20 * 30.0)
    assert g.wavelengths == geo.wavelengths[2:9]


def test_tiles_decoded_in_row_strips_equal_whole_tiles(tiled, full, monkeypatch):
    monkeypatch.setattr(stream, "STRIP_VALUES", 5 * 32 * 12)  # 5-row strips inside every tile
    out, _ = hsicodec.decompress(tiled[0])
    assert np.array_equal(out, full[0])
    part, _ = hsicodec.decompress(tiled[0], window=(3, 30, 61, 7), bands=(4, 6))
    assert np.array_equal(part, full[0][3:64, 30:37, 4:6])


def test_window_decode_touches_only_intersecting_tiles(tiled, monkeypatch):
    read, decoded = [], []
    orig_section, orig_decode = HsimReader.section, tiledecode.decode_tile

    def spy_section(self, name):
        read.append(name)
        return orig_section(self, name)

    def spy_decode(data, grid, i, *a, **k):
        decoded.append(i)
        return orig_decode(data, grid, i, *a, **k)

    monkeypatch.setattr(HsimReader, "section", spy_section)
    monkeypatch.setattr(tiledecode, "decode_tile", spy_decode)
    hsicodec.decompress(tiled[0], window=(40, 70, 10, 10))  # inside tile (1, 2) = 5
    assert decoded == [5]
    decoded.clear()
    hsicodec.decompress(tiled[0], window=(20, 25, 30, 20))  # rows 20..50, cols 25..45: tiles 0, 1, 3, 4
    assert sorted(decoded) == [0, 1, 3, 4]  # decoded on two threads: in any order
    outer = [n for n in read if n.startswith("t")]
    assert outer == ["t5", "t0", "t1", "t3", "t4"]
    # the outer file is never streamed whole for a window (each nested tile is verified in memory)
    verified = []
    orig_verify = HsimReader.verify
    monkeypatch.setattr(HsimReader, "verify", lambda self: (verified.append(self.file_size), orig_verify(self)))
    hsicodec.decompress(tiled[0], window=(0, 0, 5, 5))
    assert verified and len(tiled[0]) not in verified
    hsicodec.decompress(tiled[0])
    assert len(tiled[0]) in verified  # a whole-scene decode checks the whole file first


def test_decompress_file_writes_windows_with_geo(tiled, full, tmp_path, geo):
    src = tmp_path / "t.hsim"
    src.write_bytes(tiled[0])
    out, _ = full
    st = codec.decompress_file(src, tmp_path / "o.tif")
    assert st["tiled"] and st["tiles_decoded"] == 9
    got, g = read_cube(tmp_path / "o.tif")
    assert np.array_equal(got, out) and g.crs_wkt and "32611" in g.crs_wkt
    assert g.transform == geo.transform and g.wavelengths == geo.wavelengths and g.band_names == geo.band_names
    st = codec.decompress_file(src, tmp_path / "w.npy", window=(30, 10, 40, 50), bands=(3, 5))
    assert st["tiles_decoded"] == 6
    assert np.array_equal(np.load(tmp_path / "w.npy"), out[30:70, 10:60, 3:5])
    codec.decompress_file(src, tmp_path / "e.img", window=(1, 2, 60, 33))
    got, g = read_cube(tmp_path / "e.img")
    assert np.array_equal(got, out[1:61, 2:35]) and g.wavelengths == geo.wavelengths


def test_file_info_reports_tiles(tiled, tmp_path):
    src = tmp_path / "t.hsim"
    src.write_bytes(tiled[0])
    info = codec.file_info(src)
    assert info["format_version"] == "1.1" and info["shape"] == [70, 90, 12]
    assert info["tiles"] == {"size": [32, 32], "grid": [3, 3], "count": 9, "empty": 0}


# --------------------------------------------------------------------------- invalid values


def test_all_nodata_tile_is_stored_empty_and_decodes_to_nodata(cube):
    c = cube.astype(np.int16)
    c[:32, 32:64] = -1  # tile 1 entirely nodata
    c[40:45, 5:9] = -1  # part of tile 3
    st: dict = {}
    data = stream.compress_tiled(c, tile=32, bpppb=2.0, effort="fast", model=MODEL, nodata=-1, stats=st)
    assert st["tiles"]["empty"] == 1
    with HsimReader(data) as r:
        assert r.section_spans["t1"][1] == 0 and r.header["tiles"]["fill"] == -1.0
    out, _ = hsicodec.decompress(data)
    assert np.array_equal(out == -1, c == -1)
    with pytest.raises(OptionError, match="nodata"):
        stream.compress_tiled(np.full((40, 40, 3), -1, np.int16), tile=32, bpppb=2.0, model=MODEL, nodata=-1)


# --------------------------------------------------------------------------- limits and corruption


def _tiled_header(shape, size, grid, **extra):
    return {
        "shape": list(shape),
        "dtype": "uint16",
        "model": "0" * 64,
        "codec": {"id": "tiled"},
        "tiles": {"size": list(size), "grid": list(grid), **extra},
    }


@pytest.mark.parametrize(
    "shape,size,grid,err,match",
    [
        ((1 << 17, 1 << 17, 1), (1, 1), (1 << 17, 1 << 17), HsimLimitError, "tiles"),  # 2^34 tiles
        ((1 << 14, 1 << 14, 64), (1 << 14, 1 << 14), (1, 1), HsimLimitError, "values"),  # 2^34-value tile
        ((70, 90, 12), (32, 32), (3, 4), HsimHeaderError, "grid"),  # grid mismatch
        ((70, 90, 12), (80, 32), (1, 3), HsimHeaderError, "larger"),  # tile > scene
        ((70, 90, 12), (0, 32), (1, 3), HsimHeaderError, "size"),  # zero tile
        ((70, 90, 12), (32, 32), (3, 3), HsimHeaderError, "missing"),  # no tile sections
    ],
)
def test_absurd_tile_headers_refused_before_allocation(shape, size, grid, err, match):
    data = _rebuild(_tiled_header(shape, size, grid), [])
    with pytest.raises(err, match=match):
        hsicodec.decompress(data)


def test_writer_refuses_too_many_tiles_before_encoding(monkeypatch):
    monkeypatch.setattr(cube_codec, "compress", lambda *a, **k: pytest.fail("no tile may be encoded"))
    with pytest.raises(OptionError, match="tiles"):
        stream.compress_tiled(np.zeros((300, 300, 1), np.uint8), tile=1)


def test_truncated_tiled_file_is_an_error(tiled):
    data = tiled[0]
    for cut in (len(data) - 1, len(data) // 2, 30):
        with pytest.raises(HsimError):
            hsicodec.decompress(data[:cut])


def test_corrupted_tile_is_an_error_whole_or_window(tiled):
    data = bytearray(tiled[0])
    with HsimReader(bytes(data)) as r:
        off, length = r.section_spans["t4"]
    data[off + length // 2] ^= 0x40
    bad = bytes(data)
    with pytest.raises(HsimChecksumError):
        hsicodec.decompress(bad)
    with pytest.raises(HsimChecksumError, match="t4"):
        hsicodec.decompress(bad, window=(40, 40, 4, 4))
    hsicodec.decompress(bad, window=(0, 0, 4, 4))  # tile 0 is intact and is all that is read


def test_inconsistent_nested_tiles_are_refused(tiled):
    header, secs = _sections(tiled[0])
    swapped = [(n, secs[1][1] if n == "t0" else d) for n, d in secs]  # same shape: decodes
    hsicodec.decompress(_rebuild(header, swapped))
    wrong = [(n, secs[2][1] if n == "t0" else d) for n, d in secs]  # t2 is 32x26: wrong shape for t0
    with pytest.raises(HsimHeaderError, match="tile 0.*shape"):
        hsicodec.decompress(_rebuild(header, wrong))
    garbage = [(n, b"\x89HSIM\r\n\x1a" + b"\0" * 20 if n == "t3" else d) for n, d in secs]
    with pytest.raises(HsimError, match="tile 3"):
        hsicodec.decompress(_rebuild(header, garbage), window=(32, 0, 3, 3))
    nested = [(n, tiled[0] if n == "t8" else d) for n, d in secs]  # a tiled file as a tile
    with pytest.raises(HsimHeaderError, match="tile 8"):
        hsicodec.decompress(_rebuild(header, nested), window=(64, 64, 2, 2))


# --------------------------------------------------------------------------- streaming from files


def test_streamed_compress_reads_the_geotiff_by_windows(cube, geo, tmp_path, monkeypatch):
    src = tmp_path / "scene.tif"
    write_cube(src, cube, geo)
    windows = []
    orig = raster.CubeReader.read

    def spy(self, row, col, height, width):
        windows.append((row, col, height, width))
        return orig(self, row, col, height, width)

    def no_full_read(*a, **k):
        raise AssertionError("the streamed compress must not read the whole scene")

    monkeypatch.setattr(raster.CubeReader, "read", spy)
    monkeypatch.setattr(raster, "read_cube", no_full_read)
    monkeypatch.setattr(codec, "read_cube", no_full_read)
    st = codec.compress_file(src, tmp_path / "s.hsim", tile=32, bpppb=2.0, effort="fast", model=MODEL)
    assert st["tiled"] and len(windows) == 9
    assert all(h <= 32 and w <= 32 for _, _, h, w in windows)
    seen = np.zeros(cube.shape[:2], int)
    for r, c, h, w in windows:
        seen[r : r + h, c : c + w] += 1
    assert (seen == 1).all()  # every pixel read exactly once
    monkeypatch.undo()
    out, g = hsicodec.decompress(tmp_path / "s.hsim")
    assert out.shape == cube.shape and g.transform == geo.transform and g.wavelengths == geo.wavelengths


def test_auto_tiling_threshold_and_tile_zero(cube, tmp_path, monkeypatch):
    src = tmp_path / "c.npy"
    np.save(src, cube[:40, :40])
    monkeypatch.setattr(stream, "AUTO_TILE_VALUES", 1000)
    codec.compress_file(src, tmp_path / "auto.hsim", bpppb=2.0, effort="fast", model=MODEL)
    with HsimReader(tmp_path / "auto.hsim") as r:
        assert r.header["tiles"]["size"] == [40, 40]  # default 512, clamped to the scene
    codec.compress_file(src, tmp_path / "plain.hsim", tile=0, bpppb=2.0, effort="fast", model=MODEL)
    with HsimReader(tmp_path / "plain.hsim") as r:
        assert "tiles" not in r.header


def test_cube_reader_and_writer_windows(cube, geo, tmp_path):
    band_first = np.ascontiguousarray(cube.transpose(2, 0, 1))
    np.save(tmp_path / "bf.npy", band_first)
    with open_cube_reader(tmp_path / "bf.npy", band_first=True) as r:
        assert r.shape == cube.shape and r.dtype == cube.dtype
        assert np.array_equal(r.read(5, 7, 30, 40), cube[5:35, 7:47])
    for name in ("w.tif", "w.npy", "w.img"):
        with open_cube_writer(tmp_path / name, cube.shape, cube.dtype, geo) as wr:
            for r0 in range(0, 70, 32):
                for c0 in range(0, 90, 32):
                    wr.write(r0, c0, cube[r0 : r0 + 32, c0 : c0 + 32])
        got, g = read_cube(tmp_path / name)
        assert np.array_equal(got, cube)
        if name != "w.npy":
            assert g.wavelengths == geo.wavelengths and g.transform == geo.transform
    with pytest.raises(OptionError):  # an interrupted write leaves nothing behind
        with open_cube_writer(tmp_path / "x.tif", cube.shape, cube.dtype) as wr:
            wr.write(0, 0, cube[:10, :10])
            raise OptionError("stop")
    assert not (tmp_path / "x.tif").exists()


# --------------------------------------------------------------------------- command line


def test_cli_tile_option_and_window(cube, tmp_path):
    src = tmp_path / "c.npy"
    np.save(src, cube)
    run = [sys.executable, "-m", "hsicodec.cli"]
    r = subprocess.run(
        run
        + [
            "compress",
            str(src),
            str(tmp_path / "c.hsim"),
            "--tile",
            "32",
            "--bpppb",
            "2",
            "--effort",
            "fast",
            "--model",
            MODEL,
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["tiles"]["count"] == 9 and st["bpppb"] == pytest.approx(metrics.bpppb(st["bytes"], cube.shape))
    r = subprocess.run(run + ["info", str(tmp_path / "c.hsim")], capture_output=True, text=True)
    assert r.returncode == 0 and "format: hsim 1.1" in r.stdout and "grid: [3, 3]" in r.stdout
    r = subprocess.run(
        run + ["decompress", str(tmp_path / "c.hsim"), str(tmp_path / "w.npy"), "--window", "10,20,40,40"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    full, _ = hsicodec.decompress(tmp_path / "c.hsim")
    assert np.array_equal(np.load(tmp_path / "w.npy"), full[10:50, 20:60])
