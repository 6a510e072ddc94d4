"""hsicodec.codec.memory: the numpy memory handler its encoder and decoder allocate through."""

from __future__ import annotations

import re
import threading

import numpy as np
import pytest

import hsicodec
from hsicodec.codec import memory
from hsicodec.layers.maps.coding import _native_function

pytestmark = pytest.mark.skipif(_native_function("numpy_alloc_enter") is None, reason="native extension not built")

BIG = 64 << 20  # bytes: well above numpy's 4 MiB huge-page threshold


def handler_name() -> str:
    core = np._core if hasattr(np, "_core") else np.core  # numpy 2 / numpy 1
    return str(core.multiarray.get_handler_name())


def huge_kib(a: np.ndarray) -> int | None:
    """AnonHugePages (KiB) of the mappings overlapping ``a``'s data, None where /proc/self/smaps cannot say."""
    start = a.__array_interface__["data"][0]
    stop = start + a.nbytes
    try:
        with open("/proc/self/smaps") as f:
            text = f.read()
    except OSError:
        return None
    total, inside = 0, False
    for line in text.splitlines():
        m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) ", line)
        if m:
            inside = int(m.group(1), 16) < stop and start < int(m.group(2), 16)
        elif inside and line.startswith("AnonHugePages:"):
            total += int(line.split()[1])
    return total


def test_handler_only_inside_and_restored() -> None:
    before = handler_name()
    with memory.codec_pages():
        assert handler_name() == "hsicodec_free_huge_pages"
        with memory.codec_pages():  # nests
            assert handler_name() == "hsicodec_free_huge_pages"
        assert handler_name() == "hsicodec_free_huge_pages"
    assert handler_name() == before


def test_restored_after_an_exception() -> None:
    before = handler_name()
    with pytest.raises(ZeroDivisionError), memory.codec_pages():
        _ = 1 / 0
    assert handler_name() == before


def test_arrays_made_inside_live_on_outside() -> None:
    with memory.codec_pages():
        big = np.arange(BIG // 8, dtype=np.float64)
        zeros = np.zeros(BIG // 8)
        small = np.arange(10)
        grown = np.arange(1 << 20, dtype=np.float64)
    assert big[-1] == BIG // 8 - 1 and not zeros.any() and small.sum() == 45
    grown.resize(4 << 20, refcheck=False)  # realloc through the handler that made it, after it is gone
    assert grown[(1 << 20) - 1] == (1 << 20) - 1 and not grown[1 << 20 :].any()
    del big, zeros, small, grown


def test_other_threads_keep_numpys_handler() -> None:
    seen: list[str] = []

    @memory.uses_codec_pages
    def inside() -> str:
        return handler_name()

    with memory.codec_pages():
        t = threading.Thread(target=lambda: seen.append(handler_name()))
        t.start()
        t.join()
    worker: list[str] = []
    t = threading.Thread(target=lambda: worker.append(inside()))
    t.start()
    t.join()
    assert seen == ["default_allocator"]  # a thread started inside has its own context
    assert worker == ["hsicodec_free_huge_pages"]  # a decorated function uses it in whatever thread runs it


def test_env_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(memory.ENV, "0")
    before = handler_name()
    with memory.codec_pages():
        assert handler_name() == before


def test_no_huge_pages_for_big_arrays_with_env_1(monkeypatch: pytest.MonkeyPatch) -> None:
    """HSICODEC_PLAIN_PAGES=1: numpy's own big arrays are advised huge pages, the handler's never are."""
    plain = np.empty(0)
    ref = np.ones(BIG // 8)
    ref_huge = huge_kib(ref)
    if not ref_huge:
        pytest.skip("no transparent huge pages for numpy's arrays here (THP off or smaps unreadable)")
    monkeypatch.setenv(memory.ENV, "1")
    with memory.codec_pages():
        assert handler_name() == "hsicodec_plain_pages"
        plain = np.ones(BIG // 8)
    assert huge_kib(plain) == 0


def test_huge_pages_where_the_kernel_has_them_free() -> None:
    """By default a big array gets huge pages while free 2 MiB blocks for twice its size exist."""
    with memory.codec_pages():
        if memory.free_huge_blocks() * (2 << 20) < 4 * BIG:
            pytest.skip("not enough free 2 MiB blocks here")
        big = np.ones(BIG // 8)
    got = huge_kib(big)
    if got is None or not huge_kib(np.ones(BIG // 8)):
        pytest.skip("no transparent huge pages for numpy's arrays here (THP off or smaps unreadable)")
    assert got > 0


@pytest.mark.parametrize(
    "text, blocks",
    [
        (  # orders 9 and 10 of each zone: 1 + 2 * 3, then 49 + 2 * 942
            "Node 0, zone      DMA      0      0      0      0      0      0      0      0      1      1      3\n"
            "Node 0, zone   Normal    700    240    716    927    301    387    136     48     79     49    942\n",
            (1 + 2 * 3) + (49 + 2 * 942),
        ),
        ("Node 0, zone Normal 5 4 3\n", 0),  # no block of order 9
        ("Node 0, zone Normal 0 0 0 0 0 0 0 0 0 2 1 4\nNode 1, zone Normal 0 0 0 0 0 0 0 0 0 0 0 1", 2 + 2 + 16 + 4),
        ("garbage\n\n", 0),
    ],
)
def test_free_huge_blocks_reads_buddyinfo(text: str, blocks: int, tmp_path) -> None:
    path = tmp_path / "buddyinfo"
    path.write_text(text)
    count = _native_function("free_huge_blocks")
    assert count(str(path)) == blocks
    assert count(str(tmp_path / "missing")) == -1
    assert memory.free_huge_blocks() >= -1


def test_api_entry_points_allocate_through_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """compress and decompress run inside it; the bytes and pixels do not depend on it."""
    names: list[str] = []
    real = hsicodec.codec.cube._compress_auto

    def spy(*args, **kwargs):
        names.append(handler_name())
        return real(*args, **kwargs)

    cube = (np.random.default_rng(0).random((24, 24, 12)) * 1000).astype(np.uint16)
    monkeypatch.setattr(hsicodec.codec.cube, "_compress_auto", spy)
    data = hsicodec.compress(cube, bpppb=0.5)
    assert names == ["hsicodec_free_huge_pages"]
    monkeypatch.setenv(memory.ENV, "0")
    assert hsicodec.compress(cube, bpppb=0.5) == data
    assert names[-1] == "default_allocator"
    off = hsicodec.decompress(data)[0]
    monkeypatch.delenv(memory.ENV)
    assert np.array_equal(hsicodec.decompress(data)[0], off)
