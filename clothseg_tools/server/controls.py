"""Test controls: fault injection on the API endpoints (``--test-controls`` only).

Faults come from two places, merged per request: the server's random fault table
(``ServerSettings.faults``: spec -> probability, dice seeded by ``fault_seed``) and the
``X-Clothseg-Fault`` request header. See the package docstring for the spec.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .settings import FAULT_HEADER, Fault, ServerSettings, parse_fault

__all__ = ["API_PREFIX", "RAW_SEND_KEY", "FaultMiddleware", "request_fault"]

logger = logging.getLogger("clothseg_tools.server")

#: Paths that faults apply to.
API_PREFIX = "/api/"

#: Scope key holding the server's own ``send`` (its connection can be aborted).
RAW_SEND_KEY = "clothseg.raw_send"

#: Scope ``state`` key holding the fault that applies to the request.
STATE_KEY = "clothseg_fault"

_HEADER = FAULT_HEADER.lower().encode("latin-1")


def request_fault(scope: Scope) -> Fault:
    """The fault the middleware decided for this request (an empty one when none)."""
    state = scope.get("state") or {}
    fault = state.get(STATE_KEY)
    return fault if isinstance(fault, Fault) else Fault()


class FaultMiddleware:
    """ASGI middleware injecting faults into requests under ``/api/``.

    Order of effects: ``latency`` first; then ``drop`` (before) or ``status`` answer
    the request without acting on it; ``drop=after`` acts on it and then closes the
    connection instead of answering. ``corrupt_mask`` and ``expire`` are left in the
    request state for the create handler.
    """

    def __init__(self, app: ASGIApp, *, settings: ServerSettings) -> None:
        self.app = app
        self.table = settings.fault_table
        self.rng = random.Random(settings.fault_seed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        fault = Fault()
        for candidate, probability in self.table:
            if self.rng.random() < probability:
                fault = fault.merge(candidate)
        header = _header(scope)
        if header is not None:
            try:
                fault = fault.merge(parse_fault(header))
            except ValueError as exc:
                await _send_json(send, 400, f"{FAULT_HEADER}: {exc}", {})
                return
        if fault.is_empty:
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})[STATE_KEY] = fault
        if fault.latency:
            await asyncio.sleep(fault.latency)
        if fault.drop == "before":
            await _drop(scope)
            return
        if fault.status is not None:
            await _send_status(send, fault)
            return
        if fault.drop == "after":
            await self.app(scope, receive, _swallow)
            await _drop(scope)
            return
        await self.app(scope, receive, send)


def _header(scope: Scope) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == _HEADER:
            return bytes(value).decode("latin-1")
    return None


async def _swallow(message: Message) -> None:
    """A ``send`` that discards the answer (for ``drop=after``)."""


async def _send_status(send: Send, fault: Fault) -> None:
    status = int(fault.status or 500)
    headers: dict[str, str] = {}
    retry_after = fault.retry_after
    if status == 429 and retry_after is None:
        retry_after = 1.0
    if retry_after is not None:
        headers["retry-after"] = f"{retry_after:g}"
    message = fault.message or (
        f"Injected fault: status {status} ({FAULT_HEADER} or the server's fault table)."
    )
    await _send_json(send, status, message, headers)


async def _send_json(send: Send, status: int, message: str, headers: dict[str, str]) -> None:
    body = json.dumps({"status": status, "message": message, "data": None}).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


async def _drop(scope: Scope) -> None:
    """Close the client's connection without an answer (a reset, as a crash would)."""
    raw_send: Any = scope.get(RAW_SEND_KEY)
    transport = getattr(getattr(raw_send, "__self__", None), "transport", None)
    if transport is None:
        raise RuntimeError(
            "Cannot drop the connection: the ASGI server does not expose its transport "
            "(the drop fault needs uvicorn)."
        )
    transport.abort()
    # let the protocol's connection_lost run, so the server knows no answer is due
    await asyncio.sleep(0)
    await asyncio.sleep(0)
