"""A learned transform for the coefficient maps: a shared, trained prediction step on top of CDF 9/7 (issue #21:
"a better transform"; an offline study, nothing of it is in the codec).

    python tools/study_learned_lifting.py [--rates 0.005 0.01 0.02 0.05 0.1 0.2] [--epochs 30]
                                          [--json bench/learned_lifting.json]

Learned image codecs gain over JPEG 2000 through their transform. An end-to-end autoencoder (analysis and
synthesis networks with a hyperprior) needs days of accelerator training on far more images than the project's
12 small training scenes and two cores allow; its nearest form that starts *exactly* at today's transform is a
learned lifting step (the iWave family): after the CDF 9/7 split of a level, each of the level's detail subbands
HL, LH, HH of map j is predicted from what the decoder already has and only the residual is coded,

    d̂ = P(features) + dequantized(quantize(d − P(features)))        (closed loop: the features are decoded data)

so that a predictor that learns nothing (P = 0) is today's codec, and the real map coder (context classes and
all, :func:`hsicodec.layers.maps.coding.encode_symbols`) prices whatever the residuals become. The features
at level i of map j, in units of that level's quantizer step (bias-free network, so a prediction scales with
its inputs): the decoded low-pass of map j at that level (what its coarser subbands synthesise; minus its 3 × 3
mean), and for the reference maps 0 and j − 1 (decoded in full before map j) their decoded details at the same
level, their low-pass likewise, and their details times the local regression weight of map j's low-pass on
theirs over a 5 × 5 window (the maps' local cross-correlation, bench/cross_map.md). The network: 3 × 3
convolutions 15 → 24 → 24 → 3 with ReLUs plus a linear 1 × 1 skip, one network for every level and map, trained
(torch, Adam, Huber loss with δ = one step) on the 12 training scenes' maps at the steps of their default files
at 0.01, 0.05 and 0.2 bpppb (open loop: features from the maps quantized without prediction).

Measured on the validation scenes at the default file's own maps, step and reconstruction offset: the map
stream's bytes under the real coder and the maps' squared error, with and without the prediction; "dB" is the
PSNR gain at the file's size, the error change plus what the bytes saved buy along the default curve of
``bench/rd.json`` (as in tools/study_cross_map.py). Writes the .json and a .md beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import hsicodec
from hsicodec.codec.analysis import analyse
from hsicodec.codec.cube import load_codec_model
from hsicodec.coding import entropy
from hsicodec.coding.wavelet import _regions, cdf97_inverse_reference, cdf97_subband_gain
from hsicodec.layers.maps import coding as cm
from hsicodec.layers.maps.encode import MAP_DEADZONES
from hsicodec.layers.maps.search import MapSearch
from hsicodec.metrics import psnr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from study_cross_map import box, sign_bits, worth_db  # noqa: E402
from study_report import signed_db as _db  # noqa: E402
from study_report import write_report  # noqa: E402
from train_entropy_model import CARD, DATA, map_stream  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TRAIN_RATES = (0.01, 0.05, 0.2)
N_FEATURES = 15
HIDDEN = 24
DEADZONE = MAP_DEADZONES[0]  # the default effort's rounding threshold


def _level(a: np.ndarray, levels: int, i: int) -> tuple[int, int, int, int]:
    """(h, w) of the region level i of map a (H, W) splits, and (lh, lw) of its low-pass."""
    h, w = _regions(a.shape[0], a.shape[1], levels)[i]
    return h, w, (h + 1) // 2, (w + 1) // 2


def _lowpass(dec: np.ndarray, levels: int, i: int) -> np.ndarray:
    """What the decoded subbands of a map (H, W) coarser than level i synthesise: its low-pass at level i."""
    _, _, lh, lw = _level(dec, levels, i)
    sub = dec[:lh, :lw]
    return sub if i == levels - 1 else cdf97_inverse_reference(sub[..., None], levels - 1 - i)[..., 0]


def _details(dec: np.ndarray, levels: int, i: int) -> np.ndarray:
    """The level-i details (3, lh, lw) of a map (H, W): HL, LH, HH, zero-padded to the low-pass's size."""
    h, w, lh, lw = _level(dec, levels, i)
    out = np.zeros((3, lh, lw))
    out[0, :, : w - lw] = dec[:lh, lw:w]
    out[1, : h - lh, :] = dec[lh:h, :lw]
    out[2, : h - lh, : w - lw] = dec[lh:h, lw:w]
    return out


