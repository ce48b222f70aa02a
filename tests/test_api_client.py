"""Client edge cases against a mocked service (``responses``): retries, the status/state
rule, polling, downloads, input checks, batches, and that the key never leaks."""

from __future__ import annotations

import base64
import io
import json
import logging
import threading
import time
import zipfile
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import numpy as np
import pytest
import requests
import responses
from PIL import Image

from clothseg_tools._io import encode_png
from clothseg_tools.api import Client, Outcome, SegmentationResult, Task, _retry
from clothseg_tools.errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    ClothsegError,
    ConfigurationError,
    FileTooLargeError,
    ImageDecodeError,
    ImageTooLargeError,
    InputError,
    InvalidRequestError,
    RateLimitError,
    ResultExpiredError,
    ServerError,
    ShapeMismatchError,
    TaskFailedError,
    TaskNotFoundError,
    UnsupportedFormatError,
    WaitTimeoutError,
)

KEY = "sk-live-0123456789abcdef"
BASE = "http://api.test"
CREATE = f"{BASE}/api/tasks/visual/clothing-segmentation"
CDN = "http://cdn.test"


def task_url(tid: str) -> str:
    return f"{CREATE}/{tid}"


def answer(data: dict[str, Any], status: Any = 200, message: str = "success") -> dict[str, Any]:
    return {"status": status, "message": message, "data": data}


def png(mask: np.ndarray) -> bytes:
    return encode_png(mask)


def square(h: int = 6, w: int = 8, value: int = 255) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[1:4, 2:6] = value
    return m


DONE = {"task_id": "t1", "state": 1, "progress": 100, "output_type": 1}


