"""Train the coefficient-map layer's learned entropy model (``ec = 2``, :mod:`hsicodec.layers.maps.lem`).

    python tools/train_entropy_model.py [--out hsicodec/models/hsi-lem-v1.hsmodel] [--epochs 4] [--hidden 32]

Data: the TRAINING scenes of the grid model's card (``hsicodec/models/hsi-grid-v1.json``; its
``val_scenes`` are never read), each compressed by ``hsicodec.compress`` at the default effort at every
rate of ``--rates``; the map layer's quantized symbols are decoded back from each file and cached in
``--cache``. Every symbol whose ``ec = 1`` code is at least :data:`hsicodec.layers.maps.lem.SKIP_CODE`
is a training example: its integer features (:func:`hsicodec.layers.maps.lem.band_features`) / 16 in,
log2 of its Laplace scale out, as ``cls / 16 + MLP(x)`` (a correction of the 26-class code, the last
layer starting at zero), loss = the ideal bits of its |q| under a quantized Laplace of that scale.
Adam (lr 2e-3, cosine decay), batch 8192, torch with 1 thread and seed ``--seed``: the same data and
seed give the same weights on one machine. The weights are rounded to the integer model (Q8) and written
as an ``.hsmodel`` (int32 arrays, no pickle) whose card lists the training scenes, the settings and the
training loss, and nothing that varies between runs: the defaults rebuild the shipped file byte for byte
(the same sha256).

``--validate`` (as the shipped model's config, ``hsicodec/models/hsi-lem-v1.json``, runs it) also writes the
validation RD into the card: for each VALIDATION scene at :data:`VAL_RATES`, the default-effort file's
bpppb and PSNR, and the bpppb of the same file with its map stream coded by the new model instead of the 26
context classes (the same symbols, so the same PSNR; the model's header entries counted): the model's
rate at equal distortion. Deterministic, so the card is too.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import hsicodec
from hsicodec.codec.decode import parse_codec
from hsicodec.format.container import decode_hsim
from hsicodec.layers.maps import coding as cm
from hsicodec.layers.maps import lem, lem_coder
from hsicodec.metrics import psnr
from hsicodec.models.modelfile import encode_model, sha256_bytes

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "hsi"
CARD = ROOT / "hsicodec" / "models" / "hsi-grid-v1.json"
RATES = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2)
VAL_RATES = (0.01, 0.02, 0.05, 0.1)  # the low rates, where the card's validation RD is measured
CACHE = Path("/tmp/hsicodec-lem-cache")


def map_stream(data: bytes) -> tuple[bytes, cm.MapParams, int, int]:
    """(map stream: the tail of section "c", its parameters, H, W) of a map-layer file."""
    f = decode_hsim(data)
    p = parse_codec(f.header, None)
    h, w, _ = f.header["shape"]
    return f.sections["c"][p.split or 0 :], p.layers["maps"], h, w


def symbols_of(data: bytes) -> tuple[np.ndarray, int]:
    """(symbols (k, H, W) int64, wavelet levels) of a map-layer file."""
    stream, mp, h, w = map_stream(data)
    return np.asarray(cm.decode_symbols(stream, mp, h, w), np.int64), mp.levels


def collect(scenes: list, rates, cache: Path = CACHE, data_dir: Path = DATA) -> dict:
    """(scene, rate) → (symbols, levels) of the default-effort file, compressing once and caching."""
    cache.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in scenes:
        cube = None
        for rate in rates:
            path = cache / f"{name}_{rate:g}.npz"
            if not path.exists():
                if cube is None:
                    cube = np.load(data_dir / f"{name}.npy", allow_pickle=False)
                sym, lv = symbols_of(hsicodec.compress(cube, bpppb=rate))
                np.savez_compressed(path, sym=sym, levels=lv)
            z = np.load(path)
            out[(name, rate)] = (z["sym"].astype(np.int64), int(z["levels"]))
    return out


def validation(model: lem.EntropyModel, scenes: list, data_dir: Path = DATA) -> list[dict]:
    """The card's validation RD: per scene and rate, the default file and its map stream under ``model``."""
    rows = []
    for name in scenes:
        cube = np.load(data_dir / f"{name}.npy", allow_pickle=False)
        n = cube.size
        for rate in VAL_RATES:
            blob = hsicodec.compress(cube, bpppb=rate)
            stream, mp, h, w = map_stream(blob)
            sym, levels, ec1 = np.asarray(cm.decode_symbols(stream, mp, h, w), np.int64), mp.levels, len(stream)
            ec2, p2 = lem_coder.encode(sym, 0, levels, 0, model)
            extra = lem.ID_BYTES + len(p2.mix) + lem_coder.HEADER_BYTES if p2.coder == cm.EC_LEARNED else 0
            learned = len(blob) - ec1 + len(ec2) + extra
            row = {
                "scene": name,
                "rate": rate,
                "psnr": round(float(psnr(cube, hsicodec.decompress(blob)[0])), 3),
                "bpppb": round(8 * len(blob) / n, 6),
                "learned_bpppb": round(8 * learned / n, 6),
                "map_bytes_saved_pct": round(100 * (1 - (len(ec2) + extra) / ec1), 2),
            }
            print(f"validation {name} {rate:g}: {row}", flush=True)
            rows.append(row)
    return rows


def ec1_params(sym: np.ndarray, levels: int) -> cm.MapParams:
    """The ec = 1 parameters the encoder fits for these symbols."""
    max_abs = int(np.abs(sym).max(initial=0))
    base, off, _ = cm.fit_codes_from_stats(*cm.cell_stats(sym, levels), float(max_abs))
    return cm.MapParams(sym.shape[0], 0, levels, max_abs, base, off, 0, cm.EC_RANS)


