"""Retry policy and rate limiting of the client.

GET requests are retried inside urllib3 by :class:`ClientRetry` (mounted on the
session's adapter): 429, 502, 503, 504, timeouts and dropped connections, with
exponential backoff (0.5 s, doubling, capped at 8 s, plus jitter) or the server's
``Retry-After`` (seconds or an HTTP date), never longer than ``retry_after_max``.

The create POST is not idempotent, so urllib3 retries it only for connect errors (the
request was never sent); the client retries it itself only for answers that prove the
server did not act on it (429 and 503), using :func:`retry_delay`.

:class:`RateLimiter` is a token bucket that several worker threads share.

Examples
--------
>>> retry = ClientRetry.for_get(max_retries=3)
>>> sorted(retry.status_forcelist), sorted(retry.allowed_methods)
([429, 502, 503, 504], ['GET'])
>>> [backoff_delay(n, jitter=0.0) for n in (1, 2, 3, 4, 5, 6)]
[0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
"""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

__all__ = [
    "BACKOFF_FACTOR",
    "BACKOFF_MAX",
    "GET_RETRY_STATUSES",
    "POST_RETRY_STATUSES",
    "RETRY_AFTER_MAX",
    "ClientRetry",
    "RateLimiter",
    "backoff_delay",
    "parse_retry_after",
    "retry_delay",
    "sleep",
]

logger = logging.getLogger("clothseg_tools")

#: First backoff delay in seconds; each further retry doubles it.
BACKOFF_FACTOR = 0.5
#: Longest backoff delay.
BACKOFF_MAX = 8.0
#: Random seconds added to each backoff, so many clients do not retry in lockstep.
BACKOFF_JITTER = 0.25
#: Longest ``Retry-After`` the client honours.
RETRY_AFTER_MAX = 120.0
#: Statuses after which a GET is repeated.
GET_RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: Statuses that prove the server did not act on a POST, so it may be sent again.
POST_RETRY_STATUSES = frozenset({429, 503})


def sleep(seconds: float) -> None:
    """Sleep between attempts; one function so tests can record the delays."""
    if seconds > 0:
        time.sleep(seconds)


