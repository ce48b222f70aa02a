"""A hostile origin for tests: it answers one byte at a time, as slowly as it likes."""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType


class DripOrigin:
    """An HTTP origin on 127.0.0.1 that sends ``answer`` one byte every ``interval`` s.

    ``answer`` is the whole response (status line, headers, body); its first
    ``at_once`` bytes go at once, so the drip can start in the headers or the body.
    Every connection is served on its own thread until the answer is sent, the client
    hangs up, or the origin is closed; closing ends every connection at once.
    ``sent`` counts the bytes sent, over all connections.
    """

    def __init__(self, answer: bytes, interval: float, *, at_once: int = 0) -> None:
        self.answer = answer
        self.at_once = at_once
        self.interval = interval
        self.connections = 0
        self.sent = 0
        self.hangups = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._socks: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, name="drip-origin", daemon=True)

    def url(self, path: str = "/photo.png") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> DripOrigin:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with self._lock:
            socks = list(self._socks)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                self.connections += 1
                self._socks.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(5)
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                request += chunk
            conn.sendall(self.answer[: self.at_once])
            self.sent += self.at_once
            for i in range(self.at_once, len(self.answer)):
                conn.sendall(self.answer[i : i + 1])
                with self._lock:
                    self.sent += 1
                if self._stop.wait(self.interval):
                    return
        except OSError:
            with self._lock:
                self.hangups += 1


def png_answer(body: bytes) -> bytes:
    """A 200 answer carrying ``body`` as a PNG."""
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    return head + body
