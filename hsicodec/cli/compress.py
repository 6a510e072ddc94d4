"""``hsicodec compress``, ``hsicodec decompress`` and ``hsicodec info``: the .hsim file commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import click

from hsicodec.cli.common import (
    _CONTEXT,
    _codec,
    _human_bytes,
    _model_label,
    _num,
    _print_json,
    _Progress,
    _render,
    _shape_text,
    _short_value,
    _stderr_is_tty,
)
from hsicodec.cli.options import (
    BandsType,
    EffortType,
    WindowType,
    _number_list,
    _positive_float,
    raster_layout_options,
)


@click.command(context_settings=_CONTEXT)
@click.argument("src", metavar="IN", type=click.Path(dir_okay=True, path_type=Path))
@click.argument("dst", metavar="OUT", type=click.Path(path_type=Path))
@click.option(
    "--bpppb",
    type=float,
    default=None,
    callback=_positive_float(),
    metavar="X",
    help="Target rate in bits per pixel per band (the whole .hsim file counts). "
    "Default when no target is given: 0.05, or the smallest file where the cube allows none that small "
    "(a tiny chip; the summary says so). An explicit --bpppb below the smallest file is an error.",
)
@click.option(
    "--psnr",
    type=float,
    default=None,
    callback=_positive_float(),
    metavar="DB",
    help="Target quality: the smallest file reaching this PSNR in dB "
    "(peak = max - min of the input). Excludes --bpppb.",
)
@click.option(
    "--max-error",
    type=float,
    default=None,
    metavar="E",
    help="Keep every value within E of the original, in the cube's units (checked by a real decode before "
    "the file is written; NaN, ±Inf and nodata are kept exactly). Excludes --bpppb and --psnr.",
)
@click.option("--lossless", is_flag=True, help="Bit-exact (--max-error 0; integer cubes). Excludes --bpppb and --psnr.")
@click.option(
    "--or-smallest",
    is_flag=True,
    help="With --bpppb: where the cube allows no file that small, write its smallest file instead of failing "
    "(what the default rate always does); the summary says so.",
)
@click.option(
    "--model",
    "-m",
    default=None,
    metavar="ID|ALIAS",
    help="Base model: alias, full sha256 or a unique prefix of 8+ hex digits "
    "(see 'hsicodec models list'). Default: the codec's default model.",
)
@click.option(
    "--effort",
    "-e",
    type=EffortType(),
    default="default",
    show_default=True,
    metavar="fast|default|max|N",
    help="Encoder effort: fast, default, max, or 0-100 (0-33 fast, 34-66 default, 67-100 max); more effort "
    "= better quality at the same rate, slower.",
)
@click.option(
    "--layer",
    default="auto",
    show_default=True,
    metavar="auto|all|maps|network|predictive",
    help="What codes the scene: the coefficient-map layer (PCA maps, CDF 9/7, context-modelled; the file "
    "then needs no model), the base network's latents, the predictive layer (every value on a lattice; what "
    "--lossless and --max-error use), any other registered layer; auto: the cheapest that meets the target "
    "unless a later one is predicted better (every layer at --effort max or with --model), all: every layer.",
)
@raster_layout_options
@click.option(
    "--band-map",
    default=None,
    metavar="I,J,...|FILE",
    help="For plain (non-adaptive) models: the model output of every band, as a comma-separated "
    "list or a text file of integers. Stored in the file.",
)
@click.option(
    "--wavelengths",
    default=None,
    metavar="W1,W2,...|FILE",
    help="Band centre wavelengths, to match bands to a plain model's outputs by the nearest "
    "model wavelength (default: the input's own wavelength metadata).",
)
@click.option(
    "--tile",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Cut the scene into independent N x N tiles, read, compressed (and later decoded) one at a "
    "time, so memory does not grow with the scene; --bpppb/--psnr apply per tile. 0 = never "
    "tile. Default: 512 x 512 tiles for inputs of more than 2**26 values, else one cube.",
)
@click.option(
    "--shared-basis",
    is_flag=True,
    help="With --tile: one spectral stage (mean and principal spectra) for the whole scene, stored once, "
    "that every tile codes on: small tiles spend far less on side information (64 x 64: 4-6 %% of their "
    "bits instead of 12-17 %%; bench/shared.md).",
)
@click.option(
    "--tile-threads",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Tiles encoded at once on local threads, each with its share of --threads; 0 (default) = one per 4 "
    "cores. The file is the same for any N. A rate target (--bpppb, the default rate) runs at most --carry-lag "
    "tiles at once.",
)
@click.option(
    "--carry-lag",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="With a rate target on tiles: each tile's budget waits only for the bytes of the tile N before it, so N "
    "tiles can be encoded at once (on --tile-threads or the --scheduler cluster). Default 1: each tile waits for "
    "the one before. The file depends on N, not on where or how many tiles run (bench/tiles.md: RD of N).",
)
@click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="Encode the scene's tiles on an existing Dask cluster (e.g. tcp://host:8786) instead of locally: "
    "each tile's pixels go to a worker, the file is written here, identical to a local encode. Needs tiles "
    "(--tile N, or an input over 2**26 values), the dask extra, and hsicodec and the models on the workers.",
)
@click.option(
    "--post-filter",
    is_flag=True,
    help="Let the coefficient-map layer add its post filter (a few coded taps over the decoded maps) where it "
    "measures better at the same size; rate targets only (+0.0-0.1 dB, bench/stages.md); always tried at "
    "--effort max.",
)
@click.option(
    "--synthesis",
    is_flag=True,
    help="Let the coefficient-map layer add its nonlinear synthesis (the shared network hsi-synth-v1 over the "
    "decoded maps, 8 coded shifts and a readout) where it measures better at the same size; rate targets only "
    "(+0.0-0.15 dB, slower encode; bench/stages.md; always tried at --effort max); the file then needs that "
    "network to decode (bundled).",
)
@click.option(
    "--learned-entropy",
    is_flag=True,
    help="Code the coefficient maps under the learned entropy model (hsi-lem-v1, 1-6 %% fewer map bits, "
    "slower decode; bench/entropy_model.md) where it saves bytes; the file then needs that model to decode.",
)
@click.option(
    "--recon-table/--no-recon-table",
    default=True,
    show_default=True,
    help="Put back in each coefficient-map bin the offset of the trained reconstruction table (hsi-recon-v1, "
    "spec/hsim.md 10.13); --no-recon-table: one offset for all, 0.02-0.1 dB lower, for hsicodec releases "
    "before grid version 9.",
)
@click.option(
    "--nodata",
    type=float,
    default=None,
    metavar="V",
    help="Value that marks missing data (default: the input's own nodata); kept exactly, with NaN and ±Inf.",
)
@click.option(
    "--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Free-form tag stored in the file (repeatable)."
)
@click.option("--threads", type=click.IntRange(min=0), default=0, metavar="N", help="Threads; 0 = all cores.")
@click.option(
    "--backend",
    type=click.Choice(["auto", "native", "numpy", "torch"], case_sensitive=False),
    default="auto",
    show_default=True,
    help="Network evaluation of the latent fit: the C++ kernel (auto, native), numpy, or torch.",
)
@click.option("--force", "-f", is_flag=True, help="Overwrite OUT if it exists.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary line.")
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON on stdout.")
def compress(
    src: Path,
    dst: Path,
    bpppb: float | None,
    psnr: float | None,
    max_error: float | None,
    lossless: bool,
    or_smallest: bool,
    model: str | None,
    effort: Any,
    layer: str,
    var: str | None,
    band_first: bool,
    band_map: str | None,
    wavelengths: str | None,
    tile: int | None,
    shared_basis: bool,
    tile_threads: int | None,
    carry_lag: int | None,
    scheduler: str | None,
    post_filter: bool,
    synthesis: bool,
    learned_entropy: bool,
    recon_table: bool,
    nodata: float | None,
    tags: tuple[str, ...],
    threads: int,
    backend: str,
    force: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Compress the hyperspectral cube IN into the .hsim file OUT.

    IN is any raster hsicodec reads: GeoTIFF or anything else GDAL opens, ENVI (data
    file or .hdr), .npy (rows, cols, bands) or .mat. Georeferencing and spectral
    metadata (CRS, transform, nodata, wavelengths, FWHM, band names) are kept in OUT.

    Prints one line: shape, file size, bpppb, time and model (unless --quiet). Without a
    target the default rate (0.05 bpppb) applies; a cube too small for it (a few pixels,
    a small chip) gets its smallest file instead, and the line says so.

    \b
    Examples:
      hsicodec compress scene.tif scene.hsim
      hsicodec compress scene.tif scene.hsim --bpppb 0.05
      hsicodec compress cube.npy cube.hsim --psnr 35 --effort max --model hsi-grid-v1
      hsicodec compress data.mat data.hsim --var indian_pines --json
      hsicodec compress big.tif big.hsim --psnr 40 --tile 512 --scheduler tcp://10.0.0.5:8786
    """
    if sum(v is not None for v in (bpppb, psnr, max_error)) + lossless > 1:
        raise click.UsageError("--bpppb, --psnr, --max-error and --lossless are mutually exclusive: give one target")
    if or_smallest and (psnr is not None or max_error is not None or lossless):
        raise click.UsageError("--or-smallest goes with a rate (--bpppb), not with --psnr, --max-error or --lossless")
    if carry_lag is not None and (psnr is not None or max_error is not None or lossless):
        raise click.UsageError("--carry-lag goes with a rate (--bpppb or the default rate), not with a quality target")
    if scheduler is not None and tile_threads is not None:
        raise click.UsageError("--tile-threads sizes the local tile threads; it does not go with --scheduler")
    if scheduler is not None and tile == 0:
        raise click.UsageError("--scheduler spreads the tiles of a scene over a cluster; it does not go with --tile 0")
    from hsicodec.io.atomic import check_writable
    from hsicodec.io.hsimfile import check_hsim_output

    check_hsim_output(dst)  # out.tif would hold a .hsim file: refused
    check_writable(dst, force)  # fail before the (slow) encode; the codec checks again
    codec = _codec()
    show = not quiet and _stderr_is_tty()
    with _Progress(show, "compress") as bar:
        stats = codec.compress_file(
            src,
            dst,
            force=force,
            var=var,
            band_first=band_first,
            model=model,
            bpppb=bpppb,
            psnr=psnr,
            max_error=max_error,
            lossless=lossless,
            or_smallest=or_smallest,
            effort=effort,
            progress=bar.fraction,
            band_map=_number_list(band_map, int, "--band-map"),
            wavelengths=_number_list(wavelengths, float, "--wavelengths"),
            tile=tile,
            shared_basis=shared_basis,
            tile_threads=tile_threads or 0,
            scheduler=scheduler,
            **({"carry_lag": carry_lag} if carry_lag is not None else {}),
            tile_progress=_tile_postfix(bar),
            layer=layer,
            nodata=nodata,
            tags=_tags(tags),
            threads=threads,
            backend=backend.lower(),
            **({"post_filter": True} if post_filter else {}),
            **({"synthesis": True} if synthesis else {}),
            **({"learned_entropy": True} if learned_entropy else {}),
            **({} if recon_table else {"recon_table": False}),
        )
    if as_json:
        _print_json(stats)
    elif not quiet:
        click.echo(_compress_summary(src, dst, stats))


