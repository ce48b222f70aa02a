"""Test-only HTTP helpers shared by several test modules."""

from __future__ import annotations

from http.server import ThreadingHTTPServer


class QuietHTTPServer(ThreadingHTTPServer):
    """A threaded test server that does not print a traceback when a client hangs up.

    Tests here cut connections on purpose (timeouts, byte caps, resets); the default
    ``handle_error`` would print each one to stderr.
    """

    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass
