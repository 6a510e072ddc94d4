"""Rate–distortion evaluation: hsicodec against other codecs on one cube (metrics: docs/metrics.md).

Pure functions, shared by ``hsicodec eval`` and ``tools/bench_rd.py``:

* :func:`run_hsicodec` / :func:`run_codec` run one codec at one target rate and
  return one *row* (a plain dict, JSON-ready after :func:`row_to_json`);
* :func:`evaluate_cube` runs every requested codec at every rate;
* :func:`psnr_at` / :func:`psnr_gaps` compare codecs at the same rate (and :func:`rate_at` at the same PSNR);
* :func:`format_table` renders rows as text or Markdown, :func:`plot_rd` draws
  PSNR against bpppb (log x) for every codec on the same axes.

Metrics are exactly :mod:`hsicodec.metrics`: bpppb from the size of the whole
output (the ``.hsim`` file, or the anchor's self-contained byte string), PSNR
with R = max − min of the original, SAM in degrees, max abs error, all on the
cube really decoded from those bytes.  Times are wall clock: decode the median
of ``repeat`` runs with the model loaded once; hsicodec's encode time is the
median of ``encode_repeat`` full ``compress`` calls (its rate search included),
an anchor's the median of ``repeat`` encodes at the final parameters (its rate
search is reported apart, in ``params["search_s"]``).

Row keys: ``codec``, ``kind`` (``hsicodec`` / ``anchor`` / ``baseline``),
``target_bpppb``, ``reachable``, ``bpppb``, ``bytes``, ``psnr``, ``sam``,
``max_abs_error``, ``encode_s``, ``decode_s``, ``threads``, ``params``, ``note``.
A target a codec cannot reach is a row with ``reachable=False`` and a note,
never a missing row.

Error-bounded mode (``hsicodec eval --max-errors``): :func:`evaluate_bounds` runs the
error-bounded anchors and ``hsicodec.compress(cube, max_error=E)`` at each max abs error E
(0 = lossless), every output decoded and checked against E; rows have ``max_error`` (the bound)
instead of ``target_bpppb``, ``bound_ok``, ``encode_mbps`` / ``decode_mbps`` (10**6 raw bytes/s).
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np

from hsicodec import metrics
from hsicodec.errors import HsicodecError, OptionError

__all__ = [
    "DEFAULT_RATES",
    "DEFAULT_ANCHORS",
    "DEFAULT_EFFORTS",
    "GAP_REFERENCE",
    "codec_registry",
    "baseline_names",
    "run_hsicodec",
    "run_codec",
    "evaluate_cube",
    "psnr_at",
    "psnr_gaps",
    "rate_at",
    "format_table",
    "plot_rd",
    "check_plot_path",
    "row_to_json",
    "hsicodec_label",
    "DEFAULT_MAX_ERRORS",
    "check_max_errors",
    "hsicodec_has_max_error",
    "run_bounded",
    "run_hsicodec_bounded",
    "evaluate_bounds",
    "format_bound_table",
]

#: target rates of ``hsicodec eval`` when none are given (bpppb)
DEFAULT_RATES: tuple = (0.01, 0.02, 0.05, 0.1, 0.2)
#: anchors of ``hsicodec eval`` when none are given
DEFAULT_ANCHORS: tuple = ("pca_jpeg2000", "jpeg2000_per_band", "sperr_3d")
#: hsicodec efforts of ``hsicodec eval`` when none are given
DEFAULT_EFFORTS: tuple = ("default",)
#: max abs error bounds of ``hsicodec eval --max-errors`` (and tools/bench_lossless.py) by default
DEFAULT_MAX_ERRORS: tuple = (0, 1, 2, 4, 8, 16, 32)
#: the codec PSNR gaps are measured against (docs/metrics.md: "the bar to beat")
GAP_REFERENCE = "pca_jpeg2000"

Row = dict


# --------------------------------------------------------------------------- codec look-up


def codec_registry() -> dict:
    """Every comparison codec by name: :data:`hsicodec.evaluation.anchors.ANCHORS` merged with
    ``hsicodec.evaluation.paper_baselines.BASELINES`` (each ``f(cube, target_bpppb) -> AnchorResult``).

    This is the one place evaluation looks codecs up.
    """
    from hsicodec.evaluation.anchors import ANCHORS

    merged = dict(ANCHORS)
    try:
        from hsicodec.evaluation.paper_baselines import BASELINES
    except ImportError:
        # the paper's own baselines (INR fp32/fp16/sampling, PCA+DCT, per-band JPEG)
        # land with issue #10; until then only the classical anchors are available
        return merged
    merged.update(BASELINES)
    return merged


def baseline_names() -> frozenset:
    """Names in :func:`codec_registry` that come from ``paper_baselines`` (empty until issue #10)."""
    from hsicodec.evaluation.anchors import ANCHORS

    return frozenset(n for n in codec_registry() if n not in ANCHORS)


def _check_rates(rates: Iterable[float]) -> list:
    out = []
    for r in rates:
        try:
            v = float(r)
        except (TypeError, ValueError):
            raise OptionError(f"rate {r!r} is not a number") from None
        if not (math.isfinite(v) and v > 0):
            raise OptionError(f"rate {r!r} is not a positive bpppb value")
        out.append(v)
    if not out:
        raise OptionError("no target rates given")
    return out


def _check_cube(cube) -> np.ndarray:
    cube = np.asarray(cube)
    if cube.ndim == 2:
        cube = cube[:, :, None]
    if cube.ndim != 3 or min(cube.shape) < 1:
        raise OptionError(f"expected a (rows, cols, bands) cube, got shape {cube.shape}")
    if cube.dtype.kind not in "uif":
        raise OptionError(f"unsupported cube dtype {cube.dtype}")
    return cube


# --------------------------------------------------------------------------- one codec, one rate


def _unreachable(
    codec: str, kind: str, rate: float, note: str, threads: int | None = None, params: dict | None = None
) -> Row:
    nan = float("nan")
    return {
        "codec": codec,
        "kind": kind,
        "target_bpppb": rate,
        "reachable": False,
        "bpppb": nan,
        "bytes": 0,
        "psnr": nan,
        "sam": nan,
        "max_abs_error": nan,
        "encode_s": nan,
        "decode_s": nan,
        "threads": threads,
        "params": params or {},
        "note": " ".join(str(note).split()),
    }


def hsicodec_label(effort: str | int) -> str:
    """Row name of hsicodec at one effort: ``hsicodec-default``, ``hsicodec-max``, ``hsicodec-40``..."""
    return f"hsicodec-{effort}"


def run_hsicodec(
    cube: np.ndarray,
    rate: float,
    *,
    effort: str | int = "default",
    model: str | None = None,
    repeat: int = 3,
    encode_repeat: int | None = None,
    threads: int = 0,
    geo=None,
    label: str | None = None,
) -> Row:
    """Compress ``cube`` to ``rate`` bpppb with hsicodec, decode the bytes, measure (one row).

    ``model=None`` is what ``hsicodec compress`` does without ``--model`` (the
    better of the bundled models per file).  A rate the model cannot reach is
    a row with ``reachable=False``.
    """
    from hsicodec.codec.api import compress, decompress

    cube = _check_cube(cube)
    (rate,) = _check_rates([rate])
    label = label or hsicodec_label(effort)
    n_threads = int(threads) if threads and threads > 0 else (os.cpu_count() or 1)
    enc_times, data, stats = [], None, {}
    note = ""
    for _ in range(max(1, int(encode_repeat if encode_repeat is not None else repeat))):
        st: dict = {}
        t0 = time.perf_counter()
        try:
            again = compress(cube, bpppb=rate, effort=effort, model=model, stats=st, threads=threads, geo=geo)
        except OptionError as exc:  # e.g. below the smallest file the model can write
            return _unreachable(label, "hsicodec", rate, str(exc), n_threads, {"effort": effort})
        enc_times.append(time.perf_counter() - t0)
        if data is None:
            data, stats = again, st
        elif again != data and "not bit-identical" not in note:
            note = "re-encode was not bit-identical"
    assert data is not None  # the loop above ran at least once
    dec_times, rec = [], None
    for _ in range(max(1, int(repeat))):
        t0 = time.perf_counter()
        rec, _ = decompress(data, threads=threads)
        dec_times.append(time.perf_counter() - t0)
    assert rec is not None  # the loop above ran at least once
    if rec.shape != cube.shape:
        raise HsicodecError(f"decoded shape {rec.shape} differs from the input's {cube.shape}")
    q = metrics.quality_report(cube, rec, len(data))
    params = {
        "effort": effort,
        "model": stats.get("model_alias"),
        "k": stats.get("k"),
        "step": stats.get("step"),
        "inner_steps": stats.get("inner_steps"),
        "adam_steps": stats.get("adam_steps"),
    }
    return {
        "codec": label,
        "kind": "hsicodec",
        "target_bpppb": rate,
        "reachable": True,
        "bpppb": q["bpppb"],
        "bytes": int(len(data)),
        "psnr": q["psnr"],
        "sam": q["sam"],
        "max_abs_error": q["max_abs_error"],
        "encode_s": statistics.median(enc_times),
        "decode_s": statistics.median(dec_times),
        "threads": n_threads,
        "params": {k: v for k, v in params.items() if v is not None},
        "note": note,
    }


@contextmanager
def _timing_repeats(n: int) -> Iterator[None]:
    """Let the anchors time their final encode/decode ``n`` times (their module setting)."""
    from hsicodec.evaluation import anchors

    old = anchors.TIMING_REPEATS
    anchors.TIMING_REPEATS = max(1, int(n))
    try:
        yield
    finally:
        anchors.TIMING_REPEATS = old


def run_codec(name: str, cube: np.ndarray, rate: float, *, repeat: int = 3) -> Row:
    """Run the comparison codec ``name`` (a key of :func:`codec_registry`) at ``rate`` (one row).

    A codec library failing on this cube is reported in the row's note
    (``reachable=False``), so one codec cannot hide the others.
    """
    registry = codec_registry()
    if name not in registry:
        raise OptionError(f"unknown codec {name!r}; known: {', '.join(registry)}")
    cube = _check_cube(cube)
    (rate,) = _check_rates([rate])
    kind = "baseline" if name in baseline_names() else "anchor"
    threads = 1 if kind == "anchor" else None  # imagecodecs runs single-threaded
    try:
        with _timing_repeats(repeat):
            r = registry[name](cube, rate)
    except Exception as exc:  # noqa: BLE001 - a codec failing must not hide the others
        return _unreachable(name, kind, rate, f"failed: {type(exc).__name__}: {exc}", threads)
    params = {k: v for k, v in (r.params or {}).items() if np.isscalar(v)}
    codec_threads = params.get("threads")
    if threads is None and isinstance(codec_threads, (int, np.integer)):
        threads = int(codec_threads)
    return {
        "codec": name,
        "kind": kind,
        "target_bpppb": rate,
        "reachable": bool(r.reachable),
        "bpppb": float(r.bpppb),
        "bytes": int(r.n_bytes),
        "psnr": float(r.psnr),
        "sam": float(r.sam),
        "max_abs_error": float(r.max_abs_error),
        "encode_s": float(r.encode_s),
        "decode_s": float(r.decode_s),
        "threads": threads,
        "params": params,
        "note": " ".join(str(r.note or "").split()),
    }


def evaluate_cube(
    cube: np.ndarray,
    rates: Sequence[float] = DEFAULT_RATES,
    *,
    efforts: Sequence[str | int] = DEFAULT_EFFORTS,
    anchors: Sequence[str] = DEFAULT_ANCHORS,
    model: str | None = None,
    repeat: int = 3,
    encode_repeat: int | None = None,
    threads: int = 0,
    geo=None,
    on_row: Callable[[Row], None] | None = None,
) -> list:
    """hsicodec at every effort and every codec of ``anchors`` at every rate: a list of rows.

    Names are checked (and the model resolved) before any encoding, so a typo
    fails at once.  ``on_row`` is called with each row as soon as it exists.
    """
    cube = _check_cube(cube)
    rates = _check_rates(rates)
    registry = codec_registry()
    unknown = [a for a in anchors if a not in registry]
    if unknown:
        raise OptionError(f"unknown codec(s) {', '.join(map(repr, unknown))}; known: {', '.join(registry)}")
    if efforts:
        from hsicodec.codec.analysis import effort_steps
        from hsicodec.codec.api import load_codec_model

        if model not in (None, "auto"):
            cm = load_codec_model(model)  # ModelNotFoundError now, not after minutes
            for e in efforts:
                effort_steps(e, cm)
        else:
            for e in efforts:
                effort_steps(e, load_codec_model())
    rows = []
    for rate in rates:
        for eff in efforts:
            rows.append(
                run_hsicodec(
                    cube,
                    rate,
                    effort=eff,
                    model=model,
                    repeat=repeat,
                    encode_repeat=encode_repeat,
                    threads=threads,
                    geo=geo,
                )
            )
            if on_row:
                on_row(rows[-1])
        for name in anchors:
            rows.append(run_codec(name, cube, rate, repeat=repeat))
            if on_row:
                on_row(rows[-1])
    return rows


# --------------------------------------------------------------------------- error-bounded mode

HSICODEC_NO_MAX_ERROR = "hsicodec rows skipped: hsicodec.compress does not accept max_error yet"


def check_max_errors(values: Iterable) -> list:
    """Max abs error bounds as floats (finite, >= 0; duplicates dropped, order kept), else OptionError."""
    from hsicodec.evaluation.anchors import lossless

    return lossless.check_max_errors(values)


def hsicodec_has_max_error() -> bool:
    """Whether ``hsicodec.compress`` takes ``max_error`` (its lossless / near-lossless mode)."""
    import inspect

    from hsicodec.codec.api import compress

    params = inspect.signature(compress).parameters
    return "max_error" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _bounded_row(codec: str, kind: str, bound: float, cube: np.ndarray, **kw) -> Row:
    """A row of the error-bounded mode; ``kw``: n_bytes, decoded, encode_s, decode_s, threads, params, note."""
    nan, dec, note = float("nan"), kw.get("decoded"), kw.get("note", "")
    err = metrics.max_abs_error(cube, dec) if dec is not None else nan
    ok = dec is not None and (bool(np.array_equal(dec, cube)) if bound == 0 else err <= bound)
    if dec is not None and not ok:
        note = f"BOUND VIOLATED: max error {err:g} > {bound:g}" + (f"; {note}" if note else "")
    enc_s, dec_s, mb = kw.get("encode_s", nan), kw.get("decode_s", nan), cube.nbytes / 1e6
    return {
        "codec": codec,
        "kind": kind,
        "max_error": bound,
        "reachable": dec is not None,
        "bpppb": metrics.bpppb(kw["n_bytes"], cube.shape) if dec is not None else nan,
        "bytes": int(kw.get("n_bytes", 0)),
        "psnr": metrics.psnr(cube, dec) if dec is not None else nan,
        "max_abs_error": err,
        "bound_ok": ok,
        "encode_s": enc_s,
        "decode_s": dec_s,
        "encode_mbps": mb / enc_s if enc_s > 0 else nan,
        "decode_mbps": mb / dec_s if dec_s > 0 else nan,
        "threads": kw.get("threads"),
        "params": kw.get("params") or {},
        "note": " ".join(str(note).split()),
    }


def run_bounded(name: str, cube: np.ndarray, max_error: float, *, repeat: int = 3) -> Row | None:
    """Run error-bounded anchor ``name`` at bound ``max_error`` (one row; None where the anchor does
    not code that bound or dtype).  A failure, a bound not met included, is a row with a note."""
    from hsicodec.evaluation.anchors import BOUNDED_ANCHORS, bounded_support

    if name not in BOUNDED_ANCHORS:
        raise OptionError(f"unknown error-bounded anchor {name!r}; known: {', '.join(BOUNDED_ANCHORS)}")
    cube = _check_cube(cube)
    (bound,) = check_max_errors([max_error])
    if bounded_support(name, cube.dtype, bound):
        return None
    try:
        with _timing_repeats(repeat):
            r = BOUNDED_ANCHORS[name](cube, bound)
    except Exception as exc:  # noqa: BLE001 - one codec failing must not hide the others
        return _bounded_row(name, "anchor", bound, cube, threads=1, note=f"failed: {type(exc).__name__}: {exc}")
    kw = {k: getattr(r, k) for k in ("n_bytes", "decoded", "encode_s", "decode_s", "note")}
    return _bounded_row(name, "anchor", bound, cube, threads=1, params=r.params, **kw)


def run_hsicodec_bounded(
    cube: np.ndarray,
    max_error: float,
    *,
    effort: str | int = "default",
    model: str | None = None,
    repeat: int = 3,
    threads: int = 0,
) -> Row | None:
    """hsicodec's own mode, ``compress(cube, max_error=E)``, decoded and checked (one row);
    None while ``compress`` does not accept ``max_error``."""
    from hsicodec.codec.api import compress, decompress

    cube = _check_cube(cube)
    (bound,) = check_max_errors([max_error])
    label = hsicodec_label(effort)
    n_threads = int(threads) if threads and threads > 0 else (os.cpu_count() or 1)
    enc_times, dec_times, data, rec = [], [], b"", None
    try:
        for _ in range(max(1, int(repeat))):
            t0 = time.perf_counter()
            data = compress(cube, max_error=bound, effort=effort, model=model, threads=threads)  # type: ignore[call-arg]
            enc_times.append(time.perf_counter() - t0)
        for _ in range(max(1, int(repeat))):
            t0 = time.perf_counter()
            rec, _ = decompress(data, threads=threads)
            dec_times.append(time.perf_counter() - t0)
        if rec is None or rec.shape != cube.shape:
            raise HsicodecError(f"decoded shape {getattr(rec, 'shape', None)} differs from the input's {cube.shape}")
    except Exception as exc:  # noqa: BLE001 - a mode still being built must not hide the anchors
        if isinstance(exc, TypeError) and "max_error" in str(exc) and not enc_times:
            return None  # the mode is not there yet
        note = str(exc) if isinstance(exc, OptionError) else f"failed: {type(exc).__name__}: {exc}"
        return _bounded_row(label, "hsicodec", bound, cube, threads=n_threads, note=note)
    kw = {"encode_s": statistics.median(enc_times), "decode_s": statistics.median(dec_times), "threads": n_threads}
    return _bounded_row(label, "hsicodec", bound, cube, n_bytes=len(data), decoded=rec, params={"effort": effort}, **kw)


def evaluate_bounds(
    cube: np.ndarray,
    max_errors: Sequence[float] = DEFAULT_MAX_ERRORS,
    *,
    anchors: Sequence[str] | None = None,
    efforts: Sequence[str | int] = DEFAULT_EFFORTS,
    model: str | None = None,
    repeat: int = 3,
    threads: int = 0,
    on_row: Callable[[Row], None] | None = None,
    notes: list | None = None,
) -> list:
    """hsicodec's max-error mode (at each effort) and every error-bounded anchor of ``anchors`` (default:
    all) at every bound: a list of rows.  A bound or dtype an anchor does not code gets no row; why goes
    to ``notes`` once, as does :data:`HSICODEC_NO_MAX_ERROR` while hsicodec has no such mode."""
    from hsicodec.evaluation.anchors import BOUNDED_ANCHORS, bounded_support

    cube = _check_cube(cube)
    bounds = check_max_errors(max_errors)
    names = list(BOUNDED_ANCHORS) if anchors is None else list(anchors)
    unknown = [a for a in names if a not in BOUNDED_ANCHORS]
    if unknown:
        raise OptionError(f"unknown error-bounded anchor(s) {', '.join(unknown)}; known: {', '.join(BOUNDED_ANCHORS)}")
    notes = notes if notes is not None else []
    ours = list(efforts) if efforts and hsicodec_has_max_error() else []
    if efforts and not ours:
        notes.append(HSICODEC_NO_MAX_ERROR)
    rows: list = []

    def emit(row: Row | None) -> None:
        if row is not None:
            rows.append(row)
            if on_row:
                on_row(row)

    for bound in bounds:
        for eff in ours:
            row = run_hsicodec_bounded(cube, bound, effort=eff, model=model, repeat=repeat, threads=threads)
            if row is None and HSICODEC_NO_MAX_ERROR not in notes:  # the signature said yes, the call no
                notes.append(HSICODEC_NO_MAX_ERROR)
            emit(row)
        for name in names:
            why = bounded_support(name, cube.dtype, bound)
            if why and why not in notes:
                notes.append(why)
            emit(None if why else run_bounded(name, cube, bound, repeat=repeat))
    return rows


# --------------------------------------------------------------------------- comparisons


def _points(rows: Sequence[Row], codec: str) -> list:
    return sorted(
        (float(r["bpppb"]), float(r["psnr"]))
        for r in rows
        if r.get("codec") == codec
        and r.get("reachable", True)
        and r.get("bpppb") is not None
        and r.get("psnr") is not None
        and math.isfinite(float(r["psnr"]))
        and math.isfinite(float(r["bpppb"]))
        and float(r["bpppb"]) > 0
    )


def psnr_at(rows: Sequence[Row], codec: str, rate: float) -> float | None:
    """PSNR of ``codec`` at ``rate`` bpppb: linear in log-rate between its measured points.

    Outside the measured range: the PSNR of the codec's own point for target
    ``rate`` (which lands at or just below it, so this never favours the codec);
    None when there is neither.
    """
    pts = _points(rows, codec)
    if pts:
        xs = np.log([p[0] for p in pts])
        if xs[0] <= math.log(rate) <= xs[-1]:
            return float(np.interp(math.log(rate), xs, [p[1] for p in pts]))
    for r in rows:
        if (
            r.get("codec") == codec
            and r.get("reachable", True)
            and r.get("target_bpppb") is not None
            and math.isclose(float(r["target_bpppb"]), rate, rel_tol=1e-9)
            and r.get("psnr") is not None
            and math.isfinite(float(r["psnr"]))
        ):
            return float(r["psnr"])
    return None


def rate_at(rows: Sequence[Row], codec: str, quality: float) -> float | None:
    """bpppb at which ``codec`` reaches PSNR ``quality``: log-rate linear in PSNR between its measured
    points (PSNR rising with rate); None outside the measured range."""
    pts = _points(rows, codec)
    ps = [p[1] for p in pts]
    if len(pts) < 2 or not ps[0] <= quality <= ps[-1] or any(b <= a for a, b in zip(ps, ps[1:])):
        return None
    return float(np.exp(np.interp(quality, ps, np.log([p[0] for p in pts]))))


def psnr_gaps(
    rows: Sequence[Row], codecs: Sequence[str], rates: Sequence[float], reference: str = GAP_REFERENCE
) -> list:
    """PSNR of each codec minus the reference codec's at each rate (positive = codec better), and the
    share of the reference's bits the codec saves for its PSNR there (``rate_saving``; negative = more
    bits; None where the reference's curve does not reach that PSNR)."""
    out = []
    for codec in codecs:
        for rate in rates:
            ours, ref = psnr_at(rows, codec, rate), psnr_at(rows, reference, rate)
            ref_rate = rate_at(rows, reference, ours) if ours is not None else None
            out.append(
                {
                    "codec": codec,
                    "reference": reference,
                    "rate": float(rate),
                    "psnr": ours,
                    "reference_psnr": ref,
                    "gap_db": None if ours is None or ref is None else ours - ref,
                    "rate_saving": None if ref_rate is None else 1.0 - rate / ref_rate,
                }
            )
    return out


# --------------------------------------------------------------------------- output


def _finite(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and math.isfinite(float(v))


def row_to_json(row: Row) -> dict:
    """A row with numpy scalars made plain and NaN as null (inf PSNR, a lossless file, as "inf")."""

    def clean(v):
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, float) and not math.isfinite(v):
            return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
        return v

    return clean(dict(row))


def _fmt_params(params: dict) -> str:
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in (params or {}).items() if v is not None
    )