def backoff_delay(
    attempt: int,
    *,
    factor: float = BACKOFF_FACTOR,
    maximum: float = BACKOFF_MAX,
    jitter: float = BACKOFF_JITTER,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1 for the first retry).

    ``factor * 2 ** (attempt - 1)`` plus up to ``jitter`` random seconds, capped at
    ``maximum``.

    Examples
    --------
    >>> backoff_delay(1, jitter=0.0), backoff_delay(10, jitter=0.0)
    (0.5, 8.0)
    """
    if attempt < 1:
        return 0.0
    value = factor * (2 ** (attempt - 1))
    if jitter:
        value += random.random() * jitter
    return float(max(0.0, min(maximum, value)))


def parse_retry_after(value: str | None, *, maximum: float = RETRY_AFTER_MAX) -> float | None:
    """Seconds a ``Retry-After`` header asks for (seconds or HTTP date), capped.

    Returns ``None`` for a missing or unreadable header.

    Examples
    --------
    >>> parse_retry_after("3"), parse_retry_after("9999"), parse_retry_after("soon")
    (3.0, 120.0, None)
    >>> parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT")
    0.0
    """
    if value is None:
        return None
    try:
        seconds = Retry(respect_retry_after_header=True).parse_retry_after(str(value))
    except InvalidHeader:
        return None
    return float(min(max(seconds, 0.0), maximum))


def retry_delay(
    attempt: int,
    retry_after: float | None,
    *,
    factor: float = BACKOFF_FACTOR,
    maximum: float = BACKOFF_MAX,
    retry_after_max: float = RETRY_AFTER_MAX,
) -> float:
    """The wait before retry ``attempt``: the server's ``Retry-After`` when it gave one
    (capped at ``retry_after_max``), else the exponential backoff.

    Examples
    --------
    >>> retry_delay(1, 2.0), retry_delay(1, 500.0)
    (2.0, 120.0)
    """
    if retry_after is not None:
        return float(min(max(retry_after, 0.0), retry_after_max))
    return backoff_delay(attempt, factor=factor, maximum=maximum)


class ClientRetry(Retry):
    """urllib3 ``Retry`` with the client's backoff and a capped ``Retry-After``.

    urllib3's own backoff waits 0 s before the first retry; this one starts at
    ``backoff_factor`` and doubles. ``Retry-After`` longer than ``retry_after_cap``
    is cut to it. Sleeps go through :func:`sleep`.
    """

    #: 413 with Retry-After is a refusal of the file, not a reason to try again.
    RETRY_AFTER_STATUS_CODES = frozenset({429, 503})

    def __init__(self, *args: Any, retry_after_cap: float = RETRY_AFTER_MAX, **kw: Any) -> None:
        super().__init__(*args, **kw)
        #: Longest ``Retry-After`` honoured (urllib3 only gained its own cap in 2.6).
        self.retry_after_cap = float(retry_after_cap)

    def new(self, **kw: Any) -> ClientRetry:
        """Copy with updated counters (urllib3 calls this on every retry)."""
        kw.setdefault("retry_after_cap", self.retry_after_cap)
        return super().new(**kw)

    @classmethod
    def for_get(
        cls,
        *,
        max_retries: int,
        backoff_factor: float = BACKOFF_FACTOR,
        backoff_max: float = BACKOFF_MAX,
        retry_after_max: float = RETRY_AFTER_MAX,
    ) -> ClientRetry:
        """The policy mounted on the session: GETs retried on transient failures.

        Other methods (the create POST) get only connect retries from it: urllib3
        counts an error as a connect error only when the request was never sent.
        """
        return cls(
            total=max_retries,
            connect=max_retries,
            read=max_retries,
            status=max_retries,
            other=0,
            redirect=0,
            allowed_methods=frozenset({"GET"}),
            status_forcelist=GET_RETRY_STATUSES,
            backoff_factor=backoff_factor,
            backoff_max=backoff_max,
            backoff_jitter=BACKOFF_JITTER,
            respect_retry_after_header=True,
            raise_on_status=False,
            raise_on_redirect=False,
            retry_after_cap=retry_after_max,
        )

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> ClientRetry:
        """Count one more retry (urllib3 calls this) and log what failed and which try."""
        new = super().increment(method, url, response, error, _pool, _stacktrace)
        why = f"status {response.status}" if response is not None else type(error).__name__
        # the path alone: a result link's query string may carry a signature
        path = urlsplit(url or "").path or "/"
        done = len(new.history)
        # urllib3 counts ``total`` down; the retries allowed are those done plus those left
        allowed = done + new.total if isinstance(new.total, int) else "unlimited"
        logger.info("%s %s: %s; retry %d of %s", method, path, why, done, allowed)
        return new

    def get_backoff_time(self) -> float:
        """Backoff before the next retry: ``factor * 2 ** (n - 1)`` + jitter, capped."""
        errors = 0
        for entry in reversed(self.history):
            if entry.redirect_location is not None:
                break
            errors += 1
        return backoff_delay(
            errors, factor=self.backoff_factor, maximum=self.backoff_max, jitter=self.backoff_jitter
        )

    def parse_retry_after(self, retry_after: str) -> float:
        """Seconds from a ``Retry-After`` header, capped at ``retry_after_cap``."""
        return float(min(super().parse_retry_after(retry_after), self.retry_after_cap))

    def sleep(self, response: Any = None) -> None:
        """Wait for ``Retry-After`` when the answer has one, else the backoff."""
        if self.respect_retry_after_header and response is not None:
            try:
                retry_after = self.get_retry_after(response)
            except InvalidHeader:
                retry_after = None
            if retry_after is not None:
                sleep(retry_after)
                return
        sleep(self.get_backoff_time())


class RateLimiter:
    """A thread-safe token bucket: at most ``rate`` acquisitions per second on average.

    Each caller reserves the next free slot under a lock and sleeps outside it, so
    waiting threads are served in order and none spins.

    Parameters
    ----------
    rate
        Requests per second (> 0).
    burst
        How many requests may go at once after an idle spell (default 1: evenly spaced).

    Examples
    --------
    >>> limiter = RateLimiter(1000.0)
    >>> start = time.monotonic()
    >>> for _ in range(5):
    ...     limiter.acquire()
    >>> time.monotonic() - start >= 0.004
    True
    """

    def __init__(self, rate: float, *, burst: int = 1) -> None:
        if not rate > 0:
            raise ValueError(f"rate_limit must be a positive number of requests/s, got {rate!r}.")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst!r}.")
        self.rate = float(rate)
        self.burst = int(burst)
        self._tokens = float(burst)
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take a token and return how many seconds to wait before using it."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def acquire(self) -> None:
        """Block until the caller may send one request."""
        sleep(self.reserve())

    def __repr__(self) -> str:
        return f"RateLimiter(rate={self.rate:g}, burst={self.burst})"
