"""Benchmark the coefficient-map layer's entropy coders: the rANS coder (``ec = 1``) against constriction.

``bits``: for each scene and rate, compress (default effort), take the file's map symbols and code
them with both coders; prints the ideal code length (``code_bits``, what the rate search prices),
the rANS stream and the constriction stream, in bytes.

``speed``: a scene tiled to --size × --size with ``np.pad(mode="symmetric")``, compressed at --bpppb;
times (median of --repeats) the map stream's decode and encode with both coders and the whole
``hsicodec.decompress``, and writes a cProfile of one decompress (top functions by cumulative time).

    python tools/bench_map_coder.py bits [--scenes jasper_ridge pavia_centre abu_urban_5]
    python tools/bench_map_coder.py speed [--scene jasper_ridge --size 1024 --bpppb 0.05]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import hsicodec
from hsicodec.codec.decode import parse_codec
from hsicodec.format.container import decode_hsim, encode_hsim
from hsicodec.layers.maps import coding as cm

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "hsi"


def map_stream(data: bytes) -> tuple[cm.MapParams, bytes, int, int]:
    """(params, stream, H, W) of a compact map-layer file's coefficient-map stream."""
    f = decode_hsim(data)
    p = parse_codec(f.header, None)
    h, w, _ = f.header["shape"]
    return p.layers["maps"], f.sections["c"][p.split or 0 :], h, w


def with_constriction(data: bytes, old: bytes) -> bytes:
    """The same compact map-layer file with its map stream ``old`` coded by constriction (``ec`` absent)."""
    f = decode_hsim(data)
    p = parse_codec(f.header, None)
    header = {key: v for key, v in f.header.items() if key != "sections"}
    header["codec"] = {**header["codec"], "rl": header["codec"]["rl"][:6]}
    sections = dict(f.sections)
    sections["c"] = sections["c"][: p.split or 0] + old
    return encode_hsim(header, list(sections.items()))


def timed(fn, repeats: int) -> tuple[float, float]:
    """Medians of (wall-clock seconds, CPU seconds of the process, every thread) over ``repeats`` runs: on a
    shared machine the wall clock also counts the time other processes hold the cores."""
    wall, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def bits(scenes: list, rates: list) -> None:
    print(f"{'scene':14s} {'bpppb':>6s} {'k':>3s} {'ideal B':>9s} {'rANS B':>9s} {'vs ideal':>8s} "
          f"{'constr. B':>9s} {'rANS/constr.':>12s}")  # fmt: skip
    tot = np.zeros(3)
    for name in scenes:
        cube = np.load(DATA / f"{name}.npy")
        for rate in rates:
            p, stream, h, w = map_stream(hsicodec.compress(cube, bpppb=rate))
            sym = cm.decode_symbols(stream, p, h, w)
            ideal = cm.code_bits(sym, p.levels) / 8
            old, _ = cm.encode_symbols(sym, p.q, p.levels, p.recon, coder=cm.EC_CONSTRICTION)
            tot += (ideal, len(stream), len(old))
            print(
                f"{name:14s} {rate:6.3f} {p.k:3d} {ideal:9.1f} {len(stream):9d} "
                f"{100 * (len(stream) / ideal - 1):+7.2f}% {len(old):9d} {100 * (len(stream) / len(old) - 1):+11.2f}%"
            )
    print(f"{'all':14s} {'':6s} {'':3s} {tot[0]:9.1f} {tot[1]:9.0f} {100 * (tot[1] / tot[0] - 1):+7.2f}% "
          f"{tot[2]:9.0f} {100 * (tot[1] / tot[2] - 1):+11.2f}%")  # fmt: skip


def speed(scene: str, size: int, rate: float, repeats: int, profile: str, cache: str | None) -> None:
    if cache and Path(cache).exists():
        data = Path(cache).read_bytes()
        print(f"{cache}: {len(data)} bytes")
    else:
        cube = np.load(DATA / f"{scene}.npy")
        h, w = cube.shape[:2]
        big = np.pad(cube, ((0, max(size - h, 0)), (0, max(size - w, 0)), (0, 0)), mode="symmetric")[:size, :size]
        t = time.perf_counter()
        data = hsicodec.compress(big, bpppb=rate)
        print(
            f"{scene} {big.shape} {big.dtype} at {rate} bpppb: {len(data)} B, compress {time.perf_counter() - t:.1f} s"
        )
        if cache:
            Path(cache).write_bytes(data)
    p, stream, h, w = map_stream(data)
    sym = cm.decode_symbols(stream, p, h, w)
    old, _ = cm.encode_symbols(sym, p.q, p.levels, p.recon, coder=cm.EC_CONSTRICTION)
    p_old = cm.MapParams(p.k, p.q, p.levels, p.max_abs, p.base_codes, p.class_offsets, p.recon, cm.EC_CONSTRICTION)
    print(f"maps: k = {p.k}, {sym.size} symbols, rANS {len(stream)} B, constriction {len(old)} B")
    data_old = with_constriction(data, old)
    np.testing.assert_array_equal(hsicodec.decompress(data_old)[0], hsicodec.decompress(data)[0])
    rows = {
        "decode map stream, constriction": lambda: cm.decode_symbols(old, p_old, h, w),
        "decode map stream, rANS (all cores)": lambda: cm.decode_symbols(stream, p, h, w),
        "decode map stream, rANS (1 thread)": lambda: cm.decode_symbols(stream, p, h, w, threads=1),
        "encode map stream, constriction": lambda: cm.encode_symbols(sym, p.q, p.levels, p.recon, cm.EC_CONSTRICTION),
        "encode map stream, rANS (all cores)": lambda: cm.encode_symbols(sym, p.q, p.levels, p.recon),
        "hsicodec.decompress (constriction file)": lambda: hsicodec.decompress(data_old),
        "hsicodec.decompress (rANS file)": lambda: hsicodec.decompress(data),
    }
    print(f"{'':40s} {'wall s':>8s} {'CPU s':>8s}  (medians of {repeats})")
    for label, fn in rows.items():
        print(f"{label:40s} {'{:8.3f} {:8.3f}'.format(*timed(fn, repeats))}")
    prof = cProfile.Profile()
    prof.enable()
    hsicodec.decompress(data)
    prof.disable()
    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(25)
    Path(profile).write_text(s.getvalue())
    print(f"profile of one decompress: {profile}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("bits", "speed"))
    ap.add_argument("--scenes", nargs="+", default=["jasper_ridge", "pavia_centre", "abu_urban_5"])
    ap.add_argument("--rates", nargs="+", type=float, default=[0.01, 0.05, 0.2, 1.0])
    ap.add_argument("--scene", default="jasper_ridge")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--bpppb", type=float, default=0.05)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--profile", default="map_coder_profile.txt")
    ap.add_argument("--cache", help="keep the compressed scene here (and reuse it when it exists)")
    args = ap.parse_args()
    if args.what == "bits":
        bits(args.scenes, args.rates)
    else:
        speed(args.scene, args.size, args.bpppb, args.repeats, args.profile, args.cache)
    return 0


if __name__ == "__main__":
    sys.exit(main())
