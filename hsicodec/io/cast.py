"""Converting pixel values to another dtype (rounding, clipping, NaN handling)."""

from __future__ import annotations

import math
import warnings

import numpy as np

from hsicodec.io.checks import _is_real


def cast_to_dtype(values: np.ndarray, dtype, nodata: float | int | None = None) -> np.ndarray:
    """``values`` converted to ``dtype``: rounded to nearest (half to even) and clipped for
    integer dtypes, clipped to the finite range for float dtypes.

    NaN stays NaN for float targets.  For integer targets NaN becomes ``nodata`` when it
    is an integer the dtype can hold; otherwise it becomes 0 and a RuntimeWarning says
    how many values were affected.  ±inf clip to the integer range's ends.
    """
    dtype = np.dtype(dtype)
    values = np.asarray(values)
    src = values.dtype
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if src.kind in "iub":
            if src.kind == "b":
                return values.astype(dtype)
            sinfo = np.iinfo(src)
            lo, hi = max(info.min, sinfo.min), min(info.max, sinfo.max)
            if lo > sinfo.min or hi < sinfo.max:
                values = np.clip(values, np.array(lo, src), np.array(hi, src))
            return values.astype(dtype)
        if src.kind != "f":
            raise TypeError(f"cannot cast {src} values to {dtype}")
        lo_f, hi_f = float(info.min), float(info.max)
        if int(hi_f) > info.max:  # 2**63, 2**64 are not representable in (u)int64
            hi_f = float(np.nextafter(hi_f, -np.inf))
        if int(lo_f) < info.min:
            lo_f = float(np.nextafter(lo_f, np.inf))
        work = np.rint(values.astype(np.float64, copy=False) if src.itemsize < 8 else values)
        work = np.clip(work, lo_f, hi_f)
        nan = np.isnan(work)
        if nan.any():
            fill = 0
            if (
                nodata is not None
                and _is_real(nodata)
                and math.isfinite(float(nodata))
                and float(nodata).is_integer()
                and info.min <= int(nodata) <= info.max
            ):
                fill = int(nodata)
            else:
                warnings.warn(
                    f"{int(nan.sum())} NaN values cast to {dtype} became 0 (no integer nodata value)",
                    RuntimeWarning,
                    stacklevel=2,
                )
            work[nan] = fill
        return work.astype(dtype)
    if dtype.kind == "f":
        if src.kind == "f" and src.itemsize > dtype.itemsize:
            fmax = float(np.finfo(dtype).max)
            clipped = np.clip(values, -fmax, fmax)
            values = np.where(np.isinf(values), values, clipped)
        return values.astype(dtype)
    raise TypeError(f"cast_to_dtype: unsupported target dtype {dtype}")