def _cells(row: Row, with_params: bool) -> list:
    if not row.get("reachable", True):
        note = row.get("note", "") or "unreachable"
        return [row["codec"], f"{row['target_bpppb']:g}", "unreachable", "", "", "", "", "", note]

    def f(key, spec):
        v = row.get(key)
        return format(float(v), spec) if _finite(v) else ("inf" if v in ("inf", float("inf")) else "-")

    extra = _fmt_params(row.get("params") or {}) if with_params else ""
    if row.get("note"):
        extra = f"{extra}; {row['note']}" if extra else row["note"]
    return [
        row["codec"],
        f"{row['target_bpppb']:g}",
        f("bpppb", ".4f"),
        f("psnr", ".2f"),
        f("sam", ".3f"),
        f("max_abs_error", ".4g"),
        f("encode_s", ".2f"),
        f("decode_s", ".3f"),
        extra,
    ]


_HEADER = ["codec", "target", "bpppb", "PSNR dB", "SAM °", "max err", "enc s", "dec s"]


def format_table(rows: Sequence[Row], style: str = "text", params: bool | None = None, note_width: int = 70) -> str:
    """Rows as a table: ``style="text"`` (aligned columns, notes cut to ``note_width``)
    or ``"markdown"`` (with the codec parameters)."""
    if style not in ("text", "markdown"):
        raise OptionError(f"table style must be text or markdown, not {style!r}")
    with_params = (style == "markdown") if params is None else params
    header = _HEADER + (["params / note"] if style == "markdown" else ["note"])
    body = [_cells(r, with_params) for r in rows]
    if style == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(c.replace("|", "/") for c in cells) + " |" for cells in body]
        return "\n".join(lines)
    for cells in body:
        if len(cells[-1]) > note_width:
            cells[-1] = cells[-1][: note_width - 3] + "..."
    widths = [max(len(h), *(len(c[i]) for c in body)) if body else len(h) for i, h in enumerate(header)]
    right = {1, 2, 3, 4, 5, 6, 7}
    out = []
    for cells in [header] + body:
        parts = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        out.append("  ".join(parts).rstrip())
    return "\n".join(out)


