"""msgpack unpacking with every length bounded by the input size (no ext types).

Shared by the `.hsim` container and the model-file reader: a hostile header can
declare huge strings, arrays or maps, and msgpack must refuse them before it
allocates anything.
"""

from __future__ import annotations

from typing import Any, Callable

import msgpack


def unpackb_bounded(buf: Any, pairs_hook: Callable[[list], Any] | None = None) -> Any:
    """``msgpack.unpackb`` with str/bin/array/map lengths capped at ``len(buf)``, str keys only,
    no extension types. Raises msgpack's own exceptions; callers turn them into their errors."""
    n = len(buf)
    kwargs = {"object_pairs_hook": pairs_hook} if pairs_hook is not None else {}
    return msgpack.unpackb(
        buf,
        raw=False,
        strict_map_key=True,
        use_list=True,
        max_str_len=n,
        max_bin_len=n,
        max_array_len=n,
        max_map_len=n,
        max_ext_len=0,
        **kwargs,
    )
