"""``hsicodec eval`` progress: one line per finished run on stderr off a terminal, a bar on one, nothing with -q.

A 12x12x8 synthetic cube, hsicodec at effort fast and the PCA + JPEG 2000 anchor, one reachable
and one unreachable rate, one timed run per point: a few seconds per invocation.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

from hsicodec.cli import common
from hsicodec.cli.main import cli

pytest.importorskip("imagecodecs")

#: a log line of eval: "hsicodec: eval: [i/n] SCENE CODEC RATE bpppb: PSNR dB (SECONDS s)" or "...: unreachable..."
LINE = re.compile(
    r"^hsicodec: eval: \[(\d+)/(\d+)\] scene (hsicodec-fast|pca_jpeg2000) ([0-9.e+-]+) bpppb: "
    r"(?:(\d+\.\d\d|inf) dB|unreachable(?:: .+)?) \((\d+\.\d\d) s\)$"
)
ARGS = ["--rates", "2,1e-5", "--anchors", "pca_jpeg2000", "--efforts", "fast", "--repeat", "1"]


@pytest.fixture
def scene(isolated_registry: Path) -> Path:
    """A tiny cube in an isolated registry (the bundled models only)."""
    rng = np.random.default_rng(0)
    p = isolated_registry / "scene.npy"
    np.save(p, (np.cumsum(rng.normal(size=(12, 12, 8)), axis=2) * 40 + 2000).astype(np.uint16))
    return p


def run(*args: object) -> Result:
    return CliRunner().invoke(cli, ["eval", *[str(a) for a in args]], catch_exceptions=False)


def test_eval_logs_one_line_per_run_off_a_terminal(scene):
    r = run(scene, *ARGS)
    assert r.exit_code == 0, r.output
    lines = r.stderr.splitlines()
    assert len(lines) == 4, r.stderr  # 2 rates x (hsicodec-fast + pca_jpeg2000), nothing else
    found = [LINE.match(line) for line in lines]
    assert all(found), r.stderr
    assert [(m.group(1), m.group(2)) for m in found] == [(str(i), "4") for i in range(1, 5)]
    # in the order the harness runs them: per rate, hsicodec then the anchor
    assert [(m.group(3), float(m.group(4))) for m in found] == [
        ("hsicodec-fast", 2.0),
        ("pca_jpeg2000", 2.0),
        ("hsicodec-fast", 1e-5),
        ("pca_jpeg2000", 1e-5),
    ]
    assert found[0].group(5) is not None and float(found[0].group(5)) > 0  # a PSNR at 2 bpppb
    assert all("unreachable" in line for line in lines[2:])  # nobody reaches 1e-5 bpppb
    # the lines agree with the table on stdout
    (row,) = [line for line in r.stdout.splitlines() if line.split()[:2] == ["hsicodec-fast", "2"]]
    assert f"{float(found[0].group(5)):.2f}" in row.split()
    assert "docs/metrics.md" in r.stdout.splitlines()[0] and "METHOD" not in r.stdout


def test_eval_quiet_and_json_print_no_progress(scene):
    r = run(scene, *ARGS, "-q")
    assert r.exit_code == 0, r.output
    assert r.stderr == ""
    assert r.stdout.splitlines()[1].split()[:2] == ["codec", "target"]  # the table is still there
    r = run(scene, *ARGS, "--json")
    assert r.exit_code == 0, r.output
    assert r.stderr == ""
    assert len(json.loads(r.stdout)["rows"]) == 4


def test_eval_on_a_terminal_draws_the_bar_not_lines(scene, monkeypatch):
    monkeypatch.setattr(common, "_stderr_is_tty", lambda: True)
    r = run(scene, "--rates", "2", "--anchors", "none", "--efforts", "fast", "--repeat", "1")
    assert r.exit_code == 0, r.output
    assert "hsicodec: eval: [" not in r.stderr
    assert "\reval:" in r.stderr and "/1 [" in r.stderr  # tqdm's bar, on stderr


def test_item_progress_modes(capsys):
    with common._ItemProgress(True, "demo", total=2, tty=False) as p:
        p.item("first\nitem")
        p.item("second")
    assert capsys.readouterr().err.splitlines() == ["hsicodec: demo: [1/2] first item", "hsicodec: demo: [2/2] second"]
    with common._ItemProgress(False, "demo", total=2, tty=False) as p:
        p.item("quiet")
    with common._ItemProgress(True, "demo", total=2, tty=False, lines=False) as p:
        p.item("no lines")
    assert capsys.readouterr().err == ""
    with common._ItemProgress(True, "demo", total=1, tty=True) as p:
        assert p.bar.bar is not None and not p.lines
        p.item("bar")
    assert "hsicodec: demo: [" not in capsys.readouterr().err
