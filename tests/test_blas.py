"""hsicodec.codec.blas: one BLAS thread while the encoder runs, restored after."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import hsicodec
from hsicodec.codec import blas

threadpoolctl = pytest.importorskip("threadpoolctl")


def blas_threads() -> list[int]:
    return [int(i["num_threads"]) for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]


@pytest.fixture
def two_threads():
    """BLAS with two threads for the test (one-core machines: nothing to limit)."""
    if not blas_threads():
        pytest.skip("numpy has no BLAS threadpoolctl can see")
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        if set(blas_threads()) != {2}:
            pytest.skip("this BLAS will not run two threads")
        yield


def test_one_thread_inside_restored_after(two_threads) -> None:
    with blas.one_blas_thread():
        assert set(blas_threads()) == {1}
        with blas.one_blas_thread():  # nests
            assert set(blas_threads()) == {1}
        assert set(blas_threads()) == {1}
    assert set(blas_threads()) == {2}


def test_restored_after_an_exception(two_threads) -> None:
    with pytest.raises(ZeroDivisionError), blas.one_blas_thread():
        _ = 1 / 0
    assert set(blas_threads()) == {2}


def test_overlapping_calls_in_threads_restore_once_the_last_leaves(monkeypatch: pytest.MonkeyPatch) -> None:
    """The count is the process's: one limit for overlapping calls in several threads, set by the first to
    enter and restored by the last to leave (not when the first leaves, and not to what the second saw)."""
    log: list = []

    class Limiter:
        def restore_original_limits(self) -> None:
            log.append("restore")

    def start() -> Limiter:
        log.append("set")
        return Limiter()

    monkeypatch.setattr(blas, "_LIMIT", blas._Limit(start))
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict = {}

    def first() -> None:
        with blas.one_blas_thread():
            first_in.set()
            second_in.wait(10)
        first_out.set()

    def second() -> None:
        first_in.wait(10)
        with blas.one_blas_thread():
            second_in.set()
            first_out.wait(10)
            seen["after the first left"] = list(log)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert seen == {"after the first left": ["set"]}
    assert log == ["set", "restore"]


def test_env_leaves_blas_alone(two_threads, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(blas.ENV, "0")
    with blas.one_blas_thread():
        assert set(blas_threads()) == {2}


def test_compress_runs_with_one_blas_thread(two_threads, monkeypatch: pytest.MonkeyPatch) -> None:
    """The encoder's entry points run inside it; the bytes do not depend on it."""
    seen: list = []
    real = hsicodec.codec.cube._compress_auto

    def spy(*args, **kwargs):
        seen.append(set(blas_threads()))
        return real(*args, **kwargs)

    cube = (np.random.default_rng(0).random((24, 24, 12)) * 1000).astype(np.uint16)
    monkeypatch.setattr(hsicodec.codec.cube, "_compress_auto", spy)
    data = hsicodec.compress(cube, bpppb=0.5)
    assert seen == [{1}] and set(blas_threads()) == {2}
    monkeypatch.setenv(blas.ENV, "0")
    assert hsicodec.compress(cube, bpppb=0.5) == data
    assert seen[-1] == {2}