def done_with(masks: dict[str, str], **extra: Any) -> dict[str, Any]:
    return answer({**DONE, "class_masks": masks, **extra})


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record every retry/poll delay instead of sleeping it."""
    recorded: list[float] = []
    monkeypatch.setattr(_retry, "sleep", recorded.append)
    return recorded


@pytest.fixture
def client() -> Iterator[Client]:
    with Client(api_key=KEY, base_url=BASE, max_retries=3) as c:
        yield c


def assert_no_key(*texts: object) -> None:
    for text in texts:
        assert KEY not in str(text)


def error_texts(exc: BaseException) -> list[str]:
    """str and repr of an error and every exception it chains."""
    out = []
    seen: BaseException | None = exc
    while seen is not None:
        out += [str(seen), repr(seen)]
        seen = seen.__cause__ or seen.__context__
    return out


# -- configuration, headers and form fields ------------------------------------------------


def test_key_travels_only_in_the_header(rsps: responses.RequestsMock, client: Client) -> None:
    rsps.post(CREATE, json=answer({"task_id": "t1"}))
    task = client.create_task(image_url="https://img.test/a photo.jpg")
    assert task.task_id == "t1" and task.state is None
    request = rsps.calls[0].request
    assert request.headers["X-API-KEY"] == KEY
    assert KEY not in request.url and KEY not in str(request.body)
    fields = parse_qs(str(request.body))
    assert fields == {
        "class_type": ["1"],
        "output_type": ["1"],
        "detail_mode": ["1"],
        "quality": ["1"],
        "sync": ["0"],
        # API.md: URLs passed as parameters are URL-encoded
        "image_url": ["https://img.test/a%20photo.jpg"],
    }


def test_separate_connect_and_read_timeouts(rsps: responses.RequestsMock) -> None:
    rsps.get(task_url("t1"), json=answer(DONE))
    with Client(api_key=KEY, base_url=BASE, timeout=30.0, connect_timeout=4.0) as c:
        c.get_task("t1")
    assert rsps.calls[0].request.req_kwargs["timeout"] == (4.0, 30.0)


def test_settings_come_from_the_environment(
    rsps: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOTHSEG_API_KEY", KEY)
    monkeypatch.setenv("CLOTHSEG_BASE_URL", BASE + "/")
    rsps.get(task_url("t1"), json=answer(DONE))
    with Client() as c:
        assert c.base_url == BASE
        assert c.get_task("t1").is_done
    assert rsps.calls[0].request.headers["X-API-KEY"] == KEY


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"base_url": BASE}, "No API key.*CLOTHSEG_API_KEY"),
        ({"api_key": KEY}, "No service address.*CLOTHSEG_BASE_URL"),
        ({"api_key": KEY, "base_url": "ftp://api.test"}, "must start with http"),
    ],
)
def test_missing_settings_fail_at_the_first_call(
    monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, str], match: str
) -> None:
    monkeypatch.delenv("CLOTHSEG_API_KEY", raising=False)
    monkeypatch.delenv("CLOTHSEG_BASE_URL", raising=False)
    c = Client(**kwargs)  # constructing is fine
    with pytest.raises(ConfigurationError, match=match):
        c.get_task("t1")
    c.close()


def test_closed_client_refuses_calls(client: Client) -> None:
    client.close()
    with pytest.raises(ConfigurationError, match="closed"):
        client.get_task("t1")


def test_redirects_are_not_followed(rsps: responses.RequestsMock, client: Client) -> None:
    rsps.get(task_url("t1"), status=302, headers={"Location": "https://elsewhere.test/x?k=1"})
    with pytest.raises(APIStatusError, match=r"redirected .* https://elsewhere\.test/x\b"):
        client.get_task("t1")
    assert len(rsps.calls) == 1


# -- the status/state rule ---------------------------------------------------------------


@pytest.mark.parametrize("status", [401, "401"])
def test_http_200_with_body_status_401(
    rsps: responses.RequestsMock, client: Client, status: Any
) -> None:
    rsps.post(CREATE, json=answer({}, status=status, message="invalid api key"))
    rsps.get(task_url("t1"), json=answer({}, status=status, message="invalid api key"))
    with pytest.raises(AuthenticationError, match="invalid api key") as created:
        client.create_task(image_url="https://img.test/a.jpg")
    with pytest.raises(AuthenticationError) as queried:
        client.get_task("t1")
    assert created.value.status == queried.value.status == 401
    assert queried.value.task_id == "t1"


@pytest.mark.parametrize(
    ("http", "error"),
    [
        (400, "BadRequestError"),
        (401, "AuthenticationError"),
        (404, "TaskNotFoundError"),
        (413, "APIInputError"),
        (415, "APIInputError"),
        (422, "APIInputError"),
        (500, "ServerError"),
    ],
)
def test_http_status_maps_to_typed_error(
    rsps: responses.RequestsMock, client: Client, http: int, error: str
) -> None:
    rsps.get(
        task_url("t1"),
        status=http,
        json={"status": http, "message": "nope"},
        headers={"X-Request-Id": "req-42"},
    )
    with pytest.raises(APIStatusError) as info:
        client.get_task("t1")
    assert type(info.value).__name__ == error
    assert (info.value.status, info.value.request_id, info.value.task_id) == (http, "req-42", "t1")


def test_input_refusals_are_input_errors(rsps: responses.RequestsMock, client: Client) -> None:
    rsps.post(CREATE, status=415, json={"status": 415, "message": "unsupported format"})
    with pytest.raises(InputError):
        client.create_task(image_url="https://img.test/a.gif")


def test_non_json_error_page(rsps: responses.RequestsMock, client: Client) -> None:
    rsps.get(task_url("t1"), status=500, body="<html><h1>Internal Server Error</h1></html>")
    with pytest.raises(ServerError, match="HTTP 500: <html><h1>Internal Server Error"):
        client.get_task("t1")


def test_non_json_success_page(rsps: responses.RequestsMock, client: Client) -> None:
    rsps.get(task_url("t1"), status=200, body="<html>login</html>", content_type="text/html")
    with pytest.raises(APIError, match="text/html, not JSON"):
        client.get_task("t1")


def test_string_numbers_everywhere(rsps: responses.RequestsMock, client: Client) -> None:
    data = {
        "task_id": "t1",
        "state": "1",
        "progress": "100",
        "output_type": "1",
        "created_at": "1700000000",
        "processed_at": "1700000001",
        "completed_at": "1700000003",
    }
    rsps.get(task_url("t1"), json=answer(data, status="200"))
    task = client.get_task("t1")
    assert (task.state, task.progress, task.output_type, task.is_done) == (1, 100, 1, True)
    assert task.completed_at is not None
    assert task.processed_at is not None
    assert (task.completed_at - task.processed_at).total_seconds() == 2.0


# -- retries ---------------------------------------------------------------------------------


def test_post_429_with_retry_after_then_success(
    rsps: responses.RequestsMock, client: Client, sleeps: list[float]
) -> None:
    rsps.post(
        CREATE, status=429, json={"status": 429, "message": "slow"}, headers={"Retry-After": "3"}
    )
    rsps.post(CREATE, json=answer({"task_id": "t1"}))
    assert client.create_task(image_url="https://img.test/a.jpg").task_id == "t1"
    assert len(rsps.calls) == 2
    assert sleeps == [3.0]


def test_retry_after_is_capped_at_120_s(
    rsps: responses.RequestsMock, client: Client, sleeps: list[float]
) -> None:
    rsps.post(CREATE, status=429, headers={"Retry-After": "3600"}, json={})
    rsps.post(CREATE, json=answer({"task_id": "t1"}))
    client.create_task(image_url="https://img.test/a.jpg")
    assert sleeps == [120.0]


def test_get_429_with_retry_after_then_success(
    rsps: responses.RequestsMock, client: Client
) -> None:
    rsps.get(task_url("t1"), status=429, headers={"Retry-After": "0"}, json={})
    rsps.get(task_url("t1"), json=answer(DONE))
    assert client.get_task("t1").is_done
    assert len(rsps.calls) == 2


def test_body_status_429_in_http_200_is_retried(
    rsps: responses.RequestsMock, client: Client, sleeps: list[float]
) -> None:
    rsps.get(task_url("t1"), json=answer({}, status=429), headers={"Retry-After": "2"})
    rsps.get(task_url("t1"), json=answer(DONE))
    assert client.get_task("t1").is_done
    assert sleeps == [2.0]


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_503_twice_then_success(
    rsps: responses.RequestsMock, client: Client, sleeps: list[float], method: str
) -> None:
    url = CREATE if method == "POST" else task_url("t1")
    for _ in range(2):
        rsps.add(method, url, status=503, json={"status": 503, "message": "busy"})
    rsps.add(method, url, json=answer(DONE))
    if method == "POST":
        task = client.create_task(image_url="https://img.test/a.jpg", sync=True)
        # backoff 0.5 s then 1 s, each plus jitter
        assert len(sleeps) == 2
        assert 0.5 <= sleeps[0] <= 0.75 and 1.0 <= sleeps[1] <= 1.25
    else:
        task = client.get_task("t1")
    assert task.is_done
    assert len(rsps.calls) == 3


def test_get_gives_up_after_max_retries(rsps: responses.RequestsMock, client: Client) -> None:
    rsps.get(task_url("t1"), status=502, json={"status": 502, "message": "bad gateway"})
    with pytest.raises(ServerError) as info:
        client.get_task("t1")
    assert info.value.status == 502
    assert len(rsps.calls) == 1 + client.max_retries


@pytest.mark.parametrize("status", [500, 502, 504])
def test_create_post_answered_5xx_is_sent_once(
    rsps: responses.RequestsMock, client: Client, sleeps: list[float], status: int
) -> None:
    # the server may have created the task: sending again could make a duplicate
    rsps.post(CREATE, status=status, json={"status": status, "message": "oops"})
    with pytest.raises(ServerError):
        client.create_task(image_url="https://img.test/a.jpg")
    assert len(rsps.calls) == 1
    assert sleeps == []


def test_create_post_with_dropped_connection_is_sent_once(
    rsps: responses.RequestsMock, client: Client
) -> None:
    rsps.post(CREATE, body=requests.ConnectionError("Connection aborted: reset by peer"))
    with pytest.raises(APIConnectionError, match="creating a task failed"):
        client.create_task(image_url="https://img.test/a.jpg")
    assert len(rsps.calls) == 1


def test_read_timeout_is_a_timeout_error(rsps: responses.RequestsMock, client: Client) -> None:
    rsps.get(task_url("t1"), body=requests.ReadTimeout("read timed out"))
    with pytest.raises(APITimeoutError, match="querying task t1 timed out"):
        client.get_task("t1")


def test_user_session_gets_explicit_get_retries(
    rsps: responses.RequestsMock, sleeps: list[float]
) -> None:
    rsps.get(task_url("t1"), body=requests.ConnectionError("reset"))
    rsps.get(task_url("t1"), status=503, json={})
    rsps.get(task_url("t1"), json=answer(DONE))
    with requests.Session() as session:
        c = Client(api_key=KEY, base_url=BASE, session=session)
        assert c.get_task("t1").is_done
        c.close()
        assert session.adapters  # the caller's session is left open
    assert len(rsps.calls) == 3 and len(sleeps) == 2


# -- waiting -----------------------------------------------------------------------------------


def processing(progress: int, state: Any = 2) -> dict[str, Any]:
    return answer({"task_id": "t1", "state": state, "progress": progress})


def test_poll_intervals_grow_by_half_up_to_5_s(
    rsps: responses.RequestsMock, client: Client, sleeps: list[float]
) -> None:
    for i in range(9):
        rsps.get(task_url("t1"), json=processing(i * 10))
    rsps.get(task_url("t1"), json=answer(DONE))
    seen: list[int | None] = []
    task = client.wait("t1", progress=lambda t: seen.append(t.progress))
    assert task.is_done
    assert sleeps == pytest.approx([0.5, 0.75, 1.125, 1.6875, 2.53125, 3.796875, 5.0, 5.0, 5.0])
    assert seen == [0, 10, 20, 30, 40, 50, 60, 70, 80, 100]


def test_connection_reset_while_polling_is_retried(
    rsps: responses.RequestsMock, client: Client, sleeps: list[float]
) -> None:
    rsps.get(task_url("t1"), json=processing(10))
    rsps.get(task_url("t1"), body=requests.ConnectionError("Connection reset by peer"))
    rsps.get(task_url("t1"), status=502, json={"status": 502, "message": "hiccup"})
    rsps.get(task_url("t1"), json=answer({}, status=503, message="busy"))
    rsps.get(task_url("t1"), json=answer(DONE))
    assert client.wait("t1").is_done
    assert len(rsps.calls) == 5


def test_a_broken_server_ends_the_wait(
    rsps: responses.RequestsMock, client: Client, sleeps: list[float]
) -> None:
    rsps.get(task_url("t1"), status=500, json={"status": 500, "message": "database down"})
    with pytest.raises(ServerError, match="database down"):
        client.wait("t1")
    assert len(rsps.calls) == 1


@pytest.mark.parametrize("http", [200, 422, 500])
def test_failed_task_answered_with_an_error_status(
    rsps: responses.RequestsMock, client: Client, http: int
) -> None:
    # the service may answer a failed task with its failure status and the task in data
    failed = {
        "status": 422,
        "message": "image cannot be decoded",
        "data": {"task_id": "t1", "state": -1, "progress": 0},
    }
    rsps.get(task_url("t1"), status=http, json=failed)
    with pytest.raises(TaskFailedError, match="image cannot be decoded") as info:
        client.wait("t1")
    assert (info.value.task_id, info.value.state) == ("t1", -1)
    assert info.value.status == (422 if http == 200 else http)
    assert len(rsps.calls) == 1


def test_state_minus_one_fails_the_wait(rsps: responses.RequestsMock, client: Client) -> None:
    rsps.get(
        task_url("t1"),
        json=answer({"task_id": "t1", "state": -1, "progress": 0}, message="no person found"),
    )
    with pytest.raises(TaskFailedError, match="no person found") as info:
        client.wait("t1")
    assert (info.value.task_id, info.value.state) == ("t1", -1)


@pytest.mark.parametrize("state", [0, "0"])
def test_undefined_state_ends_the_wait(
    rsps: responses.RequestsMock, client: Client, state: Any, sleeps: list[float]
) -> None:
    rsps.get(task_url("t1"), json=answer({"task_id": "t1", "state": state}))
    with pytest.raises(APIError, match="does not define") as info:
        client.wait("t1")
    assert not isinstance(info.value, (TaskFailedError, WaitTimeoutError))
    assert len(rsps.calls) == 1


def test_unknown_task_is_not_polled_forever(rsps: responses.RequestsMock, client: Client) -> None:
    rsps.get(task_url("gone"), status=404, json={"status": 404, "message": "unknown task"})
    with pytest.raises(TaskNotFoundError):
        client.wait("gone")
    assert len(rsps.calls) == 1


def test_wait_times_out_with_the_task_id(rsps: responses.RequestsMock, client: Client) -> None:
    rsps.get(task_url("t1"), json=processing(40))
    start = time.monotonic()
    with pytest.raises(WaitTimeoutError, match=r"client.wait\('t1'\)") as info:
        client.wait("t1", timeout=0.3, poll_interval=0.05)
    assert time.monotonic() - start < 2.0  # a hard deadline, not "after the next long sleep"
    assert (info.value.task_id, info.value.progress) == ("t1", 40)
    assert len(rsps.calls) >= 2


# -- segment: masks, parts, expiry --------------------------------------------------------------


def test_segment_decodes_base64_data_uri_and_url_masks(
    rsps: responses.RequestsMock, client: Client
) -> None:
    tops, acc, dress = square(), square(value=128), np.zeros((6, 8), np.uint8)
    masks = {
        "tops": base64.b64encode(png(tops)).decode(),
        "Accessories": "data:image/png;base64," + base64.b64encode(png(acc)).decode(),
        "dress": f"{CDN}/dress.png?X-Signature=SIGNED",
    }
    rsps.post(CREATE, json=done_with(masks))
    rsps.get(f"{CDN}/dress.png", body=png(dress), content_type="image/png")
    result = client.segment("https://img.test/person.jpg?token=abc")
    assert isinstance(result, SegmentationResult)
    assert result.masks.classes == ("tops", "acc", "dress")
    np.testing.assert_array_equal(result.masks["tops"], tops)
    np.testing.assert_array_equal(result.masks["acc"], acc)
    np.testing.assert_array_equal(result.masks["dress"], dress)
    assert len(result.parts) == 0 and result.parts.shape == (6, 8)
    assert result.source == "https://img.test/person.jpg"
    assert set(result.timings) >= {"create", "wait", "download", "total"}
    assert parse_qs(str(rsps.calls[0].request.body))["sync"] == ["1"]
    # mask links are fetched without the key: they often live on another host
    assert "X-API-KEY" not in rsps.calls[1].request.headers


def test_segment_falls_back_to_wait_when_sync_is_still_processing(
    rsps: responses.RequestsMock, client: Client, sleeps: list[float]
) -> None:
    rsps.post(CREATE, json=processing(50, state=3))
    rsps.get(task_url("t1"), json=processing(80))
    rsps.get(task_url("t1"), json=done_with({"tops": base64.b64encode(png(square())).decode()}))
    result = client.segment("https://img.test/a.jpg")
    assert result.task is not None and result.task.is_done
    assert result.masks.classes == ("tops",)
    assert [c.request.method for c in rsps.calls] == ["POST", "GET", "GET"]


def test_segment_state_minus_one(rsps: responses.RequestsMock, client: Client) -> None:
    rsps.post(CREATE, json=answer({"task_id": "t1", "state": -2}, message="decode failed"))
    with pytest.raises(TaskFailedError, match="decode failed"):
        client.segment("https://img.test/a.jpg")


@pytest.mark.parametrize("status", [403, 410])
def test_expired_mask_links(rsps: responses.RequestsMock, client: Client, status: int) -> None:
    rsps.post(CREATE, json=done_with({"tops": f"{CDN}/t.png?Expires=1&Signature=SIGNED"}))
    rsps.get(f"{CDN}/t.png", status=status, body="AccessDenied")
    with pytest.raises(ResultExpiredError) as info:
        client.segment("https://img.test/a.jpg")
    assert all("SIGNED" not in text for text in error_texts(info.value))


def zip_of(entries: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, mask in entries.items():
            zf.writestr(name, png(mask))
    return buf.getvalue()


def test_output_type_3_downloads_masks_and_parts(
    rsps: responses.RequestsMock, client: Client
) -> None:
    top0, top1, dress0 = square(), square(value=100), square(value=50)
    rsps.post(
        CREATE,
        json=done_with(
            {"tops": f"{CDN}/tops.png?sig=1"},
            output_type=3,
            clothes_masks=f"{CDN}/parts.zip?sig=1",
        ),
    )
    rsps.get(f"{CDN}/tops.png", body=png(top0))
    rsps.get(
        f"{CDN}/parts.zip",
        body=zip_of({"tops/0.png": top0, "tops/1.png": top1, "dress-0.png": dress0}),
    )
    result = client.segment("https://img.test/a.jpg", output_type=3)
    assert sorted(result.parts.classes) == ["dress_0", "tops_0", "tops_1"]
    np.testing.assert_array_equal(result.parts["tops_1"], top1)
    np.testing.assert_array_equal(result.parts["dress_0"], dress0)
    assert result.options["output_type"] == 3


def test_masks_not_at_the_source_size_are_refused(
    rsps: responses.RequestsMock, client: Client
) -> None:
    rsps.post(CREATE, json=done_with({"tops": base64.b64encode(png(square(3, 4))).decode()}))
    with pytest.raises(ShapeMismatchError, match=r"\(3, 4\).*\(6, 8\)"):
        client.segment(np.zeros((6, 8, 3), np.uint8))


def test_a_local_path_sent_as_a_mask_is_refused(
    rsps: responses.RequestsMock, client: Client, tmp_path: Any
) -> None:
    secret = tmp_path / "secret.png"
    secret.write_bytes(png(square()))
    rsps.post(CREATE, json=done_with({"tops": str(secret)}))
    with pytest.raises(ClothsegError, match="local files are never read"):
        client.segment("https://img.test/a.jpg")


# -- uploads and input checks -------------------------------------------------------------------


def image_bytes(fmt: str, size: tuple[int, int] = (8, 6)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(buf, format=fmt)
    return buf.getvalue()


def test_upload_sends_the_bytes_and_returns_masks_at_source_size(
    rsps: responses.RequestsMock, client: Client, tmp_path: Any
) -> None:
    path = tmp_path / "photo.jpeg"
    data = image_bytes("JPEG")
    path.write_bytes(data)
    rsps.post(CREATE, json=done_with({"tops": base64.b64encode(png(square())).decode()}))
    result = client.segment(path)
    body = rsps.calls[0].request.body
    assert isinstance(body, bytes) and data in body  # a path's bytes are sent as they are
    assert b'filename="photo.jpeg"' in body and b"Content-Type: image/jpeg" in body
    assert result.masks.shape == (6, 8) and result.source == str(path)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, InvalidRequestError, "exactly one image source.*neither"),
        (
            {"image": b"x", "image_url": "https://a.test/x.jpg"},
            InvalidRequestError,
            "exactly one.*both",
        ),
        ({"image_url": "ftp://a.test/x.jpg"}, InvalidRequestError, "http:// or https://"),
        ({"image_url": "https://a.test/x.jpg", "class_type": 5}, InvalidRequestError, "class_type"),
        ({"image_url": "https://a.test/x.jpg", "output_type": "4"}, InvalidRequestError, "output"),
        ({"image_url": "https://a.test/x.jpg", "quality": 3}, InvalidRequestError, "quality"),
        ({"image_url": "https://a.test/x.jpg", "detail_mode": 0}, InvalidRequestError, "detail"),
        ({"image": b"GIF89a" + bytes(40)}, UnsupportedFormatError, "GIF"),
        ({"image": b"not an image at all"}, UnsupportedFormatError, "not in a recognised"),
        ({"image": b"\x89PNG\r\n\x1a\n" + bytes(40)}, ImageDecodeError, "not a readable PNG"),
    ],
)
def test_bad_requests_are_refused_before_sending(
    rsps: responses.RequestsMock,
    client: Client,
    kwargs: dict[str, Any],
    error: type[Exception],
    match: str,
) -> None:
    with pytest.raises(error, match=match):
        client.create_task(**kwargs)
    assert len(rsps.calls) == 0


def test_image_over_4096_is_refused_before_sending(
    rsps: responses.RequestsMock, client: Client
) -> None:
    with pytest.raises(ImageTooLargeError, match="4096") as info:
        client.create_task(image=image_bytes("PNG", (4097, 8)))
    assert "4097" in str(info.value)
    assert len(rsps.calls) == 0


def test_file_over_20_mb_is_refused_before_sending(
    rsps: responses.RequestsMock, client: Client
) -> None:
    data = image_bytes("PNG") + bytes(20 * 1024 * 1024)
    with pytest.raises(FileTooLargeError, match="20 MB"):
        client.create_task(image=data)
    assert len(rsps.calls) == 0


def test_format_is_sniffed_from_bytes_not_the_name(
    rsps: responses.RequestsMock, client: Client, tmp_path: Any
) -> None:
    disguised = tmp_path / "photo.png"
    disguised.write_bytes(b"GIF89a" + bytes(40))
    with pytest.raises(UnsupportedFormatError, match="GIF"):
        client.create_task(image=disguised)
    webp_named_jpg = tmp_path / "photo.jpg"
    webp_named_jpg.write_bytes(image_bytes("WEBP"))
    rsps.post(CREATE, json=answer({"task_id": "t1"}))
    client.create_task(image=webp_named_jpg)
    assert b"Content-Type: image/webp" in rsps.calls[0].request.body


# -- batches --------------------------------------------------------------------------------------


def test_segment_many_yields_every_outcome_and_captures_errors(
    rsps: responses.RequestsMock, client: Client
) -> None:
    good = base64.b64encode(png(square())).decode()

    def create(request: Any) -> tuple[int, dict[str, str], str]:
        url = parse_qs(request.body)["image_url"][0]
        if "bad" in url:
            return 422, {}, json.dumps({"status": 422, "message": "cannot decode image"})
        return 200, {}, json.dumps(done_with({"tops": good}))

    rsps.add_callback(responses.POST, CREATE, callback=create)
    urls = [f"https://img.test/{'bad' if i % 3 == 0 else 'ok'}{i}.jpg?sig=x" for i in range(10)]
    outcomes = list(client.segment_many(urls, workers=4))
    assert all(isinstance(o, Outcome) for o in outcomes)
    assert sorted(o.index for o in outcomes) == list(range(10))
    for o in outcomes:
        assert o.source == urls[o.index].split("?")[0]
        assert o.seconds >= 0
        if o.index % 3 == 0:
            assert not o.ok and isinstance(o.error, InputError) and o.result is None
        else:
            assert o.ok and o.result is not None and o.result.masks.classes == ("tops",)


def test_segment_many_bounds_concurrency(rsps: responses.RequestsMock, client: Client) -> None:
    active = 0
    peak = 0
    lock = threading.Lock()
    good = base64.b64encode(png(square())).decode()

    def create(request: Any) -> tuple[int, dict[str, str], str]:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.02)
        with lock:
            active -= 1
        return 200, {}, json.dumps(done_with({"tops": good}))

    rsps.add_callback(responses.POST, CREATE, callback=create)
    urls = (f"https://img.test/{i}.jpg" for i in range(12))
    outcomes = list(client.segment_many(urls, workers=3))
    assert len(outcomes) == 12 and all(o.ok for o in outcomes)
    assert 1 < peak <= 3


def test_segment_many_shares_one_rate_limit(rsps: responses.RequestsMock, client: Client) -> None:
    stamps: list[float] = []
    good = base64.b64encode(png(square())).decode()

    def create(request: Any) -> tuple[int, dict[str, str], str]:
        stamps.append(time.monotonic())
        return 200, {}, json.dumps(done_with({"tops": good}))

    rsps.add_callback(responses.POST, CREATE, callback=create)
    urls = [f"https://img.test/{i}.jpg" for i in range(8)]
    outcomes = list(client.segment_many(urls, workers=8, rate_limit=40.0))
    assert all(o.ok for o in outcomes)
    stamps.sort()
    # 8 requests at 40/s from 8 workers: the first goes at once, the rest 25 ms apart
    assert stamps[-1] - stamps[0] >= 7 / 40 * 0.8


def test_segment_many_checks_options_up_front(client: Client) -> None:
    with pytest.raises(InvalidRequestError, match="class_type"):
        client.segment_many(["https://img.test/a.jpg"], class_type=9)


# -- the key never leaks ------------------------------------------------------------------------


def test_key_never_in_repr_errors_or_logs(
    rsps: responses.RequestsMock, caplog: pytest.LogCaptureFixture, sleeps: list[float]
) -> None:
    caplog.set_level(logging.DEBUG)
    client = Client(api_key=KEY, base_url=BASE, max_retries=1)
    assert_no_key(repr(client), str(vars(client)))
    rsps.get(task_url("a"), json={"status": 401, "message": f"bad key {KEY}"})
    rsps.get(task_url("b"), status=403, json={"status": 403, "message": f"key {KEY} refused"})
    rsps.get(task_url("c"), body=requests.ConnectionError(f"reset while sending {KEY}"))
    rsps.get(task_url("d"), status=500, body=f"traceback ... X-API-KEY: {KEY}")
    rsps.post(CREATE, status=429, json={"status": 429, "message": KEY})
    calls = [
        lambda: client.get_task("a"),
        lambda: client.get_task("b"),
        lambda: client.get_task("c"),
        lambda: client.get_task("d"),
        lambda: client.create_task(image_url="https://img.test/a.jpg"),
    ]
    errors = []
    for call in calls:
        with pytest.raises(ClothsegError) as info:
            call()
        errors.append(info.value)
    assert [type(e) for e in errors] == [
        AuthenticationError,
        AuthenticationError,
        APIConnectionError,
        ServerError,
        RateLimitError,
    ]
    for err in errors:
        assert_no_key(str(err), repr(err), getattr(err, "message", ""))
    assert_no_key(caplog.text, *(r.getMessage() for r in caplog.records))
    client.close()


def test_a_short_key_is_hidden_without_garbling_messages(rsps: responses.RequestsMock) -> None:
    rsps.get(task_url("a"), json={"status": 401, "message": "key=k is not a task key"})
    with (
        Client(api_key="k", base_url=BASE, max_retries=1) as client,
        pytest.raises(AuthenticationError) as info,
    ):
        client.get_task("a")
    text = str(info.value)
    assert "key=*** is not a task key" in text
    assert "querying task" in text or "task a" in text


def test_task_and_result_repr_hide_signed_links() -> None:
    task = Task.from_data({"task_id": "t", "state": 1, "class_masks": {"tops": f"{CDN}/a?sig=S"}})
    assert "sig=S" not in repr(task)


def test_public_names() -> None:
    import clothseg_tools
    import clothseg_tools.api as api
    from clothseg_tools import errors

    for name in api.__all__:
        assert getattr(api, name) is not None, name
    assert clothseg_tools.Client is api.Client
    assert clothseg_tools.Task is api.Task
    assert clothseg_tools.SegmentationResult is api.SegmentationResult
    # every error a client call can raise is importable from the api package
    for name in (
        "APIConnectionError",
        "APITimeoutError",
        "AuthenticationError",
        "RateLimitError",
        "TaskFailedError",
        "WaitTimeoutError",
        "ResultExpiredError",
    ):
        assert getattr(api, name) is getattr(errors, name)


def test_batch_wider_than_the_pool_warns(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="clothseg_tools"):
        client.segment_many([], workers=100)
    assert "pool_size=116" in caplog.text


def test_fetch_refuses_an_unfinished_task(rsps: responses.RequestsMock, client: Client) -> None:
    rsps.get(task_url("t1"), json=processing(30))
    with pytest.raises(APIError, match=r"still processing.*client\.wait\('t1'\)"):
        client.fetch("t1")
    with pytest.raises(TaskFailedError):
        client.fetch(Task("t1", state=-1))