def examples(sym: np.ndarray, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, F) int64, |q| (N,)) of every symbol the network would see (ec = 1 code ≥ SKIP_CODE)."""
    k, h, w = sym.shape
    p = ec1_params(sym, levels)
    cc = lem.class_codes(sym, p)
    absq = np.abs(sym)
    bands, parents = cm._stream_layout(h, w, levels)
    base = np.frombuffer(p.base_codes, np.uint8).astype(np.int64).reshape(k, levels + 1)
    xs, ms = [], []
    for j in range(k):
        for b, (_, _, rs, cs) in enumerate(bands):
            c = cc[j, rs, cs]
            use = c >= lem.SKIP_CODE
            if use.any():
                xs.append(lem.band_features(absq, j, b, bands, parents, levels, base, c)[use])
                ms.append(absq[j, rs, cs][use])
    if not xs:
        return np.zeros((0, len(lem.FEATURES)), np.int64), np.zeros(0, np.int64)
    return np.concatenate(xs), np.concatenate(ms)


def laplace_bits(log2b, mag):
    """Ideal bits of |q| = mag (sign included) under a quantized Laplace of scale 2^log2b (torch)."""
    import torch

    b = torch.clamp(torch.exp2(log2b), min=0.05)
    zero = -torch.log2(-torch.expm1(-0.5 / b))
    nonzero = -torch.log2(torch.sinh(0.5 / b)) + mag / (b * float(np.log(2)))
    return torch.where(mag > 0, nonzero, zero)


def make_net(n_in: int, hidden: int):
    import torch

    net = torch.nn.Sequential(
        torch.nn.Linear(n_in, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, 1),
    )  # fmt: skip
    last = net[-1]
    assert isinstance(last, torch.nn.Linear)
    torch.nn.init.zeros_(last.weight)  # the net starts as the 26-class model
    torch.nn.init.zeros_(last.bias)
    return net


def train(x: np.ndarray, m: np.ndarray, hidden: int, epochs: int, seed: int, batch: int = 8192):
    """The float net (log2 scale = cls / 16 + net(x / 16)) and its last epoch's mean bits per symbol."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    net = make_net(x.shape[1], hidden)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    xt = torch.from_numpy(x.astype(np.float32) / lem.ONE)
    mt = torch.from_numpy(m.astype(np.float32))
    n = len(xt)
    gen = torch.Generator().manual_seed(seed)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(epochs * (n // batch), 1))
    loss_mean = float("nan")
    for ep in range(epochs):
        perm = torch.randperm(n, generator=gen)
        tot = 0.0
        for i in range(n // batch):
            sel = perm[i * batch : (i + 1) * batch]
            xb = xt[sel]
            loss = laplace_bits(xb[:, lem.CLS] + net(xb)[:, 0], mt[sel]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss.detach())
        loss_mean = tot / max(n // batch, 1)
        print(f"  epoch {ep + 1}/{epochs}: {loss_mean:.4f} bits/symbol", flush=True)
    return net, loss_mean


def integer_layers(net) -> list:
    """The net's layers rounded to the integer model: weights Q8, biases Q12 (int64)."""
    out = []
    for lin in [m for m in net if hasattr(m, "weight")]:
        w = lin.weight.detach().double().numpy()
        b = lin.bias.detach().double().numpy()
        out.append((np.round(w * (1 << lem.W_FRAC)).astype(np.int64),
                    np.round(b * (1 << (lem.W_FRAC + 4))).astype(np.int64)))  # fmt: skip
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "hsicodec" / "models" / "hsi-lem-v1.hsmodel")
    ap.add_argument("--rates", nargs="+", type=float, default=list(RATES))
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, default=CACHE)
    ap.add_argument("--alias", default="hsi-lem-v1")
    ap.add_argument("--validate", action="store_true", help="measure the validation RD and write it into the card")
    args = ap.parse_args()
    card = json.loads(CARD.read_text())
    scenes = card["train_scenes"]
    t0 = time.perf_counter()
    data = collect(scenes, args.rates, args.cache)
    parts = [examples(*data[(name, rate)]) for name in scenes for rate in args.rates]
    x = np.concatenate([p[0] for p in parts])
    m = np.concatenate([p[1] for p in parts])
    print(f"{len(x)} training symbols of {len(parts)} files ({time.perf_counter() - t0:.0f} s)", flush=True)
    t0 = time.perf_counter()
    net, loss = train(x, m, args.hidden, args.epochs, args.seed)
    seconds = time.perf_counter() - t0
    layers = integer_layers(net)
    model_card = {
        "alias": args.alias,
        "description": "Learned entropy model of the coefficient-map layer (ec = 2): an integer MLP correcting "
        "each symbol's 26-class Laplace scale code from a wide causal context.",
        "train_scenes": scenes,
        "val_scenes": card["val_scenes"],
        "train_rates": list(args.rates),
        "train_symbols": int(len(x)),
        "final_bits_per_symbol": round(loss, 4),
        "seed": args.seed,
        "epochs": args.epochs,
        "command": "python tools/train_entropy_model.py",  # with the settings of this card (no run-specific paths)
    }
    arrays, config = lem.model_arrays(layers), lem.model_config(args.hidden)
    model = lem.from_model_file(_decoded(encode_model(arrays, config, model_card)))  # the loader's checks first
    if args.validate:
        model_card["validation"] = validation(model, card["val_scenes"])
    blob = encode_model(arrays, config, model_card)
    args.out.write_bytes(blob)
    print(f"wrote {args.out} ({len(blob)} bytes, sha256 {sha256_bytes(blob)}), {seconds:.0f} s of training")
    return 0


def _decoded(blob: bytes):
    from hsicodec.models.modelfile import decode_model

    return decode_model(blob)


if __name__ == "__main__":
    sys.exit(main())
