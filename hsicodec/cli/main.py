"""The ``hsicodec`` command line: argument parsing, progress bars and printing only.

Every command calls the public API (:mod:`hsicodec.codec.api`, :mod:`hsicodec.models.registry`,
:mod:`hsicodec.train.meta`); nothing here is out of reach of a Python user.

Error policy (see :meth:`HsicodecGroup.main`): a :class:`~hsicodec.errors.HsicodecError`
or an ``OSError`` becomes one line ``hsicodec: error: <message>`` on stderr and exit
code 1; a usage error (bad option) one line and exit code 2; Ctrl-C exit code 130; any
other exception one line ``hsicodec: internal error: ...`` and exit code 3, with the
traceback only when the environment variable ``HSICODEC_DEBUG=1``.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable

import click

from hsicodec._version import __version__
from hsicodec.errors import HsicodecError, ModelFormatError, TrainingError

PROG = "hsicodec"
DEBUG_ENV = "HSICODEC_DEBUG"
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130
EFFORT_NAMES = ("fast", "default", "max")

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


# --------------------------------------------------------------------------- errors


class _Interrupted(Exception):
    """Ctrl-C inside a command (raised instead of KeyboardInterrupt so click does not print 'Aborted!')."""


def _debug() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).strip().splitlines() if part.strip())


def _os_message(e: OSError) -> str:
    if e.strerror:
        names = [str(n) for n in (e.filename, e.filename2) if n is not None]
        return f"{' -> '.join(names)}: {e.strerror}" if names else e.strerror
    return str(e) or type(e).__name__


def _fail(message: str, code: int, internal: bool = False) -> None:
    if _debug():
        traceback.print_exc()
    kind = "internal error" if internal else "error"
    try:
        click.echo(f"{PROG}: {kind}: {_one_line(message)}", err=True)
    except OSError:  # stderr itself is gone
        pass
    sys.exit(code)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    text = f"{PROG}: warning: {_one_line(str(message))}"
    try:
        if _Progress.active:
            from tqdm import tqdm

            tqdm.write(text, file=sys.stderr)  # above the progress bar, not through it
        else:
            click.echo(text, err=True)
    except OSError:
        pass


class HsicodecGroup(click.Group):
    """The top-level group: turns every error into one line on stderr and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise _Interrupted() from None

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            try:
                rv = super().main(args, prog_name or PROG, complete_var, standalone_mode=False, **extra)
            except SystemExit:
                raise
            except click.exceptions.NoArgsIsHelpError as e:
                e.show()
                sys.exit(e.exit_code)
            except click.UsageError as e:
                hint = ""
                if e.ctx is not None:
                    hint = f" (see '{e.ctx.command_path} --help')"
                _fail(e.format_message() + hint, e.exit_code)
            except click.ClickException as e:
                _fail(e.format_message(), e.exit_code)
            except (click.Abort, _Interrupted, KeyboardInterrupt):
                _fail("interrupted", EXIT_INTERRUPTED)
            except HsicodecError as e:
                _fail(str(e) or type(e).__name__, EXIT_ERROR)
            except OSError as e:
                _fail(_os_message(e), EXIT_ERROR)
            except MemoryError:
                _fail("out of memory", EXIT_ERROR)
            except Exception as e:  # noqa: BLE001 - the last line of defence
                msg = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
                if not _debug():
                    msg += f" (set {DEBUG_ENV}=1 for a traceback; please report this)"
                _fail(msg, EXIT_INTERNAL, internal=True)
        sys.exit(rv if isinstance(rv, int) and not isinstance(rv, bool) else 0)


# --------------------------------------------------------------------------- parameter types


class EffortType(click.ParamType):
    """``fast``, ``default``, ``max`` or an integer 0..100."""

    name = "fast|default|max|N"

    def convert(self, value: Any, param, ctx) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            n = value
        else:
            text = str(value).strip().lower()
            if text in EFFORT_NAMES:
                return text
            if not re.fullmatch(r"\d+", text):
                self.fail(f"{value!r} is not fast, default, max or an integer 0-100", param, ctx)
            n = int(text)
        if not 0 <= n <= 100:
            self.fail(f"{n} is outside 0-100", param, ctx)
        return n


