"""Streaming benchmark: compress / decompress a synthetic scene larger than memory, tile by tile.

For each ``--size N`` it writes (once, by windows, so the generator stays small in memory)
a synthetic N x N x B int16 GeoTIFF: a low-rank spectral mixture (8 smooth endmember
spectra) with smooth abundance maps, sharp parcel boundaries, a brightness field and
sensor noise, georeferenced (UTM CRS, 30 m transform, wavelengths 400-2500 nm). Then it
runs, each in a fresh process so the kernel's peak-RSS counter (``ru_maxrss``) belongs to
that step alone:

* ``hsicodec compress scene.tif scene.hsim --tile T --effort E --bpppb R``
* ``hsicodec decompress scene.hsim out.tif`` (whole scene, GeoTIFF written by windows)
* ``hsicodec decompress scene.hsim win.npy --window ...`` (a 512 x 512 window across 4 tiles)
* optionally (``--verify``) the PSNR of out.tif against scene.tif, computed by windows.

and records peak RSS, time and throughput (Mpixel/s and MB/s of raw int16 data) in
``bench/stream.json`` (merged by size) and prints a table. Peak RSS must not grow with N.

    python tools/bench_stream.py --size 1024 --size 2048 --effort fast
    python tools/bench_stream.py --size 4096 --effort fast --verify
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hsicodec.io.raster import GeoInfo, open_cube_reader, open_cube_writer  # noqa: E402

WKT_UTM11N = (
    'PROJCS["WGS 84 / UTM zone 11N",GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,'
    '298.257223563]],PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],PROJECTION["Transverse_'
    'Mercator"],PARAMETER["latitude_of_origin",0],PARAMETER["central_meridian",-117],PARAMETER["scale_'
    'factor",0.9996],PARAMETER["false_easting",500000],PARAMETER["false_northing",0],UNIT["metre",1],'
    'AUTHORITY["EPSG","32611"]]'
)
GEN_BLOCK = 512


# --------------------------------------------------------------------------- synthetic scene


def endmembers(n_bands: int, n_end: int = 8, seed: int = 0) -> np.ndarray:
    """Smooth reflectance spectra: a sloped baseline plus a few Gaussian features each."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, n_bands)
    out = np.zeros((n_end, n_bands))
    for e in range(n_end):
        s = rng.uniform(0.05, 0.3) + rng.uniform(-0.1, 0.3) * x
        for _ in range(4):
            mu, sd, amp = rng.uniform(0, 1), rng.uniform(0.02, 0.2), rng.uniform(-0.15, 0.35)
            s = s + amp * np.exp(-0.5 * ((x - mu) / sd) ** 2)
        out[e] = np.clip(s, 0.01, 0.95)
    return out.astype(np.float32)


def fields(r0: int, c0: int, h: int, w: int, n: int, seed: int, scales=(600, 200, 60, 15)) -> np.ndarray:
    """n smooth random fields evaluated at absolute pixel positions (so any window is consistent)."""
    rng = np.random.default_rng(seed)
    rr = np.arange(r0, r0 + h, dtype=np.float32)[:, None]
    cc = np.arange(c0, c0 + w, dtype=np.float32)[None, :]
    out = np.zeros((n, h, w), np.float32)
    for k in range(n):
        for length in scales:
            for _ in range(3):
                th, ph = rng.uniform(0, 2 * np.pi), rng.uniform(0, 2 * np.pi)
                amp = (length / scales[0]) ** 0.6
                out[k] += amp * np.sin(
                    (np.cos(th) * rr + np.sin(th) * cc) * np.float32(2 * np.pi / length) + np.float32(ph)
                )
    return out


