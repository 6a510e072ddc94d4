"""Dependent (trellis-coded) quantization of the coefficient maps, measured offline (issue #21).

    python tools/study_dependent_quantization.py [--rates 0.01 0.02 0.05 0.1] [--json bench/dependent_quantization.json]

The verdict of bench/ablation.md says a gain where the maps are close to white noise would have to be a
quantizer's (space-filling) gain, not a model's. This study measures the one such quantizer a codec can use
cheaply: **dependent quantization** as in VVC (two scalar quantizers, Q0 on the even multiples of Δ and Q1 on
the odd ones and zero, switched by a 4-state machine driven by the parity of each index; the decoder only
tracks the state, the encoder chooses the indices by a Viterbi search over squared error + λ · bits). Each
row of each subband is one trellis (the state starts at 0), in the map coder's order.

On each validation scene's default file (its own maps, coefficients and step exponent q), three quantizers
of the same coefficients (in units of the file's per-level steps, so squared errors weigh as in the cube):

* **sq**: what the default file does (rounding threshold 0.4) with one least-squares reconstruction offset;
* **sq+rdoq**: the same scalar quantizer with its indices chosen by the same Viterbi search as dq (one state):
  what rate–distortion optimisation alone gains, so dq's own gain is dq − sq+rdoq;
* **dq**: dependent quantization, one least-squares reconstruction offset.

Each is run over a grid of steps (and, for the searched ones, of λ); its rate is measured two ways, and each
curve's lower hull is read at the rate of the default file's own quantization (sq at the file's step):

* **est**: an adaptive code length (Krichevsky–Trofimov per context, closed form, so the model's learning
  cost is counted) of min(|index|, 15) with an Exp-Golomb escape and one bit per sign, in contexts of (the
  quantizer the state selects, subband group, a bucket of the causal neighbours' magnitudes): the context a
  format built for dq would use;
* **real**: the bytes of the map layer's own coder (rANS, 26 context classes) on the indices, which knows
  nothing of the state (a lower bound on what dq gains in a format that does).

"dB" is the PSNR gain at equal rate from the maps' squared error saved against the file's whole error (as
tools/train_recon_table.py measures the reconstruction table). Writes the .json and a .md beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.special import gammaln

import hsicodec
from hsicodec.codec.analysis import analyse
from hsicodec.codec.cube import load_codec_model
from hsicodec.coding import entropy
from hsicodec.layers.maps import coding as cm
from hsicodec.layers.maps.encode import MAP_DEADZONES
from hsicodec.layers.maps.layout import stream_layout
from hsicodec.layers.maps.search import MapSearch
from hsicodec.metrics import psnr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from study_report import signed_db as _db  # noqa: E402
from study_report import write_report  # noqa: E402
from train_entropy_model import CARD, DATA, map_stream  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEADZONE = MAP_DEADZONES[0]
NEXT = np.array([[0, 2], [2, 0], [1, 3], [3, 1]])  # VVC's state machine: NEXT[state, |index| & 1]
CAP = 15  # indices above are escaped (Exp-Golomb order 0 of the excess)
NEIGHBOUR_EDGES = np.array([1, 2, 3, 5, 8, 13])  # causal magnitude sum → bucket
LEFT_BUCKETS = 3  # the trellis' rate model: min(|left index|, 2)
STEP_GRID = 2.0 ** (np.arange(-4, 5) / 8)  # multipliers of the file's step
LAMBDAS = (0.08, 0.12, 0.18)  # λ / Δ², squared error per bit
DQ_SPACING = 0.625  # dq's union grid spacing, in scalar steps of about the same rate


def level_group(group: int, levels: int) -> int:
    """The rate contexts' subband group of a wavelet level group: 0 lowpass, 1 coarser details, 2 the finest."""
    return 0 if group == 0 else (2 if group == levels else 1)


