"""The HTTP layer: the pooled session, and the one place ``requests`` errors are translated.

Everything that leaves this module is a :mod:`clothseg_tools.errors` type raised
``from`` the original exception. Messages name the request ("creating a task",
"querying task t1"), never the API key, and show URLs without their query string.

Examples
--------
>>> session = build_session(max_retries=3, pool_size=16)
>>> adapter = session.get_adapter("https://example.com/")
>>> adapter.max_retries.total, adapter._pool_maxsize
(3, 16)
>>> session.close()
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Iterator, Mapping
from typing import Any, NoReturn
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.sessions import merge_setting
from requests.utils import get_environ_proxies
from urllib3.exceptions import NewConnectionError, ReadTimeoutError

from ..contract import KEY_HEADER, scrub_secrets
from ..errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    TaskFailedError,
    status_error,
)
from ..task import check_body_status, parse_int, redact_url
from ._retry import (
    BACKOFF_FACTOR,
    BACKOFF_MAX,
    RETRY_AFTER_MAX,
    ClientRetry,
    parse_retry_after,
)

__all__ = [
    "KEY_HEADER",
    "EnvCachedSession",
    "build_session",
    "parse_json",
    "raise_for_status",
    "translate",
]

logger = logging.getLogger("clothseg_tools.api")

_REQUEST_ID_HEADERS = ("X-Request-Id", "X-Request-ID", "Request-Id")


def build_session(
    *,
    max_retries: int,
    pool_size: int,
    backoff_factor: float = BACKOFF_FACTOR,
    backoff_max: float = BACKOFF_MAX,
    retry_after_max: float = RETRY_AFTER_MAX,
) -> requests.Session:
    """A session with the client's retry policy and a connection pool of ``pool_size``.

    The pool keeps ``pool_size`` connections per host, so the batch workers and their
    parallel mask downloads reuse connections instead of opening new ones.
    """
    retry = ClientRetry.for_get(
        max_retries=max_retries,
        backoff_factor=backoff_factor,
        backoff_max=backoff_max,
        retry_after_max=retry_after_max,
    )
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=retry)
    session = EnvCachedSession()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class EnvCachedSession(requests.Session):
    """A ``requests.Session`` that reads proxy and CA-bundle variables once per host.

    requests scans the environment for proxies (twice) and CA bundles on every
    request; a batch sends thousands of requests to a handful of hosts, and that scan
    is a fifth of the client's CPU per request. The environment's answer is kept per
    scheme and host for the session's life; everything else merges as in requests.
    """

    def __init__(self) -> None:
        super().__init__()
        self._environment: dict[tuple[str, str], tuple[dict[str, str], str | None]] = {}

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> Any:
        """As ``requests.Session.merge_environment_settings``, with the lookups cached."""
        if not self.trust_env or (proxies and proxies.get("no_proxy")):
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        parts = urlsplit(url.decode() if isinstance(url, bytes) else str(url))
        key = (parts.scheme, parts.netloc)
        found = self._environment.get(key)
        if found is None:
            found = (
                dict(get_environ_proxies(url)),
                os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE"),
            )
            self._environment[key] = found  # a race only computes the same answer twice
        env_proxies, env_bundle = found
        merged = dict(proxies or {})
        for scheme, proxy in env_proxies.items():
            merged.setdefault(scheme, proxy)
        if (verify is True or verify is None) and env_bundle:
            verify = env_bundle
        return {
            "proxies": merge_setting(merged, self.proxies),
            "stream": merge_setting(stream, self.stream),
            "verify": merge_setting(verify, self.verify),
            "cert": merge_setting(cert, self.cert),
        }


def translate(exc: requests.RequestException, *, what: str, url: str) -> NoReturn:
    """Re-raise a ``requests`` exception as the matching clothseg_tools error.

    Raises
    ------
    APITimeoutError
        Connect or read timeout.
    APIConnectionError
        Any other transport failure (refused, reset, DNS, TLS, retries exhausted).
    """
    where = redact_url(url)
    if isinstance(exc, requests.Timeout) or _timed_out(exc):
        stage = "connecting to" if isinstance(exc, requests.ConnectTimeout) else "reading from"
        raise APITimeoutError(
            f"{what} timed out while {stage} {where}. The service is slow or unreachable; "
            "try again, or raise Client(timeout=...)."
        ) from exc
    if isinstance(exc, requests.ConnectionError):
        raise APIConnectionError(
            f"{what} failed: no working connection to {where} ({_reason(exc)}). Check "
            "base_url and the network, then try again."
        ) from exc
    raise APIConnectionError(f"{what} failed while talking to {where} ({_reason(exc)}).") from exc


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what it wraps: ``reason``, ``__cause__``, a wrapped first arg."""
    inner: BaseException | None = exc
    for _ in range(8):
        if inner is None:
            return
        yield inner
        nxt = getattr(inner, "reason", None) or inner.__cause__ or inner.__context__
        if nxt is None and inner.args and isinstance(inner.args[0], BaseException):
            nxt = inner.args[0]
        inner = nxt if isinstance(nxt, BaseException) else None


