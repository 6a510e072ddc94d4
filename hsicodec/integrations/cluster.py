"""Connecting to a Dask cluster, shared by ``hsicodec batch`` (many files) and ``hsicodec compress
--scheduler`` (the tiles of one scene): the import of the ``[dask]`` extra, the connection to a scheduler
and the one-line messages of what went wrong, so both commands fail the same way.

dask and distributed are imported only when a cluster is needed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from hsicodec.errors import HsicodecError

#: how long connecting to a scheduler may take before it is reported unreachable
CONNECT_TIMEOUT = "20s"


class ClusterError(HsicodecError):
    """A Dask cluster cannot be used: dask is not installed, the scheduler cannot be reached, a worker
    was lost or a task could not run there."""


def _one_line(text: Any) -> str:
    return " ".join(part.strip() for part in str(text).strip().splitlines() if part.strip())


def error_message(exc: BaseException) -> str:
    """The one-line message the CLI would print for ``exc``."""
    if isinstance(exc, OSError) and exc.strerror:
        names = [str(n) for n in (exc.filename, exc.filename2) if n is not None]
        return _one_line(f"{' -> '.join(names)}: {exc.strerror}" if names else exc.strerror)
    if isinstance(exc, HsicodecError):
        return _one_line(str(exc) or type(exc).__name__)
    return _one_line(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


def import_distributed(what: str = "batch", error: type[HsicodecError] = ClusterError) -> Any:
    """The ``distributed`` module; ``error`` "WHAT needs dask and distributed: pip install ..." without it."""
    try:
        import dask  # noqa: F401
        import distributed
    except ImportError:
        raise error(f"{what} needs dask and distributed: pip install 'hsicodec[dask]'") from None
    return distributed


@contextlib.contextmanager
def scheduler_client(
    address: str,
    what: str = "batch",
    error: type[HsicodecError] = ClusterError,
    timeout: str | None = None,
) -> Iterator[Any]:
    """A ``distributed.Client`` connected to the scheduler at ``address`` (closed on exit); ``error``
    "cannot connect to the Dask scheduler at ADDRESS: REASON" when it cannot be reached in ``timeout``
    (default :data:`CONNECT_TIMEOUT`)."""
    distributed = import_distributed(what, error)
    try:
        client = distributed.Client(address, timeout=timeout or CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as exc:  # refused, unresolvable, a malformed address
        raise error(f"cannot connect to the Dask scheduler at {address}: {error_message(exc)}") from None
    try:
        yield client
    finally:
        client.close()
