"""Ablation of the codec on the validation scenes: the plain method, each extension, all together.

Rows per scene and target rate (whole file counted, decoded and measured as docs/metrics.md defines):

* ``plain method`` — the paper's method: model hsi-plain-v1 (one 64-dim latent per 16×16
  patch, the network outputs the bands), latents coded as independent symbols;
* ``+ spectral PCA + latent grids`` — model hsi-grid-v1 (per-scene PCA basis in the file,
  multi-resolution latent grids), latents still coded as independent symbols;
* ``+ Haar coefficients`` — the grids' Haar coefficients, a Laplace scale per subband group;
* ``+ channel KLT`` — each level's channels rotated onto their principal axes first;
* ``network latents, effort max`` — the same with longer inner loops and the RD refinement of the
  latents (:meth:`hsicodec.layers.network.encode.NetworkEncoder.improve`);
* ``coefficient-map layer alone`` — no network latents: the PCA maps coded in the CDF 9/7
  domain with context-classed Laplace scales (:mod:`hsicodec.layers.maps.coding`);
* ``coefficient-map layer, step refined to the budget`` — the control of the next row: the same layer,
  the step also refined to finer values while the file fits (what the learned model's encoder does);
* ``coefficient-map layer + learned entropy model`` — the same with ``learned_entropy=True``
  (``--learned-entropy``): the maps coded under the learned entropy model (``ec = 2``,
  :mod:`hsicodec.layers.maps.lem`) where it saves bytes, the step refined to the same byte budget;
* ``coefficient-map layer + nonlinear synthesis`` — the same with ``synthesis=True`` (``--synthesis``): the
  shared network hsi-synth-v1 over the decoded maps with 8 coded shifts and a coded readout (``codec.ns``,
  :mod:`hsicodec.layers.maps.synthesis`), kept where it measures better at the same size;
* ``coefficient-map layer + post filter`` — ``post_filter=True`` (``--post-filter``, ``codec.pf``), likewise;
* ``coefficient-map layer + all three learned parts`` — the learned entropy model, the synthesis and the
  post filter together;
* ``all (default)`` — what ``compress`` does: below effort max the map layer goes first and
  alone (the network's latents are the fallback), so this equals the row above;
  ``all + effort max`` — at effort max: both, the better per file, the map layer with
  rate–distortion optimised quantization and a searched spectral precision;

beside PCA + JPEG 2000 and SPERR from ``bench/rd.json`` (same scenes and rates), with the
encode time of each row and the decoder's multiply-adds per pixel. Writes
bench/ablation.json and bench/ablation.md.

    python tools/bench_ablation.py                 # validation scenes, 0.005 … 0.2 bpppb
    python tools/bench_ablation.py --scenes jasper_ridge --rates 0.01 0.05
    python tools/bench_ablation.py --rates 0.01 0.05 --rows "+ channel KLT" "network latents, effort max"

``--rows`` re-runs only the rows named (labels above, exact or a case-insensitive part of one) and
merges them into the existing bench/ablation.json: the other rows keep their figures, and the
files say which rows were re-run, when and by which command.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from hsicodec import metrics
from hsicodec.codec.api import decompress, load_codec_model
from hsicodec.codec.encode import encode
from hsicodec.errors import OptionError
from hsicodec.format.compact import EC_RT
from hsicodec.format.container import decode_hsim
from hsicodec.layers.maps.coding import EC_LEARNED, map_levels
from hsicodec.layers.maps.lem import resolve

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "hsi"
RATES = [0.005, 0.01, 0.02, 0.05, 0.1, 0.2]
VARIANTS: list[tuple] = [  # label, model, latent codings (None: the encoder chooses), effort[, encode keywords]
    ("plain method", "hsi-plain-v1", ("plain",), "default"),
    ("+ spectral PCA + latent grids", "hsi-grid-v1", ("plain",), "default"),
    ("+ Haar coefficients", "hsi-grid-v1", ("haar",), "default"),
    ("+ channel KLT", "hsi-grid-v1", ("haar+klt",), "default"),
    ("network latents, effort max", "hsi-grid-v1", ("haar+klt",), "max"),
    ("coefficient-map layer alone", "hsi-grid-v1", ("maps",), "default"),
    (
        "coefficient-map layer without the reconstruction table",
        "hsi-grid-v1",
        ("maps",),
        "default",
        {"recon_table": False},
    ),
    (
        "coefficient-map layer, step refined to the budget",
        "hsi-grid-v1",
        ("maps",),
        "default",
        {"map_options": {"fill_budget": True}},
    ),
    ("coefficient-map layer + learned entropy model", "hsi-grid-v1", ("maps",), "default", {"learned_entropy": True}),
    ("coefficient-map layer + nonlinear synthesis", "hsi-grid-v1", ("maps",), "default", {"synthesis": True}),
    ("coefficient-map layer + post filter", "hsi-grid-v1", ("maps",), "default", {"post_filter": True}),
    (
        "coefficient-map layer + all three learned parts",
        "hsi-grid-v1",
        ("maps",),
        "default",
        {"learned_entropy": True, "synthesis": True, "post_filter": True},
    ),
    ("all (default)", "hsi-grid-v1", None, "default"),
    ("all + effort max", "hsi-grid-v1", None, "max"),
]
ANCHORS = ["pca_jpeg2000", "sperr_3d"]
DECODE_REPEATS = 3  # decode s: the median of this many decodes


def decode_macs_per_pixel(model, k: int, bands: int) -> int:
    """Multiply-adds per decoded pixel: latent interpolation, the SIREN for k outputs, the
    spectral reconstruction (k × bands for PCA models)."""
    w = model.weights
    macs = sum(int(a.shape[0]) * int(a.shape[1]) for a in w.hidden_w)
    macs += int(w.meta_w.shape[0]) * int(w.meta_w.shape[1])
    macs += k * w.width + (k * w.latent_dim if w.skip_w is not None else 0)
    macs += 4 * w.latent_dim  # bilinear interpolation of every level's channels
    if model.spectral == "pca":
        macs += k * bands
    return int(macs)


def map_decode_macs_per_pixel(k: int, bands: int, levels: int) -> int:
    """Multiply-adds per decoded pixel of a coefficient-map-layer file: dequantizing k maps, their
    inverse CDF 9/7 (per level and axis 4 lifting steps of 2 MACs on half the samples and 1 scaling,
    over a region a quarter of the last), the spectral reconstruction (k × bands)."""
    per_sample = 1.0 + sum(2 * (4 * 2 * 0.5 + 1) / 4**j for j in range(levels))
    return int(round(k * per_sample)) + k * bands


def learned_macs_per_pixel(data: bytes, k: int) -> int:
    """The learned entropy model's multiply-adds per pixel of a map-layer file coded with it (``ec = 2``): at
    most one network evaluation per map coefficient (0 for any other file)."""
    rl = decode_hsim(data).header["codec"].get("rl")
    if not (isinstance(rl, list) and len(rl) == 9 and rl[6] % EC_RT == EC_LEARNED):
        return 0
    return k * resolve(rl[7]).macs_per_symbol


def stage_macs_per_pixel(data: bytes, k: int) -> int:
    """Multiply-adds per pixel of a map-layer file's optional stages: the synthesis network and its readout
    (codec.ns), the post filter's taps (codec.pf, about 25 per tap set and filtered map)."""
    from hsicodec.layers.maps.postfilter import N_TAPS, parse_post
    from hsicodec.layers.maps.synthesis import parse_synthesis

    codec = decode_hsim(data).header["codec"]
    macs = 0
    if "ns" in codec:
        syn = parse_synthesis(codec["ns"], k)
        macs += syn.model.macs_per_pixel + syn.readout.size
    if "pf" in codec:
        post = parse_post(codec["pf"], k, 0)
        macs += 5 * N_TAPS * post.m * (2 if post.has_cross else 1)
    return macs


