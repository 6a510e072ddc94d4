"""Remote range reads (hsicodec.io.remote, hsicodec.open of a URL).

A local HTTP server in a thread serves `.hsim` files with Range support and counts the bytes it
sends; it can also lie (short bodies, wrong ranges, ignored ranges, a file changed between requests,
dropped connections, stalls, errors). Every client reads a window of a 16-tile file by fetching only
its tile, and every lie ends in an hsicodec error, never in pixels. The urllib client always runs;
fsspec's HTTP client runs where aiohttp is installed (``pip install 'hsicodec[remote]'``).
"""

from __future__ import annotations

import http.server
import io
import re
import sys
import threading
import time
import zlib
from collections.abc import Iterator

import numpy as np
import pytest
from rasterio.windows import Window
from test_dataset import smooth_cube

import hsicodec
from hsicodec.codec import tiled
from hsicodec.errors import HsimChecksumError, OptionError, RemoteError
from hsicodec.format.container import HsimReader
from hsicodec.io import remote
from hsicodec.io.remote import RangeFile

CLIENTS = ["urllib", "fsspec"]


def _client(name: str) -> str:
    if name == "fsspec":
        pytest.importorskip("aiohttp")
        pytest.importorskip("fsspec")
    return name


# --------------------------------------------------------------------------- the server


