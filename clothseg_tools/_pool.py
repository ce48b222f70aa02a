"""The one thread-pool loop and the one rate limiter that every batch shares.

:class:`ThreadLoop` runs a function over a lazily read iterable on worker threads,
keeping at most ``2 * workers`` inputs in flight so millions of inputs are never read
at once, and yields each result as it finishes. ``Client.segment_many`` (through
:func:`clothseg_tools.api.run_many`) and the batch runner
(:func:`clothseg_tools.batch.run_job`) are both built on it.

:class:`RateLimiter` is a token bucket shared by threads: ``rate`` acquisitions per
second on average, ``burst`` of them at once after an idle spell. With the default
``burst=1`` it spaces callers evenly, ``1 / rate`` seconds apart, the first one at
once: that is what ``--rate-limit`` and ``segment_many(rate_limit=...)`` do.

Examples
--------
>>> with ThreadLoop(lambda x: x * x, range(5), workers=2) as loop:
...     sorted(loop)
[0, 1, 4, 9, 16]
>>> limiter = RateLimiter(1000.0)
>>> limiter.reserve(), limiter.reserve() > 0     # the second waits its turn
(0.0, True)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Generic, TypeVar

__all__ = ["RateLimiter", "ThreadLoop"]

I = TypeVar("I")  # noqa: E741 - the input type
R = TypeVar("R")

#: Seconds between looks at the stop event while waiting for results.
_POLL = 0.25


def _sleep(seconds: float) -> None:
    if seconds > 0:
        time.sleep(seconds)


class RateLimiter:
    """A thread-safe token bucket: at most ``rate`` acquisitions per second on average.

    Each caller reserves the next free slot under a lock and sleeps outside it, so
    waiting threads are served in order and none spins. With ``burst=1`` (the
    default) starts are evenly spaced ``1 / rate`` seconds apart and the first goes at
    once; a larger ``burst`` lets that many go together after an idle spell, then the
    rate holds again.

    Parameters
    ----------
    rate
        Acquisitions per second (> 0).
    burst
        How many may go at once after an idle spell (at least 1).

    Raises
    ------
    ValueError
        ``rate`` not above 0, or ``burst`` below 1.

    Examples
    --------
    >>> limiter = RateLimiter(1000.0)
    >>> start = time.monotonic()
    >>> for _ in range(5):
    ...     limiter.acquire()
    >>> time.monotonic() - start >= 0.004
    True
    >>> RateLimiter(10.0, burst=2)
    RateLimiter(rate=10, burst=2)
    """

    def __init__(self, rate: float, *, burst: int = 1) -> None:
        if not rate > 0:
            raise ValueError(
                f"rate limit must be above 0 per second (a positive number of "
                f"requests/s), got {rate!r}."
            )
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst!r}.")
        self.rate = float(rate)
        self.burst = int(burst)
        self._tokens = float(burst)
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    @property
    def interval(self) -> float:
        """Seconds between two starts at the steady rate (``1 / rate``)."""
        return 1.0 / self.rate

    def reserve(self) -> float:
        """Take a token and return how many seconds to wait before using it."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def acquire(self) -> None:
        """Block until the caller may go."""
        _sleep(self.reserve())

    def __repr__(self) -> str:
        return f"RateLimiter(rate={self.rate:g}, burst={self.burst})"


class ThreadLoop(Generic[I, R]):
    """``fn`` over ``items`` on ``workers`` threads; iterate for results as they finish.

    Inputs are read lazily, at most ``2 * workers`` ahead of the results. Setting
    ``stop`` stops new inputs from starting; iteration then ends once the running ones
    have been yielded. Leaving the ``with`` block early cancels what has not started
    and waits for what has.

    An exception raised by ``fn`` is raised from the iteration; the batch callers pass
    functions that capture their errors into their results instead.

    ``KeyboardInterrupt`` reaching the loop while it waits is re-raised after it has
    cancelled the queued inputs; :meth:`drain` then yields the ones still running, so
    a caller can record them before giving up.

    Parameters
    ----------
    fn
        Work for one input.
    items
        The inputs (any iterable, read lazily).
    workers
        Threads working at once (at least 1).
    stop
        Optional event: set, no new input starts.
    name
        Prefix of the worker threads' names.

    Attributes
    ----------
    started : int
        Inputs handed to a thread so far (cancelled ones are not counted).
    """

    def __init__(
        self,
        fn: Callable[[I], R],
        items: Iterable[I],
        *,
        workers: int,
        stop: threading.Event | None = None,
        name: str = "clothseg",
    ) -> None:
        if int(workers) < 1:
            raise ValueError(f"workers must be at least 1, got {workers!r}.")
        self.workers = int(workers)
        self.started = 0
        self._fn = fn
        self._inputs = iter(items)
        self._stop = stop
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix=name)
        self._pending: set[Future[R]] = set()

    def _stopped(self) -> bool:
        return self._stop is not None and self._stop.is_set()

    def _refill(self) -> None:
        while len(self._pending) < 2 * self.workers and not self._stopped():
            try:
                item = next(self._inputs)
            except StopIteration:
                return
            self._pending.add(self._pool.submit(self._fn, item))
            self.started += 1

    def __iter__(self) -> Iterator[R]:
        try:
            self._refill()
            while self._pending:
                finished, _ = wait(self._pending, timeout=_POLL, return_when=FIRST_COMPLETED)
                for future in finished:
                    self._pending.discard(future)
                    yield future.result()
                self._refill()
        except KeyboardInterrupt:
            self.cancel()
            raise

    def cancel(self) -> int:
        """Cancel the inputs queued but not started; return how many."""
        cancelled = [f for f in self._pending if f.cancel()]
        for future in cancelled:
            self._pending.discard(future)
        self.started -= len(cancelled)
        return len(cancelled)

    def drain(self) -> Iterator[R]:
        """After an interrupt: cancel what is queued, yield the running ones as they end."""
        self.cancel()
        while self._pending:
            finished, _ = wait(self._pending, return_when=FIRST_COMPLETED)
            for future in finished:
                self._pending.discard(future)
                yield future.result()

    def close(self) -> None:
        """Cancel what has not started and wait for the threads."""
        self.cancel()
        self._pool.shutdown(wait=True)

    def __enter__(self) -> ThreadLoop[I, R]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
