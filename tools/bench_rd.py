"""Rate–distortion suite: hsicodec against the anchors on every scene of ../shared/data/hsi.

Every ``*.npy`` cube of the data folder, plus any raster given on the command
line, is compressed by hsicodec and by the comparison codecs at the same target
rates, decoded from the bytes and measured exactly as docs/metrics.md defines (see
:mod:`hsicodec.evaluation.evaluate`, which does the work).  Each scene is marked
*training* or *validation* from the cards of the bundled models (a cube given
on the command line is *unseen*: validation plan).

The suite must fit in 20 min on 2 cores, so the plan is tiered (:data:`PLAN`):
validation scenes get every anchor (multi-component JPEG 2000, ~10 s per point
of bisection, at three rates), effort default at every rate and effort max
(~15 s per point) from 0.01 to 0.1 bpppb; training scenes get three rates, effort
default and the three anchors that matter most.
``--baselines`` adds the paper's own baselines (hsicodec.evaluation.paper_baselines) on
the validation scenes at ``--baseline-rates``.

Writes bench/rd.json, bench/rd.md (per-scene tables, the PSNR gap to
PCA + JPEG 2000 at 0.01 and 0.05 bpppb on validation scenes, a speed table,
the paper's reported figures, the atlas-hsi status from bench/atlas.json) and
bench/rd_<scene>.png (PSNR vs bpppb, log x, every codec).

    python tools/bench_rd.py                         # the whole suite (make bench-rd)
    python tools/bench_rd.py my_scene.tif            # ... plus your own cube
    python tools/bench_rd.py --scenes jasper_ridge --rates 0.01 0.05 --efforts default
    python tools/bench_rd.py --baselines             # ... plus the paper's baselines (issue #10)
    python tools/bench_rd.py --quick --out /tmp/q    # tiny crops, two rates (what the tests run)
    python tools/bench_rd.py --render bench/rd.json  # rewrite bench/rd.md from the JSON only
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from hsicodec.codec.api import AUTO_MODELS, load_codec_model  # noqa: E402
from hsicodec.errors import HsicodecError  # noqa: E402
from hsicodec.evaluation import evaluate as ev  # noqa: E402
from hsicodec.io.raster import read_cube  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "hsi"
GAP_RATES = [0.01, 0.05]

#: what runs on which scene: rates, then for every hsicodec effort and every anchor
#: the rates it runs at (None: every rate of the tier).  Sized so that the whole
#: suite takes ~12 min on 2 cores, leaving ~4 min for --baselines within 20 min.
PLAN = {
    "validation": {
        "rates": [0.005, 0.01, 0.02, 0.05, 0.1, 0.2],
        "efforts": {"default": None, "max": [0.01, 0.02, 0.05, 0.1]},  # the span #9 targets
        "anchors": {
            "pca_jpeg2000": None,
            "jpeg2000_per_band": [0.01, 0.05, 0.2],
            "jpeg2000_separate": None,
            "htj2k_per_band": None,
            "sperr_3d": None,
            "sz3": None,
            "zfp": None,
            "pca_dct": None,
            "jpeg_per_band": None,
        },
        "encode_repeat": {"default": 3, "max": 1},
    },
    "training": {
        "rates": [0.01, 0.05, 0.2],
        "efforts": {"default": None},
        "anchors": {
            "pca_jpeg2000": None,
            "htj2k_per_band": None,
            "sperr_3d": None,
            "pca_dct": None,
            "jpeg_per_band": None,
        },
        "encode_repeat": {"default": 1},
    },
}
PLAN["unseen"] = PLAN["validation"]
QUICK_PLAN = {
    "rates": [0.05, 0.2],
    "efforts": {"fast": None},
    "anchors": {"pca_jpeg2000": None, "sperr_3d": None},
    "encode_repeat": {"fast": 1},
}

#: the paper's own figures (from its Table 1/2, quoted apart: docs/metrics.md; measured on
#: its meta-training scenes, GPU).  ``scene`` is the file stem it would have in
#: ../shared/data/hsi; only scenes present there get a row and a plot marker.
PAPER_TABLE1 = [
    {
        "scene": "indian_pines",
        "paper_cube": "Indian Pines 145x145x220",
        "method": "meta-learning (5x20 net)",
        "bpppb": 0.004,
        "psnr": 36.6,
    },
    {
        "scene": "indian_pines",
        "paper_cube": "Indian Pines 145x145x220",
        "method": "PCA+JPEG2000 (quoted)",
        "bpppb": 0.2,
        "psnr": 39.5,
    },
    {
        "scene": "indian_pines",
        "paper_cube": "Indian Pines 145x145x220",
        "method": "JPEG2000 (quoted)",
        "bpppb": 0.2,
        "psnr": 36.1,
    },
    {
        "scene": "jasper_ridge",
        "paper_cube": "Jasper Ridge 100x100x224",
        "method": "meta-learning (10x60 net)",
        "bpppb": 0.008,
        "psnr": 36.6,
    },
    {
        "scene": "jasper_ridge",
        "paper_cube": "Jasper Ridge 100x100x224",
        "method": "per-image INR (quoted)",
        "bpppb": 0.1,
        "psnr": 41.6,
    },
    {
        "scene": "pavia_university",
        "paper_cube": "Pavia University 610x340x103",
        "method": "meta-learning (10x60 net)",
        "bpppb": 0.0008,
        "psnr": 39.1,
    },
    {
        "scene": "pavia_university",
        "paper_cube": "Pavia University 610x340x103",
        "method": "per-image INR (quoted)",
        "bpppb": 0.1,
        "psnr": 40.0,
    },
    {
        "scene": "cuprite",
        "paper_cube": "Cuprite 614x512x224",
        "method": "meta-learning (5x60 net)",
        "bpppb": 0.0001,
        "psnr": 33.6,
    },
    {"scene": "cuprite", "paper_cube": "Cuprite 614x512x224", "method": "WSRC (quoted)", "bpppb": 0.1, "psnr": 35.0},
]
PAPER_NOTE = "reported by the paper (training scenes)"


# --------------------------------------------------------------------------- scenes and roles


def scene_roles(model: str | None) -> tuple[set, set, dict]:
    """(training scenes, validation scenes, cards) over every model the codec may use.

    A scene is *training* if any of those models trained on it; *validation*
    if it is held out by all of them.
    """
    refs = [model] if model not in (None, "auto") else list(AUTO_MODELS)
    train, val, cards = set(), None, {}
    for ref in refs:
        try:
            cm = load_codec_model(ref)
        except HsicodecError:
            continue
        cards[cm.alias or cm.sha256[:12]] = {
            "sha256": cm.sha256,
            "train_scenes": cm.card.get("train_scenes", []),
            "val_scenes": cm.card.get("val_scenes", []),
        }
        train |= set(cm.card.get("train_scenes", []))
        v = set(cm.card.get("val_scenes", []))
        val = v if val is None else (val & v)
    return train, (val or set()) - train, cards


def role_of(scene: str, train: set, val: set, from_data: bool) -> str:
    if scene in train:
        return "training"
    if scene in val:
        return "validation"
    return "unseen" if not from_data else "unlisted"


# --------------------------------------------------------------------------- running


def run_scene(name: str, cube: np.ndarray, role: str, plan: dict, args, baselines: list, log) -> dict:
    """Every codec of the plan at every rate on one cube: the scene's record."""
    rows = []
    t_scene = time.perf_counter()

    def add(row: dict, t0: float) -> None:
        row["run_s"] = time.perf_counter() - t0  # the whole call: rate search and repeats included
        rows.append(row)
        r = row
        if r["reachable"]:
            log(
                f"{name:>16} {r['codec']:>20} @{r['target_bpppb']:<6g} {r['bpppb']:.4f} bpppb {r['psnr']:6.2f} dB "
                f"enc {r['encode_s']:.2f}s dec {r['decode_s']:.3f}s ({r['run_s']:.1f}s)"
            )
        else:
            log(
                f"{name:>16} {r['codec']:>20} @{r['target_bpppb']:<6g} unreachable ({r['run_s']:.1f}s): "
                f"{r['note'][:80]}"
            )

    rates = sorted(set(plan["rates"]) | (set(args.baseline_rates) if baselines and role != "training" else set()))
    for rate in rates:
        in_plan = rate in plan["rates"]
        for eff, eff_rates in plan["efforts"].items():
            if in_plan and (eff_rates is None or rate in eff_rates):
                t0 = time.perf_counter()
                add(
                    ev.run_hsicodec(
                        cube,
                        rate,
                        effort=eff,
                        model=args.model,
                        repeat=args.repeat,
                        encode_repeat=plan["encode_repeat"].get(eff, 1),
                    ),
                    t0,
                )
        for an, an_rates in plan["anchors"].items() if in_plan else []:
            if an_rates is not None and rate not in an_rates:
                continue
            t0 = time.perf_counter()
            add(ev.run_codec(an, cube, rate, repeat=args.repeat), t0)
        if baselines and role != "training" and rate in args.baseline_rates:
            for b in baselines:
                t0 = time.perf_counter()
                add(ev.run_codec(b, cube, rate, repeat=args.repeat), t0)
    gaps = scene_gaps(rows)
    refs = [dict(p, note=PAPER_NOTE) for p in PAPER_TABLE1 if p["scene"] == name]
    return {
        "scene": name,
        "shape": list(cube.shape),
        "dtype": cube.dtype.name,
        "value_range": [float(np.nanmin(cube)), float(np.nanmax(cube))],
        "role": role,
        "rates": rates,
        "rows": rows,
        "gaps": gaps,
        "paper_reference": refs,
        "wall_s": time.perf_counter() - t_scene,
    }


