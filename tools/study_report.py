"""The report every offline study in tools/ writes: a .json of its figures, stamped with the command, date and
machine, and a .md beside it made from that .json."""

from __future__ import annotations

import json
import platform
import sys
from datetime import date
from pathlib import Path
from typing import Callable


def write_report(path: Path, script: str, figures: dict, markdown: Callable[[dict], list]) -> dict:
    """Write ``figures`` under a stamp (the command that ran ``script``, today, the machine) to ``path`` and its
    markdown (``markdown(doc)``, lines) beside it; returns the document."""
    doc = {
        "command": f"python tools/{script} " + " ".join(sys.argv[1:]),
        "date": date.today().isoformat(),
        "machine": platform.machine(),
    } | figures
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1))
    path.with_suffix(".md").write_text("\n".join(markdown(doc)) + "\n")
    return doc


def signed_db(v: float | None, digits: int = 3) -> str:
    """A dB figure as the studies' tables print it: signed, ``digits`` decimals, "n/a" for None."""
    return "n/a" if v is None else f"{v:+.{digits}f}"
