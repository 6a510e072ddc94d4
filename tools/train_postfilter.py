"""Learn the post filter's shared taps on the TRAINING scenes and measure what they are worth.

python tools/train_postfilter.py [--config hsicodec/models/hsi-grid-v1.json] [--json OUT.json] [--model OUT.hsmodel]

The shared ("meta-learned") filter is the pooled least-squares solution over every training file: for
each training scene (the config's ``train_scenes``; its ``val_scenes`` are never read) and rate, the
default encoder's map-layer file is decoded and the normal equations of the post filter
(:mod:`hsicodec.layers.maps.postfit`, the first 8 maps, own and cross taps) are summed, each file
weighted by 1 / its squared error, per rate regime (buckets of the maps' step exponent q). The taps
would then be the prior that a file's coded integers are deltas from (``codec.pf`` prior id).

What a prior is worth is measured leave-one-scene-out: for every training file, the best net saving
(squared error saved less the maps' slope times the filter's bits) with taps coded from zero and with
taps coded from the prior pooled over the *other* scenes. No randomness: the result is a closed form
(the card's seed is 0). ``--model`` writes the taps as a model file (no pickle, named by sha256;
:mod:`hsicodec.models.modelfile`) with a card of the training scenes and the measurement.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from hsicodec.codec.analysis import analyse
from hsicodec.codec.cube import compress, load_codec_model
from hsicodec.format import compact
from hsicodec.format.container import decode_hsim
from hsicodec.layers.maps import coding as coefmaps
from hsicodec.layers.maps import postfilter as pf
from hsicodec.layers.maps.postfit import choose, normal_equations
from hsicodec.layers.maps.search import MapSearch
from hsicodec.layers.maps.stagefit import decoded_parts

RATES = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2)
MAPS = 8  # maps with shared taps
Q_EDGES = (-50, -100, -160)  # rate regimes by step exponent q: 0.005-0.01, 0.02, 0.05, 0.1-0.2 bpppb roughly
N_FEAT = pf.n_coded(MAPS, True) + pf.N_TAPS  # own (8 x 5) then cross (maps 1..7 x 5), padded layout
ROOT = Path(__file__).resolve().parents[1]


def bucket(q: int) -> int:
    """Rate regime of a step exponent q (0: coarsest steps, lowest rates)."""
    return int(sum(q <= e for e in Q_EDGES))


def _layout(owner: np.ndarray, is_cross: np.ndarray) -> np.ndarray:
    """Index of each of a file's features in the padded layout (own j·5 + t, cross 40 + (j − 1)·5 + t)."""
    count: dict = {}
    out = []
    for o, c in zip(owner.tolist(), is_cross.tolist()):
        t = count.get((o, c), 0)
        count[(o, c)] = t + 1
        out.append(o * pf.N_TAPS + t if not c else MAPS * pf.N_TAPS + (o - 1) * pf.N_TAPS + t)
    return np.array(out)


def collect(scenes, rates, data_dir: Path) -> list:
    """Per training file: its normal equations, slope, step exponent and squared error."""
    model = load_codec_model()
    out = []
    for scene in scenes:
        cube = np.load(data_dir / f"{scene}.npy")
        h, w, c = cube.shape
        an = analyse(cube, model)
        for rate in rates:
            data = compress(cube, bpppb=rate, layer="maps")
            parts = decoded_parts(data, c)
            assert parts is not None
            maps, mean, basis, norm = parts
            codec, _ = compact.unpack_codec(decode_hsim(data).header["codec"], coefmaps.MAX_MAPS, coefmaps.MAX_LEVELS)
            q, k = int(codec["rl"]["q"]), maps.shape[2]
            resid = an.values.reshape(-1, c) - mean - norm * (maps.reshape(-1, k) @ basis)
            a, b, owner, is_cross = normal_equations(
                maps, resid @ basis.T, basis @ basis.T, norm, min(k, MAPS), np.ones(h * w, bool)
            )
            lam = MapSearch(None, an, {"shape": [h, w, c], "dtype": cube.dtype.name}).slope(k, q)
            sse = float(np.sum(resid**2))
            out.append({"scene": scene, "rate": rate, "q": q, "k": k, "a": a, "b": b, "owner": owner,
                        "is_cross": is_cross, "lam": lam, "sse": sse})  # fmt: skip
            print(f"{scene} {rate:g}: k={k} q={q}", flush=True)
    return out


