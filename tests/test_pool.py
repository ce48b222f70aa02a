"""The one thread loop and the one rate limiter under run_many and the batch runner."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator

import pytest

from clothseg_tools import api, batch
from clothseg_tools._pool import RateLimiter, ThreadLoop


def test_one_rate_limiter_behind_both_import_paths() -> None:
    assert api.RateLimiter is batch.RateLimiter is RateLimiter
    limiter = batch.RateLimiter(20.0)
    assert limiter.interval == pytest.approx(0.05)


def test_burst_one_spaces_evenly_and_larger_burst_goes_at_once() -> None:
    even = RateLimiter(10.0)
    waits = [even.reserve() for _ in range(4)]
    assert waits[0] == 0.0
    assert all(b - a == pytest.approx(0.1, abs=0.02) for a, b in itertools.pairwise(waits))
    bursty = RateLimiter(10.0, burst=3)
    assert [bursty.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bursty.reserve() == pytest.approx(0.1, abs=0.02)


def test_loop_reads_inputs_lazily() -> None:
    taken: list[int] = []

    def source() -> Iterator[int]:
        for i in itertools.count():
            taken.append(i)
            yield i

    gate = threading.Event()

    def slow(x: int) -> int:
        gate.wait(5)
        return x

    with ThreadLoop(slow, source(), workers=2) as loop:
        results = iter(loop)
        time.sleep(0.05)
        gate.set()
        first = next(results)
        assert first in range(4)
        # never more than 2 * workers ahead of the results, even from an endless source
        assert len(taken) <= 5
    assert loop.started <= 5


def test_loop_stop_event_and_errors() -> None:
    stop = threading.Event()
    seen = []
    with ThreadLoop(lambda x: x, range(1000), workers=2, stop=stop) as loop:
        for value in loop:
            seen.append(value)
            stop.set()
    assert len(seen) == loop.started < 1000

    def boom(x: int) -> int:
        raise ValueError("bad")

    with ThreadLoop(boom, [1], workers=1) as loop, pytest.raises(ValueError, match="bad"):
        list(loop)
    with pytest.raises(ValueError, match="at least 1"):
        ThreadLoop(boom, [], workers=0)
