#!/usr/bin/env python
"""Lossless and error-bounded anchors (and hsicodec's max-error mode, once it exists) on every scene.

For every scene and every max abs error bound E (0 = lossless) this runs
:func:`hsicodec.evaluation.evaluate.evaluate_bounds`: each error-bounded anchor
(:data:`hsicodec.evaluation.anchors.BOUNDED_ANCHORS`) that codes that bound and
dtype, and ``hsicodec.compress(cube, max_error=E)`` when ``compress`` accepts
``max_error`` (rows appear by themselves once it does).  Every output is decoded
from its bytes and its max abs error checked against E.  Writes bench/lossless.json
and bench/lossless.md: per scene a bound x codec table (bpppb, encode / decode MB/s
of the raw cube) and a summary: for each bound, the range over the integer scenes
of the best anchor's bpppb, and which anchor it is.

    python tools/bench_lossless.py                                  # every scene, bounds 0,1,2,4,8,16,32
    python tools/bench_lossless.py --scenes jasper_ridge pavia_centre --max-errors 0,4 --repeat 3

Float scenes: a bound E is E x (max - min) / 65535 of the scene (E steps of a 16-bit
quantiser of its range; ``--float-scenes skip`` leaves them out); they are not in the
summary.  hsicodec runs on every scene (``--hsicodec-scenes validation`` for the
held-out ones only: the bundled models were trained on the others).  The whole
default run takes about 5 minutes on 2 cores (anchors single-threaded, hsicodec
on --threads, one timed run per point).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from hsicodec.evaluation import evaluate as ev  # noqa: E402
from hsicodec.evaluation.anchors import BOUNDED_ANCHORS  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "hsi"
#: the bundled models' held-out scenes (read from their cards when present)
VALIDATION = ("jasper_ridge", "pavia_centre", "abu_urban_5")


def validation_scenes() -> set:
    """The scenes every bundled model card lists as val_scenes (the fallback: :data:`VALIDATION`)."""
    val = None
    for card in sorted((ROOT / "hsicodec" / "models").glob("*.json")):
        try:
            v = set(json.loads(card.read_text()).get("val_scenes", []))
        except (OSError, ValueError):
            continue
        val = v if val is None else val & v
    return val or set(VALIDATION)


def _scene_list(names: list, data_dir: Path) -> list:
    if not names or names == ["all"]:
        found = sorted(data_dir.glob("*.npy"))
        if not found:
            raise SystemExit(f"bench_lossless: no .npy cubes in {data_dir}")
        return found
    out = []
    for n in names:
        p = Path(n)
        if p.suffix != ".npy" or not p.exists():
            p = data_dir / (n if n.endswith(".npy") else n + ".npy")
        if not p.exists():
            raise SystemExit(f"bench_lossless: no cube {n!r} (looked for {p})")
        out.append(p)
    return out


def mosaic(cube: np.ndarray, side: int) -> np.ndarray:
    """The scene mirrored out to ``side`` × ``side`` pixels (real spectra, no seams): a scene-sized cube for
    throughput, where blocks and threads have room (the data set's cubes are 100 × 100)."""
    h, w = cube.shape[:2]
    return np.ascontiguousarray(np.pad(cube, ((0, max(side - h, 0)), (0, max(side - w, 0)), (0, 0)), mode="symmetric"))


def speed_runs(path: Path, side: int, bounds: list, args, log) -> dict:
    """hsicodec (real decode check included, as every compress) and the best anchor on the mosaic of a scene:
    MB/s at a flight-line-like size, median of ``max(3, --repeat)`` timed runs."""
    cube = mosaic(np.load(path), side)
    rows = []
    for e in bounds:
        for row in (
            ev.run_hsicodec_bounded(cube, e, effort="default", repeat=max(3, args.repeat), threads=args.threads),
            ev.run_bounded("spectral_jpegls", cube, e, repeat=max(3, args.repeat)),
        ):
            if row is not None:
                row["nominal_max_error"] = e
                rows.append(row)
                log(f"  speed {row['codec']:>18s} E={e:g}: {row['bpppb']:.3f} bpppb, "
                    f"enc {row['encode_mbps']:.1f} MB/s, dec {row['decode_mbps']:.1f} MB/s")  # fmt: skip
    return {"scene": path.stem, "shape": list(cube.shape), "dtype": cube.dtype.name, "raw_bytes": cube.nbytes,
            "rows": rows}  # fmt: skip


def _floats(text: str) -> list:
    try:
        return ev.check_max_errors([t for t in text.replace(",", " ").split() if t])
    except Exception as exc:  # noqa: BLE001 - argparse wants ValueError / ArgumentTypeError
        raise argparse.ArgumentTypeError(str(exc)) from None


# --------------------------------------------------------------------------- running


def run_scene(path: Path, bounds: list, args, val: set, with_hsicodec: bool, log) -> dict | None:
    name = path.stem
    cube = np.load(path)
    if cube.ndim != 3:
        log(f"{name}: not a (rows, cols, bands) cube {cube.shape}: skipped")
        return None
    is_float = cube.dtype.kind == "f"
    if is_float and args.float_scenes == "skip":
        return None
    unit = float(cube.max()) - float(cube.min()) if is_float else 1.0
    unit = unit / 65535.0 if is_float and unit > 0 else 1.0
    role = "validation" if name in val else "other"
    notes: list = []
    t0 = time.perf_counter()
    rows = []
    for e in bounds:
        t_row = [time.perf_counter()]

        def on_row(row: dict, e=e, t_row=t_row) -> None:
            now = time.perf_counter()
            row["nominal_max_error"], row["run_s"] = e, round(now - t_row[0], 3)
            t_row[0] = now
            if row["reachable"]:
                log(
                    f"{name:>15} E={e:<4g} {row['codec']:>20} {row['bpppb']:8.4f} bpppb"
                    f"  max err {row['max_abs_error']:<8.4g} enc {row['encode_mbps']:7.1f} MB/s"
                    f" dec {row['decode_mbps']:7.1f} MB/s ({row['run_s']:.2f} s)"
                )
            else:
                log(f"{name:>15} E={e:<4g} {row['codec']:>20} FAILED: {row['note']}")

        rows += ev.evaluate_bounds(
            cube,
            [e * unit],
            anchors=args.anchors,
            efforts=args.efforts if with_hsicodec else (),
            repeat=args.repeat,
            threads=args.threads,
            on_row=on_row,
            notes=notes,
        )
    return {
        "scene": name,
        "path": str(path),
        "role": role,
        "shape": list(cube.shape),
        "dtype": cube.dtype.name,
        "value_range": [float(cube.min()), float(cube.max())],
        "raw_bytes": int(cube.nbytes),
        "bound_unit": unit,
        "bound_unit_note": "E x (max - min) / 65535 (float scene)" if is_float else "cube units",
        "rows": [ev.row_to_json(r) for r in rows],
        "notes": notes,
        "run_s": round(time.perf_counter() - t0, 2),
    }


# --------------------------------------------------------------------------- summary and Markdown


def _ok(r: dict) -> bool:
    return bool(r.get("reachable")) and bool(r.get("bound_ok")) and isinstance(r.get("bpppb"), (int, float))


def summarize(scenes: list, bounds: list) -> list:
    """Per bound: over the integer scenes, the best anchor's bpppb (min and max over scenes), which
    anchor was best how often, and the same for hsicodec's rows where there are any."""
    ints = [s for s in scenes if s["dtype"][0] in "ui"]
    out = []
    for e in bounds:
        best: list = []
        winners: dict = {}
        ours: list = []
        for s in ints:
            rows = [r for r in s["rows"] if r["nominal_max_error"] == e and _ok(r)]
            anchors = [r for r in rows if r["kind"] == "anchor"]
            top = min(anchors, key=lambda r: r["bpppb"]) if anchors else None
            if top is not None:
                best.append((top["bpppb"], s["scene"], top["codec"]))
                winners[top["codec"]] = winners.get(top["codec"], 0) + 1
            for r in rows:
                if r["kind"] == "hsicodec":
                    ours.append((r["bpppb"], s["scene"], r["codec"], top["bpppb"] if top else None))
        out.append(
            {
                "max_error": e,
                "n_scenes": len(best),
                "best_anchor_bpppb_min": min(best)[0] if best else None,
                "best_anchor_bpppb_max": max(best)[0] if best else None,
                "best_anchor_min_scene": min(best)[1] if best else None,
                "best_anchor_max_scene": max(best)[1] if best else None,
                "best_anchor_counts": dict(sorted(winners.items(), key=lambda kv: -kv[1])),
                "per_scene": {sc: {"bpppb": bp, "codec": c} for bp, sc, c in best},
                "hsicodec": [{"scene": sc, "codec": c, "bpppb": bp, "best_anchor_bpppb": ba} for bp, sc, c, ba in ours],
            }
        )
    return out


def _cell(r: dict | None, best: float | None) -> str:
    if r is None:
        return "–"
    if not _ok(r):
        if r.get("reachable"):
            return "BOUND VIOLATED"
        return "failed" if str(r.get("note", "")).startswith("failed") else "refused"
    b = f"{r['bpppb']:.3f}"
    if best is not None and r["bpppb"] == best:
        b = f"**{b}**"
    return f"{b} ({_mbps(r['encode_mbps'])}/{_mbps(r['decode_mbps'])})"


def _mbps(v) -> str:
    if not isinstance(v, (int, float)):
        return "-"
    return f"{v:.0f}" if v >= 10 else f"{v:.1f}"


def _load(meta: dict) -> str:
    return " / ".join("?" if v is None else f"{v:.1f}" for v in meta.get("load_average_1min", [None, None]))


def speed_markdown(speed: dict | None) -> list:
    """The throughput table's lines (none without a speed run)."""
    if not speed:
        return []
    lines = [
        "",
        f"## Throughput at scene size: {speed['scene']} mirrored to "
        f"{'x'.join(map(str, speed['shape']))} {speed['dtype']} ({speed['raw_bytes'] / 1e6:.0f} MB raw)",
        "",
        "MB/s of raw cube, median of 3 timed runs; hsicodec on all cores, its compress including the real decode "
        "that checks every value against the bound before the file is returned (issue #20's target: >= 30 MB/s "
        "both ways on 2 cores); the anchor single-threaded.",
        "",
        "| codec | E | bpppb | encode MB/s | decode MB/s |",
        "|---|---|---|---|---|",
    ]
    for r in speed["rows"]:
        lines.append(f"| {r['codec']} | {r['nominal_max_error']:g} | {r['bpppb']:.3f} | "
                     f"{_mbps(r['encode_mbps'])} | {_mbps(r['decode_mbps'])} |")  # fmt: skip
    return lines


def markdown(meta: dict, scenes: list, summary: list, bounds: list, speed: dict | None = None) -> str:
    ints = [s for s in scenes if s["dtype"][0] in "ui"]
    lines = [
        "# Lossless and error-bounded anchors",
        "",
        f"Generated by `tools/bench_lossless.py` on {meta['date']} ({meta['machine']}, {meta['cpu_count']} cores; "
        f"imagecodecs {meta.get('imagecodecs', '?')}, GDAL {meta.get('gdal', '?')}); "
        f"whole run {meta['total_s']:.0f} s.",
        "",
        "Every file is decoded from its bytes alone and its max abs error checked against the bound E "
        "(bit-exact at E = 0). bpppb = 8 × whole file bytes / (rows × cols × bands), every byte the decoder "
        "needs counted. MB/s = raw cube bytes (10^6) per second of one encode / decode "
        f"(median of {meta['repeat']} timed run(s), codecs single-threaded; 1-minute load average "
        f"{_load(meta)} at start / end: with other work on the machine the MB/s figures are noisy). Anchors: "
        "`hsicodec/evaluation/anchors/lossless.py`. Lossless-only anchors (GeoTIFF, JPEG 2000, JPEG XL) run at "
        "E = 0 only, SZ3 and SPERR at E > 0 only.",
        "",
        f"hsicodec: {meta['hsicodec']}",
        "",
        "## Summary: the best anchor per bound, over the integer scenes",
        "",
        f"{len(ints)} integer scenes; per scene, the smallest file among the anchors run at that bound.",
        "",
        "| E | best anchor bpppb, min – max over scenes | best anchor (scenes) | "
        + " | ".join(s["scene"] for s in ints if s["role"] == "validation")
        + " |",
        "|---|---|---|" + "---|" * sum(s["role"] == "validation" for s in ints),
    ]
    for row in summary:
        if not row["n_scenes"]:
            continue
        who = ", ".join(f"{c} ({n})" for c, n in row["best_anchor_counts"].items())
        val = [row["per_scene"].get(s["scene"]) for s in ints if s["role"] == "validation"]
        lines.append(
            f"| {row['max_error']:g} | {row['best_anchor_bpppb_min']:.3f} ({row['best_anchor_min_scene']}) – "
            f"{row['best_anchor_bpppb_max']:.3f} ({row['best_anchor_max_scene']}) | {who} | "
            + " | ".join(f"{v['bpppb']:.3f} {v['codec']}" if v else "-" for v in val)
            + " |"
        )
    ours = sorted({h["codec"] for row in summary for h in row["hsicodec"]})
    vals = [s["scene"] for s in ints if s["role"] == "validation"]
    for label in ours:
        lines += [
            "",
            f"{label} against the best anchor on the same scene (ratio = its bpppb / the best anchor's; "
            "validation scenes: its bpppb / the best anchor's):",
            "",
            "| E | scenes | bpppb, min – max | ratio, median (min – max) | smaller than the best anchor | "
            + " | ".join(vals)
            + " |",
            "|---|---|---|---|---|" + "---|" * len(vals),
        ]
        for row in summary:
            hs = [h for h in row["hsicodec"] if h["codec"] == label and h["best_anchor_bpppb"]]
            if not hs:
                continue
            ratios = [h["bpppb"] / h["best_anchor_bpppb"] for h in hs]
            by = {h["scene"]: h for h in hs}
            cells = [f"{by[v]['bpppb']:.3f} / {by[v]['best_anchor_bpppb']:.3f}" if v in by else "-" for v in vals]
            lines.append(
                f"| {row['max_error']:g} | {len(hs)} | {min(h['bpppb'] for h in hs):.3f} – "
                f"{max(h['bpppb'] for h in hs):.3f} | {float(np.median(ratios)):.3f} ({min(ratios):.3f} – "
                f"{max(ratios):.3f}) | {sum(r < 1 for r in ratios)} of {len(hs)} | " + " | ".join(cells) + " |"
            )
    lines += speed_markdown(speed)
    lines += [
        "",
        "## Per scene",
        "",
        "Cell: bpppb (encode MB/s / decode MB/s); bold: the smallest file at that bound; –: the codec does not "
        "code that bound or dtype; refused / failed: see the note under the table.",
    ]
    for s in scenes:
        present = {r["codec"] for r in s["rows"]}
        ours = sorted(c for c in present if c not in BOUNDED_ANCHORS)
        codecs = ours + [c for c in BOUNDED_ANCHORS if c in present]
        unit = "" if s["bound_unit"] == 1.0 else f"; bound = E × {s['bound_unit']:.4g} ({s['bound_unit_note']})"
        lines += [
            "",
            f"### {s['scene']}" + (" (validation)" if s["role"] == "validation" else ""),
            "",
            f"{'x'.join(map(str, s['shape']))} {s['dtype']}, values {s['value_range'][0]:g} .. "
            f"{s['value_range'][1]:g}, {s['raw_bytes']} raw bytes{unit}; {s['run_s']:.1f} s.",
            "",
            "| E | " + " | ".join(codecs) + " |",
            "|---|" + "---|" * len(codecs),
        ]
        for e in bounds:
            at = {r["codec"]: r for r in s["rows"] if r["nominal_max_error"] == e}
            good = [r["bpppb"] for r in at.values() if _ok(r)]
            best = min(good) if good else None
            lines.append(f"| {e:g} | " + " | ".join(_cell(at.get(c), best) for c in codecs) + " |")
        failed = [f"{r['codec']} at E = {r['nominal_max_error']:g}: {r['note']}" for r in s["rows"] if not _ok(r)]
        if failed:
            lines += [""] + [f"- {f}" for f in failed]
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenes", nargs="+", default=["all"], help="scene names in --data-dir, .npy paths, or 'all'")
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    ap.add_argument(
        "--max-errors",
        type=_floats,
        default=ev.check_max_errors(ev.DEFAULT_MAX_ERRORS),
        help="bounds, comma-separated (default 0,1,2,4,8,16,32)",
    )
    ap.add_argument("--anchors", nargs="+", default=list(BOUNDED_ANCHORS), choices=list(BOUNDED_ANCHORS))
    ap.add_argument("--efforts", nargs="+", default=list(ev.DEFAULT_EFFORTS), help="hsicodec efforts")
    ap.add_argument(
        "--hsicodec-scenes",
        choices=["validation", "all", "none"],
        default="all",
        help="where hsicodec's max-error mode runs (once compress accepts max_error)",
    )
    ap.add_argument("--float-scenes", choices=["scaled", "skip"], default="scaled")
    ap.add_argument("--repeat", type=int, default=1, help="timed runs per point (median)")
    ap.add_argument("--threads", type=int, default=0, help="hsicodec threads (0: all cores)")
    ap.add_argument("--speed-scene", default="jasper_ridge", help="scene mirrored out for the throughput table")
    ap.add_argument("--speed-side", type=int, default=512, help="its side in pixels (0: no throughput table)")
    ap.add_argument("--speed-bounds", type=_floats, default=[0.0, 4.0], help="bounds of the throughput table")
    ap.add_argument("--out-json", type=Path, default=ROOT / "bench" / "lossless.json")
    ap.add_argument("--out-md", type=Path, default=ROOT / "bench" / "lossless.md")
    args = ap.parse_args(argv)
    bounds = args.max_errors
    paths = _scene_list(args.scenes, args.data_dir)
    val = validation_scenes()
    has = ev.hsicodec_has_max_error()

    def log(msg: str) -> None:
        print(msg, flush=True)

    t_all = time.perf_counter()
    load0 = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    scenes = []
    for p in paths:
        with_ours = has and args.hsicodec_scenes != "none"
        with_ours = with_ours and (args.hsicodec_scenes == "all" or p.stem in val)
        rec = run_scene(p, bounds, args, val, with_ours, log)
        if rec is not None:
            scenes.append(rec)
            log(f"{rec['scene']}: {rec['run_s']:.1f} s")
    summary = summarize(scenes, bounds)
    speed = None
    if args.speed_side > 0 and has:
        log(f"throughput: {args.speed_scene} mirrored to {args.speed_side} x {args.speed_side}")
        speed = speed_runs(_scene_list([args.speed_scene], args.data_dir)[0], args.speed_side, args.speed_bounds,
                           args, log)  # fmt: skip
    meta = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "repeat": args.repeat,
        "max_errors": bounds,
        "anchors": args.anchors,
        "codec_threads": 1,
        "hsicodec": (
            f"compress(cube, max_error=E) at effort(s) {', '.join(map(str, args.efforts))} on "
            f"{args.hsicodec_scenes} scenes, {args.threads or os.cpu_count()} thread(s)"
            if has
            else ev.HSICODEC_NO_MAX_ERROR + " (this script adds the rows by itself once it does)"
        ),
        "total_s": round(time.perf_counter() - t_all, 1),
        "load_average_1min": [load0, os.getloadavg()[0] if hasattr(os, "getloadavg") else None],
    }
    try:
        import imagecodecs
        import rasterio

        meta["imagecodecs"], meta["gdal"] = imagecodecs.__version__, rasterio.__gdal_version__
    except ImportError:  # pragma: no cover
        pass
    doc = {"meta": meta, "summary": summary, "speed": speed, "scenes": scenes}
    _write(args.out_json, json.dumps(doc, indent=1) + "\n")
    _write(args.out_md, markdown(meta, scenes, summary, bounds, speed))
    log(f"wrote {args.out_json} and {args.out_md} ({len(scenes)} scenes, {meta['total_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
