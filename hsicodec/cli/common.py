"""Helpers shared by the command modules: exit codes, JSON and text printing, the progress bar.

Nothing here imports the commands, so every module of :mod:`hsicodec.cli` may import it.
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any

import click

from hsicodec.errors import HsicodecError, OutputExistsError

PROG = "hsicodec"
DEBUG_ENV = "HSICODEC_DEBUG"
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).strip().splitlines() if part.strip())


#: API words in error messages and what the command line says instead (the API's ``force=True``
#: is the commands' ``--force``; an older message names both).
_API_TO_CLI_WORDS = (("--force (force=True)", "--force"), ("force=True", "--force"))


def _cli_message(e: HsicodecError) -> str:
    """The message of an hsicodec error as the command line says it (``--force``, not ``force=True``)."""
    text = str(e) or type(e).__name__
    if isinstance(e, OutputExistsError):
        for api, cli in _API_TO_CLI_WORDS:
            text = text.replace(api, cli)
    return text


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


class _ItemProgress:
    """Progress of a run over ``total`` items (files, codec runs), for commands that may run for minutes.

    On a terminal: a :class:`_Progress` bar on stderr, as the other commands have. Off a terminal
    (a log file, a pipe, CI): one line per finished item on stderr, ``hsicodec: DESC: [i/total] TEXT``,
    failed items included, so a long run is never silent. ``enabled=False`` (``-q``): nothing;
    ``lines=False``: the bar only. ``tty`` overrides the terminal test (default :func:`_stderr_is_tty`).
    """

    def __init__(
        self, enabled: bool, desc: str, total: int, unit: str = "item", *, lines: bool = True, tty: bool | None = None
    ):
        on_tty = _stderr_is_tty() if tty is None else tty
        self.desc = desc
        self.total = int(total)
        self.done = 0
        self.bar = _Progress(enabled and on_tty, desc, total=total, unit=unit)
        self.lines = enabled and lines and not on_tty

    def item(self, text: str, **postfix: Any) -> None:
        """One more item finished: advance the bar (with ``postfix``), or log ``text`` as one line."""
        self.done += 1
        self.bar.set(self.done, **postfix)
        if self.lines:
            click.echo(f"{PROG}: {self.desc}: [{self.done}/{self.total}] {_one_line(text)}", err=True)

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> _ItemProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _codec():
    from hsicodec.codec import api as codec  # lazy: keeps `--help` and `models` fast

    return codec
