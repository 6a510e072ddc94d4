"""Rate search: drive a codec's monotone quality knob to the largest stream at or below a byte budget."""

from __future__ import annotations

import math
from typing import Callable

_COUNTER = [0]  # encodes run by _search (diagnostics: params["n_encodes"])


def _search(
    encode: Callable[[float], bytes],
    lo: float,
    hi: float,
    target_bytes: int,
    quality_increases_with_knob: bool,
    iters: int = 16,
    rel_tol: float = 0.004,
    log: bool = True,
    start: float | None = None,
    knob_tol: float = 2e-4,
    walk: float = 0.7,
) -> tuple[float | None, bytes]:
    """Find the largest stream <= target_bytes on a monotone quality knob in [lo, hi].

    Safeguarded regula falsi: the next knob interpolates log(size) against
    (log) knob between the current bracket ends, clamped to the inner 10-90 %
    of the bracket so it can never do worse than a slow bisection.  With
    ``start`` (e.g. the solution for a neighbouring setting) the bracket is
    first grown geometrically from there instead of from the range ends.

    Returns (knob, blob) of the best feasible point seen (the largest stream
    not above the target), or (None, smallest_blob) when even the
    lowest-quality end of the knob range overshoots the target.
    """
    fwd = (lambda x: math.log(x)) if log else (lambda x: x)
    inv = (lambda y: math.exp(y)) if log else (lambda y: y)
    lo_q, hi_q = (lo, hi) if quality_increases_with_knob else (hi, lo)  # quality ends
    best: tuple[float, bytes] | None = None  # largest stream <= target_bytes seen
    smallest: tuple[float, bytes] | None = None
    cache: dict[float, bytes] = {}

    def ev(knob: float) -> bytes:
        if knob in cache:
            return cache[knob]
        nonlocal best, smallest
        blob = encode(knob)
        _COUNTER[0] += 1
        cache[knob] = blob
        if smallest is None or len(blob) < len(smallest[1]):
            smallest = (knob, blob)
        if len(blob) <= target_bytes and (best is None or len(blob) > len(best[1])):
            best = (knob, blob)
        return blob

    def done() -> bool:
        return best is not None and len(best[1]) >= (1.0 - rel_tol) * target_bytes

    def found() -> tuple[float, bytes]:
        assert best is not None  # only called once a stream <= target_bytes was seen
        return best

    def overshoot() -> tuple[None, bytes]:
        assert smallest is not None  # only called after ev()
        return None, smallest[1]

    # bracket: a = feasible (size <= target), b = infeasible (size > target)
    a = b = None
    if start is not None and min(lo, hi) < start < max(lo, hi):
        size = len(ev(start))
        if size <= target_bytes and done():
            return found()
        # walk from start towards the other side of the target, doubling the step
        toward = hi_q if size <= target_bytes else lo_q
        x, step = start, (walk if log else 0.1 * abs(hi - lo))
        for _ in range(60):
            fx, ft = fwd(x), fwd(toward)
            nx = toward if abs(ft - fx) <= step else inv(fx + math.copysign(step, ft - fx))
            feasible = len(ev(nx)) <= target_bytes
            if size <= target_bytes:
                if feasible:
                    if nx == toward:
                        return found()  # even the best quality fits
                    if done():
                        return found()
                    x = nx
                else:
                    a, b = x, nx
                    break
            else:
                if feasible:
                    a, b = nx, x
                    break
                if nx == toward:
                    return overshoot()
                x = nx
            step *= 2.0
    if a is None or b is None:
        if len(ev(hi_q)) <= target_bytes:
            return hi_q, cache[hi_q]  # even the best quality fits
        if len(ev(lo_q)) > target_bytes:
            return overshoot()
        a, b = lo_q, hi_q
    for _ in range(iters):
        if done():
            break
        fa, fb = fwd(a), fwd(b)
        if abs(fb - fa) <= knob_tol * (1.0 if log else max(abs(fa), abs(fb), 1e-300)):
            break  # the size jumps over the target here; nothing left to gain
        sa, sb = math.log(max(len(cache[a]), 1)), math.log(max(len(cache[b]), 1))
        goal = math.log(max(target_bytes * (1.0 - rel_tol / 2), 1))
        t = 0.5 if sb <= sa else (goal - sa) / (sb - sa)
        t = min(0.9, max(0.1, t))
        x = inv(fa + t * (fb - fa))
        if x in (a, b):
            break
        if len(ev(x)) <= target_bytes:
            a = x
        else:
            b = x
    return found()