def _tags(items: tuple[str, ...]) -> dict | None:
    """``--tag KEY=VALUE`` options as a dict (None without any)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--tag")
        out[key] = value
    return out or None


def _tile_postfix(bar: _Progress) -> Callable[[int, int], None]:
    """Progress callback of tiled files: 'tile i/n' beside the bar, which advances per tile."""

    def update(done: int, total: int) -> None:
        bar.set(done / max(total, 1) * bar.total, tile=f"{done}/{total}")

    return update


def _compress_summary(src: Path, dst: Path, stats: dict) -> str:
    parts = []
    if "shape" in stats:
        parts.append(f"{_shape_text(stats['shape'])} {stats.get('dtype', '')}".strip())
    if "bytes" in stats:
        parts.append(f"{stats['bytes']:,} bytes" if isinstance(stats["bytes"], int) else f"{stats['bytes']} bytes")
    if "bpppb" in stats:
        parts.append(f"{_num(stats['bpppb'])} bpppb")
    if stats.get("psnr") is not None:
        parts.append(f"PSNR {_num(stats['psnr'], 4)} dB")
    if stats.get("target_max_error") is not None:
        bound = stats["target_max_error"]
        parts.append("lossless" if bound == 0 else f"max error {_num(bound)}")
    seconds = stats.get("total_seconds", stats.get("seconds"))
    if isinstance(seconds, (int, float)):
        parts.append(f"{seconds:.2f} s")
    if stats.get("layer"):
        parts.append(f"layer {stats['layer']}")
    if stats.get("model") is not None:
        parts.append("model " + _model_label(stats["model"], stats.get("model_alias") or stats.get("alias")))
    line = f"{src} -> {dst}: " + ", ".join(parts)
    target = stats.get("target_bpppb")
    if stats.get("target_fallback") and isinstance(target, (int, float)) and isinstance(stats.get("bpppb"), float):
        kind = "default target" if stats.get("target_default", True) else "target"
        chosen = f"{stats['target_fallback']}, {stats['bpppb']:.3g} bpppb"
        return line + f" ({kind} {_num(target)} bpppb not reachable: {chosen})"
    if (
        isinstance(target, (int, float))
        and isinstance(stats.get("bpppb"), (int, float))
        and stats["bpppb"] < 0.9 * target
    ):
        line += (
            f" (below the --bpppb {_num(target)} target: the {stats.get('layer', 'chosen')} layer's files of this "
            "cube stop growing here)"
        )
    return line


@click.command(context_settings=_CONTEXT)
@click.argument("src", metavar="IN", type=click.Path(path_type=Path))
@click.argument("dst", metavar="OUT", type=click.Path(path_type=Path))
@click.option(
    "--window",
    "-w",
    type=WindowType(),
    default=None,
    help="Decode only this pixel window: ROW,COL,HEIGHT,WIDTH (0-based top-left corner and "
    "size in pixels), e.g. 100,200,256,256. Default: the whole image. Excludes --bounds.",
)
@click.option(
    "--bounds",
    type=float,
    nargs=4,
    default=None,
    metavar="LEFT BOTTOM RIGHT TOP",
    help="Decode only the pixels within this box in the file's map coordinates (its CRS), like rio's "
    "--bounds and gdal_translate -projwin: rounded outward to whole pixels, clipped to the image. "
    "Excludes --window.",
)
@click.option(
    "--bands",
    "-b",
    type=BandsType(),
    default=None,
    help="Decode only bands A to B-1 (0-based, B excluded), e.g. 0:50, or the one band N (0-based), "
    "e.g. 5. Default: all bands.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["gtiff", "envi", "npy"], case_sensitive=False),
    default=None,
    help="Output format. Default: from OUT's extension (.tif, .hdr/.img, .npy).",
)
@click.option(
    "--co",
    "creation_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="GDAL GeoTIFF creation option (repeatable), e.g. --co COMPRESS=ZSTD --co TILED=NO. "
    "Default GeoTIFF layout: 256x256 tiles where the image is that big, DEFLATE with predictor 2 "
    "(integers) or 3 (floats), BigTIFF when needed. GeoTIFF output only.",
)
@click.option(
    "--reduce",
    type=click.IntRange(0, 16),
    default=0,
    metavar="N",
    help="Decode the image 2^N times smaller on each side, one pixel per 2^N x 2^N block (the geo transform "
    "scaled to match), e.g. --reduce 2 for a quarter of the width. Coefficient-map files (the default) decode "
    "only their coarse wavelet levels: an estimate of the block means, not exactly them; other files give "
    "the exact block means of a full decode. Default: 0, full resolution.",
)
@click.option(
    "--threads",
    "-t",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Decoder threads; 0 = all available cores.",
)
@click.option(
    "--tile-threads",
    type=click.IntRange(min=0),
    default=0,
    metavar="N",
    help="Tiles of a tiled file decoded at once, each holding its decoded tile (a 512 x 512 x 224 tile is 117 MB "
    "of int16). 0 (default) = 1: writing the raster sets the pace, so more tiles at once only cost memory. "
    "The pixels are the same.",
)
@click.option(
    "--backend",
    type=click.Choice(["auto", "native", "numpy", "cuda"]),
    default="auto",
    show_default=True,
    help="Network evaluation: auto (C++ kernel, else numpy), native, numpy, or cuda (the optional GPU "
    "kernel, built with HSICODEC_CUDA=1; never chosen by auto).",
)
@click.option("--force", "-f", is_flag=True, help="Overwrite OUT if it exists.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary line.")
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON on stdout.")
def decompress(
    src: Path,
    dst: Path,
    window: tuple[int, int, int, int] | None,
    bounds: tuple[float, float, float, float] | None,
    bands: tuple[int, int] | None,
    fmt: str | None,
    creation_options: tuple[str, ...],
    reduce: int,
    threads: int,
    tile_threads: int,
    backend: str,
    force: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Decode the .hsim file IN into the raster OUT (GeoTIFF, ENVI or .npy).

    The cube comes back in its original dtype, with its georeferencing and spectral
    metadata (a window or band subset keeps the matching part of them). The base model
    named in IN must be installed (see 'hsicodec models'). GeoTIFF output is tiled and
    DEFLATE-compressed (--co changes that); a window in map coordinates is --bounds.

    \b
    Examples:
      hsicodec decompress scene.hsim scene_out.tif
      hsicodec decompress scene.hsim tile.npy --window 0,0,256,256 --bands 10:60
      hsicodec decompress scene.hsim band5.tif --bands 5 --co COMPRESS=ZSTD
      hsicodec decompress scene.hsim overview.tif --reduce 2
      hsicodec decompress scene.hsim scene.img --format envi --threads 2
      hsicodec decompress scene.hsim scene_out.tif --backend cuda
    """
    from hsicodec.io.atomic import check_writable
    from hsicodec.io.formats import write_format
    from hsicodec.io.geotiff import parse_creation_options

    if window is not None and bounds is not None:
        raise click.UsageError("--window and --bounds are mutually exclusive: give one")
    options = parse_creation_options(creation_options)  # malformed KEY=VALUE: one line, before anything else
    check_writable(dst, force)
    out_format = write_format(dst, fmt)  # an output name that tells no writable format: refused before decoding
    if options and out_format != "gtiff":
        raise click.UsageError(f"--co (GDAL creation options) applies to GeoTIFF output only, not {out_format}")
    if backend == "cuda":
        from hsicodec.layers.network.siren import cuda_module

        cuda_module()  # fail now, in one line, where the GPU kernel cannot run
    codec = _codec()
    with _Progress(not quiet and _stderr_is_tty(), "decompress") as bar:
        stats = codec.decompress_file(
            src,
            dst,
            force=force,
            format=fmt.lower() if fmt else None,
            window=window,
            bounds=bounds,
            bands=bands,
            threads=threads,
            backend=backend,
            progress=bar.fraction,
            tile_progress=_tile_postfix(bar),
            creation_options=options or None,
            reduce=reduce,
            tile_threads=tile_threads,
        )
    if as_json:
        _print_json(stats)
    elif not quiet:
        parts = []
        stats = stats or {}
        if "shape" in stats:
            parts.append(f"{_shape_text(stats['shape'])} {stats.get('dtype', '')}".strip())
        if stats.get("format"):
            parts.append(str(stats["format"]))
        seconds = stats.get("total_seconds", stats.get("seconds"))
        if isinstance(seconds, (int, float)):
            parts.append(f"{seconds:.2f} s")
        click.echo(f"{src} -> {dst}" + (": " + ", ".join(parts) if parts else ""))