# --------------------------------------------------------------------------- summaries


def speed_table(scenes: list) -> list:
    """Per codec over every reachable point of the suite: medians of the times."""
    by: dict = {}
    for sc in scenes:
        for r in sc["rows"]:
            if r["reachable"] and isinstance(r.get("encode_s"), float) and math.isfinite(r["encode_s"]):
                by.setdefault(r["codec"], []).append(r)
    out = []
    for codec, rs in by.items():
        search = [r["params"]["search_s"] for r in rs if isinstance((r.get("params") or {}).get("search_s"), float)]
        thr = sorted({r.get("threads") for r in rs if r.get("threads") is not None})
        out.append(
            {
                "codec": codec,
                "kind": rs[0]["kind"],
                "points": len(rs),
                "encode_s": statistics.median(r["encode_s"] for r in rs),
                "decode_s": statistics.median(r["decode_s"] for r in rs),
                "search_s": statistics.median(search) if search else None,
                "run_s_total": sum(r.get("run_s", 0.0) for r in rs),
                "threads": thr,
            }
        )
    return out


TABLE2_RATE = 0.05


def _label(codec: str) -> str:
    """The paper's name for its own comparison methods, our names for the rest."""
    try:
        from hsicodec.evaluation.paper_baselines import LABELS
    except ImportError:
        return codec
    return f"{LABELS[codec]} (`{codec}`)" if codec in LABELS else codec


