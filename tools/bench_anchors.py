#!/usr/bin/env python
"""Classical-codec anchors on hyperspectral cubes at fixed rates (metrics: docs/metrics.md).

Runs every requested anchor of :mod:`hsicodec.evaluation.anchors` on every scene at every
target bpppb, prints one table and writes the results as JSON.

    python tools/bench_anchors.py                       # jasper_ridge + pavia_centre
    python tools/bench_anchors.py --scene samson /path/cube.npy --rates 0.01 0.1 \
        --codecs pca_jpeg2000 sperr_3d --out bench/x.json

Scenes are names of ``.npy`` cubes in --data-dir (rows, cols, bands; original
dtype) or paths to ``.npy`` files.  Every number comes from really encoded and
decoded bytes; unreachable rates are listed with their reason.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from hsicodec.errors import HsicodecError  # noqa: E402
from hsicodec.evaluation import anchors as A  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "hsi"
DEFAULT_SCENES = ["jasper_ridge", "pavia_centre"]
DEFAULT_RATES = [0.005, 0.01, 0.02, 0.05, 0.1, 0.2]
DEFAULT_CODECS = ["pca_jpeg2000", "jpeg2000_per_band", "htj2k_per_band", "sperr_3d", "sz3", "zfp"]


def _load(scene: str, data_dir: Path):
    p = Path(scene)
    if p.suffix != ".npy" or not p.exists():
        p = data_dir / (scene if scene.endswith(".npy") else scene + ".npy")
    if not p.exists():
        raise SystemExit(f"bench_anchors: no cube {scene!r} (looked for {p})")
    cube = np.load(p)
    if cube.ndim != 3:
        raise SystemExit(f"bench_anchors: {p} is not a (rows, cols, bands) cube: {cube.shape}")
    return p.stem, str(p), cube


def _fmt(v, spec):
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        width = int("".join(ch for ch in spec.split(".")[0] if ch.isdigit()) or 0)
        return "-".rjust(width)
    return format(v, spec)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--scene", nargs="+", default=DEFAULT_SCENES, help="scene names in --data-dir or paths to .npy cubes"
    )
    ap.add_argument("--rates", nargs="+", type=float, default=DEFAULT_RATES, help="target bpppb values")
    ap.add_argument(
        "--codecs",
        nargs="+",
        default=DEFAULT_CODECS,
        help=f"anchors to run (known: {', '.join(A.ANCHORS)}; 'all' for every one)",
    )
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "anchors.json")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of the final encode/decode (median reported)")
    args = ap.parse_args(argv)

    codecs = list(A.ANCHORS) if args.codecs == ["all"] else args.codecs
    unknown = [c for c in codecs if c not in A.ANCHORS]
    if unknown:
        ap.error(f"unknown codec(s) {unknown}; known: {', '.join(A.ANCHORS)}")
    A.TIMING_REPEATS = max(1, args.repeat)

    rows = []
    header = (
        f"{'scene':14s} {'codec':18s} {'target':>7s} {'bpppb':>8s} {'PSNR':>7s} "
        f"{'SAM':>6s} {'maxerr':>9s} {'enc s':>7s} {'dec s':>7s}  notes"
    )
    print(header)
    print("-" * len(header))
    t_all = time.perf_counter()
    for scene in args.scene:
        name, path, cube = _load(scene, args.data_dir)
        for codec in codecs:
            for rate in args.rates:
                try:
                    res = A.run_anchor(codec, cube, rate)
                except HsicodecError as exc:
                    print(f"{name:14s} {codec:18s} {rate:7.4g}  error: {exc}", flush=True)
                    rows.append({"scene": name, "codec": codec, "target_bpppb": rate, "error": str(exc)})
                    continue
                p = res.params
                extra = ""
                if res.reachable:
                    if "k" in p:
                        extra = f"k={p['k']} basis+mean={p['basis_mean_bytes']}B"
                    elif "variant" in p:
                        extra = p["variant"]
                else:
                    extra = "UNREACHABLE: " + res.note
                print(
                    f"{name:14s} {codec:18s} {rate:7.4g} {_fmt(res.bpppb, '8.5f')} "
                    f"{_fmt(res.psnr, '7.2f')} {_fmt(res.sam, '6.3f')} "
                    f"{_fmt(res.max_abs_error, '9.4g')} {_fmt(res.encode_s, '7.3f')} "
                    f"{_fmt(res.decode_s, '7.3f')}  {extra}",
                    flush=True,
                )
                rows.append(
                    {"scene": name, "path": path, "shape": list(cube.shape), "dtype": str(cube.dtype), **res.to_dict()}
                )
        print()
    meta = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "codec_threads": 1,
        "timing": f"median of {A.TIMING_REPEATS} runs of the final encode / decode; "
        "rate search reported separately (params.search_s)",
        "metrics": "hsicodec.metrics (docs/metrics.md); bytes = whole self-contained file",
        "total_s": round(time.perf_counter() - t_all, 2),
    }
    try:
        import imagecodecs

        meta["imagecodecs"] = imagecodecs.__version__
    except ImportError:  # pragma: no cover
        pass
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(args.out.suffix + ".tmp")
    tmp.write_text(json.dumps({"meta": meta, "results": rows}, indent=1, default=str))
    os.replace(tmp, args.out)
    print(f"wrote {args.out} ({len(rows)} rows, {meta['total_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
