"""The rate budget of a tiled file's tiles (spec/hsim.md 11.6): how many bits per value each tile of a
rate-targeted scene may spend, so that the whole file lands at or near the target.

Each tile gets what is left of the scene's budget per value left, so a tile landing under its share
leaves the rest to the tiles after it ("budget carry"). That makes tile ``i``'s rate depend on the bytes
of the tiles before it. With a ``lag`` L > 1, tile ``i``'s rate waits only for the actual bytes of tiles
``0 .. i-L``; the L-1 tiles before it count at their own rate (an estimate that the next tiles correct),
so L tiles can be encoded at once. The rates, hence the file, depend on L alone, never on how many tiles
actually run at once or where; L = 1 is the sequential carry.
"""

from __future__ import annotations

from collections import deque

from hsicodec.errors import OptionError

#: a tile's rate stays within these multiples of the scene's target (a thin edge tile may get more later)
RATE_CLAMP = (0.25, 4.0)


def check_lag(lag: int) -> int:
    """``lag`` as a positive int (OptionError otherwise)."""
    if isinstance(lag, bool) or not isinstance(lag, int) or lag < 1:
        raise OptionError(f"carry lag must be a positive number of tiles, got {lag!r}")
    return lag


class CarryBudget:
    """The bits left for the tiles not yet encoded, and the rate of the next tile.

    Call :meth:`next_rate` for tiles in order, and :meth:`commit` each tile's bytes in order; the rate of
    tile ``i`` needs the bytes of tiles ``0 .. i-lag`` committed (:meth:`ready`) and uses those alone, even
    when later tiles are committed already, so the rates never depend on when tiles finish.
    """

    def __init__(self, target: float, n_values: int, overhead_bytes: int, lag: int = 1) -> None:
        self.target, self.lag = float(target), check_lag(lag)
        self.bits = target * n_values - 8.0 * overhead_bytes  # less the bytes of the tiles folded in
        self.values = n_values  # values of the tiles not yet given a rate
        self.assigned = 0  # tiles given a rate
        self.committed = 0  # tiles whose bytes are known
        self._estimates: deque[float] = deque()  # bits assumed for the tiles given a rate, not folded in
        self._actual: deque[int] = deque()  # bytes of the tiles committed, not folded in

    def ready(self, i: int) -> bool:
        """Whether tile ``i``'s rate can be computed: the tiles ``0 .. i-lag`` are committed."""
        return self.committed >= i - self.lag + 1

    def next_rate(self, values: int, empty: bool = False) -> float:
        """The rate (bits per value) of the next tile, of ``values`` values (an ``empty`` one spends none)."""
        i = self.assigned
        if not self.ready(i):
            raise RuntimeError(f"tile {i}'s rate needs the bytes of tile {i - self.lag}")
        while self.assigned - len(self._estimates) < i - self.lag + 1:  # fold in the bytes of tiles <= i-lag
            self.bits -= 8.0 * self._actual.popleft()
            self._estimates.popleft()
        left = self.bits - sum(self._estimates) if self._estimates else self.bits
        lo, hi = RATE_CLAMP
        rate = min(max(left / self.values, lo * self.target), hi * self.target)
        self._estimates.append(0.0 if empty else rate * values)
        self.values = max(self.values - values, 1)
        self.assigned += 1
        return rate

    def commit(self, nbytes: int) -> None:
        """The actual size of the oldest tile given a rate and not yet committed."""
        if self.committed >= self.assigned:
            raise RuntimeError("commit of a tile that has no rate")
        self._actual.append(int(nbytes))
        self.committed += 1