def table2_text(result: dict) -> list:
    """Per scene, every codec at TABLE2_RATE in the layout of the paper's Table 2."""
    out = [
        "## Timings in the layout of the paper's Table 2",
        "",
        f"Every codec at the {TABLE2_RATE:g} bpppb target, per scene, measured here on {result['machine']} "
        f"({os.cpu_count()} cores, no GPU; the paper timed a GPU). Compression s is the whole encode (for "
        "the per-scene INR rows: the network fit); decompression s the median decode.",
        "",
    ]
    for sc in result["scenes"]:
        rows = [r for r in sc["rows"] if r.get("target_bpppb") == TABLE2_RATE and r.get("reachable")]
        if not rows:
            continue
        out += [
            f"**{sc['scene']}** ({sc['role']})",
            "",
            "| method | bpppb | compression s | decompression s | PSNR dB |",
            "|---|---|---|---|---|",
        ]
        out += [
            f"| {_label(r['codec'])} | {_f(r.get('bpppb'), '.4f')} | {_f(r.get('encode_s'), '.3f')} | "
            f"{_f(r.get('decode_s'), '.3f')} | {_f(r.get('psnr'), '.2f')} |"
            for r in rows
        ]
        out += [""]
    return out


def scene_gaps(rows: list) -> list:
    """Every hsicodec effort's and paper baseline's PSNR gap (and bits saved) to PCA + JPEG 2000 at
    :data:`GAP_RATES`; none when the anchor was not run."""
    if not any(r["codec"] == ev.GAP_REFERENCE for r in rows):
        return []
    ours = list(dict.fromkeys(r["codec"] for r in rows if r["kind"] == "hsicodec"))
    others = list(dict.fromkeys(r["codec"] for r in rows if r["kind"] == "baseline"))
    return ev.psnr_gaps(rows, ours + others, GAP_RATES)


