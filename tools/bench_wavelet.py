#!/usr/bin/env python
"""Benchmark the native CDF 9/7 kernels and the coefficient-map decode against the numpy reference.

* ``cdf97_forward`` / ``cdf97_inverse`` on a random (H, W, k) float64 array (default 1024 x 1024 x 32,
  5 levels): the numpy reference (``*_reference``, once) and the C++ kernels (median of --repeats), with
  the largest difference between them;
* ``hsicodec.decompress`` of a scene: the Jasper Ridge cube tiled to 1024 x 1024 x 198 (np.pad
  mode "symmetric") and compressed at 0.05 bpppb (written to --hsim once and reused), decoded with
  ``HSICODEC_NATIVE_WAVELET=0`` (numpy wavelet, dequantization and cast) and with the C++ kernels,
  median of --repeats each, checking the two cubes are identical.

Usage: python tools/bench_wavelet.py [--hsim /tmp/scene.hsim] [--data jasper_ridge.npy] [--repeats 3] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from hsicodec.coding import wavelet as wv

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hsi" / "jasper_ridge.npy"  # ../shared


def _median_time(fn, repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def bench_transform(shape: tuple, levels: int, repeats: int) -> None:
    x = np.random.default_rng(0).normal(size=shape)
    t_ref, ref = _median_time(lambda: wv.cdf97_forward_reference(x, levels), 1)
    t_nat, nat = _median_time(lambda: wv.cdf97_forward(x, levels), repeats)
    print(f"cdf97_forward {shape} L={levels}: numpy {t_ref:.3f} s, C++ {t_nat:.3f} s ({t_ref / t_nat:.1f}x), "
          f"max |diff| {np.abs(nat - ref).max():.3g}")  # fmt: skip
    t_ref, iref = _median_time(lambda: wv.cdf97_inverse_reference(ref, levels), 1)
    t_nat, inat = _median_time(lambda: wv.cdf97_inverse(ref, levels), repeats)
    print(f"cdf97_inverse {shape} L={levels}: numpy {t_ref:.3f} s, C++ {t_nat:.3f} s ({t_ref / t_nat:.1f}x), "
          f"max |diff| {np.abs(inat - iref).max():.3g}")  # fmt: skip


def scene(path: Path, side: int, src: Path = DATA) -> bytes:
    """The tiled Jasper Ridge scene compressed at 0.05 bpppb (made once)."""
    if path.exists():
        return path.read_bytes()
    import hsicodec

    a = np.load(src)
    cube = np.pad(a, ((0, side - a.shape[0]), (0, side - a.shape[1]), (0, 0)), mode="symmetric")
    t = time.perf_counter()
    data = hsicodec.compress(cube, bpppb=0.05)
    print(f"compressed {cube.shape} {cube.dtype} in {time.perf_counter() - t:.1f} s: {len(data)} bytes")
    path.write_bytes(data)
    return data


def bench_decode(data: bytes, repeats: int) -> None:
    import hsicodec

    results = {}
    for label, env in (("numpy reference", "0"), ("C++ kernels", "1")):
        os.environ[wv.NATIVE_ENV] = env
        t, out = _median_time(lambda: hsicodec.decompress(data)[0], repeats)
        results[label] = out
        print(f"decompress ({label}): {t:.2f} s median of {repeats}")
    os.environ.pop(wv.NATIVE_ENV, None)
    a, b = results.values()
    print("decoded cubes identical:", bool(a.dtype == b.dtype and np.array_equal(a, b)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hsim", type=Path, default=Path("/tmp/hsicodec_bench_scene.hsim"))
    ap.add_argument("--data", type=Path, default=DATA, help="the Jasper Ridge cube (.npy)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="a 256 x 256 x 8 transform and a 256 x 256 scene")
    args = ap.parse_args()
    side = 256 if args.quick else 1024
    bench_transform((side, side, 8 if args.quick else 32), 5, args.repeats)
    bench_decode(scene(args.hsim, side, args.data), args.repeats)


if __name__ == "__main__":
    main()
