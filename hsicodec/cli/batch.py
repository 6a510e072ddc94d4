"""``hsicodec batch``: compress or decompress many files in parallel on a Dask cluster."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from hsicodec.cli.common import _CONTEXT, EXIT_ERROR, PROG, _ItemProgress, _one_line, _print_json
from hsicodec.cli.options import EffortType, _positive_float


@click.command("batch", context_settings=_CONTEXT)
@click.argument("patterns", metavar="GLOB...", nargs=-1, required=True)
@click.argument("outdir", metavar="OUTDIR", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--decompress",
    "-d",
    "to_raster",
    is_flag=True,
    help="Decompress .hsim files to rasters instead of compressing rasters.",
)
@click.option(
    "--bpppb",
    type=float,
    default=None,
    callback=_positive_float(),
    metavar="X",
    help="Target rate of every file, bits per pixel per band (default 0.05 when neither --bpppb nor --psnr is given).",
)
@click.option(
    "--psnr",
    type=float,
    default=None,
    callback=_positive_float(),
    metavar="DB",
    help="Target quality of every file in dB. Excludes --bpppb.",
)
@click.option(
    "--max-error",
    type=float,
    default=None,
    metavar="E",
    help="Keep every value of every file within E of the original (checked by a real decode).",
)
@click.option("--lossless", is_flag=True, help="Bit-exact files (--max-error 0; integer cubes).")
@click.option(
    "--model",
    "-m",
    default=None,
    metavar="ID|ALIAS",
    help="Base model (installed on every worker). Default: the codec's choice.",
)
@click.option(
    "--effort",
    "-e",
    type=EffortType(),
    default=None,
    metavar="fast|default|max|N",
    help="Encoder effort (default: default).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["gtiff", "envi", "npy"], case_sensitive=False),
    default=None,
    help="With --decompress: output format (default gtiff: OUTDIR/<stem>.tif).",
)
@click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="Run on an existing Dask cluster (e.g. tcp://host:8786) instead of a local one; "
    "its workers must see the same files and have hsicodec and the models installed.",
)
@click.option(
    "--workers",
    "-j",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Worker processes of the local cluster (one thread each). Default: the CPU count.",
)
@click.option(
    "--threads",
    "-t",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Threads per file (encoder / decoder kernel).",
)
@click.option("--force", "-f", is_flag=True, help="Redo files whose output is already up to date.")
@click.option(
    "--quiet",
    "-q",
    is_flag=True,
    help="No progress (bar or per-file lines) and no table; errors only.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print every file's result and the counts as JSON (and no per-file lines on stderr).",
)
def batch(
    patterns: tuple,
    outdir: Path,
    to_raster: bool,
    bpppb: float | None,
    psnr: float | None,
    max_error: float | None,
    lossless: bool,
    model: str | None,
    effort: Any,
    fmt: str | None,
    scheduler: str | None,
    workers: int | None,
    threads: int,
    force: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Compress (or with --decompress, decompress) every file matching GLOB into OUTDIR, in parallel.

    Files run on a local Dask cluster (--workers processes, one thread each) or on an
    existing one (--scheduler); needs the dask extra: pip install 'hsicodec[dask]'.
    Compressing writes OUTDIR/<stem>.hsim; decompressing OUTDIR/<stem>.tif (.hdr, .npy).
    Quote GLOB so the shell does not expand it ('**' matches folders recursively); a folder
    stands for the rasters in it (.tif, .tiff, .npy, .mat, .hdr), or with --decompress its .hsim files.

    An output at least as new as its input (a .hsim must also pass its checksums) is
    skipped, so rerunning an interrupted batch continues it; --force redoes everything.
    Outputs are written atomically: a file at an output path is always complete.
    A file that fails is reported and the others go on; the exit code is 1 if any failed.
    The table gives each file's rate (bpppb), PSNR against the source (compress; over the
    valid values, as compress reports it) and time. Progress goes to stderr: a bar on a
    terminal, else one line per finished file (-q: none).

    \b
    Examples:
      hsicodec batch 'scenes/*.tif' out/ --bpppb 0.05 --workers 4
      hsicodec batch 'out/*.hsim' restored/ --decompress --format npy
      hsicodec batch 'cubes/**/*.npy' out/ --psnr 40 --scheduler tcp://10.0.0.5:8786 --json
    """
    from hsicodec.integrations import batch as batch_mod

    if sum(v is not None for v in (bpppb, psnr, max_error)) + lossless > 1:
        raise click.UsageError("--bpppb, --psnr, --max-error and --lossless are mutually exclusive: give one target")
    compress_only = (bpppb, psnr, max_error, model, effort)
    if to_raster and (any(v is not None for v in compress_only) or lossless):
        raise click.UsageError(
            "--bpppb, --psnr, --max-error, --lossless, --model and --effort are compress options; they do not go "
            "with --decompress"
        )
    if fmt is not None and not to_raster:
        raise click.UsageError("--format is the output format of --decompress")
    if scheduler is not None and workers is not None:
        raise click.UsageError("--workers sizes the local cluster; it does not go with --scheduler")
    options = batch_mod.BatchOptions(
        decompress=to_raster,
        bpppb=bpppb,
        psnr=psnr,
        max_error=0.0 if lossless else max_error,
        model=model,
        effort=effort if effort is not None else "default",
        format=fmt.lower() if fmt else None,
        threads=threads,
    )
    jobs = batch_mod.plan(patterns, outdir, decompress=to_raster, format=options.format, force=force)
    todo = sum(not j.skip for j in jobs)
    if not quiet and not as_json:
        click.echo(
            f"{len(jobs)} file(s): {todo} to {'decompress' if to_raster else 'compress'}, "
            f"{len(jobs) - todo} up to date",
            err=True,
        )
    if todo:
        outdir.mkdir(parents=True, exist_ok=True)
        if scheduler is None:
            workers = min(workers or os.cpu_count() or 1, todo)
        failed = 0
        with (
            batch_mod.open_client(scheduler, workers) as client,
            _ItemProgress(not quiet, "batch", total=todo, unit="file", lines=not as_json) as progress,
        ):

            def on_result(row: dict) -> None:  # a file completed
                nonlocal failed
                failed += row["status"] == "failed"
                progress.item(_result_line(row), failed=failed)

            rows = batch_mod.run_batch(client, jobs, options, on_result)
    else:
        rows = [batch_mod.skipped_result(j, to_raster) for j in jobs]
    counts = batch_mod.summarize(rows)
    if as_json:
        _print_json({"files": rows, "summary": counts})
    elif not quiet:
        for line in _batch_table(rows):
            click.echo(line)
    for row in rows:
        if row["status"] == "failed":
            click.echo(f"{PROG}: error: {row['input']}: {_one_line(row['error'])}", err=True)
    if counts["failed"]:
        click.echo(f"{PROG}: error: {counts['failed']} of {counts['total']} file(s) failed", err=True)
        sys.exit(EXIT_ERROR)