@click.command(context_settings=_CONTEXT)
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the full summary as JSON.")
@raster_layout_options
@click.option(
    "--no-estimate",
    is_flag=True,
    help="Rasters: do not run the default compress to measure its rate (only the metadata is read).",
)
def info(file: Path, as_json: bool, var: str | None, band_first: bool, no_estimate: bool) -> None:
    """Describe the .hsim file or raster FILE.

    A .hsim file is described without decoding it: the format version, cube shape and
    dtype, file size and rate (bpppb), the spectral stage and the coding layers with their
    parameters, the base model (sha256 and alias if installed; none for files that need
    none), georeferencing, tags and the payload sections with their sizes. --json adds the
    raw header fields.

    Any raster compress reads (GeoTIFF, ENVI, .npy, .mat) is described from its metadata
    (shape, dtype, CRS, transform and bounds, nodata, wavelengths), plus the rate a default
    'hsicodec compress' gives it: measured by compressing it in memory when the cube holds
    at most 2**21 values (about 100 x 100 x 205; a second or two), else the default target.

    \b
    Examples:
      hsicodec info scene.hsim
      hsicodec info scene.hsim --json | jq .geo
      hsicodec info scene.tif
      hsicodec info cube.npy --json | jq .default_compress
    """
    codec = _codec()
    hsim = _is_hsim(file)
    if hsim:
        summary = codec.file_info(file)
    else:
        summary = codec.raster_info(file, var=var, band_first=band_first, estimate=not no_estimate)
    if as_json:
        _print_json(summary)
        return
    for line in _info_lines(file, summary) if hsim else _raster_info_lines(file, summary):
        click.echo(line)


