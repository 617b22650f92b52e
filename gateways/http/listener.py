"""The HTTP listener: a connection cap, read timeouts, and accept errors logged at a bounded rate.

aiohttp has no header read timeout of its own and no connection limit, so trickling clients
(slowloris) could hold every file descriptor of the process. What aiohttp offers is used:
`keepalive_timeout` closes a connection still waiting for a whole request head when it expires,
counted from the connection's start (or from the previous answer on a kept-alive connection), so
it is the head timeout. The rest is here:

- `Connections` caps open connections: at the cap a new connection closes the oldest one that is
  waiting for a request (a trickler, or an idle keep-alive), so a legitimate request still gets
  in; only when every connection is busy with a request is the new one turned away (503). A
  connection counts as busy from the end of its request head on, before aiohttp hands the
  request to a handler: on a loaded machine tricklers reconnecting by the hundred could otherwise
  push a whole request to the front of the queue and close it unanswered.
- `read_body` gives the body READ_TIMEOUT_SECONDS after the head (408 and closed beyond).
- `quiet_accept_errors` logs asyncio's "socket.accept() out of system resource" (which it would
  log with a traceback for every try, thousands of times a second) once per interval, counted.
- `BadRequests` turns aiohttp's ERROR and traceback for each malformed request (the client's
  fault, answered 400) into one DEBUG line: an attacker could otherwise fill the log with them.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler

from gateways.http.errors import error_body
from gateways.http.keys import SETTINGS
from gateways.settings import Settings
from store.errors import RequestTimeout

log = logging.getLogger("chatservice.http")
ACCEPT_ERROR = "socket.accept() out of system resource"
ACCEPT_LOG_INTERVAL = 10.0  # seconds between two log lines about failing accepts
TURNED_AWAY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    b"Connection: close\r\nContent-Length: 97\r\n\r\n"
    b'{"error": {"code": "unavailable", "message": "too many open connections; retry in a moment"}}\n'
)


class Connections:
    """The open connections: which are busy with a request, and since when the others wait."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._waiting: dict[asyncio.Transport, float] = {}  # insertion order = oldest first
        self._busy: dict[asyncio.Transport, int] = {}  # requests in progress (pipelining)
        self.turned_away = 0

    def __len__(self) -> int:
        return len(self._waiting) + len(self._busy)

    def admit(self, transport: asyncio.Transport) -> bool:
        """Room for `transport`, made by closing the longest-waiting connection if need be."""
        if len(self) >= self.cap:
            if not self._waiting:
                self.turned_away += 1
                return False
            oldest = next(iter(self._waiting))
            self.closed(oldest)
            oldest.abort()  # abort, not close: a trickler's unread bytes must not keep it open
        self._waiting[transport] = time.monotonic()
        return True

    def waiting(self, transport: asyncio.Transport) -> bool:
        return transport in self._waiting

    def requested(self, transport: asyncio.Transport) -> None:
        """A whole request head arrived: no longer closed for room (its handler marks it busy)."""
        if self._waiting.pop(transport, None) is not None:
            self._busy[transport] = 0

    def busy(self, transport: asyncio.Transport) -> None:
        if self._waiting.pop(transport, None) is not None or transport in self._busy:
            self._busy[transport] = self._busy.get(transport, 0) + 1

    def done(self, transport: asyncio.Transport) -> None:
        count = self._busy.pop(transport, None)
        if count is None:
            return
        if count > 1:
            self._busy[transport] = count - 1
        else:
            self._waiting[transport] = time.monotonic()  # now the newest waiting connection

    def closed(self, transport: asyncio.Transport) -> None:
        self._waiting.pop(transport, None)
        self._busy.pop(transport, None)


CONNECTIONS = web.AppKey("connections", Connections)