def gap_summary(scenes: list) -> list:
    return [
        dict(g, scene=sc["scene"], role=sc["role"])
        for sc in scenes
        if sc["role"] in ("validation", "unseen")
        for g in sc["gaps"]
    ]


def atlas_status(path: Path) -> dict:
    """bench/atlas.json (written by tools/bench_atlas.py), else a probe without the download."""
    if path.exists():
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            pass
    sys.path.insert(0, str(ROOT / "tools"))
    from bench_atlas import probe  # noqa: PLC0415

    return probe(download=False)


# --------------------------------------------------------------------------- markdown


def _f(v, spec: str) -> str:
    return format(v, spec) if isinstance(v, (int, float)) and math.isfinite(v) else "n/a"


def _plan_text(result: dict) -> list:
    lines = []
    for role, p in result["plan"].items():

        def at(rs):
            return "" if rs is None else " (at " + ", ".join(map(str, rs)) + " only)"

        rep = p["encode_repeat"]
        effs = ", ".join(
            f"{e}{at(rs)} (encode timed {rep.get(e, 1) if isinstance(rep, dict) else rep}x)"
            for e, rs in p["efforts"].items()
        )
        ans = ", ".join(f"{a}{at(rs)}" for a, rs in p["anchors"].items())
        lines.append(
            f"- **{role}** scenes: rates {', '.join(map(str, p['rates']))} bpppb; hsicodec effort {effs}; "
            f"anchors {ans}."
        )
    if result.get("baselines"):
        lines.append(
            f"- paper baselines {', '.join(result['baselines'])} on validation scenes at "
            f"{', '.join(map(str, result['baseline_rates']))} bpppb."
        )
    return lines


def compare_text(result: dict) -> list:
    """hsicodec against PCA + JPEG 2000 at every rate of the plan, validation scenes: gap dB / bits saved."""
    rates = sorted(
        {float(r["target_bpppb"]) for sc in result["scenes"] for r in sc["rows"] if r["codec"] == ev.GAP_REFERENCE}
    )
    out = [
        "## hsicodec against PCA + JPEG 2000 at every rate (validation scenes)",
        "",
        "Each cell: PSNR gap (dB) / bits saved, as in the gap section; a codec not run at that rate is "
        "interpolated between its neighbouring points (log-rate), so read such cells as estimates.",
        "",
        "| scene | codec | " + " | ".join(f"{r:g}" for r in rates) + " |",
        "|---|---|" + "---|" * len(rates),
    ]
    for sc in result["scenes"]:
        if sc["role"] not in ("validation", "unseen") or not any(r["codec"] == ev.GAP_REFERENCE for r in sc["rows"]):
            continue
        for codec in dict.fromkeys(r["codec"] for r in sc["rows"] if r["kind"] == "hsicodec"):
            cells = []
            for g in ev.psnr_gaps(sc["rows"], [codec], rates):
                saving = g["rate_saving"]
                cells.append(
                    "n/a"
                    if g["gap_db"] is None
                    else f"{g['gap_db']:+.2f} / {'n/a' if saving is None else f'{100 * saving:.0f} %'}"
                )
            out.append(f"| {sc['scene']} | {codec} | " + " | ".join(cells) + " |")
    return out + [""]


