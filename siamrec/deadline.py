"""One overall deadline for outside calls: when it passes, the sockets the calls use are shut down.

A per-read timeout does not stop a server that sends a byte every few seconds, in its headers or its body. A
`deadline()` block shuts down every socket its calls registered (a shutdown wakes a blocked read; a close from
another thread may not) and then ends with one DeadlinePassed line. The connectors' HTTP sessions register
their sockets through `thread_deadlines()`; the service's URL fetch registers its own.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from siamrec.errors import ConnectorError

READ_TIMEOUT_S = 30.0  # the most one read may wait, inside the deadline


class DeadlinePassed(ConnectorError):
    """A call or a download ran past its deadline (a slow or trickling server)."""


_local = threading.local()


class Deadline:
    """One call's time limit: the sockets it uses are shut down when `seconds` have passed."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    @property
    def read_timeout(self) -> float:
        return min(READ_TIMEOUT_S, self.seconds)

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    """End any read on the socket now (a shutdown wakes a blocked recv; a close from another thread may not).

    A socket closed meanwhile has no descriptor any more (fileno -1), so this never touches a reused one.
    """
    with suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the plain socket's call, also under TLS


@contextmanager
def deadline(seconds: float, what: str) -> Iterator[Deadline]:
    """Run the calls of this block (this thread, a `bounded_session`) under one deadline.

    When it passes, the block ends with DeadlinePassed ("`what` did not finish within N s"), whatever the cut
    connection made of it: an error, or an answer that merely looks complete.
    """
    current = Deadline(seconds)
    stack: list[Deadline] = _local.__dict__.setdefault("deadlines", [])
    stack.append(current)
    current._timer.start()
    try:
        yield current
    except Exception:
        if current.expired:
            raise DeadlinePassed(f"{what} did not finish within {seconds:g} s") from None
        raise
    finally:
        current._timer.cancel()
        stack.remove(current)
    if current.expired:
        raise DeadlinePassed(f"{what} did not finish within {seconds:g} s")


def thread_deadlines() -> tuple[Deadline, ...]:
    """The deadlines of the `deadline()` blocks this thread is in (innermost last)."""
    return tuple(getattr(_local, "deadlines", ()))