def run(cube: np.ndarray, rate: float, alias: str, codings: tuple[str, ...] | None, effort: str,
        extra: dict | None = None) -> dict:  # fmt: skip
    cm = load_codec_model(alias)
    header = {"shape": [int(v) for v in cube.shape], "dtype": cube.dtype.name, "model": cm.sha256}
    t0 = time.perf_counter()
    try:
        data, st = encode(
            cube, cm, bpppb=rate, effort=effort, base_header=header, latent_codings=codings, **(extra or {})
        )
    except OptionError as exc:
        return {"reachable": False, "note": str(exc)}
    t_enc = time.perf_counter() - t0
    t_dec = []
    for _ in range(DECODE_REPEATS):
        t0 = time.perf_counter()
        rec, _ = decompress(data)
        t_dec.append(time.perf_counter() - t0)
    q = metrics.quality_report(cube, rec, len(data))
    k = int(st["k"])
    if st.get("layer") == "maps":
        macs = map_decode_macs_per_pixel(k, cube.shape[2], map_levels(cube.shape[0], cube.shape[1]))
        macs += learned_macs_per_pixel(data, k) + stage_macs_per_pixel(data, k)
    else:
        macs = decode_macs_per_pixel(cm, k, cube.shape[2])
    return {
        "reachable": True,
        "bpppb": q["bpppb"],
        "psnr": q["psnr"],
        "sam": q["sam"],
        "encode_s": t_enc,
        "decode_s": float(np.median(t_dec)),
        "k": k,
        "layer": st.get("layer"),
        "decode_macs_per_pixel": macs,
    }


