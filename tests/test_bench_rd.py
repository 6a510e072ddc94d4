"""Quick-mode run of the RD suite (tools/bench_rd.py), the README generator and the atlas probe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "hsi"
sys.path.insert(0, str(ROOT / "tools"))


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    pytest.importorskip("imagecodecs")
    pytest.importorskip("matplotlib")
    if not (DATA / "jasper_ridge.npy").exists():
        pytest.skip("../shared/data/hsi not available")
    out = tmp_path_factory.mktemp("bench")
    extra = []
    try:
        from hsicodec.evaluation.paper_baselines import BASELINES
    except ImportError:  # lands with issue #10
        BASELINES = {}
    if "pca_dct" in BASELINES:
        extra = ["--baselines", "pca_dct", "--baseline-rates", "0.2"]
    p = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "bench_rd.py"),
            "--quick",
            "--out",
            str(out),
            "--atlas-json",
            str(out / "no-atlas.json"),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert p.returncode == 0, p.stderr[-3000:]
    return out, json.loads((out / "rd_quick.json").read_text()), (out / "rd_quick.md").read_text()


def test_quick_suite_roles_rows_and_plots(quick):
    out, res, _ = quick
    roles = {sc["scene"]: sc["role"] for sc in res["scenes"]}
    assert roles["jasper_ridge"] == "validation"
    assert "training" in roles.values()
    for sc in res["scenes"]:
        codecs = {r["codec"] for r in sc["rows"]}
        assert {"hsicodec-fast", "pca_jpeg2000", "sperr_3d"} <= codecs
        for r in sc["rows"]:
            if r["reachable"]:
                assert r["bpppb"] <= r["target_bpppb"] + 1e-12
                assert r["bpppb"] == pytest.approx(8 * r["bytes"] / (32 * 32 * sc["shape"][2]))
        assert (out / sc["plot"]).read_bytes()[:4] == b"\x89PNG"
        hs = [g for g in sc["gaps"] if g["codec"] == "hsicodec-fast"]
        assert [g["rate"] for g in hs] == [0.01, 0.05] and hs[1]["gap_db"] is not None
    jr = next(sc for sc in res["scenes"] if sc["scene"] == "jasper_ridge")
    if res["baselines"]:  # paper baselines on validation scenes only
        assert any(r["codec"] == "pca_dct" and r["kind"] == "baseline" for r in jr["rows"])
        assert not any(r["kind"] == "baseline" for sc in res["scenes"] if sc["role"] == "training" for r in sc["rows"])
    assert {p["psnr"] for p in jr["paper_reference"]} == {36.6, 41.6}
    assert res["wall_s"] > 0 and res["speed"] and res["atlas"]["reason"]


def test_quick_markdown_sections(quick):
    _, res, md = quick
    for needle in (
        "## PSNR gap to PCA + JPEG 2000 (validation scenes)",
        "## Speed",
        "## Learned peer: atlas-hsi",
        "reported by the paper (training scenes)",
        "| jasper_ridge | hsicodec-fast | 0.05 |",
        "### jasper_ridge (32x32x198 uint16, validation)",
        "## Per-scene results",
    ):
        assert needle in md, needle
    assert "paper: meta-learning (10x60 net)" in md


def test_every_rate_comparison_and_render(quick, tmp_path):
    """The every-rate table has a gap / bits-saved cell per plan rate; --render rebuilds the .md from the
    stored rows alone (no codec run) and fills ``rate_saving`` in the gaps."""
    import bench_rd

    out, res, md = quick
    assert "## hsicodec against PCA + JPEG 2000 at every rate (validation scenes)" in md
    line = next(ln for ln in md.splitlines() if ln.startswith("| jasper_ridge | hsicodec-fast |") and " / " in ln)
    rates = sorted({r["target_bpppb"] for sc in res["scenes"] for r in sc["rows"] if r["codec"] == "pca_jpeg2000"})
    assert line.count("|") == len(rates) + 3
    copy = tmp_path / "rd.json"
    stored = json.loads((out / "rd_quick.json").read_text())
    for sc in stored["scenes"]:
        for g in sc["gaps"]:
            g.pop("rate_saving", None)  # as an older rd.json
    copy.write_text(json.dumps(stored))
    assert bench_rd.main(["--render", str(copy)]) == 0
    again = json.loads(copy.read_text())
    assert all("rate_saving" in g for sc in again["scenes"] for g in sc["gaps"])
    assert "bits saved" in (tmp_path / "rd.md").read_text()


def test_update_readme_from_rd(quick, tmp_path):
    import update_readme

    out, _, _ = quick
    readme = out / "README.md"
    readme.write_text("# x\n\n## Results\n\n<!-- results:begin -->\nold\n<!-- results:end -->\n\n## After\n")
    assert update_readme.main(["--rd", str(out / "rd_quick.md"), "--readme", str(readme)]) == 0
    text = readme.read_text()
    section = text.split("<!-- results:begin -->")[1].split("<!-- results:end -->")[0]
    assert "old" not in section and "### PSNR gap" in section and "## After" in text
    assert "### jasper_ridge" not in section and "[rd_quick.md](rd_quick.md)" in section
    bad = tmp_path / "R.md"
    bad.write_text("no markers")
    assert update_readme.main(["--rd", str(out / "rd_quick.md"), "--readme", str(bad)]) == 1


def test_atlas_probe_without_download():
    import bench_atlas

    res = bench_atlas.probe(download=False)
    assert res["pip_download"] == {"skipped": True}
    if res["cuda"]["cuda_available"] and res["atlas_importable"]:
        assert res["can_run"] and res["reason"] == ""
    else:
        assert not res["can_run"] and res["reason"]
        if not res["cuda"]["cuda_available"]:
            assert "no CUDA device" in res["reason"]
