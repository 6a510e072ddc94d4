"""The coefficient-map layer's trained reconstruction table (hsicodec/layers/maps/recon.py, spec/hsim.md 10.13):
its context, the C++ twin (equal bit for bit), the header forms, the encoder's shift and what a file gains."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import hsicodec
from hsicodec.cli.main import cli
from hsicodec.data import sample_path
from hsicodec.errors import HsimHeaderError, ModelFormatError
from hsicodec.format import compact
from hsicodec.format.container import decode_hsim
from hsicodec.layers.maps import coding as cm
from hsicodec.layers.maps import recon
from hsicodec.layers.maps.reduced import reduced_reference
from hsicodec.metrics import psnr
from hsicodec.models.modelfile import decode_model, encode_model
from hsicodec.models.registry import bundled_models_dir

ROOT = Path(__file__).resolve().parents[1]
SPEC_CODES = [16, 15, 14, 12, 10, 8, 7, 6, 12, 12, 12, 11, 10, 9, 8, 6, 14, 11, 9, 9, 9, 8, 7, 5]  # spec 10.13


def _symbols(shape: tuple, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (np.round(rng.laplace(0, 1.3, shape)) * (rng.random(shape) < 0.7)).astype(np.int64)


# -- the context ---------------------------------------------------------------------------------


def test_the_context_counts_the_neighbours_the_parent_twice_and_the_adjacent_maps():
    """One symbol of an HH subband at level group 2 of 16 × 16 maps (2 levels), its context by hand."""
    k, h, w, levels = 3, 16, 16, 2
    bands = cm.subbands(h, w, levels)
    (_, _, prs, pcs), (_, _, rs, cs) = bands[3], bands[6]  # HH of group 1 (the parent), HH of group 2
    sym = np.zeros((k, h, w), np.int64)
    r, c = rs.start + 3, cs.start + 5
    sym[1, r, c] = -2  # the symbol
    sym[1, r - 1, c + 1] = 3  # a diagonal neighbour in its subband
    sym[1, r + 1, c] = -1
    sym[1, prs.start + 1, pcs.start + 2] = 4  # its parent at (3 // 2, 5 // 2)
    sym[0, r, c], sym[2, r, c] = 1, -5  # the maps before and after
    sym[1, r, c + 2] = 7  # not a neighbour
    u = recon.context(np.abs(sym), levels)
    assert u[1, r, c] == 3 + 1 + 2 * 4 + 1 + 5
    cell = recon.cells(sym, levels)
    assert cell[1, r, c] == 8 * (2 - 1) + 7  # |s| = 2; u = 18 reaches all seven thresholds
    assert cell[1, 0, 0] == -1  # a zero has no cell
    sym[1, prs.start + 1, pcs.start + 2] = 0  # without the parent: u = 10, five thresholds
    assert recon.cells(sym, levels)[1, r, c] == 8 + 5


def test_a_neighbour_across_a_subband_edge_does_not_count():
    k, h, w, levels = 1, 8, 8, 1
    (_, _, rs, cs) = cm.subbands(h, w, levels)[1]  # HL: rows 0..4, cols 4..8
    sym = np.zeros((k, h, w), np.int64)
    sym[0, 0, cs.start] = 1
    sym[0, 0, cs.start - 1] = 9  # the low band's last column, beside it in the layout
    assert recon.context(np.abs(sym), levels)[0, 0, cs.start] == 0


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 1, 17), (2, 17, 9), (4, 40, 33), (5, 2, 64), (6, 64, 64)])
@pytest.mark.parametrize("ro", [0, 5, 8, 16])
def test_the_native_codes_equal_the_reference(shape, ro):
    k, h, w = shape
    levels = cm.map_levels(h, w)
    sym = _symbols(shape, sum(shape) + ro)
    sym[0, 0, 0] = 2**20  # the largest symbol a stream holds
    codes = np.random.default_rng(ro).integers(0, recon.MAX_CODE + 1, recon.CELLS)
    want = recon.offset_codes_reference(sym, levels, codes, ro)
    assert want.dtype == np.uint8 and want.shape == shape and int(want.max()) <= recon.MAX_CODE
    assert np.all(want[sym == 0] == recon.CODE_ZERO)
    if cm._native_function("recon_offset_codes") is None:
        pytest.skip("the extension is not built")
    for s in (sym, sym.astype(np.int32)):
        for threads in (1, 3):
            assert np.array_equal(recon.table_codes(s, levels, codes, ro, threads), want)


@pytest.mark.parametrize("ro", [0, 3, 8, 16])
def test_the_codes_shifted_from_ro_8_are_the_codes_at_ro(ro):
    """What the encoder does to dequantize its candidates without a second pass over the contexts."""
    sym = _symbols((4, 30, 41), ro)
    levels, table = cm.map_levels(30, 41), recon.table(1).codes
    unshifted = recon.table_codes(sym, levels, table, recon.SHIFT_ZERO)
    nz = sym != 0  # the zeros' codes are never read
    assert np.array_equal(recon.shifted(unshifted, ro)[nz], recon.table_codes(sym, levels, table, ro)[nz])
    excess = 0.1 * np.count_nonzero(sym)
    assert recon.table_shift(sym, excess, levels, table)[1].tobytes() == unshifted.tobytes()


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 1, 7), (2, 17, 9), (5, 40, 33)])
@pytest.mark.parametrize("ro", [0, 8, 13])
def test_dequantizing_with_the_table_native_equals_numpy_bit_for_bit(shape, ro):
    k, h, w = shape
    levels = cm.map_levels(h, w)
    sym = _symbols(shape, 7 * sum(shape) + ro) * 9
    p = cm.MapParams(k, -40, levels, 40, bytes(k * (levels + 1)), np.zeros(26, np.int64), ro, recon_table=1)
    want = cm.dequantize_reference(sym, p, h, w)
    assert np.array_equal(cm.dequantize(sym, p, h, w), want)
    assert np.array_equal(cm.dequantize(sym.astype(np.int32), p, h, w), want)
    flat = cm.MapParams(k, -40, levels, 40, bytes(k * (levels + 1)), np.zeros(26, np.int64), 8)
    if np.any(sym):  # the table's offsets are not ρ's
        assert not np.array_equal(cm.dequantize_reference(sym, flat, h, w), want)


def test_the_dequantized_values_are_the_table_offsets():
    k, h, w, levels = 2, 12, 10, 2
    sym = _symbols((k, h, w), 3)
    p = cm.MapParams(k, 0, levels, 9, bytes(k * (levels + 1)), np.zeros(26, np.int64), 6, recon_table=1)
    table = recon.table(1).codes
    cell = recon.cells(sym, levels)
    off = np.clip(table[np.maximum(cell, 0)] + 6 - 8, 0, 24) - 8  # 1/32 of a step, −8..16
    steps = cm._step_map(h, w, levels, p.step)
    want = np.where(sym != 0, np.sign(sym) * (np.abs(sym) - off / 32) * steps, 0.0)
    assert np.allclose(cm.dequantized(sym, cm.offsets(sym, p), steps), want, rtol=0, atol=1e-12)


# -- the bundled table and the header --------------------------------------------------------------


def test_the_bundled_table_is_the_one_the_spec_names():
    path = bundled_models_dir() / f"{recon.DEFAULT_ALIAS}.hsmodel"
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == recon.TABLES[1]
    assert recon.TABLES[1] in (ROOT / "spec" / "hsim.md").read_text()
    t = recon.table(1)
    assert t.codes.tolist() == SPEC_CODES and t.sha256 == recon.TABLES[1]
    mf = decode_model(data)
    assert mf.alias == recon.DEFAULT_ALIAS and mf.card["train_scenes"] and mf.card["validation_db"]


def test_a_model_that_is_not_a_table_is_refused():
    mf = decode_model(encode_model({"codes": np.zeros(23, np.uint8)}, recon.model_config(), {}))
    with pytest.raises(ModelFormatError):
        recon.from_model_file(mf)
    mf = decode_model(encode_model({"codes": np.full(24, 25, np.uint8)}, recon.model_config(), {}))
    with pytest.raises(ModelFormatError):
        recon.from_model_file(mf)
    mf = decode_model(encode_model({"codes": np.zeros(24, np.uint8)}, {**recon.model_config(), "code_zero": 7}, {}))
    with pytest.raises(ModelFormatError):
        recon.from_model_file(mf)


def _rl(ec: int = 1, rt: int = 1) -> dict:
    p = cm.MapParams(2, -30, 3, 12, bytes(range(100, 108)), np.arange(26) - 3, 9, ec, recon_table=rt)
    if ec == cm.EC_LEARNED:
        p = cm.MapParams(2, -30, 3, 12, bytes(range(100, 108)), np.arange(26) - 3, 9, ec, b"12345678", bytes(4), rt)
    return p.to_header()


@pytest.mark.parametrize("ec", [cm.EC_RANS, cm.EC_LEARNED])
@pytest.mark.parametrize("rt", [0, 1])
def test_the_table_survives_both_header_forms_at_no_cost(ec, rt):
    rl = _rl(ec, rt)
    assert ("rt" in rl) == bool(rt)
    assert cm.parse_params(rl, 20, 20, 10).recon_table == rt  # the map form
    arr = compact.pack_maps(rl)
    assert arr[6] == ec + compact.EC_RT * rt and len(arr) == (9 if ec == cm.EC_LEARNED else 7)
    back = compact.unpack_maps(arr, 10, 8)
    assert cm.parse_params(back, 20, 20, 10).recon_table == rt
    assert len(compact.pack_maps(_rl(ec, 0))) == len(arr)  # the same entries: no header byte for the table


def test_an_unknown_table_or_coder_entry_is_refused():
    with pytest.raises(HsimHeaderError, match="rt"):
        cm.parse_params({**_rl(), "rt": 2}, 20, 20, 10)
    arr = compact.pack_maps(_rl())
    with pytest.raises(HsimHeaderError, match="rt"):
        cm.parse_params(compact.unpack_maps(arr[:6] + [1 + 2 * compact.EC_RT], 10, 8), 20, 20, 10)
    for bad in (-1, "1", 1.0):
        with pytest.raises(HsimHeaderError):
            compact.unpack_maps(arr[:6] + [bad], 10, 8)
    with pytest.raises(HsimHeaderError):  # ec = 2 (learned) needs its id and mix weights
        compact.unpack_maps(arr[:6] + [2 + compact.EC_RT], 10, 8)
    with pytest.raises(HsimHeaderError):
        recon.table(3)


# -- the encoder -----------------------------------------------------------------------------------


def test_the_shift_is_the_least_squares_one():
    """On Laplacian coefficients, the ro the encoder fits under the table has a smaller error than its neighbours."""
    rng = np.random.default_rng(5)
    k, h, w, levels = 3, 32, 32, 2
    c = rng.laplace(0, 0.8, (k, h, w))
    tr = cm.Transformed(c, levels)
    table = recon.table(1).codes
    sym, a, excess, _ = cm.quantize_sums(tr, 0, k, 0.4, magnitudes=True)  # what the encoder fits ro from
    ro, _ = recon.table_shift(sym, excess, levels, table)
    assert 0 <= ro <= 16
    sym2, _, rho = cm.quantize(tr, 0, k, 0.4)
    assert np.array_equal(sym, sym2) and rho != ro  # the same symbols; ro is the table's shift, not ρ

    def err(shift: int) -> float:
        off = recon.table_codes(sym, levels, table, shift).astype(np.float64) - recon.CODE_ZERO
        return float(np.sum((np.abs(sym) - off / 32 - a)[sym != 0] ** 2))

    assert err(ro) <= min(err(max(ro - 1, 0)), err(min(ro + 1, 16)))


@pytest.fixture(scope="module")
def sample() -> np.ndarray:
    return np.load(sample_path())[:, :, ::2].astype(np.uint16) + 500  # 64 × 64 × 99, lifted off 0


@pytest.mark.parametrize("rate", [0.05, 0.2])
def test_default_files_use_the_table_and_decode_better(sample, rate):
    on = hsicodec.compress(sample, bpppb=rate)
    off = hsicodec.compress(sample, bpppb=rate, recon_table=False)
    e_on, e_off = decode_hsim(on).header["codec"]["rl"][6], decode_hsim(off).header["codec"]["rl"][6]
    assert (e_on, e_off) == (cm.EC_RANS + compact.EC_RT, cm.EC_RANS)
    assert len(on) <= rate * sample.size / 8 and len(off) <= rate * sample.size / 8
    assert psnr(sample, hsicodec.decompress(on)[0]) > psnr(sample, hsicodec.decompress(off)[0])
    numpy_decode, _ = hsicodec.decompress(on, backend="numpy", threads=1)
    assert np.array_equal(numpy_decode, hsicodec.decompress(on)[0])


def test_a_reduced_read_of_a_table_file_estimates_its_full_decode(sample):
    data = hsicodec.compress(sample, bpppb=0.2)
    assert decode_hsim(data).header["codec"]["rl"][6] // compact.EC_RT == 1
    full, _ = hsicodec.decompress(data)
    small, _ = hsicodec.decompress(data, reduce=1)
    want = reduced_reference(full.astype(np.float64), 1, cm.map_levels(*sample.shape[:2]))
    assert np.allclose(small, want, atol=1.0)  # the uint16 rounding of each


def test_the_cli_flag_writes_a_file_without_the_table(sample, tmp_path):
    src = tmp_path / "in.npy"
    np.save(src, sample)
    result = CliRunner().invoke(cli, ["compress", str(src), str(tmp_path / "a.hsim"), "--no-recon-table", "-q"])
    assert result.exit_code == 0, result.output
    assert decode_hsim((tmp_path / "a.hsim").read_bytes()).header["codec"]["rl"][6] == cm.EC_RANS


# -- the training script ----------------------------------------------------------------------------


def test_the_training_script_fits_least_squares_codes(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "tools"))
    import train_recon_table as trt

    cube = np.load(sample_path())[:40, :40, ::3].astype(np.uint16)
    np.save(tmp_path / "a.npy", cube)
    codes, counts = trt.fit_table(["a"], rates=(0.05, 0.2), data_dir=tmp_path)
    assert codes.dtype == np.uint8 and codes.shape == (recon.CELLS,) and int(codes.max()) <= recon.MAX_CODE
    assert counts.sum() > 0 and np.all(codes[counts == 0] == recon.CODE_ZERO)
    again, _ = trt.fit_table(["a"], rates=(0.05, 0.2), data_dir=tmp_path)
    assert np.array_equal(codes, again)  # no randomness


@pytest.mark.slow
def test_the_bundled_table_is_what_the_training_script_makes(monkeypatch):
    data = ROOT.parent / "shared" / "data" / "hsi"
    if not data.is_dir():
        pytest.skip("the training scenes are not here")
    monkeypatch.syspath_prepend(str(ROOT / "tools"))
    import train_recon_table as trt

    codes, _ = trt.fit_table(trt.json.loads(trt.CARD.read_text())["train_scenes"])
    assert codes.tolist() == SPEC_CODES
