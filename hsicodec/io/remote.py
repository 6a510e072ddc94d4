"""Remote `.hsim` sources: a seekable binary file over HTTP range requests or any fsspec filesystem.

:class:`~hsicodec.format.container.HsimReader` reads any seekable binary stream; :class:`RangeFile` is
one over a ``fetch(start, stop) -> bytes`` callable, so a remote file is read like a local one, with the
same limits and checksums. Only what the reader asks for is fetched: the first block (preamble and
header, one request at open), then exactly the byte ranges it reads (one request per tile section of a
tiled file). Nothing is read ahead.

Every response is checked before a byte of it is used: its length is the length asked for; over HTTP
(:class:`HttpFetcher`) also its status, its ``Content-Range``, the file size it states and the file's
validators (``ETag``, ``Last-Modified``), which must not change between requests. A transport failure
(timeout, dropped connection, short body, HTTP 5xx) is retried a few times, then raises
:class:`~hsicodec.errors.RemoteError`, as does every inconsistent response: a remote read gives the
right pixels or an error, never wrong pixels (the sections' CRC32C catch the rest).

Two clients: ``"fsspec"`` (the ``remote`` extra: ``pip install 'hsicodec[remote]'``) reads ``http(s)://``
through fsspec's HTTPFileSystem (aiohttp) and every other fsspec URL (``s3://``, ``gs://``,
``memory://``, ...) through its filesystem's ``cat_file``; ``"urllib"`` reads ``http(s)://`` with the
standard library alone.
"""

from __future__ import annotations

import http.client
import io
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable

from hsicodec.errors import HsicodecError, OptionError, RemoteError

__all__ = [
    "DEFAULT_BLOCK",
    "DEFAULT_TIMEOUT",
    "REMOTE_EXTRA",
    "CLIENTS",
    "RangeFile",
    "HttpFetcher",
    "FsspecFetcher",
    "is_url",
    "local_path",
    "open_url",
]

#: bytes fetched by the first request (the preamble and header of almost every file; GDAL reads as
#: much when it opens a remote GeoTIFF). A longer header costs one more request, never more bytes.
DEFAULT_BLOCK = 16384
#: seconds a request may wait for the server (connect, and each read of the response).
DEFAULT_TIMEOUT = 30.0
#: transport failures retried per request (HttpFetcher), with a short back-off.
DEFAULT_RETRIES = 2
#: the pip extra that brings fsspec and aiohttp.
REMOTE_EXTRA = "pip install 'hsicodec[remote]'"
#: the clients :func:`open_url` knows.
CLIENTS = ("fsspec", "urllib")

_LOAD_CHUNK = 64 << 20  # one request of RangeFile.load_all at most
_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)
_VALIDATORS = ("ETag", "Last-Modified")

Fetch = Callable[[int, int], bytes]


def is_url(source: object) -> bool:
    """True for a string of the form ``scheme://...`` (an fsspec or http(s) URL, or ``file://``)."""
    return isinstance(source, str) and bool(_URL_RE.match(source))


def local_path(url: str) -> str | None:
    """The local path of a ``file://`` URL, None for any other URL."""
    parts = urllib.parse.urlparse(url)
    if parts.scheme.lower() != "file" or parts.netloc not in ("", "localhost"):
        return None
    return urllib.request.url2pathname(parts.path)


class _Transient(Exception):
    """A failure worth one more try (timeout, dropped connection, short body, HTTP 5xx)."""


