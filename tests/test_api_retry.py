"""Retry timing (backoff, Retry-After cap) and the shared token-bucket rate limiter."""

from __future__ import annotations

import email.utils
import itertools
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clothseg_tools.api import RateLimiter, _retry
from clothseg_tools.api._retry import (
    ClientRetry,
    backoff_delay,
    parse_retry_after,
    retry_delay,
)


@given(st.integers(min_value=1, max_value=60))
def test_backoff_doubles_from_half_a_second_and_caps_at_8(attempt: int) -> None:
    base = min(8.0, 0.5 * 2 ** (attempt - 1))
    delay = backoff_delay(attempt)
    assert base <= delay <= min(8.0, base + _retry.BACKOFF_JITTER)


def test_backoff_jitter_spreads_clients() -> None:
    assert len({backoff_delay(2) for _ in range(20)}) > 1


@pytest.mark.parametrize(
    ("header", "expected"),
    [("0", 0.0), ("5", 5.0), (" 30 ", 30.0), ("120", 120.0), ("121", 120.0), ("86400", 120.0)],
)
def test_retry_after_seconds_capped_at_120(header: str, expected: float) -> None:
    assert parse_retry_after(header) == expected


def test_retry_after_http_date() -> None:
    in_ten = email.utils.formatdate(time.time() + 10, usegmt=True)
    assert 7.0 <= (parse_retry_after(in_ten) or 0.0) <= 10.0
    far = email.utils.formatdate(time.time() + 3600, usegmt=True)
    assert parse_retry_after(far) == 120.0


@pytest.mark.parametrize("header", [None, "", "soon", "-5"])
def test_unreadable_retry_after_is_ignored(header: str | None) -> None:
    assert parse_retry_after(header) is None


def test_retry_delay_prefers_retry_after() -> None:
    assert retry_delay(3, 1.5) == 1.5
    assert retry_delay(3, 1000.0, retry_after_max=60.0) == 60.0
    assert 2.0 <= retry_delay(3, None) <= 2.0 + _retry.BACKOFF_JITTER


def test_get_policy() -> None:
    retry = ClientRetry.for_get(max_retries=4, retry_after_max=30.0)
    assert retry.total == retry.connect == retry.read == retry.status == 4
    assert set(retry.status_forcelist or ()) == {429, 502, 503, 504}
    assert retry.is_retry("GET", 503)
    # the POST gets no status or read retries from this policy: never a duplicate task
    assert not retry.is_retry("POST", 503)
    assert not retry.is_retry("POST", 429, has_retry_after=True)
    assert not retry.is_retry("GET", 413, has_retry_after=True)
    # the cap survives urllib3's copy-on-increment
    assert retry.new(total=1).retry_after_cap == 30.0
    assert retry.parse_retry_after("999") == 30.0


def test_policy_backoff_starts_at_factor() -> None:
    retry = ClientRetry.for_get(max_retries=5)
    retry.backoff_jitter = 0.0
    delays = []
    for _ in range(5):
        retry = retry.new(history=(*retry.history, _history_entry()))
        delays.append(retry.get_backoff_time())
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0]


def _history_entry():  # type: ignore[no-untyped-def]
    from urllib3.util.retry import RequestHistory

    return RequestHistory("GET", "/x", None, 503, None)


def test_policy_sleep_uses_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(_retry, "sleep", slept.append)

    class Answer:
        def __init__(self) -> None:
            self.headers = {"Retry-After": "500"}

    ClientRetry.for_get(max_retries=1, retry_after_max=120.0).sleep(Answer())
    assert slept == [120.0]


def test_rate_limiter_spaces_requests_across_threads() -> None:
    limiter = RateLimiter(200.0)
    stamps: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(10):
            limiter.acquire()
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stamps.sort()
    # 40 requests at 200/s after one free token: at least 39 / 200 s apart overall
    assert stamps[-1] - stamps[0] >= 39 / 200 * 0.9


def test_rate_limiter_reservations_are_evenly_spaced() -> None:
    limiter = RateLimiter(10.0, burst=2)
    waits = [limiter.reserve() for _ in range(6)]
    assert waits[:2] == [0.0, 0.0]
    gaps = [b - a for a, b in itertools.pairwise(waits[2:])]
    assert all(g == pytest.approx(0.1, abs=0.02) for g in gaps)


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0)])
def test_rate_limiter_rejects_bad_settings(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        RateLimiter(rate, burst=burst)


def test_every_retry_urllib3_makes_is_logged_without_the_query(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from urllib3.exceptions import ReadTimeoutError
    from urllib3.response import HTTPResponse

    retry = ClientRetry.for_get(max_retries=3)
    with caplog.at_level("INFO", logger="clothseg_tools"):
        retry = retry.increment("GET", "/results/a.png?sig=s3cret", HTTPResponse(status=503))
        retry = retry.increment(
            "GET", "/api/t/1", error=ReadTimeoutError(None, "/api/t/1", "read timed out")
        )
    assert [r.getMessage() for r in caplog.records] == [
        "GET /results/a.png: status 503; retry 1 of 3",
        "GET /api/t/1: ReadTimeoutError; retry 2 of 3",
    ]
    assert all(r.levelname == "INFO" for r in caplog.records)
