"""Option types and option parsers shared by several commands (efforts, windows, band ranges, lists)."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Callable

import click

EFFORT_NAMES = ("fast", "default", "max")


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
    """``A:B``: the bands A (inclusive) to B (exclusive), counted from 0; or ``N``: band N alone (N:N+1)."""

    name = "A:B|N"

    def convert(self, value: Any, param, ctx) -> Any:
        if isinstance(value, tuple):
            return value
        one = re.fullmatch(r"\s*(\d+)\s*", str(value))
        if one:
            return (int(one.group(1)), int(one.group(1)) + 1)
        m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", str(value))
        if not m:
            self.fail(
                f"{value!r} is not A:B (first band, one past the last band, counted from 0; e.g. 0:50) "
                "nor N (one band, counted from 0; e.g. 5)",
                param,
                ctx,
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


def raster_layout_options(f: Callable) -> Callable:
    """``--var`` and ``--band-first``: how to read an input raster whose layout the file does not say
    (the commands that read rasters share them)."""
    f = click.option(
        "--band-first", is_flag=True, help="The .npy/.mat array is (bands, rows, cols) instead of (rows, cols, bands)."
    )(f)
    return click.option(
        "--var",
        default=None,
        metavar="NAME",
        help="Variable of a .mat file (or subdataset of an HDF/NetCDF file) to read.",
    )(f)