def flat_bits() -> np.ndarray:
    """The trellis' first rate model, before any statistics: 1 + 2 log2(1 + |k|) bits in every context."""
    return np.broadcast_to(1.0 + 2.0 * np.log2(1.0 + np.arange(CAP + 1)), (2, 3, LEFT_BUCKETS, CAP + 1)).copy()


def sequences(x: np.ndarray, levels: int) -> tuple[np.ndarray, np.ndarray, list]:
    """The rows of every subband of every map (x: (k, H, W)), padded with NaN to one length: (rows (n, L),
    subband group of each row (n,), the (map, row, col-slice) each came from)."""
    k, h, w = x.shape
    bands, _ = stream_layout(h, w, levels)
    rows, groups, where = [], [], []
    for j in range(k):
        for g, _, rs, cs in bands:
            for r in range(rs.start, rs.stop):
                rows.append(x[j, r, cs])
                groups.append(level_group(g, levels))
                where.append((j, r, cs))
    length = max(len(r) for r in rows)
    out = np.full((len(rows), length), np.nan)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out, np.array(groups), where


def unflatten(seq: np.ndarray, where: list, shape: tuple) -> np.ndarray:
    """The (k, H, W) array whose rows :func:`sequences` flattened."""
    out = np.zeros(shape, seq.dtype)
    for i, (j, r, cs) in enumerate(where):
        out[j, r, cs] = seq[i, : cs.stop - cs.start]
    return out


def trellis(a: np.ndarray, groups: np.ndarray, step: float, lam: float, bits: np.ndarray, dependent: bool):
    """Indices |k| (n, L) and the quantizer (0: Q0 or the scalar one, 1: Q1) of each, minimising
    Σ (a − reconstruction)² + λ · bits along every row of magnitudes ``a`` (NaN: padding) at step ``step``.
    ``bits[quantizer, group, left bucket, min(|k|, CAP)]``: the rate model (+1 a sign, escapes by length)."""
    n, length = a.shape
    states = 4 if dependent else 1
    cost = np.full((n, states), np.inf)
    cost[:, 0] = 0.0
    left = np.zeros((n, states), np.int64)
    back_state = np.zeros((n, length, states), np.int8)
    back_k = np.zeros((n, length, states), np.int64)
    rows = np.arange(n)
    for t in range(length):
        col = a[:, t]
        pad = np.isnan(col)
        v = np.where(pad, 0.0, col) / step
        new_cost = np.full((n, states), np.inf)
        new_left = np.zeros((n, states), np.int64)
        for s in range(states):
            quant = (s >> 1) if dependent else 0
            if dependent and quant == 0:
                base = np.floor(v / 2.0)
                cands = [np.zeros_like(v), base, base + 1]
            elif dependent:
                base = np.floor((v + 1.0) / 2.0)
                cands = [np.zeros_like(v), np.maximum(base, 1), base + 1]
            else:
                cands = [np.zeros_like(v), np.floor(v), np.floor(v) + 1]
            for kk in cands:
                kk = kk.astype(np.int64)
                if dependent:
                    rec = np.where(kk == 0, 0.0, 2.0 * kk - quant)
                else:
                    rec = kk.astype(np.float64)
                d = (v - rec) ** 2 * step**2
                capped = np.minimum(kk, CAP)
                r = bits[quant, groups, np.minimum(left[:, s], LEFT_BUCKETS - 1), capped] + (kk > 0)
                r = r + np.where(kk > CAP, 2 * np.log2(np.maximum(kk - CAP, 1) + 1) + 1, 0.0)
                c = cost[:, s] + d + lam * r
                c = np.where(pad, np.where(kk == 0, cost[:, s], np.inf), c)
                ns = NEXT[s, kk & 1] if dependent else np.zeros(n, np.int64)
                better = c < new_cost[rows, ns]
                idx = rows[better]
                new_cost[idx, ns[better]] = c[better]
                new_left[idx, ns[better]] = kk[better]
                back_state[idx, t, ns[better]] = s
                back_k[idx, t, ns[better]] = kk[better]
        cost, left = new_cost, new_left
    out_k = np.zeros((n, length), np.int64)
    out_q = np.zeros((n, length), np.int64)
    s = np.argmin(cost, axis=1)
    for t in range(length - 1, -1, -1):
        out_k[:, t] = back_k[rows, t, s]
        prev = back_state[rows, t, s].astype(np.int64)
        out_q[:, t] = (prev >> 1) if dependent else 0
        s = prev
    return out_k, out_q


