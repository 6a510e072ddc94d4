"""A shared nonlinear spectral synthesis at equal bits on the validation scenes (issue #21, point 2; offline).

python tools/bench_synthesis.py --models M.hsmodel [M2.hsmodel ...] [--scenes ...] [--rates ...] [--oracle]
    [--readout spectra span] [--curves-from bench/synthesis.json] [--from-json bench/synthesis.json]

For each validation scene and rate r: the default file at r (``compress(cube, bpppb=r)``) and the default RD
curve around it (files at r × FACTORS; PSNR by hsicodec.metrics, whole file counted). "Default file +
synthesis" (tools/train_synthesis.py: shared features g of the decoded maps with S coded shifts, D coded
readout spectra) is encoded on top of the file at r: the shifts by the meta-learned inner steps then
REFINE Adam steps on PIX random pixels, quantized to 1/32 (one byte each); the readout by least squares
on every pixel, coded like basis vectors (``encode_spectral``: delta + Laplace ANS) at the step exponent
that gains most; its bytes = readout stream + its msgpack parameters + the shifts + KEY_OVERHEAD. Its
PSNR (decoded cube cast to the file's dtype as the decoder does) is compared with the default curve
interpolated (linear in log bpppb) at the synthesis file's exact total rate: gain = equal-bits dB. The
encoder would keep the synthesis only where this gain is positive ("decision" = max(gain, 0)).

``--readout span`` codes the readout as D × k coefficients on the file's own coded basis instead of D
spectra (variant (c) of the brief: a nonlinear correction of the coded components only; far fewer bytes,
nothing outside the basis' span). ``--curves-from`` reuses the default curves of an earlier run (the
encoder is deterministic); ``--from-json`` only rewrites the .md.

``--oracle`` adds an upper bound that no shipped variant can reach: a per-scene MLP (K → 64 → 64 → 32
residual directions of the scene's own residual PCA, ~7k weights) fitted on half of the file's pixels,
weights and spectra not counted, gain measured on the other half (held-out pixels) and on its own half.

Decode cost: median of 5 numpy evaluations of the synthesis (g over all pixels + readout) against the
median of 5 whole-file default decodes, 1 thread. Writes bench/synthesis.json and .md.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import msgpack
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_synthesis as ts  # noqa: E402

import hsicodec  # noqa: E402
from hsicodec import metrics  # noqa: E402
from hsicodec.codec.cube import compress  # noqa: E402
from hsicodec.coding.spectral import encode_spectral  # noqa: E402
from hsicodec.io.cast import cast_to_dtype  # noqa: E402
from hsicodec.layers.maps.stagefit import decoded_parts  # noqa: E402

SCENES = ("jasper_ridge", "pavia_centre", "abu_urban_5")  # validation: never used to fit anything shared
RATES = (0.01, 0.02, 0.05, 0.1, 0.2)
FACTORS = (0.97, 1.0, 1.04, 1.08, 1.15, 1.25, 1.4)
QS = 1.0 / 32  # shift quantization step
REFINE = 40
PIX = 8192
KEY_OVERHEAD = 8  # msgpack key + bin headers of the synthesis entry in the header
ROOT = Path(__file__).resolve().parents[1]


def default_curve(cube: np.ndarray, rate: float) -> tuple[list[tuple[float, float]], bytes]:
    """(bpppb, PSNR) of default files at rate × FACTORS, and the file at ``rate``."""
    pts, at = [], b""
    for f in FACTORS:
        data = compress(cube, bpppb=rate * f, threads=1)
        pts.append((8 * len(data) / cube.size, metrics.psnr(cube, hsicodec.decompress(data, threads=1)[0])))
        if f == 1.0:
            at = data
    return sorted(set(pts)), at


def interp(pts: list[tuple[float, float]], rate: float) -> float:
    """PSNR at ``rate`` on the curve, piecewise linear in log bpppb (extended by the end segments)."""
    r = np.log([p[0] for p in pts])
    q = np.array([p[1] for p in pts])
    x = np.log(rate)
    i = int(np.clip(np.searchsorted(r, x) - 1, 0, len(r) - 2))
    return float(q[i] + (q[i + 1] - q[i]) * (x - r[i]) / (r[i + 1] - r[i]))


def g_numpy(sd: dict, u: np.ndarray, s: np.ndarray, act: str) -> np.ndarray:
    """g(u, s) in float32 numpy (what a decoder without torch would run)."""
    mod = sd["mod.weight"] @ s
    w = sd["l1.weight"].shape[0]

    def a(z: np.ndarray, first: bool) -> np.ndarray:
        if act == "sine":
            return np.sin(z * (3.0 if first else 1.0))
        return 0.5 * z * (1.0 + np.tanh(0.7978845608 * (z + 0.044715 * z * z * z)))  # tanh GELU (decode timing only)

    h = a(u @ sd["l1.weight"].T + (sd["l1.bias"] + mod[:w]), True)
    h = a(h @ sd["l2.weight"].T + (sd["l2.bias"] + mod[w:]), False)
    return h @ sd["out.weight"].T + sd["out.bias"]


def encode_shifts(net: ts.SynthNet, u: np.ndarray, r: np.ndarray, seed: int) -> np.ndarray:
    """The file's quantized shifts: meta-learned inner steps, then REFINE Adam steps, on PIX random pixels."""
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(u))[:PIX]
    ut, rt = torch.tensor(u[idx]), torch.tensor(r[idx], dtype=torch.float32)
    s0 = ts.adapt(net, ut, rt, ts.INNER, False).detach()
    s = s0.clone().requires_grad_(True)
    opt = torch.optim.Adam([s], lr=0.02)
    with torch.no_grad():
        best = (float(ts.unexplained(net(ut, s0), rt)), s0.clone())
    for _ in range(REFINE):
        loss = ts.unexplained(net(ut, s), rt)
        if float(loss.detach()) < best[0]:
            best = (float(loss.detach()), s.detach().clone())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return np.clip(np.round(best[1].numpy() / QS), -127, 127) * QS


