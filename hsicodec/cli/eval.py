"""``hsicodec eval``: rate-distortion of hsicodec against other codecs on one cube."""

from __future__ import annotations

import math
import time
from pathlib import Path

import click

from hsicodec.cli.common import _CONTEXT, _ItemProgress, _print_json, _shape_text
from hsicodec.cli.options import EffortType, raster_layout_options


def _split_list(ctx, param, value: tuple) -> list:
    """A repeatable option whose values may also be comma-separated: '-r 0.01,0.05 -r 0.1'."""
    return [t.strip() for v in value for t in str(v).split(",") if t.strip()]


def _row_line(scene: str, row: dict, seconds: float) -> str:
    """The log line of one finished run: 'SCENE CODEC RATE bpppb: PSNR dB (SECONDS s)', or why it is unreachable."""
    head = f"{scene} {row['codec']} {float(row['target_bpppb']):g} bpppb"
    if not row.get("reachable", True):
        note = " ".join(str(row.get("note") or "").split())
        if len(note) > 100:
            note = note[:97] + "..."
        return f"{head}: unreachable{': ' + note if note else ''} ({seconds:.2f} s)"
    return f"{head}: {float(row['psnr']):.2f} dB ({seconds:.2f} s)"


def _efforts(effort_names: list, default) -> list:
    if effort_names and [e.lower() for e in effort_names] == ["none"]:
        return []
    try:
        return [EffortType().convert(e, None, None) for e in (effort_names or default)]
    except click.BadParameter as e:
        raise click.BadParameter(e.message, param_hint="'--efforts'") from None


def _eval_bounded(
    src: Path,
    max_errors: list,
    anchor_names: list,
    effort_names: list,
    model: str | None,
    var: str | None,
    band_first: bool,
    repeat: int,
    threads: int,
    quiet: bool,
    as_json: bool,
) -> None:
    """``eval --max-errors``: the error-bounded anchors and hsicodec's max-error mode at each bound."""
    import numpy as np

    from hsicodec.errors import OptionError
    from hsicodec.evaluation import evaluate as ev
    from hsicodec.evaluation.anchors import BOUNDED_ANCHORS, bounded_support
    from hsicodec.io.raster import read_cube

    try:
        bounds = ev.check_max_errors(max_errors)
    except OptionError as e:
        raise click.BadParameter(str(e), param_hint="'--max-errors'") from None
    known = list(BOUNDED_ANCHORS)
    names = [n.lower() for n in anchor_names] if anchor_names else list(known)
    names = [] if names == ["none"] else (list(known) if names == ["all"] else names)
    bad = [n for n in names if n not in known]
    if bad:
        raise click.BadParameter(
            f"unknown error-bounded anchor {', '.join(bad)}; known: {', '.join(known)}", param_hint="'--anchors'"
        )
    efforts = _efforts(effort_names, ev.DEFAULT_EFFORTS)
    if not efforts and not names:
        raise click.UsageError("nothing to evaluate: --efforts none and --anchors none")
    cube, _ = read_cube(src, var=var, band_first=band_first)
    ours = len(efforts) if ev.hsicodec_has_max_error() else 0
    n_runs = sum(ours + sum(not bounded_support(n, cube.dtype, b) for n in names) for b in bounds)
    scene = src.stem or src.name
    notes: list = []
    with _ItemProgress(not quiet and not as_json, "eval", total=max(1, n_runs), unit="run") as progress:
        started = [time.perf_counter()]

        def on_row(row: dict) -> None:
            now = time.perf_counter()
            seconds, started[0] = now - started[0], now
            head = f"{scene} {row['codec']} max error {float(row['max_error']):g}"
            if row.get("reachable", True):
                text = f"{head}: {float(row['bpppb']):.4f} bpppb, max error {float(row['max_abs_error']):g}"
            else:
                text = f"{head}: unreachable: {' '.join(str(row.get('note') or '').split())[:100]}"
            progress.item(f"{text} ({seconds:.2f} s)", codec=row["codec"])

        rows = ev.evaluate_bounds(
            cube,
            bounds,
            anchors=names,
            efforts=efforts,
            model=model,
            repeat=repeat,
            threads=threads,
            on_row=on_row,
            notes=notes,
        )
    if as_json:
        _print_json(
            {
                "input": str(src),
                "shape": list(cube.shape),
                "dtype": cube.dtype.name,
                "value_range": [float(np.nanmin(cube)), float(np.nanmax(cube))] if cube.size else None,
                "raw_bytes": int(cube.nbytes),
                "max_errors": bounds,
                "efforts": efforts,
                "anchors": names,
                "model": model,
                "repeat": repeat,
                "rows": [ev.row_to_json(r) for r in rows],
                "notes": notes,
            }
        )
        return
    click.echo(
        f"{src}: {_shape_text(list(cube.shape))} {cube.dtype.name}; error-bounded mode: max abs error <= bound, "
        f"bpppb of the whole output, MB/s of the raw cube ({cube.nbytes} bytes; times: median of {repeat})"
    )
    click.echo(ev.format_bound_table(rows))
    for note in notes:
        click.echo(f"note: {note}")