class WindowType(click.ParamType):
    """``ROW,COL,HEIGHT,WIDTH``: non-negative integers, height and width at least 1."""

    name = "ROW,COL,H,W"

    def convert(self, value: Any, param, ctx) -> Any:
        if isinstance(value, tuple):
            return value
        parts = str(value).split(",")
        if len(parts) != 4 or not all(re.fullmatch(r"\s*\d+\s*", p) for p in parts):
            self.fail(
                f"{value!r} is not ROW,COL,HEIGHT,WIDTH (four non-negative integers, e.g. 0,0,256,256)", param, ctx
            )
        row, col, h, w = (int(p) for p in parts)
        if h < 1 or w < 1:
            self.fail(f"{value!r}: height and width must be at least 1", param, ctx)
        return (row, col, h, w)


class BandsType(click.ParamType):
    """``A:B``: the bands A (inclusive) to B (exclusive), counted from 0."""

    name = "A:B"

    def convert(self, value: Any, param, ctx) -> Any:
        if isinstance(value, tuple):
            return value
        m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", str(value))
        if not m:
            self.fail(
                f"{value!r} is not A:B (first band, one past the last band, counted from 0; e.g. 0:50)", param, ctx
            )
        a, b = int(m.group(1)), int(m.group(2))
        if a >= b:
            self.fail(f"{value!r}: A must be less than B (the range is [A, B))", param, ctx)
        return (a, b)


def _positive_float() -> Callable:
    def check(ctx, param, value):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise click.BadParameter(f"{value} is not a positive number", ctx, param)
        return value

    return check


# --------------------------------------------------------------------------- printing helpers


def _human_bytes(n: Any) -> str:
    try:
        n = int(n)
    except (TypeError, ValueError):
        return str(n)
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024.0
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}"
    return f"{n} B"  # pragma: no cover


def _shape_text(shape: Any) -> str:
    if isinstance(shape, (list, tuple)):
        return "x".join(str(v) for v in shape)
    return str(shape)


def _num(v: Any, digits: int = 4) -> str:
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def _json_default(obj: Any) -> Any:
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        if isinstance(obj, np.dtype):
            return obj.name
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj).hex()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "to_header"):  # GeoInfo
        return obj.to_header()
    return str(obj)


def _print_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, default=_json_default, allow_nan=True))


def _short_value(v: Any, width: int = 100) -> str:
    if isinstance(v, (bytes, bytearray)):
        return f"<{len(v)} bytes>"
    if isinstance(v, float):
        return _num(v, 6)
    if isinstance(v, (list, tuple)) and any(isinstance(x, (list, tuple, dict)) for x in v):
        return f"<{len(v)} nested lists/maps; see --json>"
    if isinstance(v, (list, tuple)):
        items = [_short_value(x, 20) for x in v]
        if len(items) > 8:
            text = f"[{', '.join(items[:3])}, ..., {', '.join(items[-2:])}] ({len(items)} values)"
        else:
            text = f"[{', '.join(items)}]"
    else:
        text = " ".join(str(v).split())
    if len(text) > width:
        text = text[: width - 3] + "..."
    return text


def _render(obj: Any, indent: int = 0) -> list[str]:
    """Generic nested rendering: maps as 'key: value' lines, short lists inline."""
    pad = "  " * indent
    lines: list[str] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, dict) and v:
                lines.append(f"{pad}{k}:")
                lines.extend(_render(v, indent + 1))
            elif isinstance(v, (list, tuple)) and v and all(isinstance(x, dict) for x in v):
                lines.append(f"{pad}{k}:")
                for x in v:
                    lines.append(f"{pad}  - " + ", ".join(f"{kk}={_short_value(vv, 40)}" for kk, vv in x.items()))
            else:
                lines.append(f"{pad}{k}: {_short_value(v) if v != {} else '{}'}")
    else:
        lines.append(pad + _short_value(obj))
    return lines


def _model_label(model: Any, alias: str | None = None) -> str:
    """'alias (sha12)' for a model given as a sha256, a dict or an entry."""
    sha = None
    if isinstance(model, dict):
        sha = model.get("sha256") or model.get("id")
        alias = alias or model.get("alias")
    elif isinstance(model, str):
        sha = model
    if alias is None and isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha):
        try:
            from hsicodec.models.registry import default_registry

            alias = default_registry().resolve(sha).alias
        except HsicodecError:
            alias = None
    short = sha[:12] if isinstance(sha, str) else str(model)
    return f"{alias} ({short})" if alias else short