def anchor_rows(scene: str, rd_json: Path) -> dict:
    """(codec, target) → row of bench/rd.json for the same scene, when present."""
    if not rd_json.exists():
        return {}
    data = json.loads(rd_json.read_text())
    out = {}
    for sc in data.get("scenes", []):
        if sc.get("scene") == scene:
            for r in sc["rows"]:
                if r["codec"] in ANCHORS:
                    out[(r["codec"], r["target_bpppb"])] = r
    return out


def markdown(result: dict) -> str:
    lines = [
        "# Ablation: the plain method, each extension, all together",
        "",
        f"Generated by `{result['command']}` ({result['date']}, {result['machine']}). Validation scenes "
        "only (never seen in training); the whole file counted; encode s = one whole encode on these "
        "cores; MAC/px = the decoder's multiply-adds per pixel (SIREN for the k outputs used, latent "
        "interpolation, spectral reconstruction; with the learned entropy model at most one evaluation of its "
        "network per map coefficient); dec = decode s, median of 3 (every row run since decodes were timed; "
        "the first three rows predate it). Anchor rows are "
        "copied from `bench/rd.json`.",
        "",
    ]
    for up in result.get("updates", []):
        rows = ", ".join(f"'{r}'" for r in up["rows"])
        lines += [f"Rows {rows} re-run by `{up['command']}` ({up['date']}, {up['machine']}).", ""]
    for sc in result["scenes"]:
        lines += [
            f"## {sc['scene']} ({'x'.join(map(str, sc['shape']))})",
            "",
            "| variant | " + " | ".join(f"{r:g}" for r in sc["rates"]) + " |",
            "|---|" + "---|" * len(sc["rates"]),
        ]
        for label in [v[0] for v in VARIANTS] + ANCHORS:
            cells = []
            for r in sc["rates"]:
                row = sc["rows"].get(f"{label}@{r}")
                if not row:
                    cells.append("")
                elif not row.get("reachable", True):
                    cells.append("unreachable")
                else:
                    extra = f", {row['encode_s']:.1f} s" if "encode_s" in row else ""
                    extra += f", dec {row['decode_s']:.3f} s" if "decode_s" in row else ""
                    extra += f", {row['decode_macs_per_pixel']} MAC/px" if "decode_macs_per_pixel" in row else ""
                    cells.append(f"{row['psnr']:.2f} dB ({row['bpppb']:.4f}{extra})")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def kept_notes(old_md: str, scenes: list[str]) -> str:
    """The hand-written sections of an existing ablation.md (from its first "## " heading that is not a
    scene's table), which a re-run keeps after the tables it regenerates."""
    lines = old_md.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("## ") and not any(line.startswith(f"## {s} (") for s in scenes):
            return "\n" + "\n".join(lines[i:]) + "\n"
    return ""


