"""Regenerate the README's results section from bench/rd.md (never typed by hand).

The section gets rd.md's summary (header, plan, PSNR gaps on the validation
scenes, speed, the paper's figures, the atlas-hsi status, the validation
plots) with its headings one level down and its links made relative to the
repository root; the per-scene tables stay in bench/rd.md and are linked.

    python tools/update_readme.py            # what `make bench-rd` / `make readme-results` run
    python tools/update_readme.py --rd bench/rd.md --readme README.md
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
PER_SCENE = "## Per-scene results"


def results_section(rd_text: str, rd_link: str = "bench/rd.md") -> str:
    """The README body made from rd.md: its summary part, headings demoted, links rebased."""
    body = rd_text.strip()
    body = re.sub(r"^# .*\n", "", body, count=1)  # the README already has its heading
    body = body.split(f"\n{PER_SCENE}", 1)[0].rstrip()
    body = re.sub(r"^(#{2,5}) ", lambda m: m.group(1) + "# ", body, flags=re.M)
    base = rd_link.rsplit("/", 1)[0] + "/" if "/" in rd_link else ""
    body = re.sub(r"\]\((?!https?://|/|#)([^)]+)\)", lambda m: f"]({base}{m.group(1)})", body)
    return (
        f"{body}\n\nPer-scene tables (every codec and rate, with its parameters) and every plot: "
        f"[{rd_link}]({rd_link})."
    )


def main(argv: list | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rd", default=str(ROOT / "bench" / "rd.md"))
    ap.add_argument("--readme", default=str(ROOT / "README.md"))
    args = ap.parse_args(argv)
    readme, rd = Path(args.readme), Path(args.rd)
    if not rd.exists():
        print(f"{rd} not found: run `make bench-rd` first", file=sys.stderr)
        return 1
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        print(f"{readme} has no results markers", file=sys.stderr)
        return 1
    try:
        link = rd.resolve().relative_to(readme.resolve().parent).as_posix()
    except ValueError:
        link = rd.as_posix()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{BEGIN}\n{results_section(rd.read_text(), link)}\n{END}{tail}")
    print(f"{readme} results section updated from {rd}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