def _is_hsim(path: Path) -> bool:
    """Whether ``path`` starts with the .hsim magic bytes (a folder or a missing file: no; the raster reader
    then names the problem)."""
    from hsicodec.format.container import MAGIC

    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return path.suffix.lower() == ".hsim"  # the .hsim reader's own message


def _raster_info_lines(file: Path, d: dict) -> list[str]:
    """Human-readable lines for :func:`hsicodec.codec.api.raster_info`'s dict."""
    lines = [f"file: {file}"]
    if d.get("format"):
        lines.append(f"format: {d['format']}")
    lines.append(f"cube: {_shape_text(d['shape'])} (rows x cols x bands), {d['dtype']}")
    lines.append(f"size: {d['raw_bytes']:,} bytes of pixels ({_human_bytes(d['raw_bytes'])})")
    crs = d.get("crs")
    lines.append("crs: " + (_short_value(crs, 100) if crs else "(none)"))
    if d.get("transform") is not None:
        lines.append("transform: " + ", ".join(_num(float(v), 10) for v in d["transform"]))
        lines.append("bounds: " + " ".join(_num(float(v), 10) for v in d["bounds"]) + " (left bottom right top)")
    else:
        lines.append("transform: (none)")
    lines.append(f"nodata: {_short_value(d['nodata']) if d.get('nodata') is not None else '(none)'}")
    wl = d.get("wavelengths")
    if wl:
        units = f" {d['wavelength_units']}" if d.get("wavelength_units") else ""
        lines.append(f"wavelengths: {_num(float(min(wl)), 6)} to {_num(float(max(wl)), 6)}{units} ({len(wl)} bands)")
    else:
        lines.append("wavelengths: (none)")
    if d.get("units"):
        lines.append(f"units: {d['units']}")
    dc = d.get("default_compress") or {}
    target = dc.get("target_bpppb")
    if dc.get("measured"):
        text = f"default compress: {dc['bytes']:,} bytes, {_num(dc['bpppb'])} bpppb"
        if dc.get("psnr") is not None:
            text += f", PSNR {_num(dc['psnr'])} dB"
        text += f", layer {dc.get('layer')}, ratio {dc['ratio']:.0f}:1"
        if dc.get("target_fallback"):
            text += f" (default target {_num(target)} bpppb not reachable: {dc['target_fallback']})"
        lines.append(text)
    else:
        tiled = " per 512 x 512 tile" if dc.get("tiled") else ""
        lines.append(f"default compress: target {_num(target)} bpppb{tiled} (not measured: {dc.get('reason')})")
    return lines