def decoder_quantizers(k: np.ndarray) -> np.ndarray:
    """The quantizer (0: Q0, 1: Q1) a decoder reads each index of rows ``k`` (n, L) with: the state machine
    from state 0 at each row's start, driven by the parity of the indices before it (what the trellis' path
    must agree with)."""
    state = np.zeros(k.shape[0], np.int64)
    out = np.zeros_like(k)
    for t in range(k.shape[1]):
        out[:, t] = state >> 1
        state = NEXT[state, k[:, t] & 1]
    return out


def rate_table(k: np.ndarray, quant: np.ndarray, groups: np.ndarray, pad: np.ndarray) -> np.ndarray:
    """The trellis' rate model from indices: bits[quantizer, group, left bucket, min(|k|, CAP)] (add-½ counts)."""
    left = np.zeros_like(k)
    left[:, 1:] = np.minimum(k[:, :-1], LEFT_BUCKETS - 1)
    counts = np.full((2, 3, LEFT_BUCKETS, CAP + 1), 0.5)
    g = np.broadcast_to(groups[:, None], k.shape)
    keep = ~pad
    np.add.at(counts, (quant[keep], g[keep], left[keep], np.minimum(k[keep], CAP)), 1.0)
    return -np.log2(counts / counts.sum(axis=3, keepdims=True))


def estimated_bits(mag: np.ndarray, quant: np.ndarray, levels: int) -> float:
    """Adaptive code length of indices |k| (k, H, W) with each one's quantizer (k, H, W): per context
    (quantizer, subband group, bucket of the causal neighbours' magnitudes: left, up, up-left, up-right in
    the subband, the same place in the previous map), the Krichevsky–Trofimov code length of
    min(|k|, CAP), plus the escapes' Exp-Golomb bits and a bit per sign."""
    kmaps, h, w = mag.shape
    bands, _ = stream_layout(h, w, levels)
    nb = np.zeros_like(mag)
    grp = np.zeros((h, w), np.int64)
    for g, _, rs, cs in bands:
        grp[rs, cs] = level_group(g, levels)
        sub = np.pad(mag[:, rs, cs], ((0, 0), (1, 0), (1, 1)))
        rr, cc = rs.stop - rs.start, cs.stop - cs.start
        nb[:, rs, cs] = sub[:, 1:, :cc] + sub[:, :rr, 1 : cc + 1] + sub[:, :rr, :cc] + sub[:, :rr, 2:]
    nb[1:] += mag[:-1]
    ctx = (quant * 3 + grp[None]) * (NEIGHBOUR_EDGES.size + 1) + np.searchsorted(NEIGHBOUR_EDGES, nb, side="right")
    sym = np.minimum(mag, CAP).ravel()
    n_ctx = int(ctx.max()) + 1
    counts = np.zeros((n_ctx, CAP + 1))
    np.add.at(counts, (ctx.ravel(), sym), 1.0)
    alpha = 0.5
    totals = counts.sum(axis=1)
    nats = np.sum(gammaln(totals + alpha * (CAP + 1)) - gammaln(alpha * (CAP + 1)))
    nats -= np.sum(gammaln(counts + alpha) - gammaln(alpha))
    excess = mag[mag > CAP] - CAP
    escapes = float(np.sum(2 * np.floor(np.log2(excess + 1)) + 1))
    return float(nats / np.log(2)) + escapes + float(np.count_nonzero(mag))


