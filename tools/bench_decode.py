#!/usr/bin/env python
"""Benchmark the SIREN decode kernels: C++ (hsicodec._native) vs numpy vs torch CPU.

For each benchmarked model and N = 145*145 pixels, times (median of --repeats
runs, after one warm-up run):

* forward: C++ with threads=1 and threads=all, numpy reference, torch CPU
  (same math with addmm/sin, inference mode, torch.set_num_threads to match);
* loss_grad_phi: C++ vs a torch autograd step (forward + backward wrt phi only);
* the machine's fp32 GEMM ceiling: numpy matmul on (N x d) @ (d x d) and on a big
  square product, with 1 BLAS thread and with all threads.

Models (--models, default both):

* shipping: the shipping default, K=3, d=48, m=28, n_in=2, C_out=16, with the
  linear skip y += phi S^T (S: C_out x m);
* legacy: the earlier default, K=3, d=64, m=32, n_in=2, no skip, one model per
  --channels value (16 and 224); --depth/--width/--latent/--n-in change it;
* shipping-noskip: the shipping shape without the skip (the skip's cost).

GFLOP/s = 2 * MACs * N / t with MACs = SirenWeights.macs_per_pixel() for the
forward pass (the skip's C*m included); for loss_grad_phi the backward MACs are
counted too (C*d + (K-1)*d^2 + K*d*m per pixel, + C*m with the skip),
sines/cosines and the loss are not counted.

Prints a table and writes JSON (default bench/decode.json).  --quick: tiny run.
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

# Idle OpenMP workers (torch) must sleep, not spin: a spinning pool steals the cores the
# next measurement (the C++ kernel's own threads) runs on.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hsicodec.siren import SirenWeights, forward_numpy  # noqa: E402

try:
    from hsicodec import _native as nat  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    nat = None

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None


# ---------------------------------------------------------------------------
# helpers

SHIPPING = {"K": 3, "d": 48, "m": 28, "n_in": 2, "C": 16, "skip": True}


def make_weights(rng, K, d, m, C, n_in, shift="inside", skip=False) -> SirenWeights:
    lim = np.sqrt(6.0 / d)
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    hw = [f32(rng.uniform(-1.0 / n_in, 1.0 / n_in, (d, n_in)) * 30.0)]
    hw += [f32(rng.uniform(-lim, lim, (d, d))) for _ in range(K - 1)]
    hb = [f32(rng.uniform(-0.5, 0.5, d)) for _ in range(K)]
    sw = f32(rng.normal(0, 0.5 / np.sqrt(m), (C, m))) if skip else None
    return SirenWeights(tuple(hw), tuple(hb), f32(rng.uniform(-lim, lim, (C, d))), f32(rng.uniform(-0.1, 0.1, C)),
                        f32(rng.normal(0, 0.05, (K * d, m))), f32(rng.normal(0, 0.05, K * d)), shift, sw)


def timeit(fn, repeats: int) -> dict:
    """Wall-clock median/min, plus the process CPU time of the same runs.

    cpu_util = CPU seconds / wall seconds: ~threads on an idle machine, lower when
    other processes compete for the cores (then wall-clock numbers understate
    throughput; the *_cpu figures are closer to what an idle core would do).
    """
    fn()  # warm-up
    ts, cs = [], []
    for _ in range(repeats):
        c0 = time.process_time()
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
        cs.append(time.process_time() - c0)
    med, cpu = statistics.median(ts), statistics.median(cs)
    return {"median_s": med, "min_s": min(ts), "cpu_s": cpu, "cpu_util": cpu / med if med > 0 else 0.0,
            "runs": len(ts)}


def _find_blas_setter():
    """openblas_set_num_threads of the BLAS numpy is linked to (None if not found)."""
    dirs = [os.path.join(os.path.dirname(np.__file__), "..", "numpy.libs"),
            os.path.join(os.path.dirname(np.__file__), ".libs")]
    names = ["scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads", "openblas_set_num_threads64_",
             "openblas_set_num_threads"]
    for d in dirs:
        for lib in glob.glob(os.path.join(d, "*openblas*")):
            try:
                handle = ctypes.CDLL(lib)
            except OSError:
                continue
            for n in names:
                fn = getattr(handle, n, None)
                if fn is not None:
                    return fn
    return None


_BLAS_SET = _find_blas_setter()


def blas_threads(n: int) -> bool:
    if _BLAS_SET is None:
        return False
    _BLAS_SET(ctypes.c_int(n))
    return True


def quiet_blas() -> None:
    """One BLAS thread, and time for the pool's spinning workers to park, before timing code
    that does not use BLAS (they would otherwise compete for the same cores)."""
    blas_threads(1)
    time.sleep(0.3)


def torch_weights(w: SirenWeights, dtype=None):
    dtype = dtype or torch.float32
    t = lambda a: torch.as_tensor(np.ascontiguousarray(a)).to(dtype)  # noqa: E731
    return {
        "hw_t": [t(a.T) for a in w.hidden_w], "hb": [t(b) for b in w.hidden_b],
        "ow_t": t(w.out_w.T), "ob": t(w.out_b), "mw_t": t(w.meta_w.T), "mb": t(w.meta_b),
        "d": w.width, "inside": w.shift == "inside",
        "sw_t": None if w.skip_w is None else t(w.skip_w.T),
    }


def torch_forward(tw, x, phi):
    beta = torch.addmm(tw["mb"], phi, tw["mw_t"])
    d = tw["d"]
    h = x
    for i, (wt, b) in enumerate(zip(tw["hw_t"], tw["hb"])):
        z = torch.addmm(b, h, wt)
        bi = beta[:, i * d:(i + 1) * d]
        h = torch.sin(z + bi) if tw["inside"] else torch.sin(z) + bi
    y = torch.addmm(tw["ob"], h, tw["ow_t"])
    if tw["sw_t"] is not None:
        y = torch.addmm(y, phi, tw["sw_t"])
    return y


def torch_loss_grad(tw, x, phi, target, cw, pw):
    phi = phi.detach().requires_grad_(True)
    y = torch_forward(tw, x, phi)
    r = y - target
    loss = (r * r * cw[None, :] * pw[:, None]).sum()
    (g,) = torch.autograd.grad(loss, phi)
    return float(loss.detach()), g


# ---------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny run (small N, 3 repeats)")
    ap.add_argument("--pixels", type=int, default=None, help="N (default 145*145; 32*32 with --quick)")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per measurement (default 7; 3 quick)")
    ap.add_argument("--models", nargs="+", choices=["shipping", "legacy", "shipping-noskip"],
                    default=["shipping", "legacy"], help="models to time (see above)")
    ap.add_argument("--channels", type=int, nargs="+", default=[16, 224], help="legacy model: C_out values")
    ap.add_argument("--depth", type=int, default=3, help="legacy model: K")
    ap.add_argument("--width", type=int, default=64, help="legacy model: d")
    ap.add_argument("--latent", type=int, default=32, help="legacy model: m")
    ap.add_argument("--n-in", type=int, default=2, help="legacy model: n_in")
    ap.add_argument("--shift", choices=["inside", "outside"], default="inside")
    ap.add_argument("--threads", type=int, default=0, help="'all' thread count (0: hardware threads)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "decode.json"), help="JSON output path")
    ap.add_argument("--no-numpy", action="store_true", help="skip the (slow) numpy reference timing")
    args = ap.parse_args(argv)

    n = args.pixels or (32 * 32 if args.quick else 145 * 145)
    repeats = args.repeats or (3 if args.quick else 7)
    all_threads = args.threads if args.threads > 0 else (nat.default_threads() if nat else os.cpu_count() or 1)
    thread_set = sorted({1, all_threads})
    rng = np.random.default_rng(0)

    models = []
    for name in dict.fromkeys(args.models):  # order kept, duplicates dropped
        if name == "shipping":
            models.append({"name": "shipping", **SHIPPING})
        elif name == "shipping-noskip":
            models.append({"name": "shipping-noskip", **SHIPPING, "skip": False})
        else:
            for C in args.channels:
                models.append({"name": f"legacy-C{C}", "K": args.depth, "d": args.width, "m": args.latent,
                               "n_in": args.n_in, "C": C, "skip": False})
    for mdl in models:
        mdl["shift"] = args.shift

    info = {
        "pixels": n, "repeats": repeats, "statistic": "median", "threads_all": all_threads,
        "simd_level": nat.simd_level() if nat else None, "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(), "loadavg_before": os.getloadavg(),
        "torch": torch.__version__ if torch else None, "numpy": np.__version__,
        "blas_threads_controlled": _BLAS_SET is not None,
        "models": models,
    }
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    rows = []

    def add(kind, impl, threads, mdl, t, flops, d=None):
        rows.append({"kind": kind, "impl": impl, "threads": threads,
                     "model": mdl["name"] if mdl else None, "C_out": mdl["C"] if mdl else None,
                     "skip": mdl["skip"] if mdl else None, "d": mdl["d"] if mdl else d, **t,
                     "mpix_s": n / t["median_s"] / 1e6, "gflop_s": flops / t["median_s"] / 1e9,
                     "gflop_per_cpu_s": flops / t["cpu_s"] / 1e9 if t["cpu_s"] > 0 else None})

    # --- GEMM ceiling (numpy matmul), for each hidden width ------------------
    big = 512 if args.quick else 2048
    a_big = rng.random((big, big), dtype=np.float32)
    widths = list(dict.fromkeys(mdl["d"] for mdl in models))
    for th in thread_set:
        if not blas_threads(th) and th != thread_set[-1]:
            continue
        for d in widths:
            x_nd = rng.random((n, d), dtype=np.float32)
            w_dd = rng.random((d, d), dtype=np.float32)
            t = timeit(lambda: x_nd @ w_dd, max(repeats, 5))
            add("ceiling", f"numpy matmul ({n}x{d})@({d}x{d})", th, None, t, 2.0 * n * d * d, d=d)
        t = timeit(lambda: a_big @ a_big, max(3, repeats // 2))
        add("ceiling", f"numpy matmul {big}^2", th, None, t, 2.0 * big ** 3)
    blas_threads(all_threads)

    for mdl in models:
        C = mdl["C"]
        w = make_weights(rng, mdl["K"], mdl["d"], mdl["m"], C, mdl["n_in"], mdl["shift"], mdl["skip"])
        macs = w.macs_per_pixel()
        bwd_macs = C * w.width + (w.depth - 1) * w.width ** 2 + w.depth * w.width * w.latent_dim
        if w.skip_w is not None:
            bwd_macs += C * w.latent_dim
        fwd_flops = 2.0 * macs * n
        grad_flops = 2.0 * (macs + bwd_macs) * n
        x = rng.uniform(-1, 1, (n, w.n_in)).astype(np.float32)
        phi = rng.normal(0, 1, (n, w.latent_dim)).astype(np.float32)
        target = rng.normal(0, 1, (n, C)).astype(np.float32)
        cw = np.ones(C, np.float32)
        pw = np.ones(n, np.float32)
        wargs = (list(w.hidden_w), list(w.hidden_b), w.out_w, w.out_b, w.meta_w, w.meta_b, w.shift == "inside")
        if nat is not None:
            quiet_blas()
            for th in thread_set:
                t = timeit(lambda: nat.siren_forward(x, phi, *wargs, th, w.skip_w), repeats)
                add("forward", "C++", th, mdl, t, fwd_flops)
            blas_threads(all_threads)
        if not args.no_numpy:
            t = timeit(lambda: forward_numpy(w, x, phi), repeats)
            add("forward", "numpy", all_threads, mdl, t, fwd_flops)
        if torch is not None:
            tw = torch_weights(w)
            xt, pt = torch.from_numpy(x), torch.from_numpy(phi)
            tt, cwt, pwt = torch.from_numpy(target), torch.from_numpy(cw), torch.from_numpy(pw)
            for th in thread_set:
                torch.set_num_threads(th)
                with torch.inference_mode():
                    t = timeit(lambda: torch_forward(tw, xt, pt), repeats)
                add("forward", "torch", th, mdl, t, fwd_flops)
        if nat is not None:
            quiet_blas()
            for th in thread_set:
                t = timeit(lambda: nat.siren_loss_grad_phi(x, phi, target, cw, pw, *wargs, th, w.skip_w), repeats)
                add("loss_grad", "C++", th, mdl, t, grad_flops)
        if torch is not None:
            for th in thread_set:
                torch.set_num_threads(th)
                t = timeit(lambda: torch_loss_grad(tw, xt, pt, tt, cwt, pwt), repeats)
                add("loss_grad", "torch autograd", th, mdl, t, grad_flops)
        if torch is not None:
            torch.set_num_threads(all_threads)

    # --- ratios ---------------------------------------------------------------
    def find(kind, impl, th, model=None, d=None):
        for r in rows:
            if (r["kind"] == kind and r["impl"].startswith(impl) and r["threads"] == th and r["model"] == model
                    and (d is None or r["d"] == d)):
                return r
        return None

    ratios = []
    for mdl in models:
        name = mdl["name"]
        for th in thread_set:
            cpp = find("forward", "C++", th, name)
            tor = find("forward", "torch", th, name)
            ceil_nd = (find("ceiling", "numpy matmul (", th, d=mdl["d"])
                       or find("ceiling", "numpy matmul (", thread_set[-1], d=mdl["d"]))
            ceil_sq = find("ceiling", f"numpy matmul {big}", th) or find("ceiling", f"numpy matmul {big}",
                                                                        thread_set[-1])
            g_cpp = find("loss_grad", "C++", th, name)
            g_tor = find("loss_grad", "torch", th, name)
            r = {"model": name, "C_out": mdl["C"], "skip": mdl["skip"], "threads": th}
            if cpp and tor:
                r["fwd_cpp_over_torch"] = tor["median_s"] / cpp["median_s"]
            if cpp and ceil_nd:
                r["fwd_cpp_over_ceiling_Nxd"] = cpp["gflop_s"] / ceil_nd["gflop_s"]
            if cpp and ceil_sq:
                r["fwd_cpp_over_ceiling_square"] = cpp["gflop_s"] / ceil_sq["gflop_s"]
            if g_cpp and g_tor:
                r["grad_cpp_over_torch"] = g_tor["median_s"] / g_cpp["median_s"]
            if g_cpp and ceil_sq:
                r["grad_cpp_over_ceiling_square"] = g_cpp["gflop_s"] / ceil_sq["gflop_s"]
            ratios.append(r)

    info["loadavg_after"] = os.getloadavg()
    # --- print ----------------------------------------------------------------
    print(f"# SIREN decode benchmark: N={n} pixels, shift={args.shift}; simd={info['simd_level']}; "
          f"cpu={info['cpu']} x{info['cpus']}; load avg {info['loadavg_before'][0]:.2f}; median of {repeats}")
    for mdl in models:
        print(f"#   {mdl['name']}: K={mdl['K']} d={mdl['d']} m={mdl['m']} n_in={mdl['n_in']} C={mdl['C']} "
              f"skip={'yes' if mdl['skip'] else 'no'}")
    hdr = (f"{'kind':<10} {'impl':<36} {'model':<16} {'thr':>3} {'C':>4} {'median ms':>10} {'min ms':>9} "
           f"{'Mpix/s':>8} {'GFLOP/s':>8} {'cpu%':>5} {'GF/cpu-s':>8}")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        print(f"{r['kind']:<10} {r['impl']:<36} {r['model'] or '':<16} {r['threads']:>3} "
              f"{r['C_out'] if r['C_out'] else '':>4} {r['median_s'] * 1e3:>10.3f} {r['min_s'] * 1e3:>9.3f} {r['mpix_s']:>8.2f} {r['gflop_s']:>8.1f} "
              f"{100 * r['cpu_util']:>5.0f} {r['gflop_per_cpu_s'] or 0:>8.1f}")
    print()
    print("ratios (speed-up = torch time / C++ time; efficiency = C++ GFLOP/s / numpy GEMM GFLOP/s; wall clock)")
    for r in ratios:
        parts = [f"{r['model']:<16} thr={r['threads']}"]
        for k in ("fwd_cpp_over_torch", "fwd_cpp_over_ceiling_Nxd", "fwd_cpp_over_ceiling_square",
                  "grad_cpp_over_torch", "grad_cpp_over_ceiling_square"):
            if k in r:
                parts.append(f"{k}={r[k]:.2f}")
        print("  " + "  ".join(parts))

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"info": info, "results": rows, "ratios": ratios}, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