def _put_details(a: np.ndarray, d: np.ndarray, levels: int, i: int) -> None:
    """Write details (3, lh, lw) back into map a (H, W) at level i (inverse of :func:`_details`)."""
    h, w, lh, lw = _level(a, levels, i)
    a[:lh, lw:w] = d[0, :, : w - lw]
    a[lh:h, :lw] = d[1, : h - lh, :]
    a[lh:h, lw:w] = d[2, : h - lh, : w - lw]


def _steps(levels: int, i: int, step: float) -> np.ndarray:
    """The quantizer steps (3,) of level i's HL, LH, HH."""
    grp = levels - i
    return np.array([step / np.sqrt(cdf97_subband_gain(grp, o, levels)) for o in (1, 2, 3)])


def _highpass(a: np.ndarray) -> np.ndarray:
    return a - box(a, 1) / box(np.ones_like(a), 1)


def features(dec: np.ndarray, j: int, levels: int, i: int, step: float) -> np.ndarray:
    """The predictor's inputs (N_FEATURES, lh, lw) for map j's level-i details from decoded maps dec (k, H, W)
    (map j decoded coarser than level i, the maps before it in full)."""
    s = _steps(levels, i, step)[0]
    aj = _highpass(_lowpass(dec[j], levels, i)) / s
    out = [aj[None]]
    for r in (0, j - 1):
        if j == 0 or (r == j - 1 and j == 1):  # no reference map (or map 0 twice)
            out.append(np.zeros((7,) + aj.shape))
            continue
        ar = _highpass(_lowpass(dec[r], levels, i)) / s
        dr = _details(dec[r], levels, i) / s
        wgt = box(aj * ar, 2) / (box(ar * ar, 2) + 25.0)
        out += [ar[None], dr, wgt[None] * dr]
    return np.concatenate(out)


def _network(hidden: int = HIDDEN):
    import torch

    class Predictor(torch.nn.Module):
        def __init__(self):
            super().__init__()
            c = torch.nn.Conv2d
            self.body = None
            if hidden:
                self.body = torch.nn.Sequential(
                    c(N_FEATURES, hidden, 3, padding=1, bias=False),
                    torch.nn.ReLU(),
                    c(hidden, hidden, 3, padding=1, bias=False),
                    torch.nn.ReLU(),
                    c(hidden, 3, 3, padding=1, bias=False),
                )
                torch.nn.init.zeros_(self.body[-1].weight)  # starts at P = 0: today's codec
            self.skip = c(N_FEATURES, 3, 1, bias=False)
            torch.nn.init.zeros_(self.skip.weight)

        def forward(self, x):
            return self.skip(x) if self.body is None else self.body(x) + self.skip(x)

    return Predictor()


def macs_per_pixel(hidden: int = HIDDEN) -> float:
    """Multiply-adds per pixel and map of the predictor: each level's detail positions are a quarter of its
    region's, so about a third of the pixels in all."""
    per_position = 9 * (N_FEATURES * hidden + hidden * hidden + hidden * 3) * bool(hidden) + 3 * N_FEATURES
    return per_position / 3.0


