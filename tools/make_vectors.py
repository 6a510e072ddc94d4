"""Regenerate the `.hsim` test vectors in spec/vectors/ (see spec/hsim.md, "Test vectors").

Each vector NAME.hsim comes with NAME.sha256 (sha256 of the decoded array's
C-order little-endian bytes, in its stored dtype) and NAME.npy (that decoded
array, for a tolerance check on machines whose float rounding differs).
Encoding is deterministic here (numpy backend, one thread, and on x86-64 OpenBLAS's
Haswell kernels: its AVX-512 kernels round float32 products differently, which moves the
network-layer vector's latents), so the test suite rebuilds every vector byte-identically.

    python tools/make_vectors.py [--check]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import sys
from pathlib import Path

if platform.machine().lower() in ("x86_64", "amd64"):  # before numpy loads OpenBLAS (see the docstring)
    os.environ["OPENBLAS_CORETYPE"] = "Haswell"

import numpy as np  # noqa: E402

from hsicodec.codec.api import compress, decompress
from hsicodec.codec.decode import parse_codec
from hsicodec.codec.tiled import compress_tiled
from hsicodec.data import sample_path
from hsicodec.format.compact import EC_RT
from hsicodec.format.container import decode_hsim, encode_hsim
from hsicodec.io.raster import GeoInfo
from hsicodec.layers.maps import coding as coefmaps

VECTORS = Path(__file__).resolve().parents[1] / "spec" / "vectors"
WKT_UTM11N = (
    'PROJCS["WGS 84 / UTM zone 11N",GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,'
    '298.257223563]],PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],PROJECTION["Transverse_Mercator"],'
    'PARAMETER["latitude_of_origin",0],PARAMETER["central_meridian",-117],PARAMETER["scale_factor",0.9996],'
    'PARAMETER["false_easting",500000],PARAMETER["false_northing",0],UNIT["metre",1],AUTHORITY["EPSG","32611"]]'
)


def vector_inputs() -> dict:
    """name → (cube, geo, bpppb) of every vector, built from bundled data only."""
    sample = np.load(sample_path())
    crop = np.ascontiguousarray(sample[:8, :8])
    refl = np.ascontiguousarray(sample[16:28, 16:32, ::4]).astype(np.float32) / 10000.0
    geo = GeoInfo(
        crs_wkt=WKT_UTM11N,
        transform=(17.0, 0.0, 575000.0, 0.0, -17.0, 4140000.0),
        wavelengths=[float(400 + 40 * i) for i in range(refl.shape[2])],
        wavelength_units="Nanometers",
        band_names=[f"B{i + 1}" for i in range(refl.shape[2])],
    )
    return {
        "constant_4x5x3_uint16": (np.full((4, 5, 3), 1234, np.uint16), None, 64.0),
        "jasper_8x8x198_uint16": (crop, None, 1.0),
        "geo_12x16x50_float32": (refl, geo, 2.0),
        "tiled_40x36x50_uint16": (np.ascontiguousarray(sample[10:50, 20:56, ::4]), None, 1.0),
        # tiles on one shared spectral stage (spec/hsim.md 10.8): a rate the stage fits in
        "tiled_shared_48x40x50_uint16": (np.ascontiguousarray(sample[8:56, 16:56, 1::4]), None, 2.0),
        "maps_33x30x66_uint16": (np.ascontiguousarray(sample[5:38, 20:50, ::3]), None, 0.25),
        # the map layer's rANS stream (spec/hsim.md 10.9) cut into one substream per map
        "maps_substreams_24x20x40_uint16": (np.ascontiguousarray(sample[30:54, 40:60, 2::5]), None, 1.5),
        # the map layer under the learned entropy model (spec/hsim.md 10.11, rl.ec = 2, model hsi-lem-v1)
        "maps_learned_40x40x50_uint16": (np.ascontiguousarray(sample[:40, :40, ::4]), None, 0.5),
        # the map layer's nonlinear synthesis and post filter (spec/hsim.md 10.12, 10.10; network hsi-synth-v1)
        "maps_stages_48x48x66_uint16": (np.ascontiguousarray(sample[8:56, 4:52, 1::3]), None, 0.2),
        # the predictive layer (rate = None: a max error, below): bit-exact and within 3 units
        "lossless_37x20x25_uint16": (np.ascontiguousarray(sample[2:39, 30:50, ::8]), None, None),
        "nearlossless_37x20x25_int16": (
            np.ascontiguousarray(sample[20:57, 5:25, 3::8].astype(np.int16) - 2000),
            None,
            None,
        ),
    }


MAX_ERRORS = {"lossless_37x20x25_uint16": 0, "nearlossless_37x20x25_int16": 3}


TILED_VECTOR_TILE = 24  # the tiled vector: 2 × 2 tiles, the right and bottom ones partial


def digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, a.dtype.newbyteorder("<")).tobytes()).hexdigest()


def one_substream_per_map(data: bytes) -> bytes:
    """A compact map-layer file with its rANS map stream recoded as k substreams (the encoder writes one
    substream below 2^18 symbols; a decoder must read any count, spec/hsim.md 10.9)."""
    f = decode_hsim(data)
    p = parse_codec(f.header, None)
    maps = p.layers["maps"]
    h, w, _ = f.header["shape"]
    split = p.split or 0
    sym = coefmaps.decode_symbols(f.sections["c"][split:], maps, h, w)
    stream = coefmaps.rans_encode(sym, maps, h, w, count=maps.k)
    sections = {**f.sections, "c": f.sections["c"][:split] + stream}
    return encode_hsim({key: v for key, v in f.header.items() if key != "sections"}, list(sections.items()))


def with_stages(data: bytes, cube: np.ndarray) -> bytes:
    """The map-layer file ``data`` with a synthesis and a post filter fitted to ``cube`` whatever they cost (λ = 0),
    so that the vector carries both keys."""
    from hsicodec.layers.maps.postfit import fit_filter
    from hsicodec.layers.maps.stagefit import decoded_parts, with_post_bytes
    from hsicodec.layers.maps.synthfit import fit_synthesis

    x = cube.astype(np.float64)
    parts = decoded_parts(data, cube.shape[2])
    if parts is None:
        raise SystemExit("the stages vector needs a map-layer file with its own spectral stage")
    maps, mean, basis, norm = parts
    synth = fit_synthesis(maps, x, mean, basis, norm, lam=0.0)
    post = None if synth is None else fit_filter(synth.synth.apply(maps), x, mean, basis, norm, lam=0.0)
    if synth is None or post is None:
        raise SystemExit("the stages vector: no synthesis or post filter saves anything")
    return with_post_bytes(data, {"ns": synth.data, "pf": post.data})


def build(name: str) -> bytes:
    cube, geo, rate = vector_inputs()[name]
    if name.startswith("maps_substreams_"):
        return one_substream_per_map(compress(cube, bpppb=rate, effort="fast", threads=1, backend="numpy"))
    if name.startswith("tiled_"):
        return compress_tiled(
            cube, tile=TILED_VECTOR_TILE, geo=geo, bpppb=rate, effort="fast", threads=1, backend="numpy",
            shared_basis=name.startswith("tiled_shared_"), layer="maps" if name.startswith("tiled_shared_") else None,
        )  # fmt: skip
    if name.startswith("maps_learned_"):
        data = compress(cube, bpppb=rate, effort="fast", threads=1, backend="numpy", learned_entropy=True)
        if decode_hsim(data).header["codec"]["rl"][6] % EC_RT != coefmaps.EC_LEARNED:
            raise SystemExit(f"{name}: the encoder did not choose the learned entropy model")
        return data
    if name.startswith("maps_stages_"):
        return with_stages(compress(cube, bpppb=rate, effort="fast", threads=1, backend="numpy"), cube)
    if name in MAX_ERRORS:
        return compress(cube, geo=geo, max_error=MAX_ERRORS[name], threads=1)
    codings = ("haar+klt", "plain") if name.startswith("jasper_") else None  # keep one vector on the network path
    return compress(cube, geo=geo, bpppb=rate, effort="fast", threads=1, backend="numpy", latent_codings=codings)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="only compare, write nothing")
    ap.add_argument("names", nargs="*", help="only these vectors (default: all)")
    args = ap.parse_args()
    VECTORS.mkdir(parents=True, exist_ok=True)
    bad = 0
    for name in args.names or vector_inputs():
        data = build(name)
        dec, _ = decompress(data, backend="numpy", threads=1)
        path = VECTORS / f"{name}.hsim"
        if args.check:
            same = path.exists() and path.read_bytes() == data
            bad += not same
            print(f"{name}: {'identical' if same else 'DIFFERENT'}")
            continue
        path.write_bytes(data)
        (VECTORS / f"{name}.sha256").write_text(f"{digest(dec)}  {name}.hsim\n")
        np.save(VECTORS / f"{name}.npy", dec)
        print(f"{name}: {len(data)} bytes, decoded {dec.shape} {dec.dtype} sha256 {digest(dec)[:16]}…")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