def pooled(files: list) -> dict:
    """Shared taps per rate regime: the pooled least squares of the files (each weighted by 1 / its error)."""
    sums: dict = {}
    for f in files:
        ix = _layout(f["owner"], f["is_cross"])
        a, b = sums.setdefault(bucket(f["q"]), (np.zeros((N_FEAT, N_FEAT)), np.zeros(N_FEAT)))
        a[np.ix_(ix, ix)] += f["a"] / f["sse"]
        b[ix] += f["b"] / f["sse"]
    reg = {r: 1e-3 * np.trace(a) / N_FEAT for r, (a, _) in sums.items()}
    return {r: np.linalg.solve(a + reg[r] * np.eye(N_FEAT), b) for r, (a, b) in sums.items()}


def loso(files: list) -> list:
    """Leave-one-scene-out net gains (dB) of each file with taps coded from zero and from the shared prior."""
    rows = []
    for f in files:
        prior = pooled([g for g in files if g["scene"] != f["scene"]]).get(bucket(f["q"]))
        ix = _layout(f["owner"], f["is_cross"])
        gains = []
        for p in (None, None if prior is None else prior[ix]):
            best = choose(f["a"], f["b"], f["owner"], f["is_cross"], f["lam"], p)
            net = 0.0 if best is None else best[0]
            gains.append(float(10 * np.log10(f["sse"] / (f["sse"] - net))))
        rows.append({"scene": f["scene"], "rate": f["rate"], "k": f["k"], "none_db": gains[0], "prior_db": gains[1]})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=ROOT / "hsicodec" / "models" / "hsi-grid-v1.json")
    ap.add_argument("--data", type=Path, help="folder of the cubes (default: the config's data_dir)")
    ap.add_argument("--rates", nargs="+", type=float, default=list(RATES))
    ap.add_argument("--json", type=Path, help="write the shared taps and the leave-one-scene-out table here")
    ap.add_argument("--model", type=Path, help="write the shared taps as a model file here")
    args = ap.parse_args()
    cfg = json.loads(args.config.read_text())
    data_dir = args.data or (ROOT / cfg["data_dir"]).resolve()  # relative to the repository, as in the config
    scenes = cfg["train_scenes"]
    files = collect(scenes, args.rates, data_dir)
    table = loso(files)
    for r in table:
        print(f"{r['scene']:16s} {r['rate']:<6g} k={r['k']:2d} from zero {r['none_db']:+.3f} dB, "
              f"from the shared taps {r['prior_db']:+.3f} dB")  # fmt: skip
    none, prior = np.mean([r["none_db"] for r in table]), np.mean([r["prior_db"] for r in table])
    print(f"mean over {len(table)} training files: from zero {none:+.4f} dB, from the shared taps {prior:+.4f} dB")
    taps = pooled(files)
    result = {"train_scenes": scenes, "rates": args.rates, "q_edges": list(Q_EDGES), "seed": 0,
              "taps": {str(r): t.tolist() for r, t in sorted(taps.items())}, "loso": table,
              "mean_none_db": none, "mean_prior_db": prior}  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if args.model:
        from hsicodec.models.modelfile import save_model

        arrays = {f"taps_{r}": np.asarray(t, "<f8") for r, t in sorted(taps.items())}
        card = {"alias": "hsi-postfilter-v1", "train_scenes": scenes, "val_scenes": cfg.get("val_scenes", []),
                "seed": 0, "loso_mean_db": {"from_zero": none, "from_shared": prior}}  # fmt: skip
        save_model(args.model, arrays, {"kind": "postfilter", "maps": MAPS, "q_edges": list(Q_EDGES)}, card)
    return 0


if __name__ == "__main__":
    sys.exit(main())
