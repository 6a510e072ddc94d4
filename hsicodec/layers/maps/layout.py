"""The coefficient maps' subband layout as the context rules read it (spec/hsim.md 10.5): each subband's parent,
and the layout and kernels of the C++ extension. Shared by the map coder (:mod:`hsicodec.layers.maps.coding`)
and the reconstruction table (:mod:`hsicodec.layers.maps.recon`), which both key contexts on the same parents."""

from __future__ import annotations

from hsicodec.coding.wavelet import subbands


def parent_slices(bands: list) -> dict:
    """For every detail subband index, the index of its parent subband (same orientation, one level coarser)."""
    out = {}
    for i, (grp, ori, _, _) in enumerate(bands):
        if grp >= 2:
            out[i] = next(j for j, (g, o, _, _) in enumerate(bands) if g == grp - 1 and o == ori)
    return out


def stream_layout(height: int, width: int, levels: int):
    """(the subbands in coding order, their parents' indices by :func:`parent_slices`)."""
    bands = subbands(height, width, levels)
    return bands, parent_slices(bands)


def native_layout(height: int, width: int, levels: int) -> tuple[list, list]:
    """The subbands as (group, orientation, row0, row1, col0, col1) and each one's parent index (−1: none),
    as the C++ context functions take them."""
    bands, parents = stream_layout(height, width, levels)
    return (
        [(g, o, rs.start, rs.stop, cs.start, cs.stop) for g, o, rs, cs in bands],
        [parents.get(b, -1) for b in range(len(bands))],
    )


def native_function(name: str):
    """The C++ function ``name`` of ``hsicodec._native``, or None without the extension."""
    try:
        from hsicodec import _native  # type: ignore[attr-defined]
    except ImportError:
        return None
    return getattr(_native, name, None)