def _info_lines(file: Path, summary: dict) -> list[str]:
    """Human-readable lines for :func:`hsicodec.codec.api.file_info`'s dict (unknown keys printed generically)."""
    d = {k: v for k, v in summary.items() if k not in ("path", "file")}
    lines = [f"file: {file}"]
    version = d.pop("format_version", d.pop("version", None))
    if version is not None:
        v = ".".join(str(x) for x in version) if isinstance(version, (list, tuple)) else str(version)
        lines.append(f"format: hsim {v}")
    if "shape" in d:
        shape = d.pop("shape")
        lines.append(f"cube: {_shape_text(shape)} (rows x cols x bands), {d.pop('dtype', '?')}")
    for key in ("file_bytes", "file_size", "size", "bytes"):
        if isinstance(d.get(key), int):
            n = d.pop(key)
            lines.append(f"size: {n:,} bytes ({_human_bytes(n)})")
            break
    if "bpppb" in d:
        lines.append(f"rate: {_num(d.pop('bpppb'), 5)} bpppb")
    d.pop("model_needed", None)
    coding = d.pop("coding", None)
    raw_codec = d.pop("codec", None)
    if isinstance(coding, dict) and "layers" in coding:
        sp = coding["spectral"]
        lines.append(f"spectral stage: {sp['mode']}, {sp['components']} component(s)")
        for name, params in coding["layers"].items():
            lines.append(f"layer {name}: " + ", ".join(f"{k} {_short_value(v)}" for k, v in params.items()))
    elif isinstance(coding, dict):
        lines.append(f"coding: {coding.get('error')}")
    elif isinstance(raw_codec, dict):
        lines.append(f"codec: {raw_codec.get('id')} (see --json for its fields)")
    if "model" in d:
        sha = d.pop("model")
        alias = d.pop("model_alias", None)
        installed = d.pop("model_installed", None)
        note = f" ({alias})" if alias else ""
        if sha is None:
            lines.append("model: none needed (no layer of this file uses a base model)")
        else:
            if installed is False:
                note += " -- NOT INSTALLED here: decoding needs it (see 'hsicodec models add')"
            lines.append(f"model: {sha}{note}")
    sections = d.pop("sections", None)
    for key, v in d.items():
        if v is None or v == {} or v == []:
            lines.append(f"{key}: (none)")
        elif isinstance(v, dict):
            lines.append(f"{key}:")
            lines.extend(_render(v, 1))
        else:
            lines.extend(_render({key: v}))
    if sections:
        items = (
            list(sections.items())
            if isinstance(sections, dict)
            else [
                (s.get("name", "?"), s.get("size", s.get("bytes", "?"))) if isinstance(s, dict) else (str(s), "")
                for s in sections
            ]
        )
        lines.append(f"sections ({len(items)}):")
        width = max(len(str(n)) for n, _ in items)
        for name, size in items:
            size_text = f"{size:,} bytes" if isinstance(size, int) else _short_value(size)
            lines.append(f"  {str(name):<{width}}  {size_text}")
    return lines
