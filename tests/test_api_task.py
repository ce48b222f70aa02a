"""Task parsing: numbers as strings, timestamps, the status/state rule, redaction."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clothseg_tools.api import Task
from clothseg_tools.api._task import check_body_status, parse_int, parse_time, redact_url
from clothseg_tools.errors import (
    APIError,
    APIInputError,
    AuthenticationError,
    RateLimitError,
    ServerError,
    TaskNotFoundError,
)


def body(data: dict, status: object = 200, message: str = "success") -> dict:
    return {"status": status, "message": message, "data": data}


FULL = {
    "task_id": "abc",
    "state": "1",
    "progress": "100",
    "created_at": "1700000000",
    "processed_at": "1700000001",
    "completed_at": "1700000002.25",
    "class_masks": {"tops": "https://cdn.test/t.png?sig=SECRET", "acc": "aGVsbG8="},
    "clothes_masks": "https://cdn.test/parts.zip?sig=SECRET",
    "output_type": "3",
}


def test_full_answer_with_string_numbers_is_typed() -> None:
    task = Task.from_response(body(FULL, status="200"))
    assert (task.task_id, task.state, task.progress, task.output_type) == ("abc", 1, 100, 3)
    assert task.created_at == dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.timezone.utc)
    assert task.completed_at is not None and task.completed_at.tzinfo is not None
    assert task.completed_at.timestamp() == pytest.approx(1700000002.25)
    assert task.class_masks["acc"] == "aGVsbG8="
    assert task.is_done and not task.is_failed and not task.is_processing


def test_async_create_answer_has_only_an_id() -> None:
    task = Task.from_response(body({"task_id": "t9"}))
    assert task.state is None and task.is_processing and not task.is_done
    assert task.class_masks == {} and task.clothes_masks is None


@pytest.mark.parametrize(
    ("state", "done", "failed", "processing", "known"),
    [
        (1, True, False, False, True),
        ("1", True, False, False, True),
        (2, False, False, True, True),
        ("4", False, False, True, True),
        (-1, False, True, False, True),
        ("-7", False, True, False, True),
        (0, False, False, False, False),
    ],
)
def test_state_rule(state: object, done: bool, failed: bool, processing: bool, known: bool) -> None:
    task = Task.from_data({"task_id": "t", "state": state})
    assert (task.is_done, task.is_failed, task.is_processing, task.is_known_state) == (
        done,
        failed,
        processing,
        known,
    )


def test_success_needs_status_200_and_state_1() -> None:
    # a task record whose own status is not 200 is not done, whatever its state says
    assert not Task.from_data({"task_id": "t", "state": 1, "status": 500}).is_done


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, AuthenticationError),
        ("401", AuthenticationError),
        (404, TaskNotFoundError),
        (415, APIInputError),
        (429, RateLimitError),
        (500, ServerError),
        ("503", ServerError),
    ],
)
def test_http_200_with_failing_body_status_is_the_typed_error(status: object, error: type) -> None:
    with pytest.raises(error, match="bad things") as info:
        Task.from_response(body({"task_id": "t"}, status=status, message="bad things"), task_id="t")
    assert info.value.status == int(status)  # type: ignore[call-overload]
    assert info.value.task_id == "t"


@pytest.mark.parametrize(
    "answer",
    [
        [],
        {"status": 200, "message": "ok"},
        {"status": 200, "data": "nope"},
        {"status": 200, "data": {"state": 1}},
        {"status": 200, "data": {"task_id": "t", "state": "done"}},
        {"status": 200, "data": {"task_id": "t", "state": 1.5}},
        {"status": 200, "data": {"task_id": "t", "created_at": "yesterday"}},
        {"status": 200, "data": {"task_id": "t", "class_masks": ["tops"]}},
    ],
)
def test_malformed_answers_raise_api_error(answer: object) -> None:
    with pytest.raises(APIError):
        Task.from_response(answer)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("", None), ("  ", None), (3, 3), ("12", 12), (" 7 ", 7), ("8.0", 8), (True, 1)],
)
def test_parse_int(value: object, expected: int | None) -> None:
    assert parse_int(value, field="x") == expected


@pytest.mark.parametrize("value", [None, "", "0", 0])
def test_unset_timestamps_are_none(value: object) -> None:
    assert parse_time(value, field="t") is None


@given(st.integers(min_value=1, max_value=4_000_000_000))
def test_timestamp_round_trip(seconds: int) -> None:
    parsed = parse_time(str(seconds), field="t")
    assert parsed is not None and parsed.tzinfo is not None
    assert parsed.timestamp() == seconds


@given(
    st.integers(min_value=-(10**9), max_value=10**9),
    st.sampled_from([str, int, lambda v: f" {v} ", lambda v: f"{v}.0"]),
)
def test_numbers_as_numbers_or_strings_parse_alike(value: int, form) -> None:  # type: ignore[no-untyped-def]
    assert parse_int(form(value), field="n") == value


def test_check_body_status_accepts_missing_status() -> None:
    check_body_status({"data": {}})


def test_repr_and_to_dict_never_show_signed_query_strings() -> None:
    task = Task.from_response(body(FULL))
    assert "SECRET" not in repr(task)
    saved = task.to_dict()
    assert "SECRET" not in str(saved)
    assert saved["class_masks"] == {"tops": "https://cdn.test/t.png", "acc": "<inline data>"}
    assert saved["clothes_masks"] == "https://cdn.test/parts.zip"


def test_to_dict_round_trips_the_fields_that_matter() -> None:
    task = Task.from_response(body(FULL))
    back = Task.from_data(task.to_dict())
    assert (back.task_id, back.state, back.progress, back.output_type, back.status) == (
        "abc",
        1,
        100,
        3,
        200,
    )
    assert back.created_at == task.created_at and back.completed_at == task.completed_at


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://u:pw@h.test:8443/a/b.png?X-Amz-Signature=s#frag", "https://h.test:8443/a/b.png"),
        ("http://h.test/x", "http://h.test/x"),
        ("data:image/png;base64,AAAA", "<inline data>"),
        ("iVBORw0KGgo=", "<inline data>"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_task_is_frozen() -> None:
    task = Task("t")
    with pytest.raises(AttributeError):
        task.state = 1  # type: ignore[misc]