def scene_window(r0: int, c0: int, h: int, w: int, n_bands: int, seed: int = 0) -> np.ndarray:
    """The (h, w, n_bands) int16 window at (r0, c0) of the synthetic scene (reflectance x 10000)."""
    em = endmembers(n_bands, seed=seed)
    f = fields(r0, c0, h, w, em.shape[0] + 1, seed + 1)
    logits = 3.0 * f[:-1]
    parcels = np.argmax(f[:-1] + 0.5 * fields(r0, c0, h, w, em.shape[0], seed + 2, scales=(300, 90)), axis=0)
    logits += 4.0 * (np.arange(em.shape[0])[:, None, None] == parcels[None])
    logits -= logits.max(axis=0, keepdims=True)
    ab = np.exp(logits)
    ab /= ab.sum(axis=0, keepdims=True)
    ab *= (1.0 + 0.15 * f[-1])[None]
    refl = (ab.reshape(em.shape[0], -1).T @ em).reshape(h, w, n_bands)
    rng = np.random.default_rng([seed, r0, c0])
    refl += rng.standard_normal(refl.shape, dtype=np.float32) * np.float32(0.004)
    refl *= np.float32(10000)
    return np.clip(np.rint(refl), -32768, 32767).astype(np.int16)


def scene_geo(n_bands: int) -> GeoInfo:
    wl = np.linspace(400.0, 2500.0, n_bands)
    return GeoInfo(
        crs_wkt=WKT_UTM11N,
        transform=(30.0, 0.0, 500000.0, 0.0, -30.0, 4100000.0),
        nodata=-9999,
        wavelengths=[float(v) for v in wl],
        fwhm=[float(wl[1] - wl[0])] * n_bands,
        wavelength_units="Nanometers",
        units="reflectance x 10000",
    )


def make_scene(path: Path, size: int, n_bands: int) -> float:
    """Write the synthetic scene by windows; returns seconds."""
    t0 = time.perf_counter()
    with open_cube_writer(path, (size, size, n_bands), np.int16, scene_geo(n_bands), force=True) as wr:
        for r0 in range(0, size, GEN_BLOCK):
            for c0 in range(0, size, GEN_BLOCK):
                h, w = min(GEN_BLOCK, size - r0), min(GEN_BLOCK, size - c0)
                wr.write(r0, c0, scene_window(r0, c0, h, w, n_bands))
            print(f"  generated rows {r0 + GEN_BLOCK}/{size}", file=sys.stderr, flush=True)
    return time.perf_counter() - t0


# --------------------------------------------------------------------------- measuring

_HWM_WRAPPER = """
import atexit, os, sys
def _report():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                with open(os.environ['BENCH_HWM_FILE'], 'w') as out:
                    out.write(line.split()[1])
atexit.register(_report)
from hsicodec.cli.main import main
main(sys.argv[1:])
"""


def run_measured(cmd: list[str], env: dict | None = None) -> dict:
    """Run a command in a fresh process; return its wall time, peak RSS (ru_maxrss) and stdout."""
    import tempfile

    # ru_maxrss of a forked child starts at its parent's RSS (Linux keeps it across exec), so the
    # child reports its own VmHWM (peak RSS of its address space, reset by exec) at exit instead
    fd, hwm_file = tempfile.mkstemp(prefix="hwm-")
    os.close(fd)
    env = dict(env if env is not None else os.environ, BENCH_HWM_FILE=hwm_file)
    if cmd[:3] == [sys.executable, "-m", "hsicodec.cli"]:
        cmd = [sys.executable, "-c", _HWM_WRAPPER] + cmd[3:]
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env)
        assert proc.stdout is not None  # stdout=PIPE
        out = proc.stdout.read()  # small (--json); stderr goes to a file, so neither pipe can stall
        _, status, ru = os.wait4(proc.pid, 0)  # the child's own rusage: ru_maxrss is its peak RSS
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - t0
        err.seek(0)
        err_text = err.read().decode(errors="replace")
    try:
        hwm_kb = float(Path(hwm_file).read_text().strip() or "nan")
    except (OSError, ValueError):
        hwm_kb = float("nan")
    finally:
        Path(hwm_file).unlink(missing_ok=True)
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{err_text}")
    return {
        "seconds": seconds,
        "peak_rss_mb": hwm_kb / 1024.0,
        "ru_maxrss_mb": ru.ru_maxrss / 1024.0,
        "stdout": out.decode(),
    }


