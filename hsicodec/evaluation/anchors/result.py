"""One measured anchor operating point: :class:`AnchorResult` and :func:`_finish`, which
times the final encode/decode and measures the decoded cube."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from hsicodec.evaluation.anchors.search import _COUNTER
from hsicodec.metrics import bpppb as _bpppb
from hsicodec.metrics import max_abs_error, psnr, sam_degrees


@dataclass
class AnchorResult:
    """One anchor operating point, measured on really decoded bytes."""

    codec: str
    target_bpppb: float
    bpppb: float
    n_bytes: int
    psnr: float
    sam: float
    max_abs_error: float
    encode_s: float
    decode_s: float
    params: dict = field(default_factory=dict)
    reachable: bool = True
    note: str = ""
    #: the encoded file itself (None when unreachable); not part of to_dict()
    blob: bytes | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("blob", None)
        for key in ("psnr", "sam", "max_abs_error", "bpppb"):
            v = d[key]
            if isinstance(v, float) and not math.isfinite(v):
                d[key] = None if math.isnan(v) else ("inf" if v > 0 else "-inf")
        return d


def _timing_repeats() -> int:
    """:data:`hsicodec.evaluation.anchors.TIMING_REPEATS`, read at call time: callers set it on the package."""
    from hsicodec.evaluation import anchors  # the package imports this module: import it when used

    return max(1, int(anchors.TIMING_REPEATS))


def _finish(
    codec: str,
    cube: np.ndarray,
    target: float,
    blob: bytes | None,
    encode_final: Callable[[], bytes] | None,
    decode: Callable[[bytes], np.ndarray],
    params: dict,
    search_s: float,
    note: str = "",
    smallest: bytes | None = None,
    count0: int | None = None,
) -> AnchorResult:
    """Time one final encode and one decode, measure, build the AnchorResult."""
    if count0 is not None:
        params = {**params, "n_encodes": _COUNTER[0] - count0}
    if blob is None:
        n = len(smallest) if smallest is not None else 0
        return AnchorResult(
            codec=codec,
            target_bpppb=target,
            bpppb=_bpppb(n, cube.shape) if n else float("nan"),
            n_bytes=n,
            psnr=float("nan"),
            sam=float("nan"),
            max_abs_error=float("nan"),
            encode_s=float("nan"),
            decode_s=float("nan"),
            params={**params, "search_s": round(search_s, 3)},
            reachable=False,
            note=note
            or (
                f"cannot reach {target:g} bpppb: the lowest-rate setting of the knob "
                f"still needs {_bpppb(n, cube.shape):.4g} bpppb ({n} bytes)"
            ),
        )
    reps = _timing_repeats()
    enc_times, dec_times = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        again = encode_final() if encode_final is not None else blob
        enc_times.append(time.perf_counter() - t0)
        if again != blob and "bit-identical" not in note:  # determinism check
            note = (note + "; " if note else "") + "re-encode was not bit-identical"
    for _ in range(reps):
        t0 = time.perf_counter()
        dec = decode(blob)
        dec_times.append(time.perf_counter() - t0)
    enc_s, dec_s = float(np.median(enc_times)), float(np.median(dec_times))
    got = _bpppb(len(blob), cube.shape)
    if got < 0.9 * target:
        note = (note + "; " if note else "") + (
            f"lands {100 * (1 - got / target):.0f} % below the target: the codec's next "
            f"setting up already exceeds it (coarse rate steps)"
        )
    if dec.shape != cube.shape or dec.dtype != cube.dtype:
        raise RuntimeError(f"{codec}: decoder returned {dec.shape} {dec.dtype}")
    return AnchorResult(
        codec=codec,
        target_bpppb=target,
        bpppb=_bpppb(len(blob), cube.shape),
        n_bytes=len(blob),
        psnr=psnr(cube, dec),
        sam=sam_degrees(cube, dec),
        max_abs_error=max_abs_error(cube, dec),
        encode_s=enc_s,
        decode_s=dec_s,
        params={**params, "search_s": round(search_s, 3)},
        note=note,
        blob=blob,
    )