def synthesis(
    cube: np.ndarray, data: bytes, net: ts.SynthNet, act: str, curve: list, seed: int, span: bool = False
) -> dict:
    """The best synthesis file on top of the default file ``data``: its gain at equal bits and its parts.
    ``span``: the readout is D × k coefficients on the file's own basis (variant (c): corrections of the
    coded components only, no new spectra) instead of D free spectra."""
    c = cube.shape[2]
    parts = decoded_parts(data, c)
    if parts is None:
        raise SystemExit("bench_synthesis: a default file on a shared spectral stage (not a scene file)")
    maps, mean, basis, norm = parts
    x = cube.reshape(-1, c).astype(np.float64)
    base = norm * maps.reshape(-1, maps.shape[2]) @ basis + mean
    u = ts.inputs(maps)
    r = (x - base) / norm
    s = encode_shifts(net, u, r, seed)
    sd = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    f = g_numpy(sd, u, s.astype(np.float32), act).astype(np.float64)
    f -= f.mean(axis=0)
    scale = np.maximum(f.std(axis=0), 1e-12)
    f /= scale
    out = basis if span else np.eye(c)
    coords = np.linalg.lstsq(out.T, r.T, rcond=None)[0].T if span else r
    w = np.linalg.lstsq(f, coords, rcond=None)[0]
    dtype = np.dtype(str(cube.dtype))
    psnr0 = metrics.psnr(cube, cast_to_dtype(base.reshape(cube.shape), dtype))
    best: dict = {}
    for e in range(-40, 0):
        try:
            sdata, params, _, wq = encode_spectral(np.zeros(w.shape[1]), w, -60, e)
        except Exception:  # noqa: BLE001 - a step too fine for the coder's range
            continue
        nbytes = len(sdata) + len(msgpack.packb(params)) + len(s) + KEY_OVERHEAD
        rec = base + norm * (f @ (wq @ out))
        p = metrics.psnr(cube, cast_to_dtype(rec.reshape(cube.shape), dtype))
        total = 8 * (len(data) + nbytes) / cube.size
        gain = p - interp(curve, total)
        if not best or gain > best["gain"]:
            best = {"gain": gain, "psnr": p, "bytes": nbytes, "bpppb": total, "exp": e}
    best.update(
        {
            "psnr_file": psnr0,
            "file_bytes": len(data),
            "k": int(maps.shape[2]),
            "raw_gain": float(10 * np.log10(np.mean(r**2) / np.mean((r - f @ (w @ out)) ** 2))),
        }
    )
    t_syn = []
    for _ in range(5):
        t0 = time.perf_counter()
        ff = g_numpy(sd, ts.inputs(maps), s.astype(np.float32), act)
        _ = ((ff - ff.mean(axis=0)) / scale) @ (w @ out)
        t_syn.append(time.perf_counter() - t0)
    best["synth_s"] = statistics.median(t_syn)
    best["mac_px"] = ts.K_IN * ts.WIDTH + ts.WIDTH**2 + ts.WIDTH * f.shape[1] + f.shape[1] * c
    best["readout"] = "span" if span else "spectra"
    return best


