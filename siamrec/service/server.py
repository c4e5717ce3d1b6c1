"""uvicorn as `siamrec serve` runs it: the socket bound before anything is announced, and a deadline on each
request head, which uvicorn leaves unbounded (a client that trickles its headers holds its connection forever).

The body's deadline is the Gatekeeper's (it sees the body); this module covers what comes before the app is
called. `limit_concurrency` is left off on purpose: it counts idle and trickling connections, so a few slow
clients would get every other request refused.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from siamrec.errors import ConfigError
from siamrec.service.config import ServiceConfig

HEAD_LIMIT_BYTES = 16 * 1024  # request line + headers; larger heads are answered 400 by h11
KEEP_ALIVE_S = 5  # an idle kept-alive connection is closed after this


class ServerConfig(uvicorn.Config):
    """uvicorn's settings plus the request-head deadline (kept on the config, so spawned workers have it too)."""

    def __init__(self, app: Any, service_config: ServiceConfig, **kwargs: Any) -> None:
        super().__init__(
            app,
            http=HeadDeadlineProtocol,
            h11_max_incomplete_event_size=HEAD_LIMIT_BYTES,
            timeout_keep_alive=KEEP_ALIVE_S,
            **kwargs,
        )
        self.header_timeout_s = service_config.header_timeout_s


class HeadDeadlineProtocol(H11Protocol):
    """h11 with a deadline for each request head, from the connection's start or the previous response's end
    (which also bounds how long the rest of a body answered 413 is read and dropped)."""

    config: ServerConfig
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a whole head arrived: the body has the Gatekeeper's deadline
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self._waiting_for_head():
            self._arm()

    def _waiting_for_head(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.config.header_timeout_s, self._head_overdue)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_overdue(self) -> None:
        self._head_timer = None
        if self._waiting_for_head() and not self.transport.is_closing():
            self.transport.close()


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound and listening on host:port (port 0: a free one), or one line saying why it cannot be."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"port {port} on {host} is in use: stop what holds it, or choose another --port"
            ) from None
        raise ConfigError(f"cannot listen on {host} port {port}: {exc.strerror or exc}") from None
    return sock


def served_url(host: str, sock: socket.socket) -> str:
    """The URL of the service on `sock`, with the port it really got (the one asked for, or a free one)."""
    port = sock.getsockname()[1]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