class _Progress:
    """A tqdm bar on stderr fed with fractions in [0, 1] (or step counts); a no-op when disabled."""

    active = 0  # bars open now (warnings are then printed with tqdm.write)
    PERCENT_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]"

    def __init__(self, enabled: bool, desc: str, total: float = 100.0, unit: str = "%", bar_format: str | None = None):
        self.total = total
        self.bar = None
        if enabled:
            from tqdm import tqdm

            if bar_format is None and unit == "%":
                bar_format = self.PERCENT_FORMAT
            self.bar = tqdm(
                total=total,
                desc=desc,
                unit=unit,
                file=sys.stderr,
                leave=False,
                dynamic_ncols=True,
                bar_format=bar_format,
            )
            _Progress.active += 1

    def fraction(self, frac: float) -> None:
        if self.bar is None:
            return
        try:
            frac = min(max(float(frac), 0.0), 1.0)
        except (TypeError, ValueError):
            return
        self.set(frac * self.total)

    def set(self, n: float, **postfix: Any) -> None:
        if self.bar is None:
            return
        if postfix:
            self.bar.set_postfix(postfix, refresh=False)
        delta = n - self.bar.n
        if delta > 0:
            self.bar.update(delta)
        elif postfix:
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
            _Progress.active -= 1

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _codec():
    from hsicodec.codec import api as codec  # lazy: keeps `--help` and `models` fast

    return codec


# --------------------------------------------------------------------------- commands


@click.group(PROG, cls=HsicodecGroup, context_settings=_CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name=PROG, message="%(prog)s %(version)s")
def cli() -> None:
    """Hyperspectral image codec: meta-learned neural representations in .hsim files.

    \b
    Typical use:
      hsicodec compress scene.tif scene.hsim --bpppb 0.05
      hsicodec info scene.hsim
      hsicodec decompress scene.hsim scene_out.tif
      hsicodec models list

    Rates are in bpppb (bits per pixel per band: 8 x file bytes / (rows x cols x bands)).
    Errors are reported as one line on stderr; exit codes: 0 ok, 1 error, 2 bad usage,
    3 internal error (set HSICODEC_DEBUG=1 for a traceback), 130 interrupted.
    """