def oracle(cube: np.ndarray, data: bytes, seed: int) -> dict:
    """Per-scene MLP on the file's residual (weights and spectra free): held-out-pixel and own-pixel gains (dB)."""
    c = cube.shape[2]
    parts = decoded_parts(data, c)
    if parts is None:
        raise SystemExit("bench_synthesis: a default file on a shared spectral stage (not a scene file)")
    maps, mean, basis, norm = parts
    k = maps.shape[2]
    y = maps.reshape(-1, k)
    res = cube.reshape(-1, c).astype(np.float64) - (norm * y @ basis + mean)
    vt = np.linalg.svd(res - res.mean(0), full_matrices=False)[2][:32]
    t = res @ vt.T
    sc = t.std()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(y))
    tr, te = idx[: len(y) // 2], idx[len(y) // 2 :]
    xin = torch.tensor(y / (y.std(0) + 1e-12), dtype=torch.float32)
    tt = torch.tensor(t / sc, dtype=torch.float32)
    net = torch.nn.Sequential(
        torch.nn.Linear(k, 64), torch.nn.GELU(), torch.nn.Linear(64, 64), torch.nn.GELU(), torch.nn.Linear(64, 32)
    )
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(1500):
        b = torch.tensor(rng.choice(tr, 4096))
        loss = ((net(xin[b]) - tt[b]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        err = res - (net(xin).numpy() * sc) @ vt
    return {
        f"oracle_{n}": float(10 * np.log10(np.mean(res[i] ** 2) / np.mean(err[i] ** 2)))
        for n, i in (("heldout", te), ("own", tr))
    }


def run(args: argparse.Namespace) -> dict:
    nets = []
    for path in args.models:
        from hsicodec.models.modelfile import load_model

        cfg = load_model(path).config
        nets.append((Path(path).stem, ts.load(path).eval(), str(cfg["act"]), dict(cfg)))
    out: dict = {
        "date": date.today().isoformat(),
        "machine": platform.machine(),
        "threads": 1,
        "models": {f"{n}+{sp}": cfg for n, _, _, cfg in nets for sp in args.readout},
        "scenes": {},
    }
    curves = {}
    if args.curves_from is not None:
        old = json.loads(args.curves_from.read_text())
        curves = {(sc, r["rate"]): r["curve"] for sc, s in old["scenes"].items() for r in s["rows"]}
    for scene in args.scenes:
        cube = np.load(args.data / f"{scene}.npy")
        rows = []
        for rate in args.rates:
            old = curves.get((scene, rate))
            if old is None:
                curve, data = default_curve(cube, rate)
            else:
                curve, data = [tuple(p) for p in old], compress(cube, bpppb=rate, threads=1)
            t_dec = []
            for _ in range(5):
                t0 = time.perf_counter()
                hsicodec.decompress(data, threads=1)
                t_dec.append(time.perf_counter() - t0)
            row: dict = {"rate": rate, "curve": curve, "decode_s": statistics.median(t_dec), "variants": {}}
            for (name, net, act, _), span in [(n, sp) for n in nets for sp in args.readout]:
                name = f"{name}+{span}"
                v = synthesis(cube, data, net, act, curve, args.seed, span == "span")
                v["decode_ratio"] = (row["decode_s"] + v["synth_s"]) / row["decode_s"]
                row["variants"][name] = v
                print(
                    f"{scene} {rate:g} {name}: k={v['k']} raw {v['raw_gain']:+.3f} dB, equal bits "
                    f"{v['gain']:+.3f} dB ({v['bytes']} B on {v['file_bytes']} B), decode x{v['decode_ratio']:.2f}",
                    flush=True,
                )
            if args.oracle:
                row.update(oracle(cube, data, args.seed))
                print(
                    f"{scene} {rate:g} oracle: held-out {row['oracle_heldout']:+.3f}, own {row['oracle_own']:+.3f}",
                    flush=True,
                )
            rows.append(row)
        out["scenes"][scene] = {"shape": list(cube.shape), "rows": rows}
    return out


def markdown(res: dict, cmd: str) -> str:
    rates = [r["rate"] for r in next(iter(res["scenes"].values()))["rows"]]
    names = list(res["models"])
    lines = [
        "# Nonlinear spectral synthesis at equal bits (issue #21, point 2; offline)",
        "",
        f"Generated by `{cmd}` ({res['date']}, {res['machine']}, 1 thread). Validation scenes only; "
        "models meta-learned on the training scenes by `tools/train_synthesis.py`. Cell: gain in dB of "
        "'default file + synthesis' over the default RD curve at the same total bits (synthesis bytes "
        "included; negative = the encoder would leave it off), then (synthesis bytes / file bytes, "
        "decode time ×). 'raw' = its PSNR gain with its bytes not counted.",
        "",
        "| scene | variant | " + " | ".join(f"{r:g}" for r in rates) + " |",
        "|---|---|" + "---|" * len(rates),
    ]
    for scene, s in res["scenes"].items():
        for n in names:
            cells = [
                f"{r['variants'][n]['gain']:+.2f} (raw {r['variants'][n]['raw_gain']:+.2f}; "
                f"{r['variants'][n]['bytes']}/{r['variants'][n]['file_bytes']} B, "
                f"x{r['variants'][n]['decode_ratio']:.2f})"
                for r in s["rows"]
            ]
            lines.append(f"| {scene} | {n} | " + " | ".join(cells) + " |")
        if "oracle_heldout" in s["rows"][0]:
            cells = [f"{r['oracle_heldout']:+.2f} / {r['oracle_own']:+.2f}" for r in s["rows"]]
            lines.append(
                f"| {scene} | oracle per-scene MLP, bytes free (held-out / own pixels) | " + " | ".join(cells) + " |"
            )
    pairs = [(s, r) for s in res["scenes"].values() for r in s["rows"]]
    best = max(max(r["variants"][n]["gain"] for n in names) for _, r in pairs)
    raw = max(max(r["variants"][n]["raw_gain"] for n in names) for _, r in pairs)
    held = [r["oracle_heldout"] for _, r in pairs if "oracle_heldout" in r]
    lines += [
        "",
        f"Summary: best equal-bits gain of any variant in any cell {best:+.3f} dB; largest raw gain (its bytes "
        f"not counted) {raw:+.3f} dB; cells where some variant gains >= +0.5 dB at equal bits: "
        f"{sum(max(r['variants'][n]['gain'] for n in names) >= 0.5 for _, r in pairs)} of {len(pairs)}."
        + (
            f" The per-scene oracle (bytes free) reaches +0.5 dB on held-out pixels in "
            f"{sum(h >= 0.5 for h in held)} of {len(held)} cells (range {min(held):+.2f} to {max(held):+.2f} dB)."
            if held
            else ""
        ),
    ]
    lines += ["", "| scene | rate | k | default dB | default bytes | decode s |", "|---|---|---|---|---|---|"]
    for scene, s in res["scenes"].items():
        for r in s["rows"]:
            v = r["variants"][names[0]]
            lines.append(
                f"| {scene} | {r['rate']:g} | {v['k']} | {v['psnr_file']:.2f} | {v['file_bytes']} | "
                f"{r['decode_s']:.3f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=[])
    ap.add_argument("--scenes", nargs="+", default=list(SCENES))
    ap.add_argument("--rates", nargs="+", type=float, default=list(RATES))
    ap.add_argument("--oracle", action="store_true")
    ap.add_argument("--readout", nargs="+", choices=("spectra", "span"), default=["spectra"])
    ap.add_argument("--curves-from", type=Path, default=None, help="reuse the default RD curves of a results .json")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "hsi")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "synthesis")
    ap.add_argument("--from-json", type=Path, default=None, help="only rewrite the .md from a results .json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.from_json is not None:
        res = json.loads(args.from_json.read_text())
        args.out.with_suffix(".md").write_text(markdown(res, res["command"]))
        print(markdown(res, res["command"]))
        return 0
    res = run(args)
    cmd = "python tools/bench_synthesis.py " + " ".join(sys.argv[1:])
    res["command"] = cmd
    args.out.with_suffix(".json").write_text(json.dumps(res, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(res, cmd))
    print(markdown(res, cmd))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