class RangeFile(io.RawIOBase):
    """A read-only, seekable binary file of ``size`` bytes whose bytes come from ``fetch(start, stop)``.

    ``head`` holds the file's first bytes (fetched at open); reads inside them cost nothing, every
    other read is one ``fetch`` of exactly the bytes asked for, whose length is checked.
    :meth:`load_all` fetches the rest once and serves every later read from memory (an untiled file:
    any decode reads all of it). ``requests`` and ``bytes_fetched`` count what was fetched.
    Not thread-safe (nor is HsimReader).
    """

    def __init__(self, fetch: Fetch, size: int, *, name: str = "<remote>", head: bytes = b"") -> None:
        super().__init__()
        if isinstance(size, bool) or int(size) < 0:
            raise OptionError(f"{name}: file size must be >= 0, got {size!r}")
        self._fetch = fetch
        self._size = int(size)
        self.name = name
        self._pos = 0
        self._cache = bytes(head[: self._size])  # the file's bytes [0, len(cache))
        self.requests = 1 if head else 0
        self.bytes_fetched = len(head)

    @property
    def size(self) -> int:
        """The file size in bytes (as the server stated it at open)."""
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._checkClosed()  # type: ignore[attr-defined]
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._checkClosed()  # type: ignore[attr-defined]
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}.get(whence)
        if base is None:
            raise ValueError(f"invalid whence {whence!r}")
        pos = base + int(offset)
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        self._pos = pos
        return pos

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes from the current position (all the rest for -1 or None)."""
        self._checkClosed()  # type: ignore[attr-defined]
        stop = self._size if size is None or size < 0 else min(self._size, self._pos + int(size))
        if stop <= self._pos:
            return b""
        data = self._get(self._pos, stop)
        self._pos = stop
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def load_all(self) -> None:
        """Fetch the bytes not held yet (in requests of 64 MiB at most); later reads come from memory."""
        parts = [self._cache]
        pos = len(self._cache)
        while pos < self._size:
            stop = min(self._size, pos + _LOAD_CHUNK)
            parts.append(self._checked(pos, stop))
            pos = stop
        self._cache = b"".join(parts)

    def _get(self, start: int, stop: int) -> bytes:
        if stop <= len(self._cache):
            return self._cache[start:stop]
        return self._checked(start, stop)

    def _checked(self, start: int, stop: int) -> bytes:
        data = self._fetch(start, stop)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise RemoteError(f"{self.name}: bytes {start}..{stop}: the fetch gave a {type(data).__name__}, not bytes")
        if len(data) != stop - start:
            raise RemoteError(
                f"{self.name}: asked for bytes {start}..{stop} ({stop - start} bytes), got {len(data)} bytes "
                f"(file of {self._size} bytes changed, or a server that ignores byte ranges?)"
            )
        self.requests += 1
        self.bytes_fetched += len(data)
        return bytes(data)

    def __repr__(self) -> str:
        return f"RangeFile({self.name!r}, size={self._size}, requests={self.requests}, fetched={self.bytes_fetched})"


def _content_range(value: str | None) -> tuple[int, int, int | None] | None:
    """(first, last, total or None) of a ``Content-Range: bytes a-b/total`` value; None if unparseable."""
    m = _CONTENT_RANGE.match(value or "")
    if m is None:
        return None
    return int(m.group(1)), int(m.group(2)), None if m.group(3) == "*" else int(m.group(3))


class HttpFetcher:
    """``fetch(start, stop)`` over HTTP(S) with the standard library: one GET with a ``Range`` header per call.

    :meth:`probe` makes the first request (the first ``block`` bytes) and learns the file size from its
    ``Content-Range`` and the validators (``ETag``, ``Last-Modified``) every later response must repeat.
    ``timeout`` applies to the connection and to each read of a response.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.url = url
        self.timeout = float(timeout)
        self.retries = max(0, int(retries))
        self.headers = dict(headers or {})
        self.size: int | None = None
        self._validators: dict[str, str] = {}

    def probe(self, block: int) -> tuple[int, bytes]:
        """(file size, its first ``min(block, size)`` bytes): the first request."""
        data = self._request(0, max(1, int(block)), probe=True)
        assert self.size is not None
        return self.size, data

    def __call__(self, start: int, stop: int) -> bytes:
        if self.size is None:
            self.probe(stop)
        return self._request(start, stop, probe=False)

    def _request(self, start: int, stop: int, *, probe: bool) -> bytes:
        last = ""
        for attempt in range(self.retries + 1):
            try:
                return self._once(start, stop, probe)
            except _Transient as exc:
                last = str(exc)
                if attempt < self.retries:
                    time.sleep(min(0.05 * 2**attempt, 1.0))
        tries = self.retries + 1
        raise RemoteError(f"{self.url}: bytes {start}..{stop}: {last} ({tries} tr{'y' if tries == 1 else 'ies'})")

    def _once(self, start: int, stop: int, probe: bool) -> bytes:
        headers = {**self.headers, "Range": f"bytes={start}-{stop - 1}", "Accept-Encoding": "identity"}
        req = urllib.request.Request(self.url, headers=headers)
        try:
            resp = urllib.request.urlopen(req, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            code, reason = exc.code, exc.reason
            exc.close()
            if code == 416:
                raise RemoteError(
                    f"{self.url}: the server refused bytes {start}..{stop} (HTTP 416): "
                    f"the file is shorter than expected (empty, or changed?)"
                ) from None
            if code >= 500 or code == 429:
                raise _Transient(f"HTTP {code} {reason}") from None
            raise RemoteError(f"{self.url}: HTTP {code} {reason}") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:  # timeouts are OSErrors
            raise _Transient(_describe(exc)) from None
        with resp:
            try:
                body = resp.read(stop - start + 1)  # one byte more: a longer body is an error, never read in full
            except (http.client.HTTPException, OSError) as exc:
                raise _Transient(_describe(exc)) from None
            return self._check(resp.status, resp.headers, body, start, stop, probe)

    def _check(self, status: int, headers: Any, body: bytes, start: int, stop: int, probe: bool) -> bytes:
        """The body if the response is exactly bytes ``start..stop`` of the same file; RemoteError otherwise."""
        where = f"{self.url}: bytes {start}..{stop}"
        if status == 200:  # the server ignored the Range header: fine only for a whole file that fits the request
            length = headers.get("Content-Length")
            whole = length is not None and length.strip().isdigit() and int(length) == len(body)
            if start == 0 and whole and len(body) <= stop - start and (self.size is None or self.size == len(body)):
                if probe:
                    self.size = len(body)
                    self._validators = _validators_of(headers)
                else:
                    self._same_file(headers, where)
                return body
            raise RemoteError(f"{where}: the server does not honour byte-range requests (HTTP 200, not 206)")
        if status != 206:
            raise RemoteError(f"{where}: unexpected HTTP status {status} (expected 206 Partial Content)")
        cr = _content_range(headers.get("Content-Range"))
        if cr is None:
            raise RemoteError(f"{where}: HTTP 206 without a valid Content-Range ({headers.get('Content-Range')!r})")
        first, last, total = cr
        if probe:
            if total is None:
                raise RemoteError(f"{where}: the server does not state the file size (Content-Range {first}-{last}/*)")
            self.size = total
            self._validators = _validators_of(headers)
            stop = min(stop, total)
        else:
            if total is not None and total != self.size:
                raise RemoteError(
                    f"{where}: the file changed between requests (it was {self.size} bytes, it is now {total})"
                )
            self._same_file(headers, where)
        if (first, last) != (start, stop - 1):
            raise RemoteError(f"{where}: the server sent bytes {first}..{last + 1} instead (Content-Range)")
        if len(body) < stop - start:
            raise _Transient(f"short read: {len(body)} of {stop - start} bytes")
        if len(body) > stop - start:
            raise RemoteError(f"{where}: the response holds more than the {stop - start} bytes asked for")
        return body

    def _same_file(self, headers: Any, where: str) -> None:
        now = _validators_of(headers)
        for key, was in self._validators.items():
            if now.get(key) != was:
                raise RemoteError(
                    f"{where}: the file changed between requests ({key} was {was!r}, is now {now.get(key)!r})"
                )


def _validators_of(headers: Any) -> dict[str, str]:
    return {k: str(headers[k]) for k in _VALIDATORS if headers.get(k)}


def _describe(exc: BaseException) -> str:
    """A short text for a transport exception (URLError wraps the real one in ``reason``)."""
    inner = getattr(exc, "reason", None) if isinstance(exc, urllib.error.URLError) else None
    e = inner if isinstance(inner, BaseException) else exc
    text = str(e) or type(e).__name__
    return f"{type(e).__name__}: {text}" if type(e).__name__ not in text else text


class FsspecFetcher:
    """``fetch(start, stop)`` through an fsspec filesystem's ``cat_file`` (one range request per call).

    :meth:`probe` reads the size (and ETag, where the filesystem gives one) from ``fs.info`` and fetches
    the first block. Any exception of the filesystem becomes a :class:`~hsicodec.errors.RemoteError`;
    lengths are checked by :class:`RangeFile`, contents by the file's CRC32C.
    """

    def __init__(self, fs: Any, path: str, url: str) -> None:
        self.fs = fs
        self.path = path
        self.url = url
        self.size: int | None = None

    def probe(self, block: int) -> tuple[int, bytes]:
        """(file size, its first ``min(block, size)`` bytes)."""
        info = self._call(self.fs.info, self.path)
        size = info.get("size") if isinstance(info, dict) else None
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise RemoteError(f"{self.url}: the file size is unknown (fsspec info gave size={size!r})")
        self.size = size
        n = min(size, max(1, int(block)))
        head = self(0, n) if n else b""
        if len(head) != n:
            raise RemoteError(f"{self.url}: asked for bytes 0..{n}, got {len(head)} bytes")
        return size, head

    def __call__(self, start: int, stop: int) -> bytes:
        return bytes(self._call(self.fs.cat_file, self.path, start=start, end=stop))

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except HsicodecError:
            raise
        except FileNotFoundError as exc:  # fsspec's HTTP info says so for any failed request: name the cause
            cause = exc.__cause__
            why = f"cannot be read: {type(cause).__name__}: {cause}" if cause is not None else "no such file"
            raise RemoteError(f"{self.url}: {why}") from None
        except Exception as exc:  # fsspec and its backends raise many kinds (aiohttp, botocore, ...)
            raise RemoteError(f"{self.url}: {type(exc).__name__}: {exc}") from exc


def _fsspec_fetcher(url: str, timeout: float, storage_options: dict | None) -> FsspecFetcher:
    """The fsspec filesystem of ``url`` (HTTPFileSystem with a request timeout for http(s))."""
    scheme = url.split("://", 1)[0].lower()
    try:
        import fsspec
    except ImportError:
        raise OptionError(
            f"reading {url} needs fsspec: {REMOTE_EXTRA}"
            + (" (or client='urllib', the standard library's HTTP client)" if scheme in ("http", "https") else "")
        ) from None
    options = dict(storage_options or {})
    if scheme in ("http", "https"):
        try:
            import aiohttp
            from fsspec.implementations.http import HTTPFileSystem
        except ImportError:
            raise OptionError(
                f"reading {url} with fsspec needs aiohttp: {REMOTE_EXTRA} (or client='urllib', the "
                f"standard library's HTTP client)"
            ) from None
        client_kwargs = dict(options.pop("client_kwargs", {}) or {})
        client_kwargs.setdefault("timeout", aiohttp.ClientTimeout(total=timeout))
        fs = HTTPFileSystem(client_kwargs=client_kwargs, **options)
        return FsspecFetcher(fs, url, url)
    try:
        fs, path = fsspec.core.url_to_fs(url, **options)
    except ImportError as exc:  # e.g. s3fs for s3://, gcsfs for gs://
        raise OptionError(f"reading {url}: {exc}") from None
    except ValueError as exc:  # unknown protocol
        raise OptionError(f"reading {url}: {exc}") from None
    return FsspecFetcher(fs, path, url)


def open_url(
    url: str,
    *,
    client: str = "fsspec",
    block_size: int = DEFAULT_BLOCK,
    timeout: float = DEFAULT_TIMEOUT,
    storage_options: dict | None = None,
) -> RangeFile:
    """A :class:`RangeFile` over ``url``: one request at open (size and the first ``block_size`` bytes).

    ``client`` "fsspec" reads any fsspec URL (http(s) through aiohttp; ``storage_options`` go to the
    filesystem), "urllib" reads http(s) URLs with the standard library.
    """
    if not is_url(url):
        raise OptionError(f"not a URL: {url!r}")
    if client not in CLIENTS:
        raise OptionError(f"client must be one of {', '.join(CLIENTS)}, not {client!r}")
    if isinstance(block_size, bool) or int(block_size) < 1:
        raise OptionError(f"block_size must be a positive number of bytes, not {block_size!r}")
    if not timeout > 0:
        raise OptionError(f"timeout must be a positive number of seconds, not {timeout!r}")
    fetcher: HttpFetcher | FsspecFetcher
    if client == "urllib":
        if url.split("://", 1)[0].lower() not in ("http", "https"):
            raise OptionError(f"client='urllib' reads http(s) URLs only, not {url}")
        fetcher = HttpFetcher(url, timeout=timeout, headers=(storage_options or {}).get("headers"))
    else:
        fetcher = _fsspec_fetcher(url, float(timeout), storage_options)
    size, head = fetcher.probe(int(block_size))
    return RangeFile(fetcher, size, name=url, head=head)