@click.command("eval", context_settings=_CONTEXT)
@click.argument("src", metavar="IN", required=False, type=click.Path(dir_okay=True, path_type=Path))
@click.option(
    "--rates",
    "-r",
    "rates",
    multiple=True,
    callback=_split_list,
    metavar="X[,Y...]",
    help="Target rates in bpppb, comma-separated and/or repeated. Default: 0.01,0.02,0.05,0.1,0.2.",
)
@click.option(
    "--anchors",
    "-a",
    "anchor_names",
    multiple=True,
    callback=_split_list,
    metavar="NAME[,...]",
    help="Codecs to compare with (see --list-codecs), 'all', or 'none'. "
    "Default: pca_jpeg2000,jpeg2000_per_band,sperr_3d.",
)
@click.option(
    "--efforts",
    "-e",
    "effort_names",
    multiple=True,
    callback=_split_list,
    metavar="E[,...]",
    help="hsicodec efforts to run (fast, default, max or 0-100), or 'none'. Default: default.",
)
@click.option(
    "--model",
    "-m",
    default=None,
    metavar="ID|ALIAS",
    help="Base model for hsicodec (default: the better bundled model per file, as compress does).",
)
@raster_layout_options
@click.option(
    "--repeat",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Timed runs per point (the median is reported).",
)
@click.option(
    "--threads",
    "-t",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="hsicodec encoder/decoder threads; 0 = all available cores (anchors run single-threaded).",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="PNG",
    help="Also save PSNR vs bpppb (log x, every codec) to this image file.",
)
@click.option(
    "--max-errors",
    "max_errors",
    multiple=True,
    callback=_split_list,
    metavar="E[,...]",
    help="Error-bounded mode instead of target rates: max abs errors in the cube's units (0 = lossless), "
    "e.g. 0,1,2,4,8,16,32. Runs the error-bounded anchors (--anchors picks among them; default all) and "
    "hsicodec's own max-error mode at each bound, checks every decoded output against the bound and "
    "reports bpppb, max error, PSNR and encode/decode MB/s of the raw cube.",
)
@click.option("--list-codecs", is_flag=True, help="List the codec names --anchors accepts and exit.")
@click.option(
    "--quiet",
    "-q",
    is_flag=True,
    help="No progress: neither the bar (on a terminal) nor the line per finished run on stderr (otherwise).",
)
@click.option("--json", "as_json", is_flag=True, help="Print every row and the PSNR gaps as JSON on stdout.")
def eval_cmd(
    src: Path | None,
    rates: list,
    anchor_names: list,
    effort_names: list,
    model: str | None,
    var: str | None,
    band_first: bool,
    repeat: int,
    threads: int,
    plot_path: Path | None,
    max_errors: list,
    list_codecs: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Rate-distortion of hsicodec and other codecs on the cube IN, at the same target rates.

    IN is any raster compress reads (GeoTIFF, ENVI, .npy, .mat). For every target rate,
    hsicodec (at each effort) and each anchor compress IN to at most that rate; the output
    is decoded from its bytes and measured: bpppb of the whole output, PSNR (peak = max -
    min of IN), SAM (degrees), max abs error, compress and decompress time (median of
    --repeat runs). A rate a codec cannot reach is shown as unreachable. The metrics are
    defined in docs/metrics.md. Progress goes to stderr: a bar on a terminal, else one
    line per finished run (-q: none).

    \b
    Examples:
      hsicodec eval scene.tif --rates 0.01,0.05,0.1
      hsicodec eval cube.npy -r 0.02 --anchors all --efforts default,max --plot rd.png
      hsicodec eval data.mat --var indian_pines --json > rd.json
      hsicodec eval scene.tif --max-errors 0,1,2,4,8,16,32
    """
    from hsicodec.evaluation import evaluate as ev

    if list_codecs:
        base = ev.baseline_names()
        for name in ev.codec_registry():
            click.echo(f"{name}\t{'paper baseline' if name in base else 'anchor'}")
        from hsicodec.evaluation.anchors import BOUNDED_ANCHORS

        for name in BOUNDED_ANCHORS:
            click.echo(f"{name}\terror-bounded anchor (--max-errors)")
        return
    if src is None:
        raise click.UsageError("missing argument 'IN'")
    if max_errors:
        if rates:
            raise click.UsageError("--rates and --max-errors do not go together: target rates or error bounds")
        if plot_path is not None:
            raise click.UsageError("--plot draws rate-distortion curves; it does not go with --max-errors")
        _eval_bounded(
            src, max_errors, anchor_names, effort_names, model, var, band_first, repeat, threads, quiet, as_json
        )
        return
    try:
        rate_list = [float(r) for r in rates] if rates else list(ev.DEFAULT_RATES)
    except ValueError:
        raise click.BadParameter(f"{', '.join(rates)}: expected numbers", param_hint="'--rates'") from None
    if any(not (math.isfinite(r) and r > 0) for r in rate_list):
        raise click.BadParameter("rates must be positive numbers", param_hint="'--rates'")
    names = [n.lower() for n in anchor_names] if anchor_names else list(ev.DEFAULT_ANCHORS)
    if names == ["none"]:
        names = []
    elif names == ["all"]:
        names = list(ev.codec_registry())
    known = ev.codec_registry()
    bad = [n for n in names if n not in known]
    if bad:
        raise click.BadParameter(f"unknown codec {', '.join(bad)}; known: {', '.join(known)}", param_hint="'--anchors'")
    efforts = _efforts(effort_names, ev.DEFAULT_EFFORTS)
    if not efforts and not names:
        raise click.UsageError("nothing to evaluate: --efforts none and --anchors none")
    if plot_path is not None:
        ev.check_plot_path(plot_path)  # before minutes of encoding
    import numpy as np

    from hsicodec.io.raster import read_cube

    cube, geo = read_cube(src, var=var, band_first=band_first)
    n_runs = len(rate_list) * (len(efforts) + len(names))
    scene = src.stem or src.name
    with _ItemProgress(not quiet and not as_json, "eval", total=n_runs, unit="run") as progress:
        started = [time.perf_counter()]

        def on_row(row: dict) -> None:
            now = time.perf_counter()
            seconds, started[0] = now - started[0], now
            progress.item(_row_line(scene, row, seconds), codec=row["codec"])

        rows = ev.evaluate_cube(
            cube,
            rate_list,
            efforts=efforts,
            anchors=names,
            model=model,
            repeat=repeat,
            threads=threads,
            geo=geo,
            on_row=on_row,
        )
    ours = list(dict.fromkeys(r["codec"] for r in rows if r["kind"] == "hsicodec"))
    gaps = ev.psnr_gaps(rows, ours, rate_list) if ev.GAP_REFERENCE in names else []
    if plot_path is not None:
        ev.plot_rd(rows, plot_path, title=f"{src.name} ({_shape_text(list(cube.shape))})")
    if as_json:
        _print_json(
            {
                "input": str(src),
                "shape": list(cube.shape),
                "dtype": cube.dtype.name,
                "value_range": [float(np.nanmin(cube)), float(np.nanmax(cube))] if cube.size else None,
                "rates": rate_list,
                "efforts": efforts,
                "anchors": names,
                "model": model,
                "repeat": repeat,
                "rows": [ev.row_to_json(r) for r in rows],
                "gaps": gaps,
                "plot": str(plot_path) if plot_path is not None else None,
            }
        )
        return
    click.echo(
        f"{src}: {_shape_text(list(cube.shape))} {cube.dtype.name}; metrics as docs/metrics.md "
        f"(times: median of {repeat})"
    )
    click.echo(ev.format_table(rows))
    for g in gaps:
        if g["gap_db"] is not None:
            click.echo(f"{g['codec']} vs {g['reference']} @ {g['rate']:g} bpppb: {g['gap_db']:+.2f} dB")
    if plot_path is not None:
        click.echo(f"plot: {plot_path}")
