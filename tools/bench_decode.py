#!/usr/bin/env python
"""Benchmark the SIREN decode kernels: C++ (hsicodec._native) vs numpy vs torch CPU.

For each benchmarked model and N = 145*145 pixels, times (median of --repeats
runs, after one warm-up run):

* forward: C++ with threads=1 and threads=all, numpy reference, torch CPU
  (same math with addmm/sin, inference mode, torch.set_num_threads to match);
* loss_grad_phi: C++ vs a torch autograd step (forward + backward wrt phi only);
  C++ and torch run in turn within each repeat, so a slow spell of a shared
  machine slows both alike and the speed-ups stay fair;
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

--cuda (off by default) times instead the optional CUDA kernel (hsicodec._native_cuda)
against torch CUDA (the same torch_forward on device tensors, fp32 matmuls at
"highest" precision, inference mode; TF32 timed as well, for reference) on a
2048 x 2048 scene (N = 4,194,304 pixels; --pixels changes it) with the shipping
model shape and the hsi-plain-v1 shape; inputs already on the GPU, each run timed
by CUDA events (median of --repeats, default 20, after warm-up), plus the
host-array path (numpy in and out, transfers included).  Writes
bench/decode_cuda.json.  Without the extension, a GPU or torch with CUDA it says why
and exits 0.
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import json
import operator
import os
import platform
import statistics
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

# Idle OpenMP workers (torch) must sleep, not spin: a spinning pool steals the cores the
# next measurement (the C++ kernel's own threads) runs on.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hsicodec.layers.network.siren import SirenWeights, forward_numpy  # noqa: E402

try:
    from hsicodec import _native as nat  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    nat = None

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None  # type: ignore[assignment]  # optional: the torch timings are skipped without it


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
    return SirenWeights(
        tuple(hw),
        tuple(hb),
        f32(rng.uniform(-lim, lim, (C, d))),
        f32(rng.uniform(-0.1, 0.1, C)),
        f32(rng.normal(0, 0.05, (K * d, m))),
        f32(rng.normal(0, 0.05, K * d)),
        shift,
        sw,
    )


def timeit(fn, repeats: int) -> dict:
    """Wall-clock median/min, plus the process CPU time of the same runs (after one warm-up run).

    cpu_util = CPU seconds / wall seconds: ~threads on an idle machine, lower when
    other processes compete for the cores (then wall-clock numbers understate
    throughput; the *_cpu figures are closer to what an idle core would do).
    """
    return timeit_interleaved({"fn": fn}, repeats)["fn"]


def timeit_interleaved(fns: dict, repeats: int) -> dict:
    """Several functions timed as :func:`timeit`, run in turn within each repeat (after one warm-up each), so that
    a slow spell of a shared machine slows all of them alike and their ratios stay fair."""
    for fn in fns.values():
        fn()
    ts: dict[str, list[float]] = {name: [] for name in fns}
    cs: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            c0 = time.process_time()
            t0 = time.perf_counter()
            fn()
            ts[name].append(time.perf_counter() - t0)
            cs[name].append(time.process_time() - c0)
    out = {}
    for name in fns:
        med, cpu = statistics.median(ts[name]), statistics.median(cs[name])
        out[name] = {
            "median_s": med,
            "min_s": min(ts[name]),
            "cpu_s": cpu,
            "cpu_util": cpu / med if med > 0 else 0.0,
            "runs": repeats,
        }
    return out


def _find_blas_setter():
    """openblas_set_num_threads of the BLAS numpy is linked to (None if not found)."""
    dirs = [
        os.path.join(os.path.dirname(np.__file__), "..", "numpy.libs"),
        os.path.join(os.path.dirname(np.__file__), ".libs"),
    ]
    names = [
        "scipy_openblas_set_num_threads64_",
        "scipy_openblas_set_num_threads",
        "openblas_set_num_threads64_",
        "openblas_set_num_threads",
    ]
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
        "hw_t": [t(a.T) for a in w.hidden_w],
        "hb": [t(b) for b in w.hidden_b],
        "ow_t": t(w.out_w.T),
        "ob": t(w.out_b),
        "mw_t": t(w.meta_w.T),
        "mb": t(w.meta_b),
        "d": w.width,
        "inside": w.shift == "inside",
        "sw_t": None if w.skip_w is None else t(w.skip_w.T),
    }


def torch_forward(tw, x, phi):
    beta = torch.addmm(tw["mb"], phi, tw["mw_t"])
    d = tw["d"]
    h = x
    for i, (wt, b) in enumerate(zip(tw["hw_t"], tw["hb"])):
        z = torch.addmm(b, h, wt)
        bi = beta[:, i * d : (i + 1) * d]
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


def torch_fwd(th: int, tw, x, phi) -> None:
    """torch_forward on `th` CPU threads, in inference mode (the timed torch forward)."""
    torch.set_num_threads(th)
    with torch.inference_mode():
        torch_forward(tw, x, phi)


def torch_grad(th: int, tw, x, phi, target, cw, pw) -> None:
    """torch_loss_grad on `th` CPU threads (the timed torch autograd step)."""
    torch.set_num_threads(th)
    torch_loss_grad(tw, x, phi, target, cw, pw)


# ---------------------------------------------------------------------------
# --cuda

PLAIN = {"K": 4, "d": 64, "m": 64, "n_in": 2, "C": 205, "skip": False}  # hsi-plain-v1's shape


def _cuda_unavailable() -> str | None:
    """Why the CUDA comparison cannot run here, or None."""
    try:
        from hsicodec import _native_cuda as cu  # type: ignore[attr-defined]
    except ImportError:
        return "hsicodec._native_cuda is not built (build it with: make cuda, i.e. HSICODEC_CUDA=1 and nvcc)"
    if cu.device_count() < 1:
        return "no CUDA device is visible (no GPU or no driver)"
    if torch is None or not torch.cuda.is_available():
        return "torch with CUDA is not available (the comparison needs it)"
    return None


def _event_times(fn, repeats: int, warmup: int = 3) -> dict:
    """Median / min of `repeats` runs of fn, each timed by CUDA events on the current stream."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(repeats):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        ts.append(a.elapsed_time(b) / 1e3)
    return {"median_s": statistics.median(ts), "min_s": min(ts), "runs": len(ts)}


