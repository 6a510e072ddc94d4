"""The ``hsicodec`` command line: argument parsing, progress bars and printing only.

Every command calls the public API (:mod:`hsicodec.codec.api`, :mod:`hsicodec.models.registry`,
:mod:`hsicodec.train.meta`); nothing here is out of reach of a Python user.

This module holds the top-level group, its error handling and :func:`main`; the commands
live in one module per command group, registered below:

  compress.py  compress, decompress, info
  eval.py      eval
  batch.py     batch
  models.py    models list | show | verify | add
  train.py     train
  options.py   option types shared by several commands (EffortType, WindowType, BandsType, ...)
  common.py    exit codes, printing helpers and the progress bar

Error policy (see :meth:`HsicodecGroup.main`): a :class:`~hsicodec.errors.HsicodecError`
or an ``OSError`` becomes one line ``hsicodec: error: <message>`` on stderr and exit
code 1 (in the command line's words: ``--force`` where the API says ``force=True``, see
:func:`~hsicodec.cli.common._cli_message`); a usage error (bad option) one line and exit
code 2; Ctrl-C exit code 130; any other exception one line ``hsicodec: internal error: ...``
and exit code 3, with the traceback only when the environment variable ``HSICODEC_DEBUG=1``.
"""

from __future__ import annotations

import os
import sys
import traceback
import warnings
from collections.abc import Sequence
from typing import Any

import click

from hsicodec._version import __version__
from hsicodec.cli.batch import batch
from hsicodec.cli.common import (
    _CONTEXT,
    DEBUG_ENV,
    EXIT_ERROR,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    PROG,
    _cli_message,
    _one_line,
    _Progress,
)
from hsicodec.cli.compress import compress, decompress, info
from hsicodec.cli.eval import eval_cmd
from hsicodec.cli.models import models
from hsicodec.cli.options import EFFORT_NAMES, BandsType, EffortType, WindowType, _number_list
from hsicodec.cli.preview import preview
from hsicodec.cli.train import train
from hsicodec.errors import HsicodecError

__all__ = [
    "DEBUG_ENV",
    "EFFORT_NAMES",
    "EXIT_ERROR",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "PROG",
    "BandsType",
    "EffortType",
    "HsicodecGroup",
    "WindowType",
    "_number_list",
    "cli",
    "main",
]


# --------------------------------------------------------------------------- errors


class _Interrupted(Exception):
    """Ctrl-C inside a command (raised instead of KeyboardInterrupt so click does not print 'Aborted!')."""


def _debug() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")


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
                _fail(_cli_message(e), EXIT_ERROR)
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


# --------------------------------------------------------------------------- the command group


@click.group(PROG, cls=HsicodecGroup, context_settings=_CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name=PROG, message="%(prog)s %(version)s")
def cli() -> None:
    """Hyperspectral image codec: .hsim files coded by the layer that measures best (coefficient maps or
    a meta-learned network's latents).

    \b
    Typical use:
      hsicodec compress scene.tif scene.hsim --bpppb 0.05
      hsicodec info scene.hsim
      hsicodec decompress scene.hsim scene_out.tif
      hsicodec preview scene.hsim scene.png
      hsicodec models list

    Rates are in bpppb (bits per pixel per band: 8 x file bytes / (rows x cols x bands)).
    Errors are reported as one line on stderr; exit codes: 0 ok, 1 error, 2 bad usage,
    3 internal error (set HSICODEC_DEBUG=1 for a traceback), 130 interrupted.
    """


for _command in (compress, decompress, info, preview, eval_cmd, batch, models, train):
    cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (``hsicodec``)."""
    cli.main(args=argv, prog_name=PROG)


if __name__ == "__main__":
    main()
