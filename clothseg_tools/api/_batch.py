"""Batch concurrency: many images through one client, outcomes yielded as they finish.

Examples
--------
>>> outcomes = run_many(lambda x: 10 // x, [5, 0, 2], workers=2)
>>> [(o.index, o.result, type(o.error).__name__ if o.error else None)
...  for o in sorted(outcomes, key=lambda o: o.index)]
[(0, 2, None), (1, None, 'ZeroDivisionError'), (2, 5, None)]
"""

from __future__ import annotations

import contextvars
import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from .._pool import RateLimiter, ThreadLoop

__all__ = ["Outcome", "current_limiter", "run_many"]

T = TypeVar("T")

#: The rate limiter of the batch the current thread works for (None outside batches).
_LIMITER: contextvars.ContextVar[RateLimiter | None] = contextvars.ContextVar(
    "clothseg_rate_limiter", default=None
)


def current_limiter() -> RateLimiter | None:
    """The rate limiter of the batch running in this thread, if any."""
    return _LIMITER.get()


@dataclasses.dataclass(frozen=True)
class Outcome(Generic[T]):
    """What happened to one input of a batch.

    Attributes
    ----------
    index : int
        Position of the input in the batch.
    source : str
        A printable name of the input (path, URL without query string, ``<bytes #3>``).
    result : SegmentationResult or None
        The result, when the input succeeded.
    error : Exception or None
        The error, when it failed.
    seconds : float
        Wall time spent on this input.
    """

    index: int
    source: str
    result: T | None
    error: BaseException | None
    seconds: float

    @property
    def ok(self) -> bool:
        """True when the input succeeded."""
        return self.error is None


def run_many(
    fn: Callable[[Any], T],
    items: Iterable[Any],
    *,
    workers: int = 8,
    limiter: RateLimiter | None = None,
    describe: Callable[[int, Any], str] | None = None,
) -> Iterator[Outcome[T]]:
    """Run ``fn`` over ``items`` in ``workers`` threads; yield an :class:`Outcome` each.

    At most ``2 * workers`` inputs are taken from ``items`` ahead of the results, so a
    lazy iterable of millions of paths is never read all at once. An exception in
    ``fn`` is captured in its outcome; the rest of the batch goes on. Leaving the loop
    early cancels the inputs not yet started.

    Parameters
    ----------
    fn
        Work for one input.
    items
        The inputs (any iterable, read lazily).
    workers
        Threads working at once.
    limiter
        Shared rate limiter, visible to ``fn`` through :func:`current_limiter`.
    describe
        ``describe(index, item)`` -> printable name for :attr:`Outcome.source`
        (default ``str(item)``).
    """
    if int(workers) < 1:
        raise ValueError(f"workers must be at least 1, got {workers!r}.")
    workers = int(workers)
    name_of = describe or (lambda _index, item: str(item))

    def job(index: int, item: Any) -> Outcome[T]:
        start = time.perf_counter()
        token = _LIMITER.set(limiter)
        try:
            source = name_of(index, item)
        except Exception:  # a name is only for display: never lose the input over it
            source = f"<input #{index}>"
        try:
            return Outcome(index, source, fn(item), None, time.perf_counter() - start)
        except Exception as exc:
            return Outcome(index, source, None, exc, time.perf_counter() - start)
        finally:
            _LIMITER.reset(token)

    with ThreadLoop(
        lambda pair: job(*pair), enumerate(items), workers=workers, name="clothseg-batch"
    ) as loop:
        yield from loop
