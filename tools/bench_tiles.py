"""Parallel tiles (issue #19, point 2): how fast one scene's tiles encode on 1 and 2 local tile threads and
on a Dask LocalCluster of 2 worker processes, and what a rate target's carry lag costs in RD.

Speed: a 1024 x 1024 x 189 scene of real spectra (tools/bench_scale.py builds it) compressed into 512 x 512
tiles at a quality target (``--psnr``, default 40 dB, or ``--max-error``): the same file every way (checked),
wall time of each, ratios against one tile thread; then the default rate (0.05 bpppb) with carry lag 1
(sequential, one tile at a time) against carry lag 2 on 2 tile threads.

RD: a 512 x 512 x 189 scene of four different real scenes (one per 256 x 256 tile, each mirrored to the
tile) at a few rates, carry lag 1 (the sequential carry) against lags 2 and 4; PSNR from a real decode;
"PSNR at equal size" interpolates the lag-1 curve (PSNR against log rate) at each lagged file's rate.

Usage: python tools/bench_tiles.py [--skip-speed] [--skip-rd] [--work DIR]
writes bench/tiles.json and bench/tiles.md. Timings are ratios within one run (2 shared cores here).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import bench_scale  # noqa: E402

import hsicodec  # noqa: E402
from hsicodec import metrics  # noqa: E402
from hsicodec.codec.tiled import write_tiled  # noqa: E402

MIXED = ["jasper_ridge", "abu_airport_1", "abu_urban_3", "abu_airport_4"]  # uint16, 191-205 bands


def timed_compress(src: Path, dst: Path, **kw) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    hsicodec.compress_file(src, dst, force=True, **kw)
    return time.perf_counter() - t0, dst.read_bytes()


def speed(args, work: Path, log) -> dict:
    """Wall time of one scene's compress: tile threads 1 and 2, a LocalCluster of 2 worker processes."""
    import distributed

    info = bench_scale.scene_for(tuple(args.size), args.data, bench_scale.SOURCES, work, log)
    src, dst = Path(info["path"]), work / "tiles.hsim"
    target = {"max_error": args.max_error} if args.max_error is not None else {"psnr": args.psnr}
    common = dict(tile=args.tile, **target)
    runs: dict = {}
    ref = None
    for name, kw in (("tile threads 1", {"tile_threads": 1}), ("tile threads 2", {"tile_threads": 2})):
        log(f"[speed] {name}")
        runs[name], data = timed_compress(src, dst, **common, **kw)
        ref = data if ref is None else ref
        assert data == ref, f"{name}: not the same file"
    log("[speed] LocalCluster, 2 worker processes")
    t0 = time.perf_counter()
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
        scheduler_kwargs={"dashboard": False}, silence_logs=logging.ERROR,
    ) as lc:  # fmt: skip
        start = time.perf_counter() - t0
        runs["LocalCluster 2 workers"], data = timed_compress(src, dst, scheduler=lc.scheduler_address, **common)
        assert data == ref, "the cluster's file differs from the local one"
    rate: dict = {}
    for name, kw in (
        ("rate 0.05, carry lag 1", {"tile_threads": 2, "carry_lag": 1}),
        ("rate 0.05, carry lag 2, tile threads 2", {"tile_threads": 2, "carry_lag": 2}),
    ):
        log(f"[speed] {name}")
        rate[name], data = timed_compress(src, dst, tile=args.tile, bpppb=0.05, **kw)
        rate[name + " bytes"] = len(data)
    base = runs["tile threads 1"]
    return {
        "scene": info,
        "target": target,
        "tile": args.tile,
        "seconds": runs,
        "ratio_vs_1_thread": {k: base / v for k, v in runs.items()},
        "cluster_start_seconds": start,
        "same_file": True,
        "rate_target": rate,
        "bytes": len(ref or b""),
    }


def mixed_scene(side: int, bands: int, data: Path) -> np.ndarray:
    """A side x side x bands scene whose four quadrants are four different real scenes (each mirrored)."""
    half = side // 2
    out = np.empty((side, side, bands), np.uint16)
    for q, name in enumerate(MIXED):
        src, _ = bench_scale.resample_bands(np.load(data / f"{name}.npy"), bands)
        rows, cols = bench_scale.mirror_index(src.shape[0], half), bench_scale.mirror_index(src.shape[1], half)
        r, c = divmod(q, 2)
        out[r * half : (r + 1) * half, c * half : (c + 1) * half] = src[rows][:, cols]
    return out


