"""tools/bench_recon_table.py: both files of a point, and the report's summary line."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from hsicodec.data import sample_path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import bench_recon_table as brt  # noqa: E402


def test_one_point_codes_both_files_at_the_target():
    cube = np.load(sample_path())[:32, :32, ::4].astype(np.uint16) + 300
    r = brt.one_point(cube, 0.1, repeat=2)
    for key in ("table", "one_offset"):
        assert r[key]["bytes"] <= 0.1 * cube.size / 8 and r[key]["decode_s"] > 0 and r[key]["encode_s"] > 0
    assert r["gain_db"] == r["table"]["psnr"] - r["one_offset"]["psnr"]
    assert r["decode_ratio"] > 0 and r["encode_ratio"] > 0


def test_the_report_counts_the_cells_the_table_wins():
    side = {"bytes": 10, "bpppb": 0.01, "psnr": 40.0, "encode_s": 0.1, "decode_s": 0.01}
    rows = [
        {"scene": "a", "rate": 0.01, "one_offset": side, "table": {**side, "psnr": 40.05}, "gain_db": 0.05,
         "decode_ratio": 1.05, "encode_ratio": 1.01},
        {"scene": "a", "rate": 0.02, "one_offset": side, "table": {**side, "psnr": 39.99}, "gain_db": -0.01,
         "decode_ratio": 1.1, "encode_ratio": 1.0},
    ]  # fmt: skip
    text = "\n".join(brt.markdown({"command": "c", "date": "d", "machine": "m", "repeat": 3, "rows": rows}))
    assert "| a | 0.01 | 40.000 | 40.050 | +0.050 |" in text
    assert "Gain -0.010 to +0.050 dB (better in 1 of 2 cells" in text and "1.05–1.10×" in text
