"""Regenerate the README's results section from bench/rd.md (never typed by hand).

    python tools/update_readme.py
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def main() -> int:
    readme = ROOT / "README.md"
    rd = ROOT / "bench" / "rd.md"
    if not rd.exists():
        print("bench/rd.md not found: run `make bench-rd` first", file=sys.stderr)
        return 1
    body = rd.read_text().strip()
    body = re.sub(r"^# .*\n", "", body, count=1)  # the README already has its heading
    body = body.replace("\n## ", "\n### ")
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        print("README.md has no results markers", file=sys.stderr)
        return 1
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{BEGIN}\n{body}\n{END}{tail}")
    print("README.md results section updated from bench/rd.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