class _Capped(asyncio.Protocol):
    """Stands in front of aiohttp's protocol for one connection: admits it, or turns it away."""

    def __init__(self, inner: asyncio.Protocol, connections: Connections) -> None:
        self._inner = inner
        self._connections = connections
        self._transport: asyncio.Transport | None = None
        self._tail = b""  # the last bytes received: a head's end may span two reads

    @property
    def _admitted(self) -> bool:
        return self._transport is not None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # a TCP server's
        if not self._connections.admit(transport):
            transport.write(TURNED_AWAY)
            transport.close()
            return
        self._transport = transport
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._transport is not None:
            # Only a waiting connection is looked at: a request's body is never searched or copied.
            if self._connections.waiting(self._transport):
                seen = self._tail + data
                self._tail = seen[-3:]
                if b"\r\n\r\n" in seen:
                    self._tail = b""
                    self._connections.requested(self._transport)
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._admitted else None

    def pause_writing(self) -> None:
        if self._admitted:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._admitted:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._connections.closed(self._transport)
            self._inner.connection_lost(exc)


@web.middleware
async def track(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Marks the connection busy while a request is handled (busy ones are never closed for room)."""
    connections = request.app.get(CONNECTIONS)
    transport = request.transport
    if connections is None or transport is None:
        return await handler(request)
    connections.busy(transport)
    try:
        return await handler(request)
    finally:
        connections.done(transport)


@web.middleware
async def read_body(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The whole body within READ_TIMEOUT_SECONDS of the head (it is MAX_BODY_BYTES at most)."""
    if request.body_exists:
        timeout = request.app[SETTINGS].read_timeout_seconds
        try:
            async with asyncio.timeout(timeout):
                await request.read()  # kept: request.json() and request.post() read it from memory
        except TimeoutError:
            exc = RequestTimeout(f"the request body did not arrive within {timeout:g} s")
            response = web.json_response(error_body(exc), status=408)
            response.force_close()
            return response
    return await handler(request)


def quiet_accept_errors(loop: asyncio.AbstractEventLoop, interval: float = ACCEPT_LOG_INTERVAL) -> None:
    """Log failing accepts (out of file descriptors) once per `interval`, with how many there were."""
    previous = loop.get_exception_handler()
    state = {"last": -interval, "count": 0}

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") != ACCEPT_ERROR:
            if previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        state["count"] += 1
        now = time.monotonic()
        if now - state["last"] >= interval:
            log.error(
                "cannot accept connections: %s (%d time(s) in the last %.0f s); lower MAX_CONNECTIONS "
                "or raise the open-file limit",
                context.get("exception"),
                state["count"],
                now - state["last"] if state["last"] >= 0 else interval,
            )
            state["last"], state["count"] = now, 0

    loop.set_exception_handler(handle)


class BadRequests(logging.Filter):
    """On aiohttp.server: a malformed request is one DEBUG line, not an ERROR with a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        if not logging.getLogger(record.name).isEnabledFor(logging.DEBUG):
            return False
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        record.msg, record.args = "malformed request answered %s: %s", (exc.code, type(exc).__name__)
        record.exc_info, record.exc_text = None, None
        return True


def quiet_bad_requests() -> None:
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, BadRequests) for f in server_log.filters):
        server_log.addFilter(BadRequests())


class HttpListener:
    """The aiohttp app served on HOST:WEB_SERVER_PORT behind the connection cap."""

    def __init__(self, app: web.Application, settings: Settings, grace: float) -> None:
        self._settings = settings
        self.connections = Connections(settings.connection_cap)
        app[CONNECTIONS] = self.connections
        # keepalive_timeout is aiohttp's only clock on a connection waiting for a request head.
        self.runner = web.AppRunner(
            app,
            handler_cancellation=True,
            access_log=None,
            shutdown_timeout=grace,
            keepalive_timeout=settings.read_timeout_seconds,
        )
        self._servers: list[asyncio.Server] = []

    async def start(self, sockets: list[socket.socket]) -> int:
        """Listen on the sockets claimed at start-up (bound, not yet listening); returns the port."""
        await self.runner.setup()
        loop = asyncio.get_running_loop()
        quiet_accept_errors(loop)
        quiet_bad_requests()
        handlers = self.runner.server
        assert handlers is not None  # set by setup()
        self._servers = [
            await loop.create_server(lambda: _Capped(handlers(), self.connections), sock=sock, backlog=128)
            for sock in sockets
        ]
        return int(sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop accepting, then let running requests finish (the runner's shutdown_timeout)."""
        for server in self._servers:
            server.close()
        await self.runner.cleanup()