class _State:
    """What the server serves and how: files by path, a lie from request number ``lie_from`` on, counters."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.changed: dict[str, bytes] = {}  # what a "changed*" lie serves instead
        self.mode: str | None = None
        self.lie_from = 0
        self.stall = 0.0
        self.requests = 0
        self.sent = 0
        self.lock = threading.Lock()

    def reset(self) -> None:
        with self.lock:
            self.mode, self.lie_from, self.requests, self.sent, self.stall = None, 0, 0, 0, 0.0


class _Handler(http.server.BaseHTTPRequestHandler):
    """GET and HEAD with ``Range: bytes=a-b`` (206 + Content-Range, ETag, Last-Modified), or a lie."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _send(self, status: int, headers: dict[str, str], body: bytes, head: bool, announce: int | None = None) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body) if announce is None else announce))
        self.end_headers()
        if not head:
            self.wfile.write(body)
            with self.server.state.lock:
                self.server.state.sent += len(body)

    def _serve(self, head: bool) -> None:
        st = self.server.state
        with st.lock:
            n = st.requests
            st.requests += 1
        lie = st.mode if n >= st.lie_from else None
        data = st.files.get(self.path)
        if data is None:
            self._send(404, {}, b"not found", head)
            return
        etag = f'"{zlib.crc32(data):08x}"'
        if lie in ("changed", "changed_silently"):
            data = st.changed[self.path]
            if lie == "changed":
                etag = f'"{zlib.crc32(data):08x}"'
        if lie == "drop":
            self.close_connection = True
            return
        if lie == "stall":
            time.sleep(st.stall)
        if lie == "error500":
            self._send(500, {}, b"oops", head)
            return
        headers = {"ETag": etag, "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT", "Accept-Ranges": "bytes"}
        size = len(data)
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if m is None or lie == "ignore_range":
            self._send(200, headers, data, head)
            return
        a = int(m.group(1))
        b = min(int(m.group(2)) if m.group(2) else size - 1, size - 1)
        if a >= size:
            self._send(416, {"Content-Range": f"bytes */{size}"}, b"", head)
            return
        body = data[a : b + 1]
        headers["Content-Range"] = f"bytes {a}-{b}/{size}"
        if lie == "short":  # announces the whole range, sends half, hangs up
            self.close_connection = True
            self._send(206, headers, body[: len(body) // 2], head, announce=len(body))
            return
        if lie == "short_honest":  # a shorter body with a matching Content-Length, Content-Range unchanged
            body = body[: len(body) // 2]
        elif lie == "shifted":  # the bytes one further on, claiming to be the range asked for
            body = (data[a + 1 : b + 2] + b"\0")[: len(body)]
        elif lie == "wrong_range":  # another range, said so in Content-Range
            a, b = a + 1, min(b + 1, size - 1)
            body = data[a : b + 1]
            headers["Content-Range"] = f"bytes {a}-{b}/{size}"
        self._send(206, headers, body, head)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    state: _State

    def handle_error(self, request, client_address) -> None:
        """A client hanging up on a lying server is what these tests provoke: no traceback on stderr (a
        handler thread may outlive its test and would print into another test's captured output)."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


@pytest.fixture(scope="module")
def server() -> Iterator[_Server]:
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.state = _State()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def state(server: _Server) -> Iterator[_State]:
    server.state.reset()
    yield server.state
    server.state.reset()


def _url(server: _Server, path: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


# --------------------------------------------------------------------------- files


@pytest.fixture(scope="module")
def cube() -> np.ndarray:
    return smooth_cube(256, 256, 16)


@pytest.fixture(scope="module")
def tiled_file(cube: np.ndarray) -> bytes:
    """16 tiles of 64 x 64 (about 24 KB each)."""
    return tiled.compress_tiled(cube, tile=64, bpppb=3.0, effort="fast", layer="maps")


@pytest.fixture(scope="module")
def untiled_file(cube: np.ndarray) -> bytes:
    return hsicodec.compress(cube[:64, :80], bpppb=2.0, effort="fast", layer="maps")


@pytest.fixture(scope="module")
def served(server: _Server, tiled_file: bytes, untiled_file: bytes) -> dict[str, str]:
    files = {"/tiled.hsim": tiled_file, "/untiled.hsim": untiled_file}
    server.state.files.update(files)
    for path, data in files.items():  # the same size, other bytes inside every tile (and the trailer)
        changed = bytearray(data)
        with HsimReader(data) as r:
            for off, length in r.section_spans.values():
                if length:
                    changed[off + length // 2] ^= 0xFF
        server.state.changed[path] = bytes(changed)
    return {name: _url(server, name) for name in files}


# --------------------------------------------------------------------------- RangeFile


def test_range_file_reads_seeks_and_counts() -> None:
    data = bytes(range(256)) * 40
    calls: list[tuple[int, int]] = []

    def fetch(a: int, b: int) -> bytes:
        calls.append((a, b))
        return data[a:b]

    f = RangeFile(fetch, len(data), name="mem", head=data[:100])
    assert f.readable() and f.seekable() and f.size == len(data)
    assert f.read(50) == data[:50] and calls == []  # inside the head: no request
    assert f.seek(1000) == 1000 and f.read(24) == data[1000:1024]
    assert calls == [(1000, 1024)]  # exactly the bytes asked for, no read-ahead
    assert f.seek(-10, io.SEEK_END) == len(data) - 10 and f.read(100) == data[-10:]  # clipped at the end
    assert f.read(5) == b"" and f.tell() == len(data)
    buf = bytearray(8)
    f.seek(3)
    assert f.readinto(buf) == 8 and bytes(buf) == data[3:11]
    assert f.requests == 1 + len(calls) and f.bytes_fetched == 100 + sum(b - a for a, b in calls)
    f.load_all()
    n = len(calls)
    f.seek(0)
    assert f.read() == data and len(calls) == n  # from memory
    with pytest.raises(ValueError):
        f.seek(-1)
    f.close()
    with pytest.raises(ValueError):
        f.read(1)


@pytest.mark.parametrize(
    "bad", [lambda a, b: b"x" * (b - a - 1), lambda a, b: b"x" * (b - a + 1), lambda a, b: "text"], ids=str
)
def test_range_file_refuses_a_fetch_of_the_wrong_length(bad) -> None:
    f = RangeFile(bad, 1000, name="liar")
    with pytest.raises(RemoteError, match="liar"):
        f.read(10)


def test_a_window_of_a_tiled_file_reads_only_its_tile(tiled_file: bytes, cube: np.ndarray) -> None:
    fetched: list[int] = []

    def fetch(a: int, b: int) -> bytes:
        fetched.append(b - a)
        return tiled_file[a:b]

    rf = RangeFile(fetch, len(tiled_file), head=tiled_file[: remote.DEFAULT_BLOCK])
    with hsicodec.open(rf) as ds:
        got = ds.read(window=Window(128, 64, 64, 64))
    want, _ = hsicodec.decompress(tiled_file, window=(64, 128, 64, 64))
    np.testing.assert_array_equal(got, want.transpose(2, 0, 1))
    assert len(fetched) == 1 and fetched[0] < len(tiled_file) / 12  # one tile section, nothing more


# --------------------------------------------------------------------------- over HTTP


@pytest.mark.parametrize("client", CLIENTS)
def test_a_64x64_window_fetches_under_15_percent(client, served, state, tiled_file) -> None:
    client = _client(client)
    with hsicodec.open(served["/tiled.hsim"], client=client) as ds:
        assert (ds.count, ds.height, ds.width, ds.block_shapes[0]) == (16, 256, 256, (64, 64))
        got = ds.read([3, 9, 4], window=Window(64, 128, 64, 64))
    assert state.sent < 0.15 * len(tiled_file), (state.sent, len(tiled_file))
    want, _ = hsicodec.decompress(tiled_file, window=(128, 64, 64, 64), bands=(2, 9))
    np.testing.assert_array_equal(got, want[:, :, [0, 6, 1]].transpose(2, 0, 1))


@pytest.mark.parametrize("client", CLIENTS)
def test_an_untiled_file_is_fetched_once(client, served, state, untiled_file) -> None:
    client = _client(client)
    with hsicodec.open(served["/untiled.hsim"], client=client) as ds:
        a = ds.read(window=((10, 30), (5, 45)))
        b = ds.read(2)
    assert state.sent == len(untiled_file)  # the first block, then the rest once: every read from memory
    want, _ = hsicodec.decompress(untiled_file)
    np.testing.assert_array_equal(a, want[10:30, 5:45].transpose(2, 0, 1))
    np.testing.assert_array_equal(b, want[:, :, 1])


def test_the_whole_tiled_file_decodes_like_a_local_one(served, state, tiled_file) -> None:
    with hsicodec.open(served["/tiled.hsim"], client="urllib") as ds:
        got = ds.read(1)
    want, _ = hsicodec.decompress(tiled_file, bands=(0, 1))
    np.testing.assert_array_equal(got, want[:, :, 0])


LIES = {  # what the server does -> the error class expected (the base class where either may come first)
    "short": RemoteError,  # a body cut short and the connection dropped
    "short_honest": RemoteError,  # a shorter body than the range asked for
    "wrong_range": hsicodec.HsicodecError,  # urllib: Content-Range; fsspec: the checksums
    "shifted": hsicodec.HsicodecError,  # other bytes under the right headers: the checksums
    "ignore_range": RemoteError,  # HTTP 200 with the whole file
    "changed": hsicodec.HsicodecError,  # urllib: the ETag; fsspec: the checksums
    "changed_silently": HsimChecksumError,  # same size, same ETag, other bytes: the checksums
    "drop": RemoteError,  # the connection closed without a response
    "error500": RemoteError,
}


#: the number of the first request that reads a tile (before it: urllib's first block; fsspec's HEAD and first block)
FIRST_TILE_REQUEST = {"urllib": 1, "fsspec": 2}


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("when", ["at-open", "on-tile-read"])
@pytest.mark.parametrize("lie", sorted(LIES))
def test_a_lying_server_gives_an_error_never_pixels(client, lie, when, served, state) -> None:
    client = _client(client)
    if lie == "changed_silently" and when == "at-open":
        pytest.skip("a file changed before it is first read is simply another file")
    state.mode, state.lie_from = lie, 0 if when == "at-open" else FIRST_TILE_REQUEST[client]
    with pytest.raises(LIES[lie]) as info:
        with hsicodec.open(served["/tiled.hsim"], client=client, timeout=5) as ds:
            ds.read(window=Window(64, 128, 64, 64))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("client", CLIENTS)
def test_a_stalled_server_times_out(client, served, state) -> None:
    client = _client(client)
    state.mode, state.lie_from, state.stall = "stall", FIRST_TILE_REQUEST[client], 1.0
    t0 = time.perf_counter()
    with pytest.raises(RemoteError):
        with hsicodec.open(served["/tiled.hsim"], client=client, timeout=0.2) as ds:
            ds.read(window=Window(0, 0, 64, 64))
    assert time.perf_counter() - t0 < 10


def test_the_urllib_client_names_what_went_wrong(served, state) -> None:
    state.mode, state.lie_from = "changed", 1
    with pytest.raises(RemoteError, match="changed between requests"):
        with hsicodec.open(served["/tiled.hsim"], client="urllib") as ds:
            ds.read(window=Window(0, 0, 64, 64))
    state.reset()
    state.mode, state.lie_from = "wrong_range", 1
    with pytest.raises(RemoteError, match="sent bytes"):
        with hsicodec.open(served["/tiled.hsim"], client="urllib") as ds:
            ds.read(window=Window(0, 0, 64, 64))
    state.reset()
    state.mode = "ignore_range"
    with pytest.raises(RemoteError, match="byte-range"):
        hsicodec.open(served["/tiled.hsim"], client="urllib")
    with pytest.raises(RemoteError, match="HTTP 404"):
        hsicodec.open(served["/tiled.hsim"].replace("tiled", "missing"), client="urllib")


# --------------------------------------------------------------------------- fsspec, and without it


def test_any_fsspec_url(tiled_file, monkeypatch) -> None:
    fsspec = pytest.importorskip("fsspec")
    from fsspec.implementations.memory import MemoryFileSystem

    fs = fsspec.filesystem("memory")
    fs.pipe("/hsicodec-test/scene.hsim", tiled_file)
    sizes: list[int] = []
    real = MemoryFileSystem.cat_file

    def counting(self, path, start=None, end=None, **kw):
        out = real(self, path, start=start, end=end, **kw)
        sizes.append(len(out))
        return out

    monkeypatch.setattr(MemoryFileSystem, "cat_file", counting)
    try:
        with hsicodec.open("memory://hsicodec-test/scene.hsim") as ds:
            got = ds.read([1, 16], window=((192, 256), (0, 64)))
        want, _ = hsicodec.decompress(tiled_file, window=(192, 0, 64, 64))
        np.testing.assert_array_equal(got, want[:, :, [0, 15]].transpose(2, 0, 1))
        assert sum(sizes) < 0.15 * len(tiled_file) and len(sizes) == 2  # the first block, one tile
        with pytest.raises(RemoteError, match="no such file"):
            hsicodec.open("memory://hsicodec-test/none.hsim")
    finally:
        fs.rm("/hsicodec-test", recursive=True)


def test_without_fsspec_the_error_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "fsspec", None)
    with pytest.raises(OptionError, match=re.escape("hsicodec[remote]")):
        hsicodec.open("s3://bucket/scene.hsim")


def test_without_aiohttp_http_names_the_extra(monkeypatch) -> None:
    pytest.importorskip("fsspec")
    monkeypatch.setitem(sys.modules, "aiohttp", None)
    with pytest.raises(OptionError, match=r"hsicodec\[remote\].*urllib"):
        hsicodec.open("https://example.invalid/scene.hsim")


def test_option_checks(served) -> None:
    with pytest.raises(OptionError, match="client"):
        hsicodec.open(served["/tiled.hsim"], client="curl")
    with pytest.raises(OptionError, match="http"):
        hsicodec.open("s3://bucket/scene.hsim", client="urllib")
    with pytest.raises(OptionError, match="timeout"):
        hsicodec.open(served["/tiled.hsim"], client="urllib", timeout=0)
    assert remote.is_url("s3://b/k") and remote.is_url("https://h/p") and not remote.is_url("C:\\data\\x.hsim")
    assert remote.local_path("file:///tmp/x.hsim") == "/tmp/x.hsim" and remote.local_path("https://h/x") is None