def select_rows(names: list[str] | None) -> list[tuple]:
    """The variants to run: all, or those whose label is or contains (case-insensitive) one of ``names``."""
    if not names:
        return list(VARIANTS)
    chosen = [v for v in VARIANTS if any(n == v[0] or n.lower() in v[0].lower() for n in names)]
    missing = [n for n in names if not any(n == v[0] or n.lower() in v[0].lower() for v in VARIANTS)]
    if missing:
        raise SystemExit(f"no ablation row matches {missing}; rows: {[v[0] for v in VARIANTS]}")
    return chosen


def merge(old: dict, new: dict, labels: list[str]) -> dict:
    """``old`` (a whole ablation result) with the rows of ``labels`` taken from ``new`` (scenes and rates
    that ``old`` lacks are added), and ``new``'s command listed under ``updates`` (earlier updates whose rows
    are all re-run drop out)."""
    out = dict(old)
    scenes = {sc["scene"]: sc for sc in old.get("scenes", [])}
    for sc in new["scenes"]:
        cur = scenes.get(sc["scene"])
        if cur is None:
            scenes[sc["scene"]] = cur = {**sc, "rows": {}}
        cur["rates"] = sorted(set(cur["rates"]) | set(sc["rates"]))
        cur["rows"] = {**cur["rows"], **sc["rows"]}
    out["scenes"] = list(scenes.values())
    up = {k: new[k] for k in ("command", "date", "machine")}
    kept = [u for u in old.get("updates", []) if not set(u["rows"]) <= set(labels)]  # not all re-run now
    out["updates"] = kept + [{**up, "rows": labels}]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", nargs="*", default=None, help="default: the bundled grid model's validation scenes")
    ap.add_argument("--rates", nargs="*", type=float, default=RATES)
    ap.add_argument("--rows", nargs="*", default=None, help="re-run only these rows (labels) and merge them")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, default=ROOT / "bench")
    args = ap.parse_args()
    variants = select_rows(args.rows)
    scenes = args.scenes or list(load_codec_model("hsi-grid-v1").card.get("val_scenes", []))
    result: dict[str, Any] = {
        "command": "python tools/bench_ablation.py " + " ".join(f'"{a}"' if " " in a else a for a in sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{__import__('platform').machine()} {__import__('os').cpu_count()} cores",
        "scenes": [],
    }
    for name in scenes:
        cube = np.load(args.data / f"{name}.npy", allow_pickle=False)
        rows = {}
        anchors = anchor_rows(name, args.out / "rd.json")
        for rate in args.rates:
            for label, alias, codings, effort, *extra in variants:
                row = run(cube, rate, alias, codings, effort, *extra)
                rows[f"{label}@{rate}"] = row
                text = f"{row['psnr']:.2f} dB @ {row['bpppb']:.4f}" if row["reachable"] else "unreachable"
                if row["reachable"]:
                    text += f", encode {row['encode_s']:.2f} s, decode {row['decode_s']:.3f} s"
                print(f"{name:>14} {rate:<6g} {label:<32} {text}", flush=True)
            for a in ANCHORS if args.rows is None else []:
                r = anchors.get((a, rate))
                if r:
                    rows[f"{a}@{rate}"] = {
                        "reachable": r.get("reachable", True),
                        "bpppb": r.get("bpppb"),
                        "psnr": r.get("psnr"),
                    }
        result["scenes"].append({"scene": name, "shape": list(cube.shape), "rates": args.rates, "rows": rows})
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "ablation.json"
    if args.rows is not None and path.exists():
        result = merge(json.loads(path.read_text()), result, [v[0] for v in variants])
    path.write_text(json.dumps(result, indent=1, default=float))
    md = args.out / "ablation.md"
    notes = kept_notes(md.read_text(), [sc["scene"] for sc in result["scenes"]]) if md.exists() else ""
    md.write_text(markdown(result) + notes)
    print(f"wrote {args.out / 'ablation.json'} and {args.out / 'ablation.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
