"""Serve the app with uvicorn on a background thread (tests, notebooks)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..errors import ClothsegError

__all__ = ["run_in_thread"]


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port); port 0 picks a free one."""
    info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    family, kind, proto, _, address = info
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


@contextlib.contextmanager
def run_in_thread(
    *,
    engine: str | None = "replay",
    engine_options: Mapping[str, Any] | None = None,
    api_keys: Sequence[str] = ("test-key",),
    host: str = "127.0.0.1",
    port: int = 0,
    start_timeout: float = 30.0,
    **settings: Any,
) -> Iterator[str]:
    """Run a server on a background thread for the duration of a ``with`` block.

    Parameters
    ----------
    engine, engine_options
        The engine and its options (``{"replay_dir": folder}`` for replay).
    api_keys
        Accepted API keys.
    host, port
        Where to listen; ``port=0`` picks a free port (read it from the URL).
    start_timeout
        Seconds to wait for the server to accept connections.
    **settings
        Other :class:`~clothseg_tools.server.settings.ServerSettings` fields
        (``mask_format``, ``result_ttl``, ``data_dir``, ``workers``, ``sync_timeout``,
        ``allow_private_urls``, ``test_controls``, ``progression``, ``faults`` ...).

    Yields
    ------
    str
        The base URL, e.g. ``"http://127.0.0.1:54321"``.

    Raises
    ------
    ConfigurationError
        Bad settings or engine (raised before anything starts).
    ClothsegError
        The server did not start.

    Examples
    --------
    >>> import tempfile, requests
    >>> with run_in_thread(engine_options={"replay_dir": tempfile.mkdtemp()}) as url:
    ...     requests.get(url + "/healthz", timeout=5).json()["status"]
    'ok'
    """
    import uvicorn

    # lazy: FastAPI loads only when a server starts
    from .app import create_app
    from .protocol import uvicorn_config
    from .settings import ServerSettings

    server_settings = ServerSettings(
        api_keys=tuple(api_keys),
        engine=engine,
        engine_options=dict(engine_options or {}),
        **settings,
    )
    app = create_app(server_settings)
    sock = _bind(host, port)
    config = uvicorn_config(
        app,
        server_settings,
        log_config=None,  # leave the process's logging alone
        log_level="warning",
        access_log=False,
        lifespan="on",
        loop="asyncio",
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="clothseg-server", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                raise ClothsegError(
                    "The local server did not start; see the log of logger 'uvicorn.error'."
                )
            time.sleep(0.01)
        yield _url(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()
