#!/usr/bin/env python
"""Benchmark the lossless lattice coder (hsicodec.layers.predictive.coder) on real cubes.

For each scene (default: jasper_ridge, pavia_centre, abu_urban_5, samson, moffett from
../shared/data/hsi; --scenes all: every cube there), the cube minus its minimum is the lattice u
(a float cube is first divided by its value step, the smallest gap between its distinct values,
when every value is on that lattice) and is coded with the native coder (rows_per_block 32 unless
--rows-per-block says otherwise).
Printed and written to bench/lattice.json:

* bits per value of the lattice stream (block table included), checked by a full decode;
* the classical lossless anchors, in bits per value: the zero-order entropy of the band-to-band
  difference x_z - x_(z-1) (band 0 as it is), and, when imagecodecs is importable, JPEG-LS lossless
  per band, JPEG XL lossless per band (effort 7), and "spectral predictor + JPEG-LS": band z
  predicted as round(g_z * x_(z-1)) + o_z (least-squares gain in units of 2^-15, best offset), the
  residual minus its minimum coded by JPEG-LS, plus 8 bytes per band for g, o, the minimum and the
  length (as hsicodec.evaluation.anchors.lossless.spectral_jpegls). JPEG-LS images are given as
  8-bit samples when they fit (else 16-bit), so that its thresholds suit them, without CharLS's
  optional SPIFF header. The best anchor and our ratio to it (goal: <= 0.93);
* encode and decode speed in MB/s of raw cube at 2 bytes per value (16-bit samples), best of
  --repeats runs, and the thread count used (all cores unless --threads).

The machine may be shared: the best of several runs is the least disturbed one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hsicodec.evaluation.anchors.lossless import _strip_spiff  # noqa: E402  (the anchors' JPEG-LS framing)
from hsicodec.layers.predictive import coder  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "hsi"
SCENES = ["jasper_ridge", "pavia_centre", "abu_urban_5", "samson", "moffett"]


def to_lattice(a: np.ndarray) -> tuple[np.ndarray, int, float]:
    """(u, max_value, step): integer cube u = (a - min) / step; ValueError when a is not on a lattice."""
    if np.issubdtype(a.dtype, np.integer):
        u = a.astype(np.int64) - int(a.min())
        return u, int(u.max()), 1.0
    if not np.isfinite(a).all():
        raise ValueError("non-finite values")
    v = np.unique(a)
    gaps = np.diff(v)
    step = float(gaps[gaps > 0].min()) if gaps.size else 1.0
    q = (a - v[0]) / step
    u = np.round(q)
    if np.abs(q - u).max() > 1e-3:
        raise ValueError("values are not on a lattice")
    u = u.astype(np.int64)
    return u, int(u.max()), step


def entropy0(x: np.ndarray) -> float:
    """Zero-order entropy in bits per value."""
    _, counts = np.unique(x, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def band_difference_entropy(u: np.ndarray) -> float:
    d = np.diff(u, axis=2)
    n0 = u[:, :, 0].size
    return (entropy0(u[:, :, 0]) * n0 + entropy0(d) * d.size) / u.size


def _as_image(x: np.ndarray) -> np.ndarray:
    """x minus its minimum as the smallest unsigned image type that holds it."""
    x = x - x.min()
    top = int(x.max())
    dt = np.uint8 if top < 256 else np.uint16 if top < 65536 else np.uint32
    return np.ascontiguousarray(x.astype(dt))


def _jpegls_bytes(ic: Any, x: np.ndarray) -> int:
    return len(_strip_spiff(bytes(ic.jpegls_encode(_as_image(x)))))


def _spectral_residual(prev: np.ndarray, x: np.ndarray) -> np.ndarray:
    """x - round(g x_prev) - o: least-squares gain g (in units of 2^-15) and the best offset o for it."""
    p = prev.astype(np.float64).ravel()
    pc = p - p.mean()
    var = float(np.dot(pc, pc))
    gain = float(np.dot(pc, x.astype(np.float64).ravel() - x.mean())) / var if var > 0 else 0.0
    g = int(round(gain * 2**15))
    pred = (g * prev + 2**14) >> 15
    return x - pred - int(round(float(np.mean(x - pred))))


def anchors(u: np.ndarray) -> dict[str, float]:
    out = {"band_diff_entropy": band_difference_entropy(u)}
    try:
        import imagecodecs as ic
    except ImportError:
        return out
    n = u.size
    bands = range(u.shape[2])
    out["jpegls"] = sum(_jpegls_bytes(ic, u[:, :, z]) for z in bands) * 8 / n
    out["jpegxl"] = sum(len(ic.jpegxl_encode(_as_image(u[:, :, z]), lossless=True, effort=7)) for z in bands) * 8 / n
    spectral = _jpegls_bytes(ic, u[:, :, 0]) + 8 * u.shape[2]
    spectral += sum(_jpegls_bytes(ic, _spectral_residual(u[:, :, z - 1], u[:, :, z])) for z in range(1, u.shape[2]))
    out["spectral_jpegls"] = spectral * 8 / n
    return out


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_scene(name: str, rpb: int, threads: int, repeats: int, with_anchors: bool) -> dict[str, Any]:
    a = np.load(DATA / f"{name}.npy")
    u, m, step = to_lattice(a)
    u32 = np.ascontiguousarray(u, dtype=np.int32)
    data = coder.encode(u32, m, rpb, threads=threads)
    back = coder.decode(data, u.shape, m, rpb, threads=threads)
    if not np.array_equal(back, u32):
        raise SystemExit(f"{name}: the decoded cube differs from the input")
    t_enc = best_time(lambda: coder.encode(u32, m, rpb, threads=threads), repeats)
    t_dec = best_time(lambda: coder.decode(data, u.shape, m, rpb, threads=threads), repeats)
    raw_mb = u.size * 2 / 1e6
    row: dict[str, Any] = {
        "scene": name,
        "shape": list(u.shape),
        "dtype": str(a.dtype),
        "step": step,
        "max_value": m,
        "bytes": len(data),
        "bits_per_value": len(data) * 8 / u.size,
        "encode_MBps": raw_mb / t_enc,
        "decode_MBps": raw_mb / t_dec,
    }
    row["anchors"] = anchors(u) if with_anchors else {"band_diff_entropy": band_difference_entropy(u)}
    best = min(row["anchors"].items(), key=lambda kv: kv[1])
    row["best_anchor"] = best[0]
    row["ratio_to_best_anchor"] = row["bits_per_value"] / best[1]
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", nargs="+", default=SCENES, help="scene names, or 'all' (every .npy there)")
    ap.add_argument("--rows-per-block", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0, help="0: all cores")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--no-anchors", action="store_true", help="only the band-difference entropy (fast)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "lattice.json"))
    args = ap.parse_args(argv)
    if not coder.native_available():
        print("the native extension is not built (make native): the pure Python reference is far too slow")
        return 1
    from hsicodec import _native  # type: ignore[attr-defined]

    threads = args.threads if args.threads > 0 else int(_native.default_threads())
    names = sorted(p.stem for p in DATA.glob("*.npy")) if args.scenes == ["all"] else args.scenes
    rows = []
    for name in names:
        if not (DATA / f"{name}.npy").exists():
            print(f"{name}: not found in {DATA}, skipped")
            continue
        try:
            rows.append(bench_scene(name, args.rows_per_block, threads, args.repeats, not args.no_anchors))
        except ValueError as exc:
            print(f"{name}: skipped ({exc})")

    cols = ["band_diff_entropy", "jpegls", "jpegxl", "spectral_jpegls"]
    head = f"{'scene':14s} {'bits/value':>10s} " + " ".join(f"{c:>17s}" for c in cols)
    head += f" {'ratio':>6s} {'enc MB/s':>9s} {'dec MB/s':>9s} {'threads':>7s}"
    print(head)
    for r in rows:
        vals = " ".join(f"{r['anchors'][c]:17.3f}" if c in r["anchors"] else f"{'-':>17s}" for c in cols)
        print(
            f"{r['scene']:14s} {r['bits_per_value']:10.3f} {vals} {r['ratio_to_best_anchor']:6.3f} "
            f"{r['encode_MBps']:9.1f} {r['decode_MBps']:9.1f} {threads:7d}"
        )
    info = {
        "rows_per_block": args.rows_per_block,
        "threads": threads,
        "repeats": args.repeats,
        "statistic": "best",
        "MBps_basis": "2 bytes per value (16-bit samples)",
        "cpu": _cpu_name(),
        "cpus": os.cpu_count(),
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "numpy": np.__version__,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"info": info, "scenes": rows}, f, indent=2)
        f.write("\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