def _timed_out(exc: BaseException) -> bool:
    """True when a read timed out: requests reports read timeouts that exhausted the
    retries as a plain ``ConnectionError`` wrapping urllib3's ``ReadTimeoutError``."""
    return any(
        isinstance(e, (ReadTimeoutError, socket.timeout)) and not isinstance(e, NewConnectionError)
        for e in _causes(exc)
    )


def _reason(exc: BaseException) -> str:
    """The innermost cause's class name: enough to act on, and free of URLs."""
    *_, inner = _causes(exc)
    return type(inner).__name__


def _request_id(response: requests.Response) -> str | None:
    for name in _REQUEST_ID_HEADERS:
        value = response.headers.get(name)
        if value:
            return str(value)
    return None


def parse_json(response: requests.Response, *, what: str) -> Mapping[str, Any]:
    """The JSON object of a response, or an :class:`APIError` that says what came."""
    try:
        body = response.json()
    except (ValueError, json.JSONDecodeError) as exc:
        kind = response.headers.get("Content-Type", "no content type")
        raise APIError(
            f"{what}: the service answered HTTP {response.status_code} with {kind}, not "
            "JSON. Check base_url points at the API, not a web page."
        ) from exc
    if not isinstance(body, Mapping):
        raise APIError(f"{what}: the service answered a JSON {type(body).__name__}, not an object.")
    return body


def raise_for_status(
    response: requests.Response,
    *,
    what: str,
    task_id: str | None = None,
    secrets: tuple[str, ...] = (),
) -> Mapping[str, Any]:
    """Check the HTTP status and the body's ``status``; return the JSON body.

    Raises
    ------
    APIStatusError
        The typed subclass for a non-2xx HTTP status, or for a 2xx answer whose body
        ``status`` is not 200. ``RateLimitError.retry_after`` is read from the header.
    APIError
        A redirect, or a body that is not JSON.
    """
    code = response.status_code
    request_id = _request_id(response)
    if 300 <= code < 400:
        location = redact_url(response.headers.get("Location", "") or "(no location)")
        raise APIStatusError(
            f"{what}: the service redirected (HTTP {code}) to {location}. Set base_url to the "
            "address it redirects to; the client does not follow redirects so the API key "
            "is never sent to another host.",
            status=code,
            task_id=task_id,
            request_id=request_id,
        )
    if code >= 400:
        _raise_if_task_failed(response, status=code, task_id=task_id, secrets=secrets)
        message = _error_message(response)
        raise status_error(
            code,
            scrub_secrets(f"{what} failed with HTTP {code}: {message}", secrets),
            task_id=task_id,
            request_id=request_id,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    body = parse_json(response, what=what)
    try:
        if parse_int(body.get("status"), field="status") not in (None, 200):
            _raise_if_task_failed(response, status=None, task_id=task_id, secrets=secrets)
        check_body_status(body, task_id=task_id, request_id=request_id)
    except APIStatusError as exc:
        # a real service answers HTTP 200 with the failure in the body: keep Retry-After
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        raise status_error(
            exc.status,
            scrub_secrets(f"{what} failed: {exc.message}", secrets),
            task_id=task_id,
            request_id=request_id,
            retry_after=retry_after,
        ) from None
    return body


def _raise_if_task_failed(
    response: requests.Response,
    *,
    status: int | None,
    task_id: str | None,
    secrets: tuple[str, ...],
) -> None:
    """Raise :class:`TaskFailedError` when an error answer carries a task with ``state < 0``.

    The service answers a failed task with the failure's status (422, 500) *and* the
    task in ``data``; that is the task's final word, not a transient server error.
    """
    try:
        body = response.json()
    except ValueError:
        return
    data = body.get("data") if isinstance(body, Mapping) else None
    if not isinstance(data, Mapping):
        return
    try:
        state = parse_int(data.get("state"), field="state")
        code = status if status is not None else parse_int(body.get("status"), field="status")
    except APIError:
        return
    if state is None or state >= 0:
        return
    tid = str(data.get("task_id") or task_id or "") or None
    message = str(body.get("message") or data.get("message") or "no message")
    raise TaskFailedError(
        scrub_secrets(f"Task {tid} failed (state {state}, status {code}): {message}", secrets),
        task_id=tid,
        state=state,
        status=code,
    )


def _error_message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, Mapping):
        message = body.get("message") or body.get("detail") or body.get("error")
        if message:
            return str(message)[:300]
    text = " ".join((response.text or "").split())
    return text[:200] if text else (response.reason or "no message")
