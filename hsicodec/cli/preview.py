"""``hsicodec preview``: a true-colour PNG quick look of a .hsim file from a reduced-resolution decode."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

from hsicodec.cli.common import _CONTEXT, _print_json


class _Triple(click.ParamType):
    """``A,B,C``: three numbers (``integer``: whole numbers >= 0)."""

    def __init__(self, integer: bool):
        self.integer = integer
        self.name = "R,G,B" if integer else "NM,NM,NM"

    def convert(self, value: Any, param, ctx) -> Any:
        if isinstance(value, tuple):
            return value
        pattern = r"\s*\d+\s*" if self.integer else r"\s*\d+(\.\d*)?\s*"
        parts = str(value).split(",")
        if len(parts) != 3 or not all(re.fullmatch(pattern, p) for p in parts):
            kind = (
                "band indices counted from 0 (e.g. 29,19,9)" if self.integer else "wavelengths in nm (e.g. 640,550,460)"
            )
            self.fail(f"{value!r} is not three {kind}", param, ctx)
        return tuple(int(p) if self.integer else float(p) for p in parts)


@click.command(context_settings=_CONTEXT)
@click.argument("src", metavar="IN", type=click.Path(path_type=Path))
@click.argument("dst", metavar="OUT", type=click.Path(path_type=Path))
@click.option("--rgb", type=_Triple(True), default=None, help="Red, green and blue band indices (0-based).")
@click.option(
    "--wavelengths",
    type=_Triple(False),
    default=None,
    help="Red, green and blue wavelengths in nm: the nearest bands (the file must record wavelengths). "
    "Default: 640,550,460 when it does, else bands at 1/2, 1/4 and 1/8 of the band range.",
)
@click.option(
    "--reduce",
    type=click.IntRange(0, 16),
    default=None,
    metavar="N",
    help="Decode 2^N times smaller on each side (estimates of 2^N x 2^N block means). "
    "Default: the smallest N that keeps the longer side at most 1024 pixels.",
)
@click.option("--threads", "-t", type=click.IntRange(min=0), default=0, help="Decoder threads; 0 = all cores.")
@click.option("--force", "-f", is_flag=True, help="Overwrite OUT if it exists.")
@click.option("--quiet", "-q", is_flag=True, help="No summary line.")
@click.option("--json", "as_json", is_flag=True, help="Print what was chosen as JSON on stdout.")
def preview(src: Path, dst: Path, rgb, wavelengths, reduce, threads: int, force: bool, quiet: bool, as_json: bool):
    """Write a true-colour PNG quick look of the .hsim file IN to OUT.

    Only three bands are reconstructed, at reduced resolution; each channel is stretched
    from its 2nd to its 98th percentile (nodata black).

    \b
    Examples:
      hsicodec preview scene.hsim scene.png
      hsicodec preview scene.hsim scene.png --wavelengths 860,650,550 --reduce 1 --force
      hsicodec preview scene.hsim scene.png --rgb 29,19,9 --force
    """
    from hsicodec.codec.preview import preview as make_preview
    from hsicodec.io.atomic import check_writable

    check_writable(dst, force)
    stats = make_preview(src, dst, rgb=rgb, wavelengths=wavelengths, reduce=reduce, force=force, threads=threads)
    if as_json:
        _print_json(stats)
    elif not quiet:
        wl = stats["wavelengths_nm"]
        what = f"bands {','.join(map(str, stats['bands']))}" + (
            f" ({', '.join(f'{v:.0f}' for v in wl)} nm)" if wl else ""
        )
        click.echo(f"{src} -> {dst}: {stats['size'][0]}x{stats['size'][1]} RGB, {what}, reduce {stats['reduce']}")
