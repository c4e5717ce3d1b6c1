"""Calls to servers siamrec does not control, bounded: an overall deadline and a size cap on every request.

A per-read timeout does not stop a server that sends a byte every few seconds, in its headers or its body.
So every call runs inside a `Deadline` (siamrec.deadline): when it passes, a timer shuts down the sockets the
call opened or reused, which ends a blocked read at once, and the call fails with one line. Bodies are read
with a cap on their size (a declared Content-Length over it is refused before reading). The bounds come from
the environment, for operators and tests, or the defaults below.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import IO, Any

import requests
from requests.adapters import HTTPAdapter
from urllib3 import poolmanager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from siamrec.deadline import thread_deadlines
from siamrec.errors import ConfigError, ConnectorError

CALL_DEADLINE_ENV = "SIAMREC_CALL_DEADLINE"
DOWNLOAD_DEADLINE_ENV = "SIAMREC_DOWNLOAD_DEADLINE"
MAX_SONG_BYTES_ENV = "SIAMREC_MAX_SONG_BYTES"
MiB = 1 << 20
BLOCK = 1 << 16


@dataclass(frozen=True)
class Limits:
    """How long one call or one download may take, and how big an answer or a song may be."""

    call_s: float = 60.0  # one API call (Subsonic, Spotify): connect to last byte
    download_s: float = 600.0  # one song's audio (a Subsonic download, a yt-dlp fetch and its conversion)
    response_bytes: int = 64 * MiB  # one API answer
    song_bytes: int = 1024 * MiB  # one song's file, whatever the server declares

    @classmethod
    def from_env(cls) -> Limits:
        """The defaults, with SIAMREC_CALL_DEADLINE / SIAMREC_DOWNLOAD_DEADLINE (s) / SIAMREC_MAX_SONG_BYTES."""
        return cls(
            call_s=env_number(CALL_DEADLINE_ENV, cls.call_s),
            download_s=env_number(DOWNLOAD_DEADLINE_ENV, cls.download_s),
            song_bytes=int(env_number(MAX_SONG_BYTES_ENV, cls.song_bytes)),
        )


def env_number(name: str, default: float) -> float:
    """A positive number from the environment variable `name`, or `default` when unset; ConfigError when bad."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise ConfigError(f"{name}={raw!r}: give a positive number")
    return value


class TooLarge(ConnectorError):
    """An answer or a download is bigger than its cap."""


def _watched(connection: HTTPConnection) -> None:
    """The connection's socket (new or reused) joins the thread's deadlines once its request is sent.

    The socket itself is kept: http.client hands it to the response and forgets it when the server closes after.
    """
    if connection.sock is not None:
        for current in thread_deadlines():
            current.watch(connection.sock)


class _WatchedHTTPConnection(HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        super().request(*args, **kwargs)
        _watched(self)


class _WatchedHTTPSConnection(HTTPSConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        super().request(*args, **kwargs)
        _watched(self)


class _WatchedPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


def _watch_pools(manager: Any) -> Any:
    if manager.pool_classes_by_scheme is poolmanager.pool_classes_by_scheme:  # not a SOCKS proxy's own classes
        manager.pool_classes_by_scheme = {"http": _WatchedPool, "https": _WatchedHTTPSPool}
    return manager


class _BoundedAdapter(HTTPAdapter):
    """requests' adapter whose connections obey the thread's deadlines and whose whole bodies are capped."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _watch_pools(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        return _watch_pools(super().proxy_manager_for(proxy, **kwargs))

    def send(self, request: requests.PreparedRequest, stream: bool = False, **kwargs: Any) -> requests.Response:
        response = super().send(request, stream=True, **kwargs)
        if not stream:  # a library (spotipy) that reads whole bodies: read it here, under the cap
            response._content = read_capped(response, self.max_bytes)
            response._content_consumed = True
        return response


def bounded_session(max_bytes: int = Limits.response_bytes) -> requests.Session:
    """A requests Session whose calls obey `deadline` blocks and whose non-streamed bodies are capped."""
    session = requests.Session()
    adapter = _BoundedAdapter(max_bytes)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _declared_too_big(response: requests.Response, max_bytes: int) -> None:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        response.close()
        raise TooLarge(f"the server announced {_size(int(declared))}, more than the {_size(max_bytes)} allowed")


def read_capped(response: requests.Response, max_bytes: int) -> bytes:
    """The whole (decoded) body, or TooLarge as soon as it passes `max_bytes`."""
    body = io.BytesIO()
    write_capped(response, body, max_bytes, what="the answer")
    return body.getvalue()


def write_capped(response: requests.Response, handle: IO[bytes], max_bytes: int, what: str = "the download") -> int:
    """Stream the body into `handle`; TooLarge (and the connection closed) as soon as it passes `max_bytes`."""
    _declared_too_big(response, max_bytes)
    total = 0
    for block in response.iter_content(BLOCK):
        total += len(block)
        if total > max_bytes:
            response.close()
            raise TooLarge(f"{what} passed the {_size(max_bytes)} allowed")
        handle.write(block)
    return total


def _size(n: int) -> str:
    return f"{n / MiB:.1f} MiB" if n >= MiB else f"{n} bytes"
