"""Compress or decompress many files in parallel on a Dask cluster.

Pure planning functions (:func:`expand_inputs`, :func:`plan`, :func:`is_up_to_date`),
one task that runs on a worker (:func:`process_file`, never raises: a failure is a
result with ``status="failed"`` and a one-line ``error``), and a driver
(:func:`run_batch`) that takes a ``distributed.Client``. :func:`open_client` starts a
local cluster (processes, one thread each) or connects to an existing scheduler.

Outputs are written atomically by :func:`hsicodec.codec.api.compress_file` /
:func:`~hsicodec.codec.api.decompress_file` (temporary file, then rename), so a file at
an output path is always complete; an output at least as new as its input is
skipped unless ``force`` (a ``.hsim`` output must also pass its checksums).

dask and distributed are the ``[dask]`` extra and are imported only when a cluster
is needed.
"""

from __future__ import annotations

import contextlib
import glob
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from hsicodec.errors import HsicodecError, OptionError
from hsicodec.integrations.cluster import ClusterError, error_message, import_distributed, scheduler_client

DECOMPRESS_EXTENSIONS = {"gtiff": ".tif", "envi": ".hdr", "npy": ".npy"}


class BatchError(ClusterError):
    """A batch cannot start (no inputs, clashing outputs, no dask, no cluster)."""


@dataclass
class Job:
    """One file to process: its input, output and whether it is already done."""

    src: str
    dst: str
    skip: bool = False


@dataclass
class BatchOptions:
    """What every file gets: the direction, and the options of compress or decompress."""

    decompress: bool = False
    bpppb: float | None = None
    psnr: float | None = None
    max_error: float | None = None  # every value within it (0: lossless)
    model: str | None = None
    effort: Any = "default"
    format: str | None = None  # decompress output format: gtiff (default), envi, npy
    threads: int = 1  # per file; workers already run files in parallel
    measure_psnr: bool = True  # compress: decode the written file and compare with the source
    extra: dict = field(default_factory=dict)  # more keyword arguments for compress_file


# --------------------------------------------------------------------------- planning (pure)


#: the files a folder given as an input stands for: rasters to compress, .hsim files to decompress
FOLDER_SUFFIXES = {False: (".tif", ".tiff", ".npy", ".mat", ".hdr"), True: (".hsim",)}


def expand_inputs(patterns: Sequence[str], folder_suffixes: Sequence[str] = ()) -> list[Path]:
    """Files matching any of the glob ``patterns`` (``**`` recursive), sorted, without duplicates.

    A pattern that is the name of an existing file matches it even when it contains
    glob characters; one that names a folder stands for the files directly in it whose
    suffix is one of ``folder_suffixes`` (case-insensitive). Folders matched by a glob are
    ignored; a pattern that matches nothing is an error.
    """
    seen: dict[str, Path] = {}
    for pattern in patterns:
        pattern = os.path.expanduser(str(pattern))
        if os.path.isdir(pattern):
            names = sorted(
                str(p) for p in Path(pattern).iterdir() if p.is_file() and p.suffix.lower() in folder_suffixes
            )
            if not names:
                raise BatchError(f"folder {pattern!r} holds no {', '.join(folder_suffixes)} file")
        else:
            names = [pattern] if os.path.isfile(pattern) else sorted(glob.glob(pattern, recursive=True))
        files = [Path(n) for n in names if os.path.isfile(n)]
        if not files:
            raise BatchError(f"no files match {pattern!r}")
        for f in files:
            seen.setdefault(os.path.realpath(f), f)
    return sorted(seen.values(), key=lambda p: str(p))


def output_path(src: Path, outdir: Path, decompress: bool = False, format: str | None = None) -> Path:
    """OUTDIR/<stem>.hsim when compressing; OUTDIR/<stem>.tif (.hdr for ENVI, .npy) when decompressing."""
    ext = DECOMPRESS_EXTENSIONS[(format or "gtiff").lower()] if decompress else ".hsim"
    return Path(outdir) / (Path(src).stem + ext)


def is_up_to_date(src: Path, dst: Path, decompress: bool = False) -> bool:
    """An output that exists, is at least as new as its input and (a .hsim) passes its checksums."""
    try:
        if not dst.is_file() or dst.stat().st_mtime_ns < Path(src).stat().st_mtime_ns:
            return False
    except OSError:
        return False
    if decompress:
        if dst.suffix.lower() == ".hdr":  # ENVI: the data file must be there too
            return dst.with_suffix(".img").is_file()
        return True
    try:
        from hsicodec.format.container import HsimReader

        with HsimReader(dst) as r:
            r.verify()
        return True
    except (HsicodecError, OSError):
        return False