def reconstruct(mag: np.ndarray, quant: np.ndarray, step: float, dependent: bool, a: np.ndarray):
    """(|reconstruction|, least-squares offset) of indices with one offset ρ over the nonzeros (in steps)."""
    base = np.where(mag == 0, 0.0, (2.0 * mag - quant) if dependent else mag.astype(np.float64)) * step
    nz = mag > 0
    rho = float(np.mean(base[nz] - a[nz])) / step if nz.any() else 0.0
    rho = min(max(rho, 0.0), 0.5)
    return np.where(nz, base - rho * step, 0.0), rho


def point(mag: np.ndarray, quant: np.ndarray, step: float, dependent: bool, a: np.ndarray, levels: int, q: int):
    """(est bits, real bytes, squared error) of indices |k| (k, H, W) with their quantizers, at ``step``. The
    map coder codes them under random signs (one bit each, as the maps' signs cost); its bytes do not depend
    on the offset ρ, which only the header carries."""
    rec, _ = reconstruct(mag, quant, step, dependent, a)
    sign = np.where(np.random.default_rng(0).random(mag.shape) < 0.5, -1, 1)
    real = len(cm.encode_symbols(mag * sign, q, levels, 0)[0])
    return estimated_bits(mag, quant, levels), float(real), float(np.sum((a - rec) ** 2))


def method_points(a: np.ndarray, levels: int, q: int, method: str) -> list:
    """:func:`point` of ``method`` over the step grid (and, for the searched ones, the λ grid)."""
    seqs, groups, where = sequences(a, levels)
    pad = np.isnan(seqs)
    dependent = method == "dq"
    pts = []
    for m in STEP_GRID:
        if method == "sq":
            mag = np.floor(a / m + DEADZONE).astype(np.int64)
            pts.append(point(mag, np.zeros_like(mag), m, False, a, levels, q))
            continue
        # dq: Δ is the union grid's spacing (each quantizer's is 2Δ); at Δ ≈ 0.625 × the scalar step its
        # rate is near the scalar quantizer's, and λ is scaled to that equivalent step
        step = m * DQ_SPACING if dependent else m
        for lam in LAMBDAS:
            bits = flat_bits()
            for _ in range(3):
                ks, qs = trellis(seqs, groups, step, lam * m**2, bits, dependent)
                bits = rate_table(ks, qs, groups, pad)
            pts.append(
                point(unflatten(ks, where, a.shape), unflatten(qs, where, a.shape), step, dependent, a, levels, q)
            )
    return pts


def hull_at(points: list, rate: float, which: int) -> float | None:
    """The squared error of the lower convex hull of (log rate, error) points at ``rate``."""
    pts = sorted((np.log(p[which]), p[2]) for p in points)
    hull: list = []
    for p in pts:
        while len(hull) >= 2 and (hull[-1][1] - hull[-2][1]) * (p[0] - hull[-2][0]) >= (p[1] - hull[-2][1]) * (
            hull[-1][0] - hull[-2][0]
        ):
            hull.pop()
        hull.append(p)
    x = np.log(rate)
    for (x0, y0), (x1, y1) in zip(hull, hull[1:]):
        if x0 <= x <= x1:
            return float(y0 + (y1 - y0) * (x - x0) / max(x1 - x0, 1e-12))
    return None