def format_bound_table(rows: Sequence[Row], style: str = "text", note_width: int = 70) -> str:
    """Rows of the error-bounded mode as a table (``text`` or ``markdown``)."""
    if style not in ("text", "markdown"):
        raise OptionError(f"table style must be text or markdown, not {style!r}")
    header = ["codec", "bound", "bpppb", "max err", "PSNR dB", "enc MB/s", "dec MB/s", "note"]

    def f(row, key, spec):
        v = row.get(key)
        return format(float(v), spec) if _finite(v) else ("inf" if v in ("inf", float("inf")) else "-")

    body: list = []
    for r in rows:
        note = r.get("note") or ""
        if style == "markdown" and r.get("params"):
            note = f"{_fmt_params(r['params'])}; {note}" if note else _fmt_params(r["params"])
        if style == "text" and len(note) > note_width:
            note = note[: note_width - 3] + "..."
        specs = ("bpppb:.4f", "max_abs_error:g", "psnr:.2f", "encode_mbps:.1f", "decode_mbps:.1f")
        cells = [f(r, *k.split(":")) for k in specs] if r.get("reachable", True) else ["unreachable", "", "", "", ""]
        body.append([r["codec"], f"{float(r['max_error']):g}", *cells, note])
    if style == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(c.replace("|", "/") for c in cells) + " |" for cells in body])
    widths = [max(len(h), *(len(c[i]) for c in body)) if body else len(h) for i, h in enumerate(header)]
    out = []
    for cells in [header] + body:
        parts = [c.rjust(w) if 0 < i < 7 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        out.append("  ".join(parts).rstrip())
    return "\n".join(out)


def _style(codec: str, kind: str) -> dict:
    if kind == "hsicodec":
        return {"linestyle": "-", "linewidth": 2.2, "marker": "o", "markersize": 5, "zorder": 4}
    if kind == "baseline":
        return {"linestyle": ":", "linewidth": 1.5, "marker": "s", "markersize": 4, "zorder": 3}
    if codec == GAP_REFERENCE:
        return {"linestyle": "--", "linewidth": 2.0, "marker": "^", "markersize": 5, "zorder": 3}
    return {"linestyle": "--", "linewidth": 1.2, "marker": "v", "markersize": 4, "zorder": 2}


def _matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise OptionError("plotting needs matplotlib (pip install matplotlib)") from exc
    return Figure, FigureCanvasAgg


def check_plot_path(path: str | os.PathLike[str]) -> Path:
    """Refuse a plot path that cannot be written (missing folder, a folder, unknown image type)."""
    p = Path(path)
    if p.is_dir():
        raise OptionError(f"{p} is a directory")
    _, canvas = _matplotlib()
    kinds = canvas.get_supported_filetypes()
    ext = p.suffix.lower().lstrip(".")
    if ext not in kinds:
        raise OptionError(
            f"{p}: plot file type {ext or '(none)'!r} not supported; use one of {', '.join(sorted(kinds))}"
        )
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise OptionError(f"{p}: folder {folder} does not exist")
    return p


def plot_rd(
    rows: Sequence[Row], path: str | os.PathLike[str], *, title: str | None = None, references: Sequence[dict] = ()
) -> Path:
    """Save PSNR vs bpppb (log x) of every codec in ``rows`` on one set of axes as an image.

    ``references`` are extra points drawn with a distinct marker (a star) and
    labelled, e.g. figures reported by a paper: dicts with ``label``,
    ``bpppb`` and ``psnr``.  Unreachable targets are counted in the legend.
    Uses matplotlib's Agg canvas (no display, no pyplot state).
    """
    Figure, FigureCanvasAgg = _matplotlib()
    path = check_plot_path(path)
    fig = Figure(figsize=(10.0, 5.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    codecs: dict = {}
    for r in rows:
        codecs.setdefault(r["codec"], r.get("kind", "anchor"))
    drawn = 0
    for codec, kind in codecs.items():
        pts = _points(rows, codec)
        missing = sum(1 for r in rows if r["codec"] == codec and not r.get("reachable", True))
        label = codec + (f" ({missing} target{'s' if missing > 1 else ''} unreachable)" if missing else "")
        if not pts:
            ax.plot([], [], label=label + (" (no point)" if not missing else ""), **_style(codec, kind))
            continue
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=label, **_style(codec, kind))
        drawn += 1
    for ref in references:
        if _finite(ref.get("bpppb")) and _finite(ref.get("psnr")) and float(ref["bpppb"]) > 0:
            ax.plot(
                [float(ref["bpppb"])],
                [float(ref["psnr"])],
                linestyle="none",
                marker="*",
                markersize=15,
                markeredgecolor="black",
                zorder=5,
                label=str(ref.get("label", "reference")),
            )
            drawn += 1
    if drawn:
        ax.set_xscale("log")
    ax.set_xlabel("bpppb (bits per pixel per band, whole file; log scale)")
    ax.set_ylabel("PSNR (dB, peak = max − min of the original)")
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.savefig(str(path), bbox_inches="tight")
    return path