def _open_loop(search: MapSearch, k: int, q: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(true coefficients (k, H, W), dequantized ones at step q without prediction, ρ)."""
    sym, _, rho = search._symbols(k, q)
    steps = cm._step_map(search.h, search.w, search.levels, entropy.step_from_exponent(q, cm.STEPS_PER_OCTAVE))
    return search.tr.coeffs[:k], cm.dequantized(sym, rho, steps), rho


def training_set(scenes: list, rates=TRAIN_RATES) -> list:
    """(features, targets in step units, valid mask) per (scene, rate, map, level) of the training scenes."""
    out = []
    for name in scenes:
        cube = np.load(DATA / f"{name}.npy", allow_pickle=False)
        search = MapSearch(None, analyse(cube, load_codec_model()), {})
        for rate in rates:
            _, mp, _, _ = map_stream(hsicodec.compress(cube, bpppb=rate))
            c, dec, _ = _open_loop(search, mp.k, mp.q)
            step = mp.step
            for j in range(mp.k):
                for i in range(mp.levels):
                    x = features(dec, j, mp.levels, i, step)
                    s = _steps(mp.levels, i, step)[:, None, None]
                    t = _details(c[j], mp.levels, i) / s
                    valid = _details(np.ones_like(c[j]), mp.levels, i)
                    out.append((x.astype(np.float32), t.astype(np.float32), valid.astype(np.float32)))
        print(f"  training data: {name} ({len(out)} subband triples so far)", flush=True)
    return out


def train(data: list, epochs: int, hidden: int = HIDDEN, seed: int = 0):
    """The predictor, trained on ``data`` (Adam, Huber loss δ = 1 step, 8 subband triples a step)."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(2)
    net = _network(hidden)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    rng = np.random.default_rng(seed)
    tensors = [tuple(torch.from_numpy(a)[None] for a in d) for d in data]
    for epoch in range(epochs):
        order, total, n = rng.permutation(len(tensors)), 0.0, 0.0
        for b in range(0, len(order), 8):
            opt.zero_grad()
            loss = torch.zeros(())
            count = 0.0
            for idx in order[b : b + 8]:
                x, t, v = tensors[idx]
                err = torch.nn.functional.huber_loss(net(x), t, reduction="none", delta=1.0)
                loss = loss + (err * v).sum()
                count += float(v.sum())
            (loss / max(count, 1.0)).backward()
            opt.step()
            total, n = total + float(loss.detach()), n + count
        if epoch % 5 == 0 or epoch == epochs - 1:
            print(f"  epoch {epoch:3d}: loss {total / n:.5f} per coefficient (step units)", flush=True)
    return net


def _coding_loop(net, shape: tuple, q: int, levels: int, rho: int, symbols) -> tuple[np.ndarray, np.ndarray]:
    """(symbols, decoded coefficients) (k, H, W), map by map and level by level from the coarsest, each level's
    details predicted by ``net`` (None: not at all) from what is decoded so far and ``symbols(j, i, pred, s)``
    giving the symbols of map j's level i (i None: the low band) around that prediction at steps s."""
    import torch

    k, h, w = shape
    step = entropy.step_from_exponent(q, cm.STEPS_PER_OCTAVE)
    steps = cm._step_map(h, w, levels, step)
    dec, sym = np.zeros(shape), np.zeros(shape, np.int64)
    lh, lw = cm.subbands(h, w, levels)[0][2:]
    for j in range(k):
        sym[j, lh, lw] = symbols(j, None, 0.0, steps[lh, lw])
        dec[j, lh, lw] = cm.dequantized(sym[j, lh, lw], rho, steps[lh, lw])
        for i in reversed(range(levels)):
            s = _steps(levels, i, step)[:, None, None]
            pred: np.ndarray | float = 0.0
            if net is not None:
                x = torch.from_numpy(features(dec, j, levels, i, step).astype(np.float32))[None]
                with torch.no_grad():
                    pred = net(x)[0].numpy().astype(np.float64) * s
            sy = symbols(j, i, pred, s)
            _put_details(sym[j], sy, levels, i)
            _put_details(dec[j], pred + cm.dequantized(sy, rho, s), levels, i)
    return sym, dec


def closed_loop(net, c: np.ndarray, q: int, levels: int, rho: int) -> tuple[np.ndarray, np.ndarray]:
    """(symbols (k, H, W), decoded coefficients) of coding the residuals of the predicted details of
    coefficients c (k, H, W), the predictions from what is decoded (the encoder's own decoder); ``net`` None: no
    prediction (today's quantizer, as a check)."""

    def quantized(j: int, i: int | None, pred: np.ndarray | float, s: np.ndarray) -> np.ndarray:
        u = c[j, : s.shape[0], : s.shape[1]] if i is None else _details(c[j], levels, i)
        r = (u - pred) / s
        return (np.sign(r) * np.floor(np.abs(r) + DEADZONE)).astype(np.int64)

    return _coding_loop(net, c.shape, q, levels, rho, quantized)


def decode_loop(net, sym: np.ndarray, q: int, levels: int, rho: int) -> np.ndarray:
    """The decoder of :func:`closed_loop`: decoded coefficients (k, H, W) from the symbols alone (the study
    measures the error of this, so nothing the encoder knows and the decoder does not can leak into it)."""

    def read(j: int, i: int | None, pred: np.ndarray | float, s: np.ndarray) -> np.ndarray:
        return sym[j, : s.shape[0], : s.shape[1]] if i is None else _details(sym[j], levels, i).astype(np.int64)

    return _coding_loop(net, sym.shape, q, levels, rho, read)[1]


def one_file(nets: dict, cube: np.ndarray, search: MapSearch, rate: float, rd: dict) -> dict:
    """The default file of ``cube`` at ``rate`` against the same maps, step and ρ with each predictor of
    ``nets`` (hidden channels → network)."""
    blob = hsicodec.compress(cube, bpppb=rate)
    _, mp, _, _ = map_stream(blob)
    k, q, rho, levels = mp.k, mp.q, mp.recon, mp.levels
    c, _, _ = _open_loop(search, k, q)
    truth = cdf97_inverse_reference(np.moveaxis(c, 0, 2), levels)
    row: dict = {"rate": rate, "bpppb": 8 * len(blob) / cube.size, "maps": k}
    row["psnr"] = psnr(cube, hsicodec.decompress(blob)[0])
    mse = (float(cube.max()) - float(cube.min())) ** 2 / 10 ** (row["psnr"] / 10)

    def coded(net) -> tuple[np.ndarray, int, float]:  # (symbols, stream bytes, the decoder's squared error)
        sym, _ = closed_loop(net, c, q, levels, rho)
        stream, _ = cm.encode_symbols(sym, q, levels, rho)
        dec = decode_loop(net, sym, q, levels, rho)
        return sym, len(stream), float(np.sum((cdf97_inverse_reference(np.moveaxis(dec, 0, 2), levels) - truth) ** 2))

    def signs_saved(sym: np.ndarray) -> float:  # the sign context's saving (first two maps), a fraction of the file
        n, bits = sign_bits(sym, levels, 2)
        return (n - bits) / (8.0 * len(blob))

    sym0, b0, e0 = coded(None)
    row["today_is_the_file"] = bool(np.array_equal(sym0, search._symbols(k, q)[0]))
    row["map_bytes"] = b0
    row["signs_alone_db"] = worth_db(rd, row["bpppb"], signs_saved(sym0))
    for hidden, net in nets.items():
        sym1, b1, e1 = coded(net)
        gain = float(10 * np.log10(mse / max(mse - (e0 - e1) * search.norm**2 / cube.size, 1e-300)))
        saved = (b0 - b1) / len(blob)
        worth = worth_db(rd, row["bpppb"], saved)
        both = worth_db(rd, row["bpppb"], saved + signs_saved(sym1))
        row[f"h{hidden}"] = {
            "map_bytes": b1,
            "bytes_saved": saved,
            "error_less": 1 - e1 / e0 if e0 > 0 else 0.0,
            "gain_db_error": gain,
            "db": None if worth is None else gain + worth,
            "db_with_signs": None if both is None else gain + both,
        }
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", nargs="+", type=float, default=[0.005, 0.01, 0.02, 0.05, 0.1, 0.2])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument(
        "--hidden", nargs="+", type=int, default=[HIDDEN, 48, 0],
        help="one predictor per value: channels of its two hidden convolutions (0: the linear 1 × 1 skip alone)",
    )  # fmt: skip
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "learned_lifting.json")
    args = ap.parse_args()
    card = json.loads(CARD.read_text())
    t0 = time.perf_counter()
    data = training_set(card["train_scenes"])
    print(f"training data in {time.perf_counter() - t0:.0f} s", flush=True)
    nets, variants = {}, []
    for hidden in args.hidden:
        t0 = time.perf_counter()
        nets[hidden] = train(data, args.epochs, hidden)
        variants.append(
            {
                "hidden": hidden,
                "train_s": time.perf_counter() - t0,
                "weights": int(sum(p.numel() for p in nets[hidden].parameters())),
                "macs_per_pixel_and_map": macs_per_pixel(hidden),
            }
        )
        print(f"hidden {hidden}: trained in {variants[-1]['train_s']:.0f} s", flush=True)
    rd = {s["scene"]: s for s in json.loads((ROOT / "bench" / "rd.json").read_text())["scenes"]}
    rows = []
    for name in card["val_scenes"]:
        cube = np.load(DATA / f"{name}.npy", allow_pickle=False)
        search = MapSearch(None, analyse(cube, load_codec_model()), {})
        for rate in args.rates:
            row = {"scene": name} | one_file(nets, cube, search, rate, rd[name])
            rows.append(row)
            dbs = "  ".join(f"h{h}: {row[f'h{h}']['map_bytes']:6d} B {_db(row[f'h{h}']['db'])} dB" for h in nets)
            print(
                f"{name:14s} {rate:6g} k {row['maps']:3d}  map bytes {row['map_bytes']:6d}  {dbs}"
                + ("" if row["today_is_the_file"] else "  (today's symbols differ from the file's)"),
                flush=True,
            )
    figures = {
        "train_scenes": card["train_scenes"],
        "train_rates": list(TRAIN_RATES),
        "epochs": args.epochs,
        "variants": variants,
        "rows": rows,
    }
    write_report(args.json, "study_learned_lifting.py", figures, markdown)
    return 0