@cli.command(context_settings=_CONTEXT)
@click.argument("src", metavar="IN", type=click.Path(dir_okay=True, path_type=Path))
@click.argument("dst", metavar="OUT", type=click.Path(path_type=Path))
@click.option(
    "--bpppb",
    type=float,
    default=None,
    callback=_positive_float(),
    metavar="X",
    help="Target rate in bits per pixel per band (the whole .hsim file counts). "
    "Default when neither --bpppb nor --psnr is given: 0.05.",
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
    help="Encoder effort: fast, default, max, or 0-100 (more effort = better quality at the same rate, slower).",
)
@click.option(
    "--layer",
    type=click.Choice(["auto", "network", "maps"]),
    default="auto",
    show_default=True,
    help="What codes the scene: the base network's latents, the coefficient-map layer (PCA maps, "
    "CDF 9/7, context-modelled; the file then needs no model), or whichever is better per file.",
)
@click.option(
    "--var", default=None, metavar="NAME", help="Variable of a .mat file (or subdataset of an HDF/NetCDF file) to read."
)
@click.option(
    "--band-first", is_flag=True, help="The .npy/.mat array is (bands, rows, cols) instead of (rows, cols, bands)."
)
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
@click.option("--force", "-f", is_flag=True, help="Overwrite OUT if it exists.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary line.")
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON on stdout.")
def compress(
    src: Path,
    dst: Path,
    bpppb: float | None,
    psnr: float | None,
    model: str | None,
    effort: Any,
    layer: str,
    var: str | None,
    band_first: bool,
    band_map: str | None,
    wavelengths: str | None,
    tile: int | None,
    force: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Compress the hyperspectral cube IN into the .hsim file OUT.

    IN is any raster hsicodec reads: GeoTIFF or anything else GDAL opens, ENVI (data
    file or .hdr), .npy (rows, cols, bands) or .mat. Georeferencing and spectral
    metadata (CRS, transform, nodata, wavelengths, FWHM, band names) are kept in OUT.

    Prints one line: shape, file size, bpppb, time and model (unless --quiet).

    \b
    Examples:
      hsicodec compress scene.tif scene.hsim --bpppb 0.05
      hsicodec compress cube.npy cube.hsim --psnr 35 --effort max --model aviris
      hsicodec compress data.mat data.hsim --var indian_pines --json
    """
    if bpppb is not None and psnr is not None:
        raise click.UsageError("--bpppb and --psnr are mutually exclusive: give one rate target")
    from hsicodec.io.atomic import check_writable

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
            effort=effort,
            progress=bar.fraction,
            band_map=_number_list(band_map, int, "--band-map"),
            wavelengths=_number_list(wavelengths, float, "--wavelengths"),
            tile=tile,
            tile_progress=_tile_postfix(bar),
            latent_codings=_layer_codings(layer),
        )
    if as_json:
        _print_json(stats)
    elif not quiet:
        click.echo(_compress_summary(src, dst, stats))


def _layer_codings(layer: str) -> tuple | None:
    from hsicodec.codec.encoder import LAYERS

    return LAYERS[layer]


def _tile_postfix(bar: _Progress) -> Callable[[int, int], None]:
    """Progress callback of tiled files: 'tile i/n' beside the bar, which advances per tile."""

    def update(done: int, total: int) -> None:
        bar.set(done / max(total, 1) * bar.total, tile=f"{done}/{total}")

    return update


def _number_list(text: str | None, kind: type, option: str) -> list | None:
    """A comma-separated list, or a file of numbers separated by commas or whitespace."""
    if text is None:
        return None
    p = Path(text)
    if p.is_file():
        try:
            text = p.read_text()
        except OSError as exc:
            raise click.BadParameter(f"cannot read {p}: {exc}", param_hint=option) from exc
    items = [t for t in text.replace(",", " ").split() if t]
    try:
        return [kind(t) for t in items]
    except ValueError:
        raise click.BadParameter(f"expected {kind.__name__} values separated by commas", param_hint=option) from None


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
    seconds = stats.get("total_seconds", stats.get("seconds"))
    if isinstance(seconds, (int, float)):
        parts.append(f"{seconds:.2f} s")
    if stats.get("model") is not None:
        parts.append("model " + _model_label(stats["model"], stats.get("model_alias") or stats.get("alias")))
    return f"{src} -> {dst}: " + ", ".join(parts)


@cli.command(context_settings=_CONTEXT)
@click.argument("src", metavar="IN", type=click.Path(path_type=Path))
@click.argument("dst", metavar="OUT", type=click.Path(path_type=Path))
@click.option(
    "--window",
    "-w",
    type=WindowType(),
    default=None,
    help="Decode only this pixel window: ROW,COL,HEIGHT,WIDTH (0-based top-left corner and "
    "size in pixels), e.g. 100,200,256,256. Default: the whole image.",
)
@click.option(
    "--bands",
    "-b",
    type=BandsType(),
    default=None,
    help="Decode only bands A to B-1 (0-based, B excluded), e.g. 0:50. Default: all bands.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["gtiff", "envi", "npy"], case_sensitive=False),
    default=None,
    help="Output format. Default: from OUT's extension (.tif, .hdr/.img, .npy).",
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
    window,
    bands,
    fmt: str | None,
    threads: int,
    backend: str,
    force: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Decode the .hsim file IN into the raster OUT (GeoTIFF, ENVI or .npy).

    The cube comes back in its original dtype, with its georeferencing and spectral
    metadata (a window or band subset keeps the matching part of them). The base model
    named in IN must be installed (see 'hsicodec models').

    \b
    Examples:
      hsicodec decompress scene.hsim scene.tif
      hsicodec decompress scene.hsim tile.npy --window 0,0,256,256 --bands 10:60
      hsicodec decompress scene.hsim scene.img --format envi --threads 2
      hsicodec decompress scene.hsim scene.tif --backend cuda
    """
    from hsicodec.io.atomic import check_writable

    check_writable(dst, force)
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
            bands=bands,
            threads=threads,
            backend=backend,
            progress=bar.fraction,
            tile_progress=_tile_postfix(bar),
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


@cli.command(context_settings=_CONTEXT)
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the full header summary as JSON.")
def info(file: Path, as_json: bool) -> None:
    """Describe the .hsim file FILE without decoding it.

    Shows the format version, cube shape and dtype, file size and rate (bpppb), the
    base model (sha256 and alias if installed), codec parameters, georeferencing,
    tags and the payload sections with their sizes.

    \b
    Examples:
      hsicodec info scene.hsim
      hsicodec info scene.hsim --json | jq .geo
    """
    summary = _codec().file_info(file)
    if as_json:
        _print_json(summary)
        return
    for line in _info_lines(file, summary):
        click.echo(line)


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
    if "model" in d:
        sha = d.pop("model")
        alias = d.pop("model_alias", None)
        installed = d.pop("model_installed", None)
        note = f" ({alias})" if alias else ""
        if sha is None:
            lines.append("model: none (no network latents: decodes without a base model)")
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


# --------------------------------------------------------------------------- eval


def _split_list(ctx, param, value: tuple) -> list:
    """A repeatable option whose values may also be comma-separated: '-r 0.01,0.05 -r 0.1'."""
    return [t.strip() for v in value for t in str(v).split(",") if t.strip()]


@cli.command("eval", context_settings=_CONTEXT)
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
@click.option(
    "--var", default=None, metavar="NAME", help="Variable of a .mat file (or subdataset of an HDF/NetCDF file) to read."
)
@click.option(
    "--band-first", is_flag=True, help="The .npy/.mat array is (bands, rows, cols) instead of (rows, cols, bands)."
)
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
@click.option("--list-codecs", is_flag=True, help="List the codec names --anchors accepts and exit.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
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
    list_codecs: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Rate-distortion of hsicodec and other codecs on the cube IN, at the same target rates.

    IN is any raster compress reads (GeoTIFF, ENVI, .npy, .mat). For every target rate,
    hsicodec (at each effort) and each anchor compress IN to at most that rate; the output
    is decoded from its bytes and measured: bpppb of the whole output, PSNR (peak = max -
    min of IN), SAM (degrees), max abs error, compress and decompress time (median of
    --repeat runs). A rate a codec cannot reach is shown as unreachable.

    \b
    Examples:
      hsicodec eval scene.tif --rates 0.01,0.05,0.1
      hsicodec eval cube.npy -r 0.02 --anchors all --efforts default,max --plot rd.png
      hsicodec eval data.mat --var indian_pines --json > rd.json
    """
    from hsicodec.evaluation import evaluate as ev

    if list_codecs:
        base = ev.baseline_names()
        for name in ev.codec_registry():
            click.echo(f"{name}\t{'paper baseline' if name in base else 'anchor'}")
        return
    if src is None:
        raise click.UsageError("missing argument 'IN'")
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
    if effort_names and [e.lower() for e in effort_names] == ["none"]:
        efforts: list = []
    else:
        try:
            efforts = [EffortType().convert(e, None, None) for e in (effort_names or ev.DEFAULT_EFFORTS)]
        except click.BadParameter as e:
            raise click.BadParameter(e.message, param_hint="'--efforts'") from None
    if not efforts and not names:
        raise click.UsageError("nothing to evaluate: --efforts none and --anchors none")
    if plot_path is not None:
        ev.check_plot_path(plot_path)  # before minutes of encoding
    import numpy as np

    from hsicodec.io.raster import read_cube

    cube, geo = read_cube(src, var=var, band_first=band_first)
    n_runs = len(rate_list) * (len(efforts) + len(names))
    with _Progress(not quiet and not as_json and _stderr_is_tty(), "eval", total=n_runs, unit="run") as bar:
        done = [0]

        def on_row(row: dict) -> None:
            done[0] += 1
            bar.set(done[0], codec=row["codec"])

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
        f"{src}: {_shape_text(list(cube.shape))} {cube.dtype.name}; metrics as METHOD.md section 4 "
        f"(times: median of {repeat})"
    )
    click.echo(ev.format_table(rows))
    for g in gaps:
        if g["gap_db"] is not None:
            click.echo(f"{g['codec']} vs {g['reference']} @ {g['rate']:g} bpppb: {g['gap_db']:+.2f} dB")
    if plot_path is not None:
        click.echo(f"plot: {plot_path}")


# --------------------------------------------------------------------------- batch


@cli.command("batch", context_settings=_CONTEXT)
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
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no table; errors only.")
@click.option("--json", "as_json", is_flag=True, help="Print every file's result and the counts as JSON.")
def batch(
    patterns: tuple,
    outdir: Path,
    to_raster: bool,
    bpppb: float | None,
    psnr: float | None,
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
    Quote GLOB so the shell does not expand it ('**' matches folders recursively).

    An output at least as new as its input (a .hsim must also pass its checksums) is
    skipped, so rerunning an interrupted batch continues it; --force redoes everything.
    Outputs are written atomically: a file at an output path is always complete.
    A file that fails is reported and the others go on; the exit code is 1 if any failed.
    The table gives each file's rate (bpppb), PSNR against the source (compress) and time.

    \b
    Examples:
      hsicodec batch 'scenes/*.tif' out/ --bpppb 0.05 --workers 4
      hsicodec batch 'out/*.hsim' restored/ --decompress --format npy
      hsicodec batch 'cubes/**/*.npy' out/ --psnr 40 --scheduler tcp://10.0.0.5:8786 --json
    """
    from hsicodec.integrations import batch as batch_mod

    if bpppb is not None and psnr is not None:
        raise click.UsageError("--bpppb and --psnr are mutually exclusive: give one rate target")
    if to_raster and (bpppb is not None or psnr is not None or model is not None or effort is not None):
        raise click.UsageError(
            "--bpppb, --psnr, --model and --effort are compress options; they do not go with --decompress"
        )
    if fmt is not None and not to_raster:
        raise click.UsageError("--format is the output format of --decompress")
    if scheduler is not None and workers is not None:
        raise click.UsageError("--workers sizes the local cluster; it does not go with --scheduler")
    options = batch_mod.BatchOptions(
        decompress=to_raster,
        bpppb=bpppb,
        psnr=psnr,
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
        finished, failed = 0, 0
        with (
            batch_mod.open_client(scheduler, workers) as client,
            _Progress(not quiet and _stderr_is_tty(), "batch", total=todo, unit="file") as bar,
        ):

            def on_result(row: dict) -> None:  # a file completed
                nonlocal finished, failed
                finished += 1
                failed += row["status"] == "failed"
                bar.set(finished, failed=failed)

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


# --------------------------------------------------------------------------- models


@cli.group(context_settings=_CONTEXT)
def models() -> None:
    """List, inspect, verify and install base models.

    A base model is a .hsmodel file identified by the sha256 of its bytes; a .hsim file
    records the sha256 of the model that decodes it. Models are searched in: the models
    bundled with hsicodec, the user directory ($HSICODEC_DATA_DIR/models, or the
    platform's user data dir), then every directory or file listed in
    $HSICODEC_MODEL_PATH (separated by ':' on Unix, ';' on Windows).

    \b
    Examples:
      hsicodec models list
      hsicodec models show aviris
      hsicodec models add my-sensor.hsmodel
      hsicodec models verify
    """


def _registry():
    from hsicodec.models.registry import default_registry

    return default_registry()


def _entry_dict(e) -> dict:
    return {
        "sha256": e.sha256,
        "alias": e.alias,
        "size": e.size,
        "source": e.source,
        "path": str(e.path),
        "description": e.card.get("description") if isinstance(e.card, dict) else None,
    }


@models.command("list", context_settings=_CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list (full sha256, alias, size, source, path).")
def models_list(as_json: bool) -> None:
    """List the installed base models, in search order.

    Columns: ID (first 12 hex digits of the sha256; any unique prefix of 8+ digits, or
    the alias, can name the model in --model), ALIAS, SIZE, SOURCE (bundled, user or
    path) and PATH. Invalid files are skipped here; 'hsicodec models verify' reports them.
    """
    reg = _registry()
    entries = reg.list()
    if as_json:
        _print_json([_entry_dict(e) for e in entries])
        return
    if not entries:
        click.echo(f"no models found; looked in: {reg.describe_locations()}", err=True)
        return
    rows = [("ID", "ALIAS", "SIZE", "SOURCE", "PATH")]
    rows += [(e.sha256[:12], e.alias or "-", _human_bytes(e.size), e.source, str(e.path)) for e in entries]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4])


@models.command("show", context_settings=_CONTEXT)
@click.argument("ref", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the card, config and array list as JSON.")
def models_show(ref: str, as_json: bool) -> None:
    """Show one model: its card (alias, description, training data...), config and arrays.

    ID is an alias, a full sha256 or a unique prefix of 8+ hex digits.

    \b
    Example:
      hsicodec models show aviris
    """
    reg = _registry()
    entry = reg.resolve(ref)
    model = reg.load(entry.sha256)
    arrays = {name: {"shape": list(a.shape), "dtype": a.dtype.name} for name, a in sorted(model.arrays.items())}
    n_params = sum(int(a.size) for a in model.arrays.values())
    if as_json:
        d = _entry_dict(entry)
        d.pop("description", None)
        d.update({"card": model.card, "config": model.config, "arrays": arrays, "parameters": n_params})
        _print_json(d)
        return
    click.echo(f"id: {entry.sha256}")
    click.echo(f"alias: {entry.alias or '-'}")
    click.echo(f"path: {entry.path} ({entry.source})")
    click.echo(f"size: {entry.size:,} bytes ({_human_bytes(entry.size)}), {n_params:,} parameters")
    click.echo("card:" + ("" if model.card else " (empty)"))
    for line in _render(model.card, 1):
        click.echo(line)
    click.echo("config:" + ("" if model.config else " (empty)"))
    for line in _render(model.config, 1):
        click.echo(line)
    click.echo(f"arrays ({len(arrays)}):")
    width = max((len(n) for n in arrays), default=0)
    for name, a in arrays.items():
        click.echo(f"  {name:<{width}}  {a['dtype']:<8} {_shape_text(a['shape']) or 'scalar'}")


@models.command("verify", context_settings=_CONTEXT)
def models_verify() -> None:
    """Re-read and re-hash every model file; exit 1 if any is unreadable, invalid or misnamed.

    Each file gets one line: 'ok' or 'BAD' with the reason.
    """
    reg = _registry()
    results = reg.verify()
    if not results:
        click.echo(f"no model files found; looked in: {reg.describe_locations()}", err=True)
        return
    bad = 0
    for item, problem in results:
        path = getattr(item, "path", item)
        if problem is None:
            click.echo(f"ok   {item.sha256[:12]}  {item.alias or '-'}  {path}")
        else:
            bad += 1
            click.echo(f"BAD  {path}: {_one_line(problem)}")
    if bad:
        click.echo(f"{PROG}: error: {bad} of {len(results)} model file(s) failed verification", err=True)
        sys.exit(EXIT_ERROR)


@models.command("add", context_settings=_CONTEXT)
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--force", "-f", is_flag=True, help="Replace a different (e.g. corrupt) file that already has the destination name."
)
def models_add(file: Path, force: bool) -> None:
    """Validate the model file FILE and install a copy in the user models directory.

    The copy is named <alias>-<sha256[:12]>.hsmodel. Installing a model that is already
    there does nothing. Prints the model's sha256 and where it was installed.

    \b
    Example:
      hsicodec models add my-sensor.hsmodel
    """
    entry = _registry().add(file, force=force)
    alias = f" ({entry.alias})" if entry.alias else ""
    click.echo(f"{entry.sha256}{alias} -> {entry.path}")


# --------------------------------------------------------------------------- train


def _import_train():
    try:
        from hsicodec.train import meta as train_mod
    except ImportError as e:
        missing = getattr(e, "name", None) or ""
        if missing == "torch" or missing.startswith("torch.") or "torch" in str(e):
            raise TrainingError("training needs torch: pip install 'hsicodec[train]'") from None
        raise
    return train_mod


def _scene_name(name: str) -> str:
    return name[:-4] if name.lower().endswith(".npy") else name


@cli.command(context_settings=_CONTEXT)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path),
    default=None,
    metavar="DIR",
    help="Folder of training cubes, each a (rows, cols, bands) .npy file. Required unless --config gives data_dir.",
)
@click.option(
    "--out", "out", type=click.Path(path_type=Path), required=True, metavar="MODEL.hsmodel", help="Model file to write."
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    default=None,
    metavar="CONFIG.json",
    help="Training configuration (JSON with TrainConfig keys); the options below override it.",
)
@click.option(
    "--train",
    "train_names",
    multiple=True,
    metavar="NAME",
    help="Training scene (file name in DIR, with or without .npy); repeat for several. "
    "Default: the config's list, else every *.npy in DIR not given with --val.",
)
@click.option(
    "--val",
    "val_names",
    multiple=True,
    metavar="NAME",
    help="Held-out validation scene, never trained on; repeat for several.",
)
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Outer meta-training steps (default: config value, 2000).",
)
@click.option("--seed", type=int, default=None, metavar="N", help="Random seed (default: config value, 0).")
@click.option(
    "--alias",
    default=None,
    metavar="NAME",
    help="Short model name stored in the model card (letters, digits, . _ -). Default: OUT's stem.",
)
@click.option("--description", default="", metavar="TEXT", help="Free text for the model card.")
@click.option(
    "--resume",
    "checkpoint",
    type=click.Path(path_type=Path),
    default=None,
    metavar="CHECKPOINT",
    help="Checkpoint file: training resumes from it if it exists, and it is rewritten "
    "every val_every steps (so an interrupted run can continue).",
)
@click.option("--force", "-f", is_flag=True, help="Overwrite the model file if it exists.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary; print only the sha256.")
def train(
    data_dir: Path | None,
    out: Path,
    config_file: Path | None,
    train_names: tuple,
    val_names: tuple,
    steps: int | None,
    seed: int | None,
    alias: str | None,
    description: str,
    checkpoint: Path | None,
    force: bool,
    quiet: bool,
) -> None:
    """Meta-train a new base model on your own cubes (needs torch: pip install 'hsicodec[train]').

    Writes MODEL.hsmodel and prints its sha256 (the model id) on stdout. Install it with
    'hsicodec models add MODEL.hsmodel' to compress with it.

    \b
    Examples:
      hsicodec train --data cubes/ --out sensor.hsmodel --val scene7 --steps 3000
      hsicodec train --config hsicodec/models/base.json --data cubes/ --out base.hsmodel
      hsicodec train --data cubes/ --out m.hsmodel --resume m.ckpt   # rerun to continue
      torchrun --standalone --nproc_per_node 4 -m hsicodec.cli train --data cubes/ --out m.hsmodel

    Under torchrun, training is data-parallel (gloo): every process samples its own crops,
    the outer gradients are averaged each step (effective batch = processes x batch), and
    only rank 0 validates, writes the checkpoint and the model and prints.
    """
    from dataclasses import replace

    from hsicodec.io.atomic import check_writable
    from hsicodec.models.modelfile import check_alias

    if data_dir is None and config_file is None:
        raise click.UsageError("give --data DIR (or a --config that sets data_dir)")
    check_writable(out, force)  # before minutes of training
    if alias is None:
        alias = out.stem if out.suffix == ".hsmodel" else out.name
        try:
            check_alias(alias, "the default alias (the output file's stem)")
        except ModelFormatError as e:
            raise click.UsageError(f"{e}; pass --alias NAME") from None
    else:
        try:
            check_alias(alias, "--alias")
        except ModelFormatError as e:
            raise click.BadParameter(str(e), param_hint="'--alias'") from None

    tr = _import_train()
    cfg = tr.config_from_json(config_file) if config_file is not None else tr.TrainConfig()
    if data_dir is not None:
        cfg = replace(cfg, data_dir=str(data_dir))
    folder = Path(cfg.data_dir)
    if not folder.is_dir():
        raise TrainingError(f"training data folder {folder} does not exist or is not a folder")
    val = [_scene_name(n) for n in val_names] if val_names else list(cfg.val_scenes)
    if train_names:
        train_list = [_scene_name(n) for n in train_names]
    elif cfg.train_scenes:
        train_list = list(cfg.train_scenes)
    else:
        train_list = sorted(p.stem for p in folder.glob("*.npy") if p.is_file() and p.stem not in set(val))
    if not train_list:
        raise TrainingError(f"no training scenes: no *.npy files in {folder} besides the --val scenes")
    overlap = sorted(set(train_list) & set(val))
    if overlap:
        raise TrainingError(f"scenes both in training and validation: {', '.join(overlap)}")
    cfg = replace(cfg, train_scenes=train_list, val_scenes=val)
    if steps is not None:
        cfg = replace(cfg, steps=steps)
    if seed is not None:
        cfg = replace(cfg, seed=seed)

    if tr.process_rank() != 0:  # torchrun: only rank 0 prints
        quiet = True
    show = not quiet and _stderr_is_tty()
    if not quiet:
        click.echo(
            f"training {alias!r} on {len(train_list)} scene(s) from {folder} "
            f"({cfg.steps} steps, seed {cfg.seed}" + (f", validation: {', '.join(val)}" if val else "") + ")",
            err=True,
        )
    with _Progress(show, "train", total=cfg.steps, unit="step") as bar:

        def progress(step: int, rec: dict) -> None:
            loss = rec.get("loss")
            bar.set(step, **({"loss": f"{loss:.4g}"} if isinstance(loss, float) else {}))

        sha = tr.train_model(
            cfg, out, alias=alias, description=description, force=force, progress=progress, checkpoint=checkpoint
        )
    if sha is None:  # a torchrun process other than rank 0: rank 0 wrote the model
        return
    if not quiet:
        click.echo(f"wrote {out} (alias {alias}); install it with: hsicodec models add {out}", err=True)
    click.echo(sha)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (``hsicodec``)."""
    cli.main(args=argv, prog_name=PROG)


if __name__ == "__main__":
    main()