def markdown(result: dict) -> str:
    wall, cpu = result.get("wall_s"), result.get("cpu_s")
    cpu_text = f" ({_f(cpu / 60, '.1f')} min of CPU time in the suite's process)" if cpu else ""
    out = [
        "# Rate–distortion results",
        "",
        f"Generated by `{result['command']}` on {result['machine']} ({result['date']}); the whole suite took "
        f"**{_f(wall / 60 if wall else None, '.1f')} min** wall clock{cpu_text} on these cores, which other "
        f"jobs were sharing at the time. Models: "
        + ", ".join(f"`{a}` ({c['sha256'][:12]})" for a, c in result["models"].items())
        + ".",
        "",
        "Metrics exactly as `docs/metrics.md`: bpppb = 8 × (bytes of the whole output) / (H·W·C) — the `.hsim` "
        "file, or the anchor's self-contained byte string with all its side information; PSNR with "
        "R = max − min of the original, in original units after decoding; SAM in degrees; max abs error. "
        "Every codec lands at or below the target; a target it cannot reach is listed as *unreachable*. "
        f"Decode times: median of {result['repeat']} runs, model loaded once; hsicodec encode = a whole "
        "`compress` call (its rate search included), median of the number of runs the plan below gives; "
        "anchor encode = one encode at the final parameters (median of "
        f"{result['repeat']}), its rate search apart. hsicodec uses all cores "
        f"({os.cpu_count()}), the anchors one. `hsicodec-*` rows use no `--model`: the codec keeps the "
        "better of its bundled models per file (k = band count means the plain model won).",
        "",
        "Scenes: *validation* = held out by every bundled model (RD claims count only there); *training* "
        "= seen in meta-training. Plan (sized from per-point timings to fit 20 min on 2 idle cores with ~4 min left "
        "for `--baselines`; the wall time above is what this run really took):",
        "",
    ]
    out += _plan_text(result) + [""]

    out += [
        "## PSNR gap to PCA + JPEG 2000 (validation scenes)",
        "",
        "PSNR at the same rate, linear in log-rate between measured points (or the codec's own point for "
        "that target when the rate is outside its measured range); positive = better than PCA + JPEG 2000. "
        "*bits saved* = 1 − rate / the rate PCA + JPEG 2000 needs for the codec's PSNR there (its curve, "
        "log-rate linear in PSNR; n/a outside it).",
        "",
        "| scene | codec | bpppb | PSNR dB | PCA+JPEG2000 dB | gap dB | bits saved |",
        "|---|---|---|---|---|---|---|",
    ]
    summ = result["gap_summary"]
    for g in summ:
        saving = g.get("rate_saving")
        out.append(
            f"| {g['scene']} | {g['codec']} | {g['rate']:g} | {_f(g['psnr'], '.2f')} | "
            f"{_f(g['reference_psnr'], '.2f')} | **{_f(g['gap_db'], '+.2f')}** | "
            f"{'n/a' if saving is None else f'{100 * saving:+.0f} %'} |"
        )
    means: dict = {}
    for g in summ:
        if g["gap_db"] is not None:
            means.setdefault((g["codec"], g["rate"]), []).append(g["gap_db"])
    if means:
        out += [
            "",
            "Mean gap over the validation scenes: "
            + "; ".join(f"{c} @ {r:g}: {statistics.mean(v):+.2f} dB ({len(v)} scenes)" for (c, r), v in means.items())
            + ".",
        ]
    out += [""]

    out += compare_text(result)

    out += [
        "## Speed",
        "",
        "Medians over every reachable point of the suite (all scenes). *run s* = the whole "
        "time the suite spent on that codec (rate searches and timing repeats included).",
        "",
        "| codec | points | encode s | decode s | rate search s | threads | run s (total) |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in result["speed"]:
        out.append(
            f"| {s['codec']} | {s['points']} | {s['encode_s']:.3f} | {s['decode_s']:.3f} | "
            f"{_f(s['search_s'], '.2f')} | {', '.join(map(str, s['threads'])) or '?'} | "
            f"{s['run_s_total']:.0f} |"
        )
    out += [""]

    out += table2_text(result)

    out += [
        "## The paper's figures (for reference)",
        "",
        f"Rows marked *{PAPER_NOTE}* are the paper's Table 1/2 numbers (quoted apart, see `docs/metrics.md`), not "
        "measured here: the paper appears to meta-learn on the scenes it reports, and its cubes differ "
        "from ours in band count (e.g. Jasper Ridge 224 bands there, 198 here), so its bpppb are not "
        "directly comparable. They appear in the scene's table and as a star on its plot.",
        "",
        "| paper cube | method | bpppb | PSNR dB | scene here |",
        "|---|---|---|---|---|",
    ]
    present = {sc["scene"]: sc["role"] for sc in result["scenes"]}
    for p in PAPER_TABLE1:
        here = f"{p['scene']} ({present[p['scene']]} here)" if p["scene"] in present else "not in the data set"
        out.append(f"| {p['paper_cube']} | {p['method']} | {p['bpppb']:g} | {p['psnr']:.1f} | {here} |")
    out += [""]

    at = result.get("atlas") or {}
    out += ["## Learned peer: atlas-hsi", ""]
    if at.get("scenes"):
        for sc in at["scenes"]:
            out += [f"**{sc['scene']}**", "", ev.format_table(sc["rows"], style="markdown"), ""]
    else:
        dl = at.get("pip_download") or {}
        out += [f"**Not run** (probed {at.get('date', '?')} by `tools/bench_atlas.py`): {at.get('reason', '?')}", ""]
        if dl.get("command"):
            out += ["`" + dl["command"] + "` printed:", "", "```"] + dl.get("output_tail", []) + ["```", ""]
        out += [
            "`python tools/bench_atlas.py` runs it (and measures with these metrics) on a machine with a "
            "CUDA device and `atlas-hsi` installed.",
            "",
        ]

    val_plots = [sc for sc in result["scenes"] if sc["role"] in ("validation", "unseen") and sc.get("plot")]
    if val_plots:
        out += ["## RD curves (validation scenes)", ""]
        out += [f"![{sc['scene']}]({sc['plot']})" for sc in val_plots] + [""]

    out += ["## Per-scene results", ""]
    for sc in result["scenes"]:
        out += [f"### {sc['scene']} ({'x'.join(map(str, sc['shape']))} {sc['dtype']}, {sc['role']})", ""]
        if sc.get("plot"):
            out += [f"Plot: [{sc['plot']}]({sc['plot']})", ""]
        table = ev.format_table(sc["rows"], style="markdown")
        for p in sc["paper_reference"]:
            table += (
                f"\n| paper: {p['method']} | — | {p['bpppb']:g} | {p['psnr']:.1f} | | | | | "
                f"*{PAPER_NOTE}*; {p['paper_cube']} |"
            )
        out += [table, ""]
        gl = [g for g in sc["gaps"]]
        if gl:
            out.append(
                "Gap to PCA + JPEG 2000: "
                + "; ".join(f"{g['codec']} @ {g['rate']:g}: {_f(g['gap_db'], '+.2f')} dB" for g in gl)
                + "."
            )
            out.append("")
    return "\n".join(out)


# --------------------------------------------------------------------------- main


def main(argv: list | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cubes", nargs="*", help="extra rasters to include (GeoTIFF, ENVI, .npy, .mat)")
    ap.add_argument("--data", default=str(DATA), help="folder of the *.npy scenes (default: ../shared/data/hsi)")
    ap.add_argument("--scenes", nargs="*", default=None, help="only these scenes of --data (default: all)")
    ap.add_argument("--var", default=None, help=".mat variable of the extra cubes")
    ap.add_argument("--band-first", action="store_true", help="extra .npy/.mat cubes are (bands, rows, cols)")
    ap.add_argument("--rates", nargs="*", type=float, default=None, help="override the plan's rates (every tier)")
    ap.add_argument("--efforts", nargs="*", default=None, help="override the plan's efforts (at every rate)")
    ap.add_argument("--anchors", nargs="*", default=None, help="override the plan's anchors")
    ap.add_argument(
        "--baselines",
        nargs="*",
        default=None,
        help="also run the paper's baselines (hsicodec.evaluation.paper_baselines; names, or none for all) "
        "on validation scenes",
    )
    ap.add_argument("--baseline-rates", nargs="*", type=float, default=GAP_RATES)
    ap.add_argument("--model", default=None, help="model id or alias (default: the codec's automatic choice)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per point (median)")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="32x32 crops of one validation and one training scene, two rates, effort fast, two anchors",
    )
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--atlas-json", default=None, help="tools/bench_atlas.py output (default: OUT/atlas.json)")
    ap.add_argument("--out", default=str(ROOT / "bench"), help="output folder for rd.json / rd.md / rd_*.png")
    ap.add_argument(
        "--render",
        metavar="RD_JSON",
        default=None,
        help="only rewrite the .md beside this rd.json from its rows (no codec is run; the "
        "comparisons in both are recomputed with this version)",
    )
    args = ap.parse_args(argv)
    if args.render:
        src = Path(args.render)
        md_path = src.with_suffix(".md")
        result = json.loads(src.read_text())
        for sc in result["scenes"]:  # comparisons from the stored rows, with this version's evaluate
            sc["gaps"] = scene_gaps(sc["rows"])
        result["gap_summary"] = gap_summary(result["scenes"])
        src.write_text(json.dumps(result, indent=1, default=str))
        md_path.write_text(markdown(result) + "\n")
        print(f"wrote {md_path} from {src}")
        return 0
    t_start, c_start = time.perf_counter(), time.process_time()

    train, val, cards = scene_roles(args.model)
    data = Path(args.data)
    names = args.scenes if args.scenes else sorted(p.stem for p in data.glob("*.npy"))
    if args.quick:
        first_val = "jasper_ridge" if "jasper_ridge" in val else (sorted(val)[0] if val else None)
        names = [n for n in (first_val, sorted(train)[0] if train else None) if n]
        args.cubes, args.repeat = [], 1
    baselines: list = []
    if args.baselines is not None:
        known = ev.baseline_names()
        baselines = list(args.baselines) or sorted(known)
        missing = [b for b in baselines if b not in ev.codec_registry()]
        if missing or not baselines:
            print(
                f"bench_rd: paper baselines not available ({', '.join(missing) or 'none registered'}): "
                "hsicodec.evaluation.paper_baselines lands with issue #10",
                file=sys.stderr,
            )
            return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "rd_quick" if args.quick else "rd"

    def plan_for(role: str) -> dict:
        p = dict(QUICK_PLAN if args.quick else PLAN["training" if role == "training" else "validation"])
        if args.rates:
            p["rates"] = list(args.rates)
        if args.efforts is not None:
            p["efforts"] = {e: None for e in args.efforts}
        if args.anchors is not None:
            p["anchors"] = {a: None for a in args.anchors}
        return p

    def log(msg: str) -> None:
        print(msg, flush=True)

    jobs = [(n, data / f"{n}.npy", True) for n in names] + [(Path(c).stem, Path(c), False) for c in args.cubes]
    scenes = []
    used_plans: dict = {}
    for name, path, from_data in jobs:
        cube, _ = read_cube(
            path, var=None if from_data else args.var, band_first=False if from_data else args.band_first
        )
        if args.quick:
            cube = np.ascontiguousarray(cube[:32, :32])
        role = role_of(name, train, val, from_data)
        plan = plan_for(role)
        used_plans["training" if role == "training" else "validation"] = plan
        sc = run_scene(name, cube, role, plan, args, baselines, log)
        if not args.no_plots:
            png = f"{stem}_{name}.png"
            refs = [
                {"label": f"paper: {p['method']} ({PAPER_NOTE})", "bpppb": p["bpppb"], "psnr": p["psnr"]}
                for p in sc["paper_reference"]
            ]
            ev.plot_rd(
                sc["rows"], out / png, references=refs, title=f"{name} ({'x'.join(map(str, cube.shape))}, {role})"
            )
            sc["plot"] = png
        scenes.append(sc)
        log(f"--- {name}: {sc['wall_s']:.0f} s (suite so far {time.perf_counter() - t_start:.0f} s)")

    cli_args = list(argv if argv is not None else sys.argv[1:])
    result = {
        "command": " ".join(["python tools/bench_rd.py", *cli_args]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "python": platform.python_version(),
        "models": cards,
        "repeat": args.repeat,
        "plan": used_plans,
        "baselines": baselines,
        "baseline_rates": args.baseline_rates,
        "gap_rates": GAP_RATES,
        "scenes": scenes,
    }
    result["gap_summary"] = gap_summary(scenes)
    result["speed"] = speed_table(scenes)
    result["paper_table1"] = PAPER_TABLE1
    result["atlas"] = atlas_status(Path(args.atlas_json) if args.atlas_json else out / "atlas.json")
    result["wall_s"] = time.perf_counter() - t_start
    result["cpu_s"] = time.process_time() - c_start  # every thread of this process
    for sc in scenes:
        sc["rows"] = [ev.row_to_json(r) for r in sc["rows"]]
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1, default=str))
    md = markdown(result)
    (out / f"{stem}.md").write_text(md + "\n")
    print(
        f"wrote {out / (stem + '.json')}, {out / (stem + '.md')} and {sum(1 for s in scenes if s.get('plot'))} "
        f"plot(s); suite wall time {result['wall_s']:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