def rd(args, work: Path, log) -> dict:
    """PSNR and size of the mixed scene at each rate and carry lag; lagged files against the lag-1 curve."""
    cube = mixed_scene(args.rd_side, 189, args.data)
    rows = []
    for rate in args.rates:
        for lag in args.lags:
            log(f"[rd] {rate} bpppb, carry lag {lag}")
            path = work / "rd.hsim"
            st = write_tiled(cube, path, tile=args.rd_side // 2, bpppb=rate, force=True, carry_lag=lag)
            dec, _ = hsicodec.decompress(path)
            rows.append({"rate": rate, "lag": lag, "bytes": st["bytes"], "bpppb": st["bpppb"],
                         "psnr": float(metrics.psnr(cube, dec))})  # fmt: skip
    add_deltas(rows)
    return {"shape": list(cube.shape), "sources": MIXED, "tile": args.rd_side // 2, "rows": rows}


def add_deltas(rows: list[dict]) -> None:
    """Each row's PSNR against the lag-1 curve (PSNR linear in log rate between its points, its end segments
    extended) at the row's own rate: ``delta_db`` > 0 is better RD than the sequential carry."""
    seq = sorted((math.log(r["bpppb"]), r["psnr"]) for r in rows if r["lag"] == 1)
    for r in rows:
        x = math.log(r["bpppb"])
        j = min(max(int(np.searchsorted([a for a, _ in seq], x)), 1), len(seq) - 1) if len(seq) > 1 else 0
        if j == 0:
            r["psnr_lag1_same_size"], r["delta_db"] = None, None
            continue
        (x0, p0), (x1, p1) = seq[j - 1], seq[j]
        r["psnr_lag1_same_size"] = p0 + (p1 - p0) * (x - x0) / (x1 - x0)
        r["delta_db"] = r["psnr"] - r["psnr_lag1_same_size"]


def markdown(doc: dict) -> str:
    lines = ["# Parallel tiles", "", "Written by `python tools/bench_tiles.py`; 2 shared cores.", ""]
    s = doc.get("speed")
    if s:
        lines += [
            f"## Speed: {'x'.join(map(str, s['scene']['shape']))} ({s['scene']['source']}), "
            f"{s['tile']}² tiles, {json.dumps(s['target'])}",
            "",
            "| run | seconds | speed vs 1 tile thread |",
            "|---|---|---|",
        ]
        for k, v in s["seconds"].items():
            lines.append(f"| {k} | {v:.1f} | {s['ratio_vs_1_thread'][k]:.2f}× |")
        lines += ["", f"Same file every way ({s['bytes']:,} bytes); cluster start {s['cluster_start_seconds']:.1f} s "
                  "(not counted).", ""]  # fmt: skip
        for k, v in s["rate_target"].items():
            lines.append(f"- {k}: {v:,}" if k.endswith("bytes") else f"- {k}: {v:.1f} s")
        lines.append("")
    r = doc.get("rd")
    if r:
        shape = "x".join(map(str, r["shape"]))
        lines += [
            f"## RD of the carry lag: {shape}, {r['tile']}² tiles of {', '.join(r['sources'])}",
            "",
            "| target bpppb | carry lag | bytes | bpppb | PSNR dB | Δ PSNR vs lag 1 at the same size |",
            "|---|---|---|---|---|---|",
        ]
        for x in r["rows"]:
            d = "–" if x["delta_db"] is None or x["lag"] == 1 else f"{x['delta_db']:+.4f}"
            lines.append(f"| {x['rate']} | {x['lag']} | {x['bytes']:,} | {x['bpppb']:.5f} | {x['psnr']:.4f} | {d} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=bench_scale.parse_size, default=(1024, 1024, 189))
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--psnr", type=float, default=40.0)
    ap.add_argument("--max-error", type=float, default=None)
    ap.add_argument("--rates", type=float, nargs="+", default=[0.04, 0.05, 0.0625])
    ap.add_argument("--lags", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--rd-side", type=int, default=512)
    ap.add_argument("--data", type=Path, default=bench_scale.DATA)
    ap.add_argument("--work", type=Path, default=None, help="scene folder (default: a temporary one)")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-rd", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "tiles")
    args = ap.parse_args(argv)
    if 1 not in args.lags:
        ap.error("--lags must include 1 (the sequential carry the others are measured against)")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-tiles-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        doc = {}
        if not args.skip_speed:
            doc["speed"] = speed(args, work, log)
        if not args.skip_rd:
            doc["rd"] = rd(args, work, log)
    args.out.with_suffix(".json").write_text(json.dumps(doc, indent=1))
    text = markdown(doc)
    args.out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
