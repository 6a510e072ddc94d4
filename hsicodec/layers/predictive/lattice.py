"""The predictive layer's lattice: a cube and an error bound E ⇄ non-negative integers u, what its encoder and
decoder agree on (spec/predictive.md).

Every value is replaced by the nearest point of the lattice ``offset + step·u`` (u = 0..max_value):
integers use step 2E + 1, so the error is at most E and E = 0 is lossless; floats use a step a little
under 2E, leaving room for the rounding of the output dtype. The lattice indices are then coded
losslessly (:mod:`hsicodec.layers.predictive.coder`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hsicodec.errors import HsimHeaderError, OptionError

NAME = "predictive"
#: header ``codec`` keys: error bound pe, lattice offset po and step ps, largest index pm, rows per block pb
KEYS = frozenset({"pe", "po", "ps", "pm", "pb"})
SECTION = "p"
ROWS_PER_BLOCK = 32  # at most: blocks are coded in parallel, each adapts from scratch
MAX_INDEX = (1 << 31) - 1  # the coder's largest value


@dataclass(frozen=True)
class LatticeParams:
    """The layer's header keys: ``error`` E, the lattice ``offset`` and ``step``, the largest index, rows per
    coded block."""

    error: float
    offset: float
    step: float
    max_value: int
    rows_per_block: int = ROWS_PER_BLOCK

    def to_header(self) -> dict:
        def num(v: float):
            return int(v) if float(v).is_integer() and abs(v) < 2**53 else float(v)

        return {"pe": num(self.error), "po": num(self.offset), "ps": num(self.step), "pm": int(self.max_value),
                "pb": int(self.rows_per_block)}  # fmt: skip

    def values(self, u: np.ndarray) -> np.ndarray:
        """Lattice indices → values (float64, before the output dtype's cast)."""
        return self.offset + self.step * u.astype(np.float64)

    def whole_affine(self, dtype: np.dtype) -> tuple[int, int] | None:
        """(offset, step) as integers when every lattice value is a whole number that fits ``dtype`` (integer
        cubes: the lattice spans at most the cube's range widened by E), else None."""
        if dtype.kind not in "iu" or not (self.offset.is_integer() and self.step.is_integer()):
            return None
        info = np.iinfo(dtype)
        top = self.offset + self.step * self.max_value
        if not (info.min <= self.offset and top <= info.max and abs(top) < 2**62):
            return None
        return int(self.offset), int(self.step)


def balanced_rows(height: int, most: int = ROWS_PER_BLOCK) -> int:
    """Rows per block for a cube of ``height`` rows: the fewest blocks of at most ``most`` rows, an even
    number of them past one, all of (nearly) one height, so that two or four threads share the work
    evenly (100 rows: 4 × 25, not 3 × 32 + 4; 200 rows: 8 × 25, not 6 × 32 + 8)."""
    blocks = max(1, -(-int(height) // most))
    blocks += blocks % 2 if blocks > 1 else 0
    return max(1, -(-int(height) // blocks))


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and type(v) is not bool and bool(np.isfinite(float(v)))


def parse_params(c: dict) -> LatticeParams:
    """The layer's keys from a codec map; HsimHeaderError names the bad key."""
    for key in ("pe", "po", "ps"):
        if not _is_number(c.get(key)):
            raise HsimHeaderError(f"header key 'codec.{key}': expected a finite number, got {c.get(key)!r}")
    if not c["pe"] >= 0 or not c["ps"] > 0:
        raise HsimHeaderError("header keys 'codec.pe' / 'codec.ps': expected an error bound >= 0 and a step > 0")
    pm, pb = c.get("pm"), c.get("pb")
    if type(pm) is not int or not 0 <= pm <= MAX_INDEX:
        raise HsimHeaderError(f"header key 'codec.pm': expected an int in 0..{MAX_INDEX}, got {pm!r}")
    if type(pb) is not int or not 1 <= pb <= 1 << 16:
        raise HsimHeaderError(f"header key 'codec.pb': expected an int in 1..65536, got {pb!r}")
    return LatticeParams(float(c["pe"]), float(c["po"]), float(c["ps"]), pm, pb)


def _half_ulp(dtype: np.dtype, magnitude: float) -> float:
    """Half a unit in the last place of ``dtype`` at ``magnitude``: what the output cast may add."""
    return float(np.spacing(dtype.type(magnitude))) / 2.0


def lattice_for(span: tuple[float, float], dtype: np.dtype, error: float, avoid: float | None = None) -> LatticeParams:
    """The lattice of a cube whose values (masked ones already filled in) span ``(lo, hi)``, for error bound
    E in the original dtype. ``avoid``: a value no valid value may decode to (the nodata fill): the offset is
    moved so that it is no lattice point. OptionError when the bound cannot be kept (E < 0, lossless floats,
    a range too wide for the coder)."""
    if not np.isfinite(error) or error < 0:
        raise OptionError(f"--max-error must be a number >= 0, not {error}")
    lo, hi = float(span[0]), float(span[1])
    if dtype.kind in "iu":
        e = int(np.floor(error))  # integers: the bound in whole units
        step: float = 2 * e + 1
        offset = float(lo)
        if avoid is not None and step > 1 and np.isfinite(avoid) and (avoid - offset) % step == 0:
            offset -= 1.0  # any offset in [lo - E, lo] keeps the bound
        err = float(e)
    else:
        if error == 0:
            raise OptionError(
                f"lossless coding of {dtype} cubes is not supported: give --max-error E > 0 "
                "(every value is then kept within E)"
            )
        room = _half_ulp(dtype, max(abs(lo), abs(hi)) + error)
        if error <= 2 * room:
            raise OptionError(f"--max-error {error:g} is below the {dtype} precision of this cube's values")
        step = 2.0 * (error - room) * (1 - 1e-9)
        offset = lo
        on_lattice = avoid is not None and np.isfinite(avoid) and abs((avoid - offset) / step % 1.0 - 0.5) > 0.5 - 1e-6
        if on_lattice:
            offset -= step / 2
        err = float(error)
    top = int(np.floor((hi - offset + step / 2) / step)) + 1
    if top > MAX_INDEX:
        raise OptionError(
            f"the cube's range ({lo:g}..{hi:g}) is too wide for a bound of {error:g}: at most {MAX_INDEX} steps "
            "fit (give a larger --max-error)"
        )
    return LatticeParams(err, offset, float(step), max(top, 0))


def to_lattice(values: np.ndarray, p: LatticeParams, dtype: np.dtype) -> np.ndarray:
    """The lattice index of every value (int32): the nearest lattice point, within the bound."""
    return to_lattice_measured(values, p, dtype)[0]


def to_lattice_measured(values: np.ndarray, p: LatticeParams, dtype: np.dtype) -> tuple[np.ndarray, float | None]:
    """:func:`to_lattice`, and for integer cubes given as integers whose lattice fits the dtype (no value
    clipped by the cast) the sum of squared errors of the lattice points (value − point = r − E for the
    remainder r of the division by the step: Σ (r − E)² = Σ r² − 2E Σ r + n E², in exact integers); None
    otherwise. ``values``: the cube as integers, or as float64 (masked values filled in with means)."""
    if dtype.kind in "iu" and values.dtype.kind in "iub" and float(p.offset).is_integer():
        lo, hi = p.offset - p.error, p.offset + p.step * p.max_value
        t = values.astype(np.int32 if -(2**31) <= lo and hi < 2**31 else np.int64)
        np.subtract(t, int(lo), out=t)
        info = np.iinfo(dtype)
        exact = info.min <= p.offset and hi <= info.max
        if p.step == 1:
            return t.astype(np.int32, copy=False), 0.0
        u = t // int(p.step)
        r = np.remainder(t, int(p.step), out=t)  # in place: one cube-sized array fewer to fault in
        sse = None
        if exact and p.step < 2**15:  # r² fits the remainders' dtype
            e, n = int(p.error), r.size
            s1 = int(r.sum(dtype=np.int64))
            flat = r.reshape(-1)
            s2 = int(np.einsum("i,i->", flat, flat, dtype=np.int64))
            sse = float(s2 - 2 * e * s1 + n * e * e)
        return u.astype(np.int32, copy=False), sse
    if dtype.kind in "iu":  # float64 values of an integer cube (the fills of masked values need not be whole)
        d = np.rint(values - p.offset).astype(np.int64)
        u = (d + int(p.error)) // int(p.step)
    else:
        u = np.rint((values - p.offset) / p.step).astype(np.int64)
    return np.clip(u, 0, p.max_value).astype(np.int32), None