def plan(
    patterns: Sequence[str], outdir: Path, *, decompress: bool = False, format: str | None = None, force: bool = False
) -> list[Job]:
    """The jobs of a batch: every matching input, its output and whether it can be skipped."""
    outdir = Path(outdir)
    if format is not None and format.lower() not in DECOMPRESS_EXTENSIONS:
        raise OptionError(f"unknown output format {format!r} (use gtiff, envi or npy)")
    inputs = expand_inputs(patterns, FOLDER_SUFFIXES[decompress])
    jobs: list[Job] = []
    owner: dict[str, Path] = {}
    for src in inputs:
        dst = output_path(src, outdir, decompress, format)
        key = os.path.normcase(os.path.abspath(dst))
        if key in owner:
            raise BatchError(
                f"{owner[key]} and {src} would both be written to {dst}; rename one or run them in separate batches"
            )
        if os.path.abspath(dst) == os.path.abspath(src):
            raise BatchError(f"{src} would be overwritten by its own output; choose another OUTDIR")
        owner[key] = src
        jobs.append(Job(str(src), str(dst), skip=not force and is_up_to_date(src, dst, decompress)))
    return jobs


# --------------------------------------------------------------------------- one file (runs on a worker)


def _result(job: Job, status: str, **kw: Any) -> dict:
    base = {
        "input": job.src,
        "output": job.dst,
        "status": status,
        "bpppb": None,
        "psnr": None,
        "seconds": None,
        "error": None,
    }
    base.update(kw)
    return base


def process_file(job: Job, options: BatchOptions) -> dict:
    """Compress (or decompress) one file; returns its result row and never raises.

    Row keys: input, output, status ("done" or "failed"), bpppb (of the .hsim), psnr
    (dB against the source over its valid values when compressing, :func:`measured_psnr`;
    None when decompressing), seconds,
    error (one line, failed rows only), worker, plus shape / bytes when known.
    """
    from hsicodec.codec import api as codec

    t0 = time.perf_counter()
    worker = f"{os.uname().nodename if hasattr(os, 'uname') else ''}:{os.getpid()}"
    try:
        Path(job.dst).parent.mkdir(parents=True, exist_ok=True)
        if options.decompress:
            stats = codec.decompress_file(job.src, job.dst, force=True, format=options.format, threads=options.threads)
            info = codec.file_info(job.src)
            return _result(
                job,
                "done",
                bpppb=info["bpppb"],
                seconds=time.perf_counter() - t0,
                worker=worker,
                shape=stats.get("shape"),
                bytes=info["file_bytes"],
            )
        stats = codec.compress_file(
            job.src,
            job.dst,
            force=True,
            bpppb=options.bpppb,
            psnr=options.psnr,
            max_error=options.max_error,
            model=options.model,
            effort=options.effort,
            threads=options.threads,
            **options.extra,
        )
        quality, measured = stats.get("psnr"), False
        if options.measure_psnr and not stats.get("tiled"):
            quality, measured = measured_psnr(job, options), True
        return _result(
            job,
            "done",
            bpppb=stats.get("bpppb"),
            psnr=None if quality is None else float(quality),
            psnr_measured=measured,
            seconds=time.perf_counter() - t0,
            worker=worker,
            shape=stats.get("shape"),
            bytes=stats.get("bytes"),
            model=stats.get("model"),
        )
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop the batch
        return _result(job, "failed", seconds=time.perf_counter() - t0, error=error_message(exc), worker=worker)


def measured_psnr(job: Job, options: BatchOptions) -> float:
    """PSNR of the written ``.hsim`` decoded, against its source, measured as ``compress`` measures it.

    Over the valid values only: NaN, ±Inf and the nodata value (``options.extra["nodata"]``, else
    the raster's) are left out, as the encoder leaves them out (they travel as an exact mask), so
    that value does not widen the peak R nor count in the MSE (docs/metrics.md).
    """
    from hsicodec.codec import api as codec
    from hsicodec.codec.mask import invalid_mask
    from hsicodec.io.raster import read_cube
    from hsicodec.metrics import psnr

    cube, geo = read_cube(
        job.src, var=options.extra.get("var"), band_first=bool(options.extra.get("band_first", False))
    )
    nodata = options.extra.get("nodata")
    if nodata is None and geo is not None:
        nodata = geo.nodata
    back, _ = codec.decompress(job.dst, threads=options.threads)
    invalid = invalid_mask(cube, nodata)
    return float(psnr(cube, back, valid=None if invalid is None else ~invalid))


