"""The client's real transport (urllib3 retries, sockets, logs) against a scripted HTTP
server on 127.0.0.1: dropped connections, Retry-After, timeouts, and key hygiene in
urllib3's own debug logs."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import struct
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from _http_support import QuietHTTPServer

from clothseg_tools.api import Client, _retry
from clothseg_tools.errors import (
    APIConnectionError,
    APITimeoutError,
    ClothsegError,
    ServerError,
)

KEY = "sk-transport-secret-987654"
PATH = "/api/tasks/visual/clothing-segmentation"
DONE = {"status": 200, "message": "success", "data": {"task_id": "t1", "state": 1}}


class Script:
    """Per (method, path) queue of actions; the last action repeats."""

    def __init__(self) -> None:
        self.actions: dict[tuple[str, str], deque[tuple[Any, ...]]] = defaultdict(deque)
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.lock = threading.Lock()

    def add(self, method: str, path: str, *actions: tuple[Any, ...]) -> None:
        self.actions[(method, path)].extend(actions)

    def next(self, method: str, path: str, headers: dict[str, str]) -> tuple[Any, ...]:
        with self.lock:
            self.seen.append((method, path, headers))
            queue = self.actions[(method, path)]
            if not queue:
                return ("json", 404, {"status": 404, "message": "no script"}, {})
            return queue.popleft() if len(queue) > 1 else queue[0]

    def count(self, method: str) -> int:
        return sum(1 for m, _, _ in self.seen if m == method)


def make_handler(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            action = script.next(self.command, self.path, dict(self.headers))
            kind = action[0]
            if kind == "reset":
                # RST instead of an answer: the client sees a dropped connection
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.close_connection = True
                return
            if kind == "sleep":
                time.sleep(action[1])
                action = action[2]
            _, status, body, headers = action
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            with contextlib.suppress(OSError):
                self.wfile.write(data)

        do_GET = _serve
        do_POST = _serve

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()
    httpd = QuietHTTPServer(("127.0.0.1", 0), make_handler(script))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", script
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []
    monkeypatch.setattr(_retry, "sleep", recorded.append)
    return recorded


def ok(body: dict[str, Any] = DONE, status: int = 200, **headers: str) -> tuple[Any, ...]:
    return ("json", status, body, headers)


def test_connection_reset_on_get_is_retried_by_urllib3(
    server: tuple[str, Script], sleeps: list[float]
) -> None:
    base, script = server
    script.add("GET", f"{PATH}/t1", ("reset",), ok())
    with Client(api_key=KEY, base_url=base) as client:
        assert client.get_task("t1").is_done
    assert script.count("GET") == 2
    assert len(sleeps) == 1 and 0.5 <= sleeps[0] <= 0.75


def test_get_503_with_retry_after_waits_as_asked(
    server: tuple[str, Script], sleeps: list[float]
) -> None:
    base, script = server
    busy = {"status": 503, "message": "busy"}
    script.add("GET", f"{PATH}/t1", ok(busy, 503, **{"Retry-After": "7"}), ok(busy, 503), ok())
    with Client(api_key=KEY, base_url=base) as client:
        assert client.get_task("t1").is_done
    assert script.count("GET") == 3
    # Retry-After first, then the exponential backoff for the second failure in a row
    assert sleeps[0] == 7.0 and 1.0 <= sleeps[1] <= 1.25


def test_get_retry_after_over_the_cap_is_cut(
    server: tuple[str, Script], sleeps: list[float]
) -> None:
    base, script = server
    script.add("GET", f"{PATH}/t1", ok({"status": 429}, 429, **{"Retry-After": "9000"}), ok())
    with Client(api_key=KEY, base_url=base) as client:
        assert client.get_task("t1").is_done
    assert sleeps == [120.0]


def test_create_post_reset_after_sending_is_not_repeated(
    server: tuple[str, Script], sleeps: list[float]
) -> None:
    base, script = server
    script.add("POST", PATH, ("reset",), ok({"status": 200, "data": {"task_id": "dup"}}))
    with Client(api_key=KEY, base_url=base) as client, pytest.raises(APIConnectionError):
        client.create_task(image_url="https://img.test/a.jpg")
    assert script.count("POST") == 1


def test_create_post_500_is_sent_once(server: tuple[str, Script], sleeps: list[float]) -> None:
    base, script = server
    script.add("POST", PATH, ok({"status": 500, "message": "boom"}, 500))
    with Client(api_key=KEY, base_url=base) as client, pytest.raises(ServerError):
        client.create_task(image_url="https://img.test/a.jpg")
    assert script.count("POST") == 1 and sleeps == []


def test_create_post_is_retried_when_the_connection_never_opened(sleeps: list[float]) -> None:
    # a port nobody listens on: every attempt fails before the request is sent
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = Client(api_key=KEY, base_url=f"http://127.0.0.1:{port}", max_retries=2)
    with client, pytest.raises(APIConnectionError, match="no working connection") as info:
        client.create_task(image_url="https://img.test/a.jpg")
    assert len(sleeps) == 2  # urllib3 retried the connect twice
    assert KEY not in str(info.value)


def test_read_timeout_on_get_is_retried_then_reported(
    server: tuple[str, Script], sleeps: list[float]
) -> None:
    base, script = server
    script.add("GET", f"{PATH}/t1", ("sleep", 0.6, ok()))
    client = Client(api_key=KEY, base_url=base, timeout=(1.0, 0.2), max_retries=1)
    with client, pytest.raises(APITimeoutError, match="reading from"):
        client.get_task("t1")
    assert script.count("GET") == 2


def test_pool_reuses_connections_across_threads(server: tuple[str, Script]) -> None:
    base, script = server
    script.add("GET", f"{PATH}/t1", ok())
    with Client(api_key=KEY, base_url=base, pool_size=4) as client:
        threads = [
            threading.Thread(target=lambda: [client.get_task("t1") for _ in range(5)])
            for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        pool = client.session.get_adapter(base).poolmanager.connection_from_url(base)
        assert pool.num_connections <= 4  # 20 requests, at most one connection per thread
    assert script.count("GET") == 20


def test_key_absent_from_urllib3_debug_logs_and_errors(
    server: tuple[str, Script], caplog: pytest.LogCaptureFixture, sleeps: list[float]
) -> None:
    base, script = server
    caplog.set_level(logging.DEBUG)  # includes urllib3.connectionpool and urllib3.util.retry
    script.add("GET", f"{PATH}/t1", ("reset",), ok({"status": 503}, 503), ok())
    script.add("GET", f"{PATH}/t2", ok({"status": 401, "message": f"bad key {KEY}"}, 401))
    script.add("POST", PATH, ("reset",))
    errors: list[BaseException] = []
    with Client(api_key=KEY, base_url=base) as client:
        assert KEY not in repr(client)
        client.get_task("t1")
        for call in (
            lambda: client.get_task("t2"),
            lambda: client.create_task(image_url="https://i.test/a.jpg"),
        ):
            with pytest.raises(ClothsegError) as info:
                call()
            errors.append(info.value)
    assert any(r.name.startswith("urllib3") for r in caplog.records)  # the logs were captured
    assert KEY not in caplog.text
    for err in errors:
        chain: BaseException | None = err
        while chain is not None:
            assert KEY not in str(chain) and KEY not in repr(chain)
            chain = chain.__cause__ or chain.__context__
    # and the key did reach the server, in the header only
    assert all(h.get("X-API-KEY") == KEY for _, _, h in script.seen)
    assert all(KEY not in path for _, path, _ in script.seen)


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"HTTPS_PROXY": "http://proxy.test:3128"},
        {"HTTP_PROXY": "http://p.test:1", "HTTPS_PROXY": "http://q.test:2", "NO_PROXY": "api.test"},
        {"ALL_PROXY": "socks5://s.test:1080", "no_proxy": "*.cdn.test"},
        {"REQUESTS_CA_BUNDLE": "/etc/ssl/custom.pem"},
        {"CURL_CA_BUNDLE": "/etc/ssl/curl.pem", "HTTPS_PROXY": "http://proxy.test:3128"},
    ],
)
@pytest.mark.parametrize(
    "url", ["https://api.test/x", "http://api.test:8000/x", "https://a.cdn.test/m.png?s=1"]
)
@pytest.mark.parametrize("verify", [None, True, False, "/my/bundle.pem"])
def test_env_cached_session_merges_like_requests(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], url: str, verify: Any
) -> None:
    from requests import Session

    from clothseg_tools.api._http import EnvCachedSession

    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
    ):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    cached = EnvCachedSession()
    for _ in range(2):  # the second answer comes from the cache
        ours = cached.merge_environment_settings(url, {}, None, verify, None)
        theirs = Session().merge_environment_settings(url, {}, None, verify, None)
        assert ours == theirs
