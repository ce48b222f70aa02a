"""HTTP for mask downloads: one pooled session per process, capped streaming reads.

Signed result links carry their token in the query string, so only :func:`redact_url`'s
form of a URL (scheme, host, path) ever reaches a message or a log line.
"""

from __future__ import annotations

import logging
import os
import threading
import urllib.parse
from typing import TYPE_CHECKING, Any

from .. import limits
from .._version import __version__
from ..contract import redact_url
from ..errors import (
    APIConnectionError,
    APITimeoutError,
    ClothsegError,
    MaskDecodeError,
    ResultExpiredError,
)

if TYPE_CHECKING:
    import requests

__all__ = ["DEFAULT_TIMEOUT", "EXPIRED_STATUSES", "default_session", "download", "redact_url"]

logger = logging.getLogger("clothseg_tools")

#: (connect, read) seconds for one download.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 30.0)

#: HTTP statuses that mean the signed link has expired or was revoked.
EXPIRED_STATUSES = frozenset({403, 404, 410})

_DOWNLOAD_CHUNK = 256 * 1024


_session_lock = threading.Lock()
_session: requests.Session | None = None
_session_pid: int | None = None


def default_session() -> requests.Session:
    """The pooled :class:`requests.Session` shared by every download of this process.

    Connections are kept alive and reused (up to 16 per host, so threads do not
    wait for each other). Connection errors and 429/5xx answers to GET are retried
    three times with a short exponential backoff (urllib3 ``Retry``). A forked
    child gets its own session.

    Examples
    --------
    >>> default_session() is default_session()
    True
    """
    global _session, _session_pid
    with _session_lock:
        if _session is None or _session_pid != os.getpid():
            _session = _new_session()
            _session_pid = os.getpid()
        return _session


def _new_session() -> requests.Session:
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    retry = Retry(
        total=3,
        backoff_factor=0.3,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"GET", "HEAD"}),
        # a Retry-After of an hour would stall a whole batch; back off briefly instead
        respect_retry_after_header=False,
        raise_on_status=False,
    )
    adapter = HTTPAdapter(pool_connections=8, pool_maxsize=16, max_retries=retry)
    session = requests.Session()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = f"clothseg_tools/{__version__}"
    return session


def download(
    url: str,
    *,
    session: requests.Session | None = None,
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
    max_bytes: int = limits.MAX_MASK_BYTES,
    what: str = "mask",
) -> bytes:
    """Download ``url`` into memory, streaming, and stop at ``max_bytes``.

    Parameters
    ----------
    url
        An http(s) URL (a signed result link, typically).
    session
        Session to use; defaults to :func:`default_session`.
    timeout
        Seconds, or ``(connect, read)`` seconds; the read timeout applies to each
        wait for data, as in requests.
    max_bytes
        Largest body accepted. A ``Content-Length`` over it is refused before the
        body is read; a body without one is cut off as soon as it passes the cap.
    what
        What is being downloaded, for messages (``"mask 'tops'"``).

    Returns
    -------
    bytes
        The body (after any ``Content-Encoding`` is undone).

    Raises
    ------
    ResultExpiredError
        The link answered 403, 404 or 410: result links live one hour.
    MaskDecodeError
        Not an http(s) URL, another 4xx answer, or a body over ``max_bytes``.
    APITimeoutError
        Connecting or waiting for data took longer than ``timeout``.
    APIConnectionError
        No connection, a dropped connection, or 429/5xx after the retries.

    Notes
    -----
    Messages name the URL without its query string (see :func:`redact_url`), and
    the requests exception is not chained because its text holds the full URL.
    """
    import requests

    safe = redact_url(url)
    if urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https"):
        raise MaskDecodeError(f"Cannot download {what} from {safe}: only http(s) URLs are fetched.")
    sess = session if session is not None else default_session()
    try:
        with sess.get(url, timeout=timeout, stream=True) as resp:
            _check_status(resp.status_code, safe, what)
            return _read_capped(resp, max_bytes, safe, what)
    except requests.Timeout:
        err: ClothsegError = APITimeoutError(
            f"Timed out downloading {what} from {safe} (timeout={timeout!r} s). "
            "Check the network, or pass a longer timeout."
        )
    except requests.RequestException as exc:
        if _is_read_timeout(exc):
            err = APITimeoutError(
                f"Timed out reading {what} from {safe} (timeout={timeout!r} s). "
                "Check the network, or pass a longer timeout."
            )
        else:
            err = APIConnectionError(
                f"Could not download {what} from {safe} ({type(exc).__name__}). "
                "Check the network and try again."
            )
    # requests' own message embeds the full URL, signed query included: not chained.
    raise err from None


def _check_status(status: int, safe: str, what: str) -> None:
    if status < 400:
        return
    if status in EXPIRED_STATUSES:
        raise ResultExpiredError(
            f"The {what} link {safe} answered HTTP {status}: result links are valid for one "
            "hour. Query the task again (Client.get_task) for fresh links, or run it again."
        )
    if status == 429 or status >= 500:
        raise APIConnectionError(
            f"The server holding {what} ({safe}) answered HTTP {status} after retries; "
            "try again later."
        )
    raise MaskDecodeError(f"Downloading {what} from {safe} failed with HTTP {status}.")


def _read_capped(resp: requests.Response, max_bytes: int, safe: str, what: str) -> bytes:
    declared = resp.headers.get("Content-Length")
    if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
        raise MaskDecodeError(
            f"{what} at {safe} is {int(declared):,} bytes, over the limit of {max_bytes:,}; "
            "refusing to download it (raise max_bytes if it is genuine)."
        )
    buf = bytearray()
    for chunk in resp.iter_content(chunk_size=_DOWNLOAD_CHUNK):
        buf += chunk
        if len(buf) > max_bytes:
            raise MaskDecodeError(
                f"{what} at {safe} is larger than the limit of {max_bytes:,} bytes; "
                "stopped downloading (raise max_bytes if it is genuine)."
            )
    logger.debug("downloaded %s from %s (%d bytes)", what, safe, len(buf))
    return bytes(buf)


def _is_read_timeout(exc: BaseException) -> bool:
    # requests reports a read timeout in the middle of a streamed body as a
    # ConnectionError wrapping urllib3's ReadTimeoutError.
    from urllib3.exceptions import ReadTimeoutError

    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        cur = stack.pop()
        if id(cur) in seen or not isinstance(cur, BaseException):
            continue
        seen.add(id(cur))
        if isinstance(cur, ReadTimeoutError):
            return True
        stack.extend([*cur.args, cur.__cause__, cur.__context__])
    return False
