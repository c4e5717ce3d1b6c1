"""One pure-ASGI layer in front of the routes: metrics, API key, body size and time limits, upload admission.

Pure ASGI (not BaseHTTPMiddleware) so a recommendation pays microseconds here, and so a body can be cut off
while it streams in: a request over the limit is answered 413, one that arrives too slowly 408, before the
rest of it is read.
"""

from __future__ import annotations

import asyncio
import hmac
import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.requests import ClientDisconnect

from siamrec.service.problems import CLOSE_CONNECTION, BodyTooSlow, ServiceBusy, TooLarge, problem_response
from siamrec.service.web_routes import PAGE_PATHS

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/health", *PAGE_PATHS})  # the page holds no data: it asks for the key
# Metric labels come from fixed sets: a client's made-up method or path must not become a new time series.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"
PACE_GRACE_S = 2.0  # a new body's first seconds do not count against its rate
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class Metrics:
    """Prometheus request counts and latency histograms, labelled by known method and route template only."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "siamrec_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "siamrec_http_request_duration_seconds",
            "Time to answer an HTTP request",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.uploads_in_flight = Gauge(
            "siamrec_uploads_in_flight", "Uploads admitted and not yet answered", registry=self.registry
        )
        self.refused = Counter("siamrec_uploads_refused_busy", "Uploads refused: queue full", registry=self.registry)
        self.cut = Counter(
            "siamrec_uploads_cut_slow", "Uploads cut: behind the minimum rate when another came", registry=self.registry
        )


class _BodyTooLarge(TooLarge):
    """Raised from `receive` when the body passes its limit (a route that reads the body sees a 413 error)."""


class _BodyTooSlow(BodyTooSlow):
    """Raised from `receive` when the body misses its deadline (a route that reads the body sees a 408 error)."""


class BodyClock:
    """The deadline of one request body: `timeout_s` from the start, one second more per `min_rate` bytes.

    One overall deadline, not one per read: a byte every few seconds does not keep a slow client alive, while
    a large upload at a modest, steady rate gets the time it needs. An upload that falls behind that rate can
    also be cut at once (`cut`), to give its place in the upload queue to a new one.
    """

    def __init__(self, timeout_s: float, min_rate: int) -> None:
        self.timeout_s, self.min_rate = timeout_s, min_rate
        self.started = time.monotonic()
        self.received = 0
        self.finished = False
        self.cut = asyncio.Event()

    def behind_s(self) -> float:
        """How far the body is behind `min_rate` after its first seconds (negative: on pace, or all arrived)."""
        if self.finished:
            return -math.inf
        return time.monotonic() - self.started - PACE_GRACE_S - self.received / self.min_rate

    async def next_message(self, receive: Receive) -> Message:
        """`receive()`, unless the deadline passes or the body is cut first (then _BodyTooSlow)."""
        left_s = self.started + self.timeout_s + self.received / self.min_rate - time.monotonic()
        receiving, cutting = asyncio.ensure_future(receive()), asyncio.ensure_future(self.cut.wait())
        try:
            await asyncio.wait((receiving, cutting), timeout=max(left_s, 0.0), return_when=asyncio.FIRST_COMPLETED)
        finally:
            cutting.cancel()
            arrived = receiving.done()
            if not arrived:
                receiving.cancel()
        if self.cut.is_set() or not arrived:
            raise _BodyTooSlow(self.message())
        message = receiving.result()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            self.finished = not message.get("more_body", False)
        return message

    def message(self) -> str:
        return (
            f"the request body arrived too slowly (it has {self.timeout_s:g} s plus 1 s per "
            f"{self.min_rate / 1000:g} kB): send it again, faster"
        )


class UploadGate:
    """At most `limit` uploads at once (receiving, decoding, embedding): memory and disk stay bounded.

    When the gate is full, an upload whose body is behind the minimum rate is cut (408) to let a new one in,
    so slow clients cannot keep the queue full however often they reconnect; otherwise the newcomer gets 503.
    """

    def __init__(self, limit: int, retry_after_s: int, metrics: Metrics) -> None:
        self.limit, self.retry_after_s, self.metrics = limit, retry_after_s, metrics
        self.admitted: list[BodyClock] = []

    def enter(self, clock: BodyClock) -> None:
        if len(self.admitted) >= self.limit:
            laggard = max(self.admitted, key=BodyClock.behind_s)
            if laggard.behind_s() <= 0:
                self.metrics.refused.inc()
                raise ServiceBusy(
                    f"{len(self.admitted)} uploads are being processed, the most this service takes at once: "
                    "retry later",
                    self.retry_after_s,
                )
            laggard.cut.set()
            self.admitted.remove(laggard)
            self.metrics.cut.inc()
        self.admitted.append(clock)
        self.metrics.uploads_in_flight.set(len(self.admitted))

    def leave(self, clock: BodyClock) -> None:
        if clock in self.admitted:
            self.admitted.remove(clock)
        self.metrics.uploads_in_flight.set(len(self.admitted))


class Gatekeeper:
    """Checks the API key, caps body sizes, admits uploads through the gate, and records every answer."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        gate: UploadGate,
        api_key: str | None,
        max_upload_bytes: int,
        max_body_bytes: int,
        body_timeout_s: float,
        body_min_rate: int,
    ) -> None:
        self.app, self.metrics, self.gate = app, metrics, gate
        self.api_key = api_key.encode() if api_key else None
        self.max_upload_bytes, self.max_body_bytes = max_upload_bytes, max_body_bytes
        self.body_timeout_s, self.body_min_rate = body_timeout_s, body_min_rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_recording(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self._guarded(scope, receive, send_recording)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED_ROUTE
            method = scope["method"] if scope["method"] in KNOWN_METHODS else "other"
            self.metrics.requests.labels(method, template, str(status["code"])).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - started)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if self.api_key and path not in OPEN_PATHS and not self._authorised(scope):
            await problem_response(
                401,
                "missing or wrong API key: send it as 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
                path,
                headers={"WWW-Authenticate": "Bearer"},
            )(scope, receive, send)
            return
        is_upload = scope["method"] == "POST" and path == "/tracks"
        limit = self.max_upload_bytes if is_upload and _is_multipart(scope) else self.max_body_bytes
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await problem_response(413, _too_large(limit), path)(scope, receive, send)
            return
        clock = BodyClock(self.body_timeout_s, self.body_min_rate)
        if not is_upload:
            await self._limited(scope, receive, send, limit, clock)
            return
        try:
            self.gate.enter(clock)
        except ServiceBusy as exc:
            headers = {"Retry-After": str(exc.retry_after_s)}
            await problem_response(503, str(exc), path, headers=headers)(scope, receive, send)
            return
        try:
            await self._limited(scope, receive, send, limit, clock)
        finally:
            self.gate.leave(clock)

    async def _limited(self, scope: Scope, receive: Receive, send: Send, limit: int, clock: BodyClock) -> None:
        """Pass the request on, counting body bytes as they arrive; past `limit` the answer is 413, past the
        body's deadline (or when cut) 408."""
        started = False

        async def counting_receive() -> Message:
            message = await clock.next_message(receive)
            if clock.received > limit:
                raise _BodyTooLarge(_too_large(limit))
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except ClientDisconnect:
            return  # the client left mid-body: nobody to answer
        except _BodyTooLarge as exc:
            if not started:
                await problem_response(413, str(exc), scope["path"])(scope, receive, send)
        except _BodyTooSlow as exc:
            if not started:
                await problem_response(408, str(exc), scope["path"], headers=CLOSE_CONNECTION)(scope, receive, send)

    def _authorised(self, scope: Scope) -> bool:
        assert self.api_key is not None
        headers = dict(scope["headers"])
        offered = headers.get(b"x-api-key", b"")
        bearer = headers.get(b"authorization", b"")
        if bearer[:7].lower() == b"bearer ":
            offered = offered or bearer[7:].strip()
        return hmac.compare_digest(offered, self.api_key)


def _is_multipart(scope: Scope) -> bool:
    """An upload proper (a JSON body naming a URL has the small limit of every other body)."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            return value.split(b";")[0].strip().lower() == b"multipart/form-data"
    return False


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _too_large(limit: int) -> str:
    return f"the request body is larger than this service accepts ({limit / 1e6:g} MB)"