def _result_line(row: dict) -> str:
    """The log line of one finished file: 'IN -> OUT: done, BPPPB bpppb, PSNR dB, SECONDS s' (no PSNR when
    decompressing) or 'IN -> OUT: failed: ERROR'."""
    head = f"{row['input']} -> {row['output']}: {row['status']}"
    if row["status"] == "failed":
        return f"{head}: {_one_line(row.get('error') or 'unknown error')}"
    parts = [head]
    if isinstance(row.get("bpppb"), float):
        parts.append(f"{row['bpppb']:.4g} bpppb")
    if isinstance(row.get("psnr"), float):
        parts.append(f"{row['psnr']:.2f} dB")
    if isinstance(row.get("seconds"), float):
        parts.append(f"{row['seconds']:.2f} s")
    return ", ".join(parts)


def _batch_table(rows: list) -> list[str]:
    """FILE, STATUS, BPPPB, PSNR, TIME columns, then the counts."""
    table = [("FILE", "STATUS", "BPPPB", "PSNR dB", "TIME s")]
    for r in rows:
        table.append(
            (
                str(r["input"]),
                r["status"],
                f"{r['bpppb']:.4f}" if isinstance(r.get("bpppb"), float) else "-",
                f"{r['psnr']:.2f}" if isinstance(r.get("psnr"), float) else "-",
                f"{r['seconds']:.2f}" if isinstance(r.get("seconds"), float) else "-",
            )
        )
    widths = [max(len(t[i]) for t in table) for i in range(5)]
    lines = [
        "  ".join(c.ljust(w) if i == 0 or i == 1 else c.rjust(w) for i, (c, w) in enumerate(zip(t, widths))).rstrip()
        for t in table
    ]
    c = {"done": 0, "skipped": 0, "failed": 0}
    for r in rows:
        c[r["status"]] = c.get(r["status"], 0) + 1
    lines.append(f"{len(rows)} file(s): {c['done']} done, {c['skipped']} skipped (up to date), {c['failed']} failed")
    return lines
