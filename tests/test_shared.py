"""A spectral stage shared by many small files (hsicodec.coding.shared): stored once in a tiled file or a zarr
codec's configuration, named by each tile or chunk, which then carries no mean and basis of its own."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import hsicodec
from hsicodec.codec import tiled
from hsicodec.codec.decode import parse_codec
from hsicodec.coding.shared import PixelMoments, SharedSpectral
from hsicodec.data import sample_path
from hsicodec.errors import HsimError, HsimHeaderError, OptionError
from hsicodec.format.container import HsimReader


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    """128 × 128 × 198 uint16: the bundled sample mirrored (real AVIRIS spectra)."""
    x = np.load(sample_path())
    return np.ascontiguousarray(np.pad(x, ((0, 64), (0, 64), (0, 0)), mode="symmetric"))


@pytest.fixture(scope="module")
def stage(scene) -> SharedSpectral:
    moments = PixelMoments(scene.shape[2])
    moments.add(scene)
    return moments.fit()


def side_share(data: bytes) -> float:
    """The share of a map-layer file's bytes that is not its coefficient-map stream."""
    with HsimReader(data) as r:
        p = parse_codec(r.header, None)
        stream = len(r.section("c")) - (p.split or 0)
    return 1.0 - stream / len(data)


def test_stage_forms_round_trip(stage):
    back = SharedSpectral.from_config(json.loads(json.dumps(stage.to_config())))
    assert back.digest == stage.digest and back.k == stage.k == 32
    mean, basis = back.decode()
    assert mean.shape == (198,) and basis.shape == (32, 198)
    np.testing.assert_array_equal(basis, stage.decode()[1])
    again = SharedSpectral.from_header(stage.to_header(), stage.data, 198)
    assert again.digest == stage.digest


@pytest.mark.parametrize(
    "edit",
    [
        lambda h: h.update(k=0),
        lambda h: h.update(k=300),
        lambda h: h.update(n=10),
        lambda h: h.update(me="x"),
        lambda h: h.update(sc=b"\x01"),
    ],
)
def test_bad_stage_headers_are_header_errors(stage, edit):
    h = stage.to_header()
    edit(h)
    with pytest.raises(HsimHeaderError):
        SharedSpectral.from_header(h, stage.data, 198)
    with pytest.raises(HsimHeaderError):
        SharedSpectral.from_header(stage.to_header(), stage.data[: len(stage.data) // 2], 198)  # truncated stream
    with pytest.raises(OptionError):
        SharedSpectral.from_config({**stage.to_config(), "data": "not base64!"})


def test_a_file_on_a_shared_stage_carries_none_of_its_own(scene, stage):
    chunk = np.ascontiguousarray(scene[:64, :64])
    own = hsicodec.compress(chunk, bpppb=0.05)
    data = hsicodec.compress(chunk, bpppb=0.05, shared_spectral=stage)
    assert side_share(own) > 0.10 >= side_share(data)  # the bound, and it fails without the stage
    out, _ = hsicodec.decompress(data, shared_spectral=stage)
    assert out.dtype == chunk.dtype and hsicodec.psnr(chunk, out) > 38.0
    with pytest.raises(HsimHeaderError, match="shared spectral stage"):
        hsicodec.decompress(data)
    other = PixelMoments(198)
    other.add(scene[64:])
    with pytest.raises(HsimHeaderError, match="not the one this file uses"):
        hsicodec.decompress(data, shared_spectral=other.fit(16))
    with pytest.raises(OptionError, match="bands"):
        hsicodec.compress(np.ascontiguousarray(chunk[..., :50]), bpppb=0.05, shared_spectral=stage)


def test_a_tiled_file_stores_its_stage_once(scene, tmp_path):
    path = tmp_path / "s.hsim"
    st = tiled.write_tiled(scene, path, tile=64, bpppb=0.5, shared_basis=True)
    assert st["shared_spectral_bytes"] > 0
    with HsimReader(path) as r:
        assert r.section_names[0] == tiled.SHARED_SECTION and r.header["tiles"]["sp"]["k"] >= 4
        shares = [side_share(r.section(n)) for n in r.section_names if n.startswith("t")]
    assert max(shares) <= 0.10
    full, _ = hsicodec.decompress(path)
    assert hsicodec.psnr(scene, full) > 40.0
    part, _ = hsicodec.decompress(path, window=(40, 50, 30, 40), bands=(3, 9))
    np.testing.assert_array_equal(part, full[40:70, 50:90, 3:9])
    small, _ = hsicodec.decompress(path, reduce=2)
    assert small.shape == (32, 32, 198)
    plain = tiled.write_tiled(scene, tmp_path / "p.hsim", tile=64, bpppb=0.5)
    assert plain["shared_spectral_bytes"] is None


def test_a_changed_stage_is_an_error_never_pixels(scene, tmp_path):
    path = tmp_path / "s.hsim"
    tiled.write_tiled(scene, path, tile=64, bpppb=0.5, shared_basis=True)
    raw = bytearray(path.read_bytes())
    with HsimReader(bytes(raw)) as r:
        start = r.section_spans[tiled.SHARED_SECTION][0]
    raw[start + 5] ^= 0xFF
    with pytest.raises(HsimError):
        hsicodec.decompress(bytes(raw), window=(0, 0, 8, 8))


def test_zarr_chunks_share_the_stage_in_the_codec_config(scene):
    pytest.importorskip("numcodecs")
    from hsicodec.integrations.zarr_codec import HsimCodec

    codec = HsimCodec.with_shared_basis(scene, bpppb=0.05)
    config = json.loads(json.dumps(codec.get_config()))  # JSON-able, as zarr stores it
    again = HsimCodec.from_config(config)
    chunk = np.ascontiguousarray(scene[64:, 64:])
    data = again.encode(chunk)
    assert side_share(data) <= 0.10
    np.testing.assert_array_equal(codec.decode(data), again.decode(data))
    assert hsicodec.psnr(chunk, codec.decode(data)) > 38.0
    with pytest.raises(OptionError, match="bands"):
        codec.encode(np.ascontiguousarray(chunk[..., :20]))


def test_cli_shared_basis(scene, tmp_path):
    np.save(tmp_path / "s.npy", scene)
    run = [sys.executable, "-c", "from hsicodec.cli import main; main()", "compress", str(tmp_path / "s.npy")]
    p = subprocess.run([*run, str(tmp_path / "s.hsim"), "--tile", "64", "--shared-basis", "--bpppb", "0.5", "-q"],
                       capture_output=True, text=True)  # fmt: skip
    assert p.returncode == 0, p.stderr
    with HsimReader(tmp_path / "s.hsim") as r:
        assert "sp" in r.header["tiles"]
    bad = [*run, str(tmp_path / "u.hsim"), "--tile", "0", "--shared-basis"]
    p = subprocess.run(bad, capture_output=True, text=True)
    assert p.returncode == 1 and "--tile" in p.stderr and p.stderr.count("\n") == 1
    assert not (tmp_path / "u.hsim").exists()