def markdown(doc: dict) -> list:
    def name(v: dict) -> str:
        return "linear (1 × 1 skip alone)" if v["hidden"] == 0 else f"network, {v['hidden']} hidden channels"

    variants = doc["variants"]
    out = [
        "# A learned transform for the coefficient maps: a trained prediction step on top of CDF 9/7",
        "",
        f"Generated by `{doc['command']}` ({doc['date']}, {doc['machine']}, 2 cores). Issue #21 (a better"
        " transform): an offline study on the validation scenes, nothing of it in the codec; the method is in"
        f" the script's docstring. Each predictor trained on the {len(doc['train_scenes'])} training scenes'"
        f" maps for {doc['epochs']} epochs. Each row: the default file's maps at its own step and"
        " reconstruction offset, coded by the real map coder without and with the prediction; per predictor"
        " the map bytes, the change of the maps' squared error, and *dB* = the PSNR gain at the file's size"
        " (the error change plus what the bytes saved buy along the default curve of `bench/rd.json`; n/a"
        " outside its rates).",
        "",
        "| predictor | weights | decoder multiply-adds per pixel and map | trained in |",
        "|---|---|---|---|",
    ]
    out += [
        f"| {name(v)} | {v['weights']} | {v['macs_per_pixel_and_map']:.0f} | {v['train_s']:.0f} s |" for v in variants
    ]
    out += [
        "",
        "Today's whole map-layer decode is 465–2548 multiply-adds per pixel (bench/ablation.md). The features"
        " add a few tens of operations per pixel and map to any of these (3 × 3 and 5 × 5 box sums over the"
        " low-pass of map j and of two reference maps, at a third of the pixels); the low-pass images are"
        " what the decoder's inverse transform synthesises level by level anyway.",
    ]

    def table(heads: list, each: list, first, cell) -> list:  # a table: the scene's cells, then each predictor's
        top = ["scene", "bpppb", *heads] + [f"h{v['hidden']}{h}" for v in variants for h in each]
        return [
            "",
            "| " + " | ".join(top) + " |",
            "|" + "---|" * len(top),
            *(
                f"| {r['scene']} | {r['rate']:g} | {first(r)} | "
                + " | ".join(cell(r[f"h{v['hidden']}"]) for v in variants)
                + " |"
                for r in doc["rows"]
            ),
        ]

    out += table(
        ["maps", "map bytes today"],
        [": bytes", ": error", ": dB"],
        lambda r: f"{r['maps']} | {r['map_bytes']}",
        lambda x: f"{x['map_bytes']} | {-100 * x['error_less']:+.2f} % | {_db(x['db'], 2)}",
    )
    if not all("signs_alone_db" in r for r in doc["rows"]):
        return out
    out += [
        "",
        "Do the prediction and the sign context of bench/cross_map.md (from the first two maps) add up? dB at equal"
        " bits of the sign context alone (on today's symbols), of each predictor alone, and of each predictor"
        " with the sign context coding its residuals' signs:",
    ]
    return out + table(
        ["signs alone"],
        ["", " + signs"],
        lambda r: _db(r["signs_alone_db"], 2),
        lambda x: f"{_db(x['db'], 2)} | {_db(x['db_with_signs'], 2)}",
    )


if __name__ == "__main__":
    sys.exit(main())