def skipped_result(job: Job, decompress: bool = False) -> dict:
    """The row of a file skipped as already done (its rate read from the .hsim header)."""
    row = _result(job, "skipped")
    try:
        from hsicodec.codec.api import file_info

        info = file_info(job.src if decompress else job.dst)
        row.update(bpppb=info["bpppb"], bytes=info["file_bytes"], shape=info["shape"])
    except Exception:  # noqa: BLE001 - the row is informative only
        pass
    return row


# --------------------------------------------------------------------------- the cluster


def _import_distributed():
    return import_distributed("batch", BatchError)


@contextlib.contextmanager
def open_client(scheduler: str | None = None, workers: int | None = None, processes: bool = True) -> Iterator[Any]:
    """A ``distributed.Client``: to ``scheduler`` if given, else to a new local cluster.

    The local cluster has ``workers`` worker processes (default: the CPU count) with
    one thread each, no dashboard, and is shut down on exit.
    """
    if scheduler:
        with scheduler_client(scheduler, "batch", BatchError) as client:
            yield client
        return
    distributed = _import_distributed()
    n = workers if workers else (os.cpu_count() or 1)
    import logging

    # no dashboard; the scheduler's small HTTP server (health, metrics) on a free port, not 8787
    cluster = distributed.LocalCluster(
        n_workers=n,
        threads_per_worker=1,
        processes=processes,
        dashboard_address=":0",
        scheduler_kwargs={"dashboard": False},
        silence_logs=logging.ERROR,
    )
    try:
        client = distributed.Client(cluster)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


def run_batch(
    client: Any, jobs: Sequence[Job], options: BatchOptions, on_result: Callable[[dict], None] | None = None
) -> list[dict]:
    """Run every job not marked ``skip`` on ``client``; rows in the order of ``jobs``.

    ``on_result(row)`` is called as each file completes (in completion order). A
    task that dies with its worker is reported as failed like any other error.
    """
    distributed = _import_distributed()
    rows: list[dict | None] = [None] * len(jobs)
    futures = {}
    for i, job in enumerate(jobs):
        if job.skip:
            rows[i] = skipped_result(job, options.decompress)
            continue
        fut = client.submit(process_file, job, options, pure=False)
        futures[fut] = i
    for fut in distributed.as_completed(list(futures)):
        i = futures[fut]
        try:
            row = fut.result()
        except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker, a task that could not be sent
            row = _result(jobs[i], "failed", error=error_message(exc))
        rows[i] = row
        if on_result is not None:
            on_result(row)
    return [r for r in rows if r is not None]


def summarize(rows: Sequence[dict]) -> dict:
    """Counts per status (done, skipped, failed) and the total."""
    counts = {"done": 0, "skipped": 0, "failed": 0}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    counts["total"] = len(rows)
    return counts


def batch(
    patterns: Sequence[str],
    outdir: Path,
    options: BatchOptions | None = None,
    *,
    force: bool = False,
    scheduler: str | None = None,
    workers: int | None = None,
    client: Any = None,
    on_plan: Callable[[list], None] | None = None,
    on_result: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Plan and run a whole batch (Python entry point of ``hsicodec batch``); returns the rows.

    Uses ``client`` if given, else :func:`open_client` (``scheduler`` / ``workers``).
    No cluster is started when every output is up to date.
    """
    options = options or BatchOptions()
    jobs = plan(patterns, outdir, decompress=options.decompress, format=options.format, force=force)
    if on_plan is not None:
        on_plan(jobs)
    if client is not None or all(j.skip for j in jobs):
        return (
            run_batch(client, jobs, options, on_result)
            if client is not None
            else [skipped_result(j, options.decompress) for j in jobs]
        )
    Path(outdir).mkdir(parents=True, exist_ok=True)
    if scheduler is None:  # no more local workers than files to do
        workers = min(workers or os.cpu_count() or 1, sum(not j.skip for j in jobs))
    with open_client(scheduler, workers) as c:
        return run_batch(c, jobs, options, on_result)