def psnr_by_windows(a: Path, b: Path, block: int = 512) -> dict:
    """PSNR (peak = max - min of a) and SAM-free stats of two same-shape rasters, read by windows."""
    sse, n, lo, hi = 0.0, 0, np.inf, -np.inf
    with open_cube_reader(a) as ra, open_cube_reader(b) as rb:
        h, w, c = ra.shape
        for r0 in range(0, h, block):
            for c0 in range(0, w, block):
                hh, ww = min(block, h - r0), min(block, w - c0)
                x = ra.read(r0, c0, hh, ww).astype(np.float64)
                y = rb.read(r0, c0, hh, ww).astype(np.float64)
                sse += float(((x - y) ** 2).sum())
                n += x.size
                lo, hi = min(lo, float(x.min())), max(hi, float(x.max()))
    mse = sse / n
    return {"psnr": float(10 * np.log10((hi - lo) ** 2 / mse)) if mse > 0 else float("inf"), "mse": mse}


def bench_size(size: int, args, work: Path) -> dict:
    n_bands = args.bands
    raw_bytes = size * size * n_bands * 2
    scene = work / f"scene_{size}x{size}x{n_bands}.tif"
    res: dict = {
        "size": [size, size, n_bands],
        "dtype": "int16",
        "raw_bytes": raw_bytes,
        "tile": args.tile,
        "effort": args.effort,
        "bpppb_target": args.bpppb,
    }
    if not scene.exists() or args.regenerate:
        print(f"[{size}] generating {scene} ({raw_bytes / 1e9:.2f} GB)", file=sys.stderr, flush=True)
        res["generate_seconds"] = make_scene(scene, size, n_bands)
    hsim, out_tif, win_npy = work / f"scene_{size}.hsim", work / f"out_{size}.tif", work / f"win_{size}.npy"
    mpix = size * size / 1e6
    cli = [sys.executable, "-m", "hsicodec.cli"]
    env = dict(os.environ)

    print(f"[{size}] compress", file=sys.stderr, flush=True)
    r = run_measured(
        cli
        + [
            "compress",
            str(scene),
            str(hsim),
            "--tile",
            str(args.tile),
            "--effort",
            args.effort,
            "--bpppb",
            str(args.bpppb),
            "--force",
            "--quiet",
            "--json",
        ],
        env,
    )
    st = json.loads(r["stdout"])
    res["compress"] = {
        "seconds": r["seconds"],
        "peak_rss_mb": r["peak_rss_mb"],
        "mpix_per_s": mpix / r["seconds"],
        "mb_per_s": raw_bytes / 1e6 / r["seconds"],
        "bytes": st["bytes"],
        "bpppb": st["bpppb"],
        "psnr_estimate": st.get("psnr"),
        "tiles": st.get("tiles"),
        "read_seconds": st.get("read_seconds"),
        "encode_seconds": st.get("encode_seconds"),
        "models": st.get("models"),
    }

    print(f"[{size}] decompress", file=sys.stderr, flush=True)
    r = run_measured(cli + ["decompress", str(hsim), str(out_tif), "--force", "--quiet", "--json"], env)
    st = json.loads(r["stdout"])
    res["decompress"] = {
        "seconds": r["seconds"],
        "peak_rss_mb": r["peak_rss_mb"],
        "mpix_per_s": mpix / r["seconds"],
        "mb_per_s": raw_bytes / 1e6 / r["seconds"],
        "decode_seconds": st.get("decode_seconds"),
        "write_seconds": st.get("write_seconds"),
    }

    win = (max(0, args.tile // 2), max(0, args.tile // 2), min(512, size), min(512, size))
    win = (min(win[0], size - win[2]), min(win[1], size - win[3]), win[2], win[3])
    print(f"[{size}] window decode {win}", file=sys.stderr, flush=True)
    r = run_measured(
        cli
        + ["decompress", str(hsim), str(win_npy), "--window", ",".join(map(str, win)), "--force", "--quiet", "--json"],
        env,
    )
    st = json.loads(r["stdout"])
    res["window_decode"] = {
        "window": list(win),
        "seconds": r["seconds"],
        "peak_rss_mb": r["peak_rss_mb"],
        "tiles_decoded": st.get("tiles_decoded"),
    }
    if args.verify:
        print(f"[{size}] verify (PSNR by windows)", file=sys.stderr, flush=True)
        res["quality"] = psnr_by_windows(scene, out_tif)
    if not args.keep:
        for p in (hsim, out_tif, win_npy):
            p.unlink(missing_ok=True)
        if args.drop_scene:
            scene.unlink(missing_ok=True)
    return res


def table_lines(runs: dict) -> list[str]:
    head = (
        f"{'scene':>16} {'step':>13} {'time s':>8} {'peak RSS MB':>12} {'Mpix/s':>8} {'MB/s':>8} "
        f"{'bpppb':>7} {'PSNR dB':>8}"
    )
    lines = [head, "-" * len(head)]
    for key in sorted(runs, key=lambda k: int(k)):
        r = runs[key]
        name = "x".join(map(str, r["size"]))
        psnr = r.get("quality", {}).get("psnr", r["compress"].get("psnr_estimate"))
        for step in ("compress", "decompress", "window_decode"):
            s = r.get(step)
            if not s:
                continue
            mp = f"{s['mpix_per_s']:.3f}" if "mpix_per_s" in s else "-"
            mb = f"{s['mb_per_s']:.2f}" if "mb_per_s" in s else "-"
            rate = f"{s['bpppb']:.4f}" if "bpppb" in s else ""
            q = f"{psnr:.2f}" if step == "compress" and psnr is not None else ""
            label = step if step != "window_decode" else f"window {s.get('tiles_decoded', '?')} tl"
            lines.append(
                f"{name:>16} {label:>13} {s['seconds']:>8.1f} {s['peak_rss_mb']:>12.0f} {mp:>8} {mb:>8} "
                f"{rate:>7} {q:>8}"
            )
    return lines


def write_markdown(path: Path, doc: dict) -> None:
    m = doc.get("machine", {})
    text = [
        "# Streaming benchmark (tools/bench_stream.py)",
        "",
        "Synthetic int16 scenes with 224 bands (low-rank spectral mixture, smooth abundances, parcel edges,",
        "noise), compressed and decoded tile by tile (512 x 512 tiles, effort fast, 0.05 bpppb). Each step runs",
        "in its own process; peak RSS is its VmHWM. Throughput is over the raw int16 scene bytes.",
        f"Machine: {m.get('cpus')} CPUs ({m.get('platform')}), shared with other jobs (load average in",
        "stream.json): absolute times are pessimistic, peak RSS is not affected.",
        "",
        "```",
        *table_lines(doc.get("runs", {})),
        "```",
        "",
    ]
    path.write_text("\n".join(text))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, action="append", help="scene side N (repeatable; default 1024 and 2048)")
    ap.add_argument("--bands", type=int, default=224)
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--effort", default="fast")
    ap.add_argument("--bpppb", type=float, default=0.05)
    ap.add_argument(
        "--work",
        type=Path,
        default=Path(os.environ.get("TMPDIR", "/tmp")) / "hsicodec-bench-stream",
        help="folder for the scenes and outputs (needs ~2.2x the raw scene size free)",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "stream.json")
    ap.add_argument("--verify", action="store_true", help="also measure the PSNR of the decoded scene (by windows)")
    ap.add_argument("--keep", action="store_true", help="keep the .hsim and decoded outputs")
    ap.add_argument("--drop-scene", action="store_true", help="delete the synthetic input afterwards")
    ap.add_argument("--regenerate", action="store_true", help="rewrite the synthetic input even if present")
    args = ap.parse_args()
    sizes = args.size or [1024, 2048]
    args.work.mkdir(parents=True, exist_ok=True)
    doc = json.loads(args.out.read_text()) if args.out.exists() else {}
    runs = doc.get("runs", {})
    for size in sizes:
        res = bench_size(size, args, args.work)
        res["when"] = time.strftime("%Y-%m-%d %H:%M:%S")
        res["loadavg_after"] = list(os.getloadavg())
        runs[str(size)] = res
        doc.update(
            {
                "machine": {
                    "cpus": os.cpu_count(),
                    "platform": platform.platform(),
                    "python": platform.python_version(),
                    "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                },
                "note": "peak RSS = VmHWM of each step's own process (read at its exit); throughput over "
                "raw int16 bytes; PSNR: measured by windows with --verify, else the encoder's "
                "per-tile estimate",
                "runs": runs,
            }
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=2) + "\n")
        write_markdown(args.out.with_suffix(".md"), doc)
    print("\n".join(table_lines(runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
