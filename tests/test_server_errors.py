"""Every error the server answers, over real HTTP: the same status in the HTTP status line
and the body, and a message that says what was wrong and how to fix it."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import requests
from _server_support import (
    AUTH,
    TASKS,
    GateEngine,
    body_of,
    create,
    gate_closed,
    photo,
    query,
    record_photo,
    replay_fixture,
    server_fixture,
    solid_png,
    wait_done,
)
from PIL import Image

from clothseg_tools import limits
from clothseg_tools.server import run_in_thread

replay_dir = replay_fixture()
server = server_fixture(api_keys=("test-key", "k2"))


def post(base: str, **kwargs) -> requests.Response:
    return requests.post(base + TASKS, timeout=30, **kwargs)


@pytest.mark.parametrize(
    ("files", "data", "match"),
    [
        (None, {"sync": "1"}, "No image"),
        ({"image_file": ("a.png", b"")}, {}, "No image"),
        ("image", {"image_url": "https://example.invalid/a.png"}, "exactly one"),
        ("image", {"sync": "2"}, "sync must be one of 0, 1"),
        ("image", {"detail_mode": "3"}, "detail_mode must be one of 1, 2"),
        ("image", {"output_type": "0"}, "output_type must be one of 1, 2, 3"),
        ("image", {"quality": "high"}, "quality must be one of 1, 2"),
        ("image", {"class_type": "5"}, "class_type must be one of 1, 2, 3, 4"),
        ("image", {"class_type": "1.5"}, "class_type must be"),
        ("image", {"class_type": "nan"}, "class_type must be"),
        (None, {"image_url": "ftp://host/a.png"}, "http:// or https://"),
        (None, {"image_url": "file:///etc/passwd"}, "http:// or https://"),
        (None, {"image_url": "not a url"}, "spaces"),
        (None, {"image_url": "http:///a.png"}, "no host"),
        (None, {"image_url": "http://[::1"}, "not a valid URL"),
        (None, {"image_file": "some text"}, "file part"),
        ({"image_file": ("a.png", b"x"), "other": ("b.png", b"y")}, {}, "Too many files"),
    ],
)
def test_bad_parameters_are_400(server: str, files, data, match: str) -> None:
    if files == "image":
        files = {"image_file": ("a.png", photo(0))}
    body = body_of(post(server, headers=AUTH, files=files, data=data))
    assert body["status"] == 400 and body["data"] is None
    assert match in body["message"]


@pytest.mark.parametrize(
    ("headers", "content", "match"),
    [
        ({"Content-Type": "text/plain"}, b"hello", "Content-Type text/plain"),
        ({}, b"", "no Content-Type"),
        ({"Content-Type": "application/json"}, b"{nope", "does not parse"),
        ({"Content-Type": "application/json"}, b"[1, 2]", "must be an object"),
        ({"Content-Type": "multipart/form-data; boundary=xx"}, b"garbage", "malformed"),
        ({"Content-Type": "multipart/form-data"}, b"--xx--", "boundary"),
    ],
)
def test_malformed_bodies_are_400(server: str, headers, content: bytes, match: str) -> None:
    body = body_of(post(server, headers={**AUTH, **headers}, data=content))
    assert body["status"] == 400 and match in body["message"]


@pytest.mark.parametrize(
    ("headers", "match"),
    [
        ({}, "Missing API key"),
        ({"X-API-KEY": "wrong-key"}, "not valid"),
        ({"X-API-KEY": ""}, "Missing"),
    ],
)
def test_missing_or_wrong_key_is_401(server: str, headers: dict, match: str) -> None:
    for answer in (
        post(server, headers=headers, files={"image_file": ("a.png", photo(0))}),
        requests.get(f"{server}{TASKS}/some-id", headers=headers, timeout=10),
    ):
        body = body_of(answer)
        assert body["status"] == 401 and match in body["message"]
        assert "wrong-key" not in answer.text  # the key is never echoed


def test_every_configured_key_is_accepted(server: str) -> None:
    for key in ("test-key", "k2"):
        answer = post(server, headers={"X-API-KEY": key}, files={"image_file": ("a.png", photo(0))})
        assert body_of(answer)["status"] == 200


def test_unknown_task_and_route_are_404(server: str) -> None:
    body = body_of(query(server, "no-such-task"))
    assert body["status"] == 404 and "No task 'no-such-task'" in body["message"]
    body = body_of(requests.get(server + "/api/tasks/other", headers=AUTH, timeout=10))
    assert body["status"] == 404 and TASKS in body["message"]


def test_upload_over_20_mb_is_413(server: str) -> None:
    big = os.urandom(limits.MAX_FILE_BYTES + 1)
    body = body_of(post(server, headers=AUTH, files={"image_file": ("big.png", big)}))
    assert body["status"] == 413 and "20971520 bytes" in body["message"]
    huge = big + os.urandom(1024 * 1024)
    body = body_of(post(server, headers=AUTH, files={"image_file": ("huge.png", huge)}))
    assert body["status"] == 413


def test_form_fields_over_their_limit_are_413(server: str) -> None:
    body = body_of(post(server, headers=AUTH, data={"image_url": "http://a/" + "x" * 70_000}))
    assert body["status"] == 413 and "image_file" in body["message"]


def raw_request(base: str, head: str, first_bytes: bytes) -> tuple[socket.socket, bytes]:
    """Send a request head and the start of a body; return the socket and what came back."""
    parts = urlsplit(base)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    sock.sendall(head.encode("latin-1") + first_bytes)
    return sock, b""


def read_answer(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_declared_body_over_the_limit_is_refused_before_it_is_sent(server: str) -> None:
    head = (
        f"POST {TASKS} HTTP/1.1\r\nHost: test\r\nX-API-KEY: test-key\r\n"
        "Content-Type: multipart/form-data; boundary=xx\r\n"
        f"Content-Length: {30 * 2**20}\r\n\r\n"
    )
    sock, _ = raw_request(server, head, b"--xx\r\n")
    with sock:
        # only the head and 6 bytes of the 30 MB body were sent, and the answer comes
        answer = read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 413")
    assert b'"status":413' in answer


def test_streamed_body_is_cut_off_at_the_limit(server: str) -> None:
    """A chunked upload (no Content-Length) is answered 413 once it passes the limit,
    while the client is still sending: the server never waits for the whole body."""
    head = (
        f"POST {TASKS} HTTP/1.1\r\nHost: test\r\nX-API-KEY: test-key\r\n"
        "Content-Type: multipart/form-data; boundary=xx\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    part = (
        b'--xx\r\nContent-Disposition: form-data; name="image_file"; filename="a.png"\r\n'
        b"Content-Type: image/png\r\n\r\n"
    )
    sock, _ = raw_request(server, head, b"%x\r\n%s\r\n" % (len(part), part))
    block = os.urandom(1024 * 1024)
    chunk = b"%x\r\n%s\r\n" % (len(block), block)
    sent = 0
    pending = memoryview(b"")
    with sock:
        sock.settimeout(0.0)
        answer = b""
        # keep sending (never the final chunk) until the server answers; a send on a
        # non-blocking socket may take part of a chunk, so the rest is kept (sendall
        # would lose the count and corrupt the stream)
        deadline = time.monotonic() + 30
        while not answer and time.monotonic() < deadline:
            if not pending and sent < 40:
                pending = memoryview(chunk)
                sent += 1
            if pending:
                with contextlib.suppress(BlockingIOError):  # the buffer is full: later
                    pending = pending[sock.send(pending) :]
            try:
                answer = sock.recv(65536)
            except BlockingIOError:
                time.sleep(0.005)
        sock.settimeout(10)
        answer += read_answer(sock) if b"}" not in answer else b""
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 40  # answered before the client was done


@pytest.mark.parametrize(
    ("content", "status", "match"),
    [
        (b"GIF89a" + bytes(40), 415, "GIF"),
        (b"\x00\x01 not an image at all", 415, "not in a recognised image format"),
        (b"\x89PNG\r\n\x1a\n" + b"x" * 40, 422, "not a readable PNG"),
    ],
)
def test_unsupported_or_undecodable_images(server: str, content: bytes, status: int, match: str):
    body = body_of(post(server, headers=AUTH, files={"image_file": ("img.bin", content)}))
    assert body["status"] == status and match in body["message"]


def test_image_over_4096_pixels_is_422(server: str) -> None:
    buf = io.BytesIO()
    Image.new("L", (limits.MAX_SIDE + 1, 2)).save(buf, format="PNG")
    body = body_of(post(server, headers=AUTH, files={"image_file": ("wide.png", buf.getvalue())}))
    assert body["status"] == 422 and "4096" in body["message"]


def test_truncated_pixel_data_fails_the_task_with_422(server: str) -> None:
    data = photo(5, size=(64, 64))
    cut = data[: len(data) - 200]  # header intact, pixel data truncated
    body = body_of(
        post(server, headers=AUTH, files={"image_file": ("cut.png", cut)}, data={"sync": 1})
    )
    assert body["status"] == 422 and body["data"]["state"] == -1


def test_image_without_a_record_is_422_in_both_modes(server: str) -> None:
    unknown = photo(1234)
    body = body_of(create(server, unknown, sync=1))
    assert body["status"] == 422 and "no record" in body["message"]
    assert body["data"]["state"] == -1 and body["data"]["class_masks"] == {}
    task_id = body_of(create(server, unknown))["data"]["task_id"]
    final = wait_done(server, task_id)
    assert final["status"] == 422 and final["data"]["state"] == -1
    body_of(query(server, task_id))


def test_full_queue_is_429_with_retry_after(replay_dir: Path) -> None:
    with run_in_thread(engine="test-gate", workers=1, max_queue=2) as url, gate_closed():
        image = record_photo(replay_dir, 0)
        ids = [body_of(create(url, image))["data"]["task_id"] for _ in range(2)]
        answer = create(url, image)
        body = body_of(answer)
        assert body["status"] == 429 and "retry in" in body["message"]
        assert int(answer.headers["Retry-After"]) >= 1
        GateEngine.gate.set()
        for task_id in ids:
            assert wait_done(url, task_id)["data"]["state"] == 1
        assert body_of(create(url, image))["status"] == 200  # room again


@pytest.mark.parametrize(
    ("grey", "match"),
    [(0, "The engine failed on this image: no person found"), (200, "ZeroDivisionError")],
)
def test_engine_failures_are_500_with_state_minus_1(grey: int, match: str, caplog) -> None:
    with run_in_thread(engine="test-broken") as url:
        body = body_of(create(url, solid_png(grey), sync=1))
        assert body["status"] == 500 and match in body["message"]
        assert body["data"]["state"] == -1 and body["data"]["progress"] == 100
        again = body_of(query(url, body["data"]["task_id"]))
        assert again["status"] == 500 and again["data"] == body["data"]


def test_messages_never_contain_the_key(server: str) -> None:
    answers = [
        post(server, headers=AUTH, data={"sync": "9"}),
        post(server, headers=AUTH, files={"image_file": ("a.gif", b"GIF89a" + bytes(9))}),
        query(server, "missing"),
    ]
    assert all("test-key" not in a.text for a in answers)


def test_results_are_grayscale_pngs_of_the_image_size(server: str, replay_dir: Path) -> None:
    data = body_of(create(server, record_photo(replay_dir, 0), sync=1))["data"]
    for link in data["class_masks"].values():
        with Image.open(io.BytesIO(requests.get(link, timeout=10).content)) as img:
            assert (img.mode, img.size) == ("L", (40, 30))
            assert np.asarray(img).dtype == np.uint8