def _forward_ptr(model, xt, pt, yt, n: int, stream) -> None:
    """The CUDA kernel's forward on device tensors (pointers taken at each call, as the timed code did)."""
    model.forward_ptr(xt.data_ptr(), pt.data_ptr(), yt.data_ptr(), n, stream)


def _cuda_row(rows: list, model: str, n_out: int, n: int, flops: float, impl: str, t: dict, **extra) -> dict:
    """Append a forward row of the --cuda table (model `model`, `n` pixels, `flops` per run) and return it."""
    rows.append(
        {
            "kind": "forward",
            "impl": impl,
            "model": model,
            "C_out": n_out,
            **t,
            "mpix_s": n / t["median_s"] / 1e6,
            "gflop_s": flops / t["median_s"] / 1e9,
            **extra,
        }
    )
    return rows[-1]


def bench_cuda(args) -> int:
    why = _cuda_unavailable()
    if why:
        print(f"CUDA benchmark skipped: {why}")
        return 0
    from hsicodec import _native_cuda as cu  # type: ignore[attr-defined]

    n = args.pixels or 2048 * 2048
    repeats = args.repeats or 20
    out = Path(args.out) if args.out != str(ROOT / "bench" / "decode.json") else ROOT / "bench" / "decode_cuda.json"
    dev = torch.device("cuda")
    rng = np.random.default_rng(0)
    info: dict[str, Any] = {
        "pixels": n,
        "scene": "2048x2048" if n == 2048 * 2048 else None,
        "repeats": repeats,
        "statistic": "median of CUDA-event times, inputs and outputs on the GPU",
        "device": cu.device_name(torch.cuda.current_device()),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "shift": args.shift,
        "models": [],
    }
    rows: list[dict[str, Any]] = []
    ratios: list[dict[str, Any]] = []
    for name, shape in (("shipping", SHIPPING), ("plain", PLAIN)):
        mdl = {"name": name, **shape, "shift": args.shift}
        info["models"].append(mdl)
        w = make_weights(rng, shape["K"], shape["d"], shape["m"], shape["C"], shape["n_in"], args.shift, shape["skip"])
        flops = 2.0 * w.macs_per_pixel() * n
        x = rng.uniform(-1, 1, (n, w.n_in)).astype(np.float32)
        phi = rng.normal(0, 1, (n, w.latent_dim)).astype(np.float32)
        model = cu.SirenModel(
            list(w.hidden_w), list(w.hidden_b), w.out_w, w.out_b, w.meta_w, w.meta_b, w.shift == "inside", w.skip_w
        )
        kinfo = model.info()
        mdl["kernel"] = kinfo
        xt, pt = torch.from_numpy(x).to(dev), torch.from_numpy(phi).to(dev)
        yt = torch.empty((n, w.n_out), dtype=torch.float32, device=dev)
        stream = torch.cuda.current_stream().cuda_stream
        # the rows of this model; the functions timed get their arguments bound now (functools.partial), not
        # looked up later in this loop's variables (deleted at the end of each iteration to free the GPU memory)
        row = partial(_cuda_row, rows, name, w.n_out, n, flops)

        cuda_row = row(
            "CUDA kernel",
            _event_times(partial(_forward_ptr, model, xt, pt, yt, n, stream), repeats),
        )
        y_cuda = yt.clone()
        tw = {
            k: ([a.to(dev) for a in v] if isinstance(v, list) else v.to(dev) if torch.is_tensor(v) else v)
            for k, v in torch_weights(w).items()
        }
        prec = torch.get_float32_matmul_precision()
        with torch.inference_mode():
            torch.set_float32_matmul_precision("highest")
            torch_row = row("torch CUDA fp32", _event_times(partial(torch_forward, tw, xt, pt), repeats))
            y_torch = torch_forward(tw, xt, pt)
            torch.set_float32_matmul_precision("high")
            row("torch CUDA tf32 (reference only)", _event_times(partial(torch_forward, tw, xt, pt), repeats))
            y_tf32 = torch_forward(tw, xt, pt)
            torch.set_float32_matmul_precision(prec)
        sub = rng.integers(0, n, 4096)
        ref = forward_numpy(w, x[sub], phi[sub])
        cuda_row["max_abs_vs_numpy_4096"] = float(np.max(np.abs(y_cuda[sub].cpu().numpy() - ref)))
        cuda_row["max_abs_vs_torch_fp32"] = float((y_cuda - y_torch).abs().max())
        torch_row["max_abs_vs_numpy_4096"] = float(np.max(np.abs(y_torch[sub].cpu().numpy() - ref)))
        rows[-1]["max_abs_vs_numpy_4096"] = float(np.max(np.abs(y_tf32[sub].cpu().numpy() - ref)))
        del y_cuda, y_torch, y_tf32, tw, xt, pt, yt
        torch.cuda.empty_cache()
        model.forward(x[:1], phi[:1])  # warm-up of the host path (workspace)
        ts = []
        for _ in range(3):
            t0 = time.perf_counter()
            model.forward(x, phi)
            ts.append(time.perf_counter() - t0)
        row(
            "CUDA kernel, host arrays (transfers included)",
            {"median_s": statistics.median(ts), "min_s": min(ts), "runs": len(ts)},
        )
        ratios.append(
            {
                "model": name,
                "cuda_over_torch_fp32": torch_row["median_s"] / cuda_row["median_s"],
                "target": 2.0 if name == "shipping" else None,
            }
        )
        del x, phi

    print(
        f"# CUDA SIREN forward: N={n} pixels, shift={args.shift}; {info['device']}; torch {info['torch']} "
        f"(CUDA {info['torch_cuda']}); median of {repeats} (CUDA events)"
    )
    for mdl in info["models"]:
        k = mdl["kernel"]
        print(
            f"#   {mdl['name']}: K={mdl['K']} d={mdl['d']} m={mdl['m']} n_in={mdl['n_in']} C={mdl['C']} "
            f"skip={'yes' if mdl['skip'] else 'no'}; kernel: hidden block {k['hidden_block']}, weights in "
            f"shared memory {'group by group' if k['staged'] else '(all)'}, {k['warps_per_block']} warps x "
            f"{k['blocks']} blocks, {k['shared_bytes']} B shared, {k['registers']} registers, "
            f"{k['local_bytes']} B local"
        )
    hdr = (
        f"{'impl':<46} {'model':<10} {'C':>4} {'median ms':>10} {'min ms':>9} {'Mpix/s':>9} {'GFLOP/s':>9} "
        f"{'max|d| np':>10}"
    )
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        err = r.get("max_abs_vs_numpy_4096")
        print(
            f"{r['impl']:<46} {r['model']:<10} {r['C_out']:>4} {r['median_s'] * 1e3:>10.3f} {r['min_s'] * 1e3:>9.3f} "
            f"{r['mpix_s']:>9.1f} {r['gflop_s']:>9.1f} {'' if err is None else f'{err:.2e}':>10}"
        )
    for r in ratios:
        tgt = f" (target >= {r['target']:.1f}x)" if r["target"] else ""
        print(f"speed-up CUDA kernel over torch CUDA fp32, {r['model']}: {r['cuda_over_torch_fp32']:.2f}x{tgt}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"info": info, "results": rows, "ratios": ratios}, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


# ---------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny run (small N, 3 repeats)")
    ap.add_argument("--pixels", type=int, default=None, help="N (default 145*145; 32*32 with --quick)")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per measurement (default 7; 3 quick)")
    ap.add_argument(
        "--models",
        nargs="+",
        choices=["shipping", "legacy", "shipping-noskip"],
        default=["shipping", "legacy"],
        help="models to time (see above)",
    )
    ap.add_argument("--channels", type=int, nargs="+", default=[16, 224], help="legacy model: C_out values")
    ap.add_argument("--depth", type=int, default=3, help="legacy model: K")
    ap.add_argument("--width", type=int, default=64, help="legacy model: d")
    ap.add_argument("--latent", type=int, default=32, help="legacy model: m")
    ap.add_argument("--n-in", type=int, default=2, help="legacy model: n_in")
    ap.add_argument("--shift", choices=["inside", "outside"], default="inside")
    ap.add_argument("--threads", type=int, default=0, help="'all' thread count (0: hardware threads)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "decode.json"), help="JSON output path")
    ap.add_argument("--no-numpy", action="store_true", help="skip the (slow) numpy reference timing")
    ap.add_argument(
        "--cuda",
        action="store_true",
        help="time the CUDA kernel vs torch CUDA instead (writes bench/decode_cuda.json; see above)",
    )
    args = ap.parse_args(argv)
    if args.cuda:
        return bench_cuda(args)

    n = args.pixels or (32 * 32 if args.quick else 145 * 145)
    repeats = args.repeats or (3 if args.quick else 7)
    all_threads = args.threads if args.threads > 0 else (nat.default_threads() if nat else os.cpu_count() or 1)
    thread_set = sorted({1, all_threads})
    rng = np.random.default_rng(0)

    models: list[dict[str, Any]] = []
    for name in dict.fromkeys(args.models):  # order kept, duplicates dropped
        if name == "shipping":
            models.append({"name": "shipping", **SHIPPING})
        elif name == "shipping-noskip":
            models.append({"name": "shipping-noskip", **SHIPPING, "skip": False})
        else:
            for C in args.channels:
                models.append(
                    {
                        "name": f"legacy-C{C}",
                        "K": args.depth,
                        "d": args.width,
                        "m": args.latent,
                        "n_in": args.n_in,
                        "C": C,
                        "skip": False,
                    }
                )
    for mdl in models:
        mdl["shift"] = args.shift

    info: dict[str, Any] = {
        "pixels": n,
        "repeats": repeats,
        "statistic": "median",
        "threads_all": all_threads,
        "simd_level": nat.simd_level() if nat else None,
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "loadavg_before": os.getloadavg(),
        "torch": torch.__version__ if torch else None,
        "numpy": np.__version__,
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
        rows.append(
            {
                "kind": kind,
                "impl": impl,
                "threads": threads,
                "model": mdl["name"] if mdl else None,
                "C_out": mdl["C"] if mdl else None,
                "skip": mdl["skip"] if mdl else None,
                "d": mdl["d"] if mdl else d,
                **t,
                "mpix_s": n / t["median_s"] / 1e6,
                "gflop_s": flops / t["median_s"] / 1e9,
                "gflop_per_cpu_s": flops / t["cpu_s"] / 1e9 if t["cpu_s"] > 0 else None,
            }
        )

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
            t = timeit(partial(operator.matmul, x_nd, w_dd), max(repeats, 5))
            add("ceiling", f"numpy matmul ({n}x{d})@({d}x{d})", th, None, t, 2.0 * n * d * d, d=d)
        t = timeit(lambda: a_big @ a_big, max(3, repeats // 2))
        add("ceiling", f"numpy matmul {big}^2", th, None, t, 2.0 * big**3)
    blas_threads(all_threads)

    for mdl in models:
        C = mdl["C"]
        w = make_weights(rng, mdl["K"], mdl["d"], mdl["m"], C, mdl["n_in"], mdl["shift"], mdl["skip"])
        macs = w.macs_per_pixel()
        bwd_macs = C * w.width + (w.depth - 1) * w.width**2 + w.depth * w.width * w.latent_dim
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
        if torch is not None:
            tw = torch_weights(w)
            xt, pt = torch.from_numpy(x), torch.from_numpy(phi)
            tt, cwt, pwt = torch.from_numpy(target), torch.from_numpy(cw), torch.from_numpy(pw)

        # C++ and torch in turn within each repeat (the ratios are the targets); numpy on its own.
        # The functions timed get their arguments bound now (functools.partial), not looked up later.
        fwd, grad = {}, {}
        quiet_blas()
        for th in thread_set:
            fns = {}
            if nat is not None:
                fns["C++"] = partial(nat.siren_forward, x, phi, *wargs, th, w.skip_w)
            if torch is not None:
                fns["torch"] = partial(torch_fwd, th, tw, xt, pt)
            fwd[th] = timeit_interleaved(fns, repeats)
            fns = {}
            if nat is not None:
                fns["C++"] = partial(nat.siren_loss_grad_phi, x, phi, target, cw, pw, *wargs, th, w.skip_w)
            if torch is not None:
                fns["torch autograd"] = partial(torch_grad, th, tw, xt, pt, tt, cwt, pwt)
            grad[th] = timeit_interleaved(fns, repeats)
        blas_threads(all_threads)
        for th in thread_set:
            if "C++" in fwd[th]:
                add("forward", "C++", th, mdl, fwd[th]["C++"], fwd_flops)
        if not args.no_numpy:
            t = timeit(partial(forward_numpy, w, x, phi), repeats)
            add("forward", "numpy", all_threads, mdl, t, fwd_flops)
        for th in thread_set:
            if "torch" in fwd[th]:
                add("forward", "torch", th, mdl, fwd[th]["torch"], fwd_flops)
        for impl in ("C++", "torch autograd"):
            for th in thread_set:
                if impl in grad[th]:
                    add("loss_grad", impl, th, mdl, grad[th][impl], grad_flops)
        if torch is not None:
            torch.set_num_threads(all_threads)

    # --- ratios ---------------------------------------------------------------
    def find(kind, impl, th, model=None, d=None):
        for r in rows:
            if (
                r["kind"] == kind
                and r["impl"].startswith(impl)
                and r["threads"] == th
                and r["model"] == model
                and (d is None or r["d"] == d)
            ):
                return r
        return None

    ratios = []
    for mdl in models:
        name = mdl["name"]
        for th in thread_set:
            cpp = find("forward", "C++", th, name)
            tor = find("forward", "torch", th, name)
            ceil_nd = find("ceiling", "numpy matmul (", th, d=mdl["d"]) or find(
                "ceiling", "numpy matmul (", thread_set[-1], d=mdl["d"]
            )
            ceil_sq = find("ceiling", f"numpy matmul {big}", th) or find(
                "ceiling", f"numpy matmul {big}", thread_set[-1]
            )
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
    print(
        f"# SIREN decode benchmark: N={n} pixels, shift={args.shift}; simd={info['simd_level']}; "
        f"cpu={info['cpu']} x{info['cpus']}; load avg {info['loadavg_before'][0]:.2f}; median of {repeats}"
    )
    for mdl in models:
        print(
            f"#   {mdl['name']}: K={mdl['K']} d={mdl['d']} m={mdl['m']} n_in={mdl['n_in']} C={mdl['C']} "
            f"skip={'yes' if mdl['skip'] else 'no'}"
        )
    hdr = (
        f"{'kind':<10} {'impl':<36} {'model':<16} {'thr':>3} {'C':>4} {'median ms':>10} {'min ms':>9} "
        f"{'Mpix/s':>8} {'GFLOP/s':>8} {'cpu%':>5} {'GF/cpu-s':>8}"
    )
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        print(
            f"{r['kind']:<10} {r['impl']:<36} {r['model'] or '':<16} {r['threads']:>3} "
            f"{r['C_out'] if r['C_out'] else '':>4} {r['median_s'] * 1e3:>10.3f} {r['min_s'] * 1e3:>9.3f} "
            f"{r['mpix_s']:>8.2f} {r['gflop_s']:>8.1f} "
            f"{100 * r['cpu_util']:>5.0f} {r['gflop_per_cpu_s'] or 0:>8.1f}"
        )
    print()
    print("ratios (speed-up = torch time / C++ time; efficiency = C++ GFLOP/s / numpy GEMM GFLOP/s; wall clock)")
    for r in ratios:
        parts = [f"{r['model']:<16} thr={r['threads']}"]
        for k in (
            "fwd_cpp_over_torch",
            "fwd_cpp_over_ceiling_Nxd",
            "fwd_cpp_over_ceiling_square",
            "grad_cpp_over_torch",
            "grad_cpp_over_ceiling_square",
        ):
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
