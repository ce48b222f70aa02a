"""Uvicorn as this server runs it: HTTP/1.1 (h11) with limits on slow and oversized
requests.

Uvicorn itself waits forever for a request's headers and body: a client that opens
connections and sends a byte now and then holds them as long as it likes. The
protocol here gives every request a deadline for its header block and one for its
body, and answers a header block over the limit with 431 instead of uvicorn's 400.
Each refusal is written, the sending side is shut, and what the client still sends
is read and dropped for a moment before the connection closes, so the client reads
the answer instead of a connection reset.

Examples
--------
>>> from clothseg_tools.server.settings import ServerSettings
>>> config = uvicorn_config(object(), ServerSettings(api_keys=("k",)))
>>> config.http.header_timeout, config.h11_max_incomplete_event_size
(10.0, 32768)
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from .settings import ServerSettings

__all__ = ["GuardedH11Protocol", "uvicorn_config"]

#: Seconds a refused connection is still read (and its bytes dropped) before closing.
LINGER_SECONDS = 2.0

_REASONS = {408: b"Request Timeout", 400: b"Bad Request", 431: b"Request Header Fields Too Large"}


class GuardedH11Protocol(H11Protocol):
    """Uvicorn's h11 protocol with header and body deadlines and a 431 answer.

    The limits are class attributes; :func:`uvicorn_config` makes a subclass with
    the settings' values.
    """

    header_timeout: float = 10.0
    body_timeout: float = 120.0
    max_header_bytes: int = 32 * 1024

    _phase: str | None = None
    _limit_timer: asyncio.TimerHandle | None = None
    _closing_timer: asyncio.TimerHandle | None = None
    _draining: bool = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._enter("headers")  # a new connection owes its first header block

    def data_received(self, data: bytes) -> None:
        if self._draining:
            return  # refused: read and drop until the client stops or the linger ends
        if self.conn.their_state is h11.IDLE:
            if self._phase is None:
                self._enter("headers")  # the next request on a kept-alive connection
            if self._header_block_too_large(data):
                self._refuse_header_block()
                return
        super().data_received(data)
        if not self._draining:
            self._follow_state()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._draining:
            return
        if self.conn.their_state is h11.IDLE:
            # a pipelined request already begun owes its headers; an idle connection
            # is left to the keep-alive timeout
            self._enter("headers" if self.conn.trailing_data[0] else None)
        else:
            self._follow_state()

    def connection_lost(self, exc: Exception | None) -> None:
        self._enter(None)
        if self._closing_timer is not None:
            self._closing_timer.cancel()
            self._closing_timer = None
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        # uvicorn calls this for every request h11 cannot parse, including a header
        # block that outgrew h11's buffer limit (set to the same size)
        if len(self.conn.trailing_data[0]) > self.max_header_bytes:
            self._refuse_header_block()
        else:
            self._refuse(400, "The request is not valid HTTP/1.1.")

    def _header_block_too_large(self, data: bytes) -> bool:
        """Whether the header block being received passes ``max_header_bytes``.

        h11 limits only a block still incomplete when a read ends; a large block
        that arrives in one read would pass, so the block is measured here.
        """
        pending = self.conn.trailing_data[0]
        window = pending + data[: self.max_header_bytes + 4]
        end = window.find(b"\r\n\r\n")
        size = len(window) if end < 0 else end + 4
        return size > self.max_header_bytes

    def _refuse_header_block(self) -> None:
        self._refuse(
            431,
            f"The request's header block is larger than {self.max_header_bytes} bytes, "
            "the most this server reads; send fewer or shorter headers.",
        )

    # -- deadlines ------------------------------------------------------------------

    def _follow_state(self) -> None:
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            if self._phase != "body":
                self._enter("body")
        elif state is not h11.IDLE:
            self._enter(None)  # the request is in: the app's time is not limited here

    def _enter(self, phase: str | None) -> None:
        if phase == self._phase:
            return
        if self._limit_timer is not None:
            self._limit_timer.cancel()
            self._limit_timer = None
        self._phase = phase
        if phase == "headers":
            self._limit_timer = self.loop.call_later(self.header_timeout, self._too_slow)
        elif phase == "body":
            self._limit_timer = self.loop.call_later(self.body_timeout, self._too_slow)

    def _too_slow(self) -> None:
        self._limit_timer = None
        if self.transport.is_closing():
            return
        if self._phase == "headers":
            message = (
                f"The request's headers did not arrive within {self.header_timeout:g} s; "
                "send the whole request at once."
            )
        else:
            message = (
                f"The request's body did not arrive within {self.body_timeout:g} s; send "
                "the upload faster, or give its address as image_url."
            )
        self.logger.warning("closing a connection: %s", message)
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if cycle.response_started:
                self.transport.close()  # too late for an answer
                return
            # the app sees a disconnect; nothing it sends later is written
            cycle.disconnected = True
            cycle.message_event.set()
        self._refuse(408, message)

    # -- refusing -------------------------------------------------------------------

    def _refuse(self, status: int, message: str) -> None:
        """Answer ``status`` in the API's JSON shape, then close without a reset."""
        self._enter(None)
        self._draining = True
        body = json.dumps({"status": status, "message": message, "data": None}).encode()
        head = (
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\nconnection: close\r\n"
            b"content-length: %d\r\n\r\n" % (status, _REASONS[status], len(body))
        )
        self.transport.write(head + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the answer, then FIN; reading goes on
            self.flow.resume_reading()
            self._closing_timer = self.loop.call_later(LINGER_SECONDS, self.transport.close)
        else:
            self.transport.close()

    def eof_received(self) -> None:
        if self._draining:
            self.transport.close()
        return


def uvicorn_config(app: Any, settings: ServerSettings, **options: Any) -> uvicorn.Config:
    """The uvicorn configuration this server runs with: h11 with ``settings``' limits.

    Parameters
    ----------
    app
        The ASGI application.
    settings
        Supplies ``header_timeout``, ``body_timeout`` and ``max_header_bytes``.
    **options
        Other :class:`uvicorn.Config` arguments (host, port, log settings ...).
    """
    protocol = type(
        "ClothsegH11Protocol",
        (GuardedH11Protocol,),
        {
            "header_timeout": float(settings.header_timeout),
            "body_timeout": float(settings.body_timeout),
            "max_header_bytes": int(settings.max_header_bytes),
        },
    )
    return uvicorn.Config(
        app,
        http=protocol,
        h11_max_incomplete_event_size=int(settings.max_header_bytes),
        **options,
    )
