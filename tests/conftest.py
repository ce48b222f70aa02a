"""Shared fixtures.

``http_server`` is a small threaded HTTP/1.1 server on 127.0.0.1 (tests never touch
the internet). Register what it should answer, per path, then request it::

    def test_download(http_server):
        url = http_server.add("/m/tops.png", png_bytes, content_type="image/png")
        url = http_server.add("/gone", status=410)
        url = http_server.add("/slow", b"x", delay=2.0)           # headers after 2 s
        url = http_server.add("/big", b"x" * 10**6, chunked=True) # no Content-Length
        url = http_server.add_file("/f.zip", tmp_path / "f.zip")
        url = http_server.add_handler("/echo", lambda req: (200, {}, req.body))
        http_server.requests  # [Request(method, path, query, headers, body), ...]

Paths match without their query string, so signed-looking URLs
(``url + "?token=secret"``) reach the same route. Routes are cleared after each test;
the server itself lives for the whole session.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from _http_support import QuietHTTPServer


@dataclass(frozen=True)
class Request:
    """One request the server received."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    client: tuple[str, int]
    """(host, port) of the client socket: equal ports mean a reused connection."""


Handler = Callable[[Request], tuple[int, dict[str, str], bytes]]


@dataclass
class Route:
    """What the server answers on one path."""

    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    chunked: bool = False
    chunk_size: int = 64 * 1024
    chunk_delay: float = 0.0
    handler: Handler | None = None
    sent_chunks: int = 0
    """Chunks written so far (chunked routes): shows where a client stopped reading."""
    finished: threading.Event = field(default_factory=threading.Event)
    """Set when the server is done answering (fully sent or the client hung up)."""


class TestHTTPServer:
    """Handle on the running server: register routes, read the request log."""

    __test__ = False  # not a test class, despite the name

    def __init__(self, server: ThreadingHTTPServer) -> None:
        self._server = server
        self.routes: dict[str, Route] = {}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        host, port = server.server_address[:2]
        self.base_url = f"http://{host}:{port}"

    def url(self, path: str) -> str:
        """Absolute URL of ``path`` on this server."""
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def add(
        self,
        path: str,
        body: bytes = b"",
        *,
        status: int = 200,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        chunked: bool = False,
        chunk_size: int = 64 * 1024,
        chunk_delay: float = 0.0,
    ) -> str:
        """Answer ``path`` with ``status`` and ``body``; returns the URL.

        ``delay`` waits before the status line (a slow server); ``chunked`` sends the
        body with chunked transfer encoding and no Content-Length, ``chunk_delay``
        waits between chunks (a slow body).
        """
        hdrs = dict(headers or {})
        if content_type:
            hdrs["Content-Type"] = content_type
        route = Route(body, status, hdrs, delay, chunked, chunk_size, chunk_delay)
        with self._lock:
            self.routes[path] = route
        return self.url(path)

    def add_file(self, path: str, file: str | Path, **kwargs: object) -> str:
        """Serve the contents of ``file`` on ``path``."""
        return self.add(path, Path(file).read_bytes(), **kwargs)  # type: ignore[arg-type]

    def add_handler(self, path: str, handler: Handler) -> str:
        """Answer ``path`` with ``handler(request) -> (status, headers, body)``."""
        with self._lock:
            self.routes[path] = Route(handler=handler)
        return self.url(path)

    def route(self, path: str) -> Route:
        """The registered route of ``path`` (to read ``sent_chunks`` / ``finished``)."""
        with self._lock:
            return self.routes[path]

    def reset(self) -> None:
        with self._lock:
            self.routes.clear()
            self.requests.clear()

    def _route(self, request: Request) -> Route | None:
        with self._lock:
            self.requests.append(request)
            return self.routes.get(request.path)


def _make_handler(state: list[TestHTTPServer]) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so pooled sessions reuse connections

        def log_message(self, format: str, *args: object) -> None:  # keep test output clean
            pass

        def _serve(self) -> None:
            split = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = Request(
                self.command,
                split.path,
                split.query,
                dict(self.headers),
                body,
                (self.client_address[0], self.client_address[1]),
            )
            route = state[0]._route(request)
            if route is None:
                self._send(404, {"Content-Type": "text/plain"}, b"no such route")
                return
            try:
                if route.delay:
                    time.sleep(route.delay)
                if route.handler is not None:
                    status, headers, payload = route.handler(request)
                    self._send(status, headers, payload)
                elif route.chunked:
                    self._send_chunked(route)
                else:
                    self._send(route.status, route.headers, route.body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client hung up (timeouts, caps): expected
            finally:
                route.finished.set()

        def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            if not any(k.lower() == "content-length" for k in headers):
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _send_chunked(self, route: Route) -> None:
            self.send_response(route.status)
            for k, v in route.headers.items():
                self.send_header(k, v)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(route.body), route.chunk_size):
                piece = route.body[i : i + route.chunk_size]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                self.wfile.flush()
                route.sent_chunks += 1
                if route.chunk_delay:
                    time.sleep(route.chunk_delay)
            self.wfile.write(b"0\r\n\r\n")

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

    return _Handler


@pytest.fixture(scope="session")
def _http_server_session() -> Iterator[TestHTTPServer]:
    state: list[TestHTTPServer] = []
    server = QuietHTTPServer(("127.0.0.1", 0), _make_handler(state))
    server.daemon_threads = True
    state.append(TestHTTPServer(server))
    thread = threading.Thread(target=server.serve_forever, name="test-http", daemon=True)
    thread.start()
    try:
        yield state[0]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def http_server(_http_server_session: TestHTTPServer) -> Iterator[TestHTTPServer]:
    """A threaded HTTP server on 127.0.0.1 (see the module docstring)."""
    _http_server_session.reset()
    yield _http_server_session
    _http_server_session.reset()