def one_file(cube: np.ndarray, search: MapSearch, rate: float) -> dict:
    blob = hsicodec.compress(cube, bpppb=rate)
    _, mp, _, _ = map_stream(blob)
    k, q, levels = mp.k, mp.q, mp.levels
    search._extend(k)
    c = search.tr.coeffs[:k]
    _, h, w = c.shape
    a = np.abs(c / cm._step_map(h, w, levels, entropy.step_from_exponent(q, cm.STEPS_PER_OCTAVE)))
    row: dict = {"rate": rate, "bpppb": 8 * len(blob) / cube.size, "maps": k}
    row["psnr"] = psnr(cube, hsicodec.decompress(blob)[0])
    mse = (float(cube.max()) - float(cube.min())) ** 2 / 10 ** (row["psnr"] / 10)
    scale = (entropy.step_from_exponent(q, cm.STEPS_PER_OCTAVE) * search.norm) ** 2 / cube.size
    mag0 = np.floor(a + DEADZONE).astype(np.int64)
    est0, real0, err0 = point(mag0, np.zeros_like(mag0), 1.0, False, a, levels, q)  # the file's quantization
    row["map_share"] = real0 / len(blob)
    for method in ("sq", "sq+rdoq", "dq"):
        pts = method_points(a, levels, q, method)
        for key, which, at in (("est", 0, est0), ("real", 1, real0)):
            err = hull_at(pts, at, which)
            row[f"{method}_{key}_db"] = (
                None if err is None else float(10 * np.log10(mse / max(mse - (err0 - err) * scale, 1e-300)))
            )
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--scenes", nargs="*", default=None, help="default: the grid model's validation scenes (none: only --cube)"
    )
    ap.add_argument("--rates", nargs="*", type=float, default=[0.01, 0.02, 0.05, 0.1])
    ap.add_argument("--cube", type=Path, default=None, help="also a larger cube (.npy), e.g. bench_scale's scene")
    ap.add_argument("--size", type=int, default=512, help="the top-left size × size crop of --cube")
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "dependent_quantization.json")
    args = ap.parse_args()
    scenes = json.loads(CARD.read_text())["val_scenes"] if args.scenes is None else args.scenes
    doc: dict = {"rows": []}
    cubes: list[tuple[str, Path, int | None]] = [(name, DATA / f"{name}.npy", None) for name in scenes]
    if args.cube is not None:
        cubes.append((f"{args.cube.stem} (top-left {args.size}²)", args.cube, args.size))
    for name, path, size in cubes:
        cube = np.load(path, mmap_mode="r", allow_pickle=False)
        cube = np.array(cube[:size, :size] if size else cube)
        header = {"shape": list(cube.shape), "dtype": cube.dtype.name}
        search = MapSearch(None, analyse(cube, load_codec_model()), header)
        for rate in args.rates:
            row = {"scene": name, **one_file(cube, search, rate)}
            doc["rows"].append(row)
            print(json.dumps(row), flush=True)
    write_report(args.json, "study_dependent_quantization.py", doc, markdown)
    return 0


def markdown(doc: dict) -> list:
    lines = [
        "# Dependent (trellis-coded) quantization of the coefficient maps (offline, issue #21)",
        "",
        f"Generated by `{doc['command']}` ({doc['date']}, {doc['machine']}). "
        "dB at equal rate against the default file's own quantization "
        "(threshold 0.4, one reconstruction offset); est = adaptive code length in contexts that know the "
        "quantizer, real = the map coder's bytes (contexts blind to it). A --cube row is a crop of a larger "
        "cube (bench_scale's scenes: a validation scene mirrored to size, so its statistics with more samples "
        "for the contexts to learn from).",
        "",
        "| scene | rate | maps | sq (est / real) | sq+rdoq (est / real) | dq (est / real) | dq − sq+rdoq (est) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in doc["rows"]:
        own = None
        if r["dq_est_db"] is not None and r["sq+rdoq_est_db"] is not None:
            own = r["dq_est_db"] - r["sq+rdoq_est_db"]
        lines.append(
            f"| {r['scene']} | {r['rate']:g} | {r['maps']} | {_db(r['sq_est_db'])} / {_db(r['sq_real_db'])} | "
            f"{_db(r['sq+rdoq_est_db'])} / {_db(r['sq+rdoq_real_db'])} | {_db(r['dq_est_db'])} / "
            f"{_db(r['dq_real_db'])} | {_db(own)} |"
        )
    return lines


if __name__ == "__main__":
    sys.exit(main())
