"""Download an ``image_url`` safely: http(s) only, byte cap, timeouts, SSRF guard.

A server that fetches URLs for its callers must not become a way into the network it
sits in. Every address a URL resolves to is checked before connecting (and each
redirect is checked again): any address the ``ipaddress`` module does not classify as
global (loopback, private, link-local, site-local, carrier-grade NAT, multicast,
reserved, documentation, unspecified) is refused unless the policy allows private
addresses, and so is an IPv6 address that carries a refused IPv4 one (IPv4-mapped,
NAT64, 6to4, Teredo, IPv4-compatible). The check is made again inside the connection itself, on the
address actually dialled, so a host name that resolves to a public address for the
check and a private one for the connection (DNS rebinding) is refused too.

Examples
--------
>>> refusal_reason("127.0.0.1", UrlPolicy())
'a loopback address'
>>> refusal_reason("93.184.216.34", UrlPolicy()) is None
True
>>> refusal_reason("10.1.2.3", UrlPolicy(allow_private=True)) is None
True
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import ipaddress
import math
import socket
import threading
import time
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError
from urllib3.util.connection import create_connection

from .. import limits

__all__ = [
    "FetchError",
    "FetchPool",
    "UrlPolicy",
    "check_url",
    "embedded_ipv4",
    "fetch_image",
    "refusal_reason",
]

#: Redirects followed before giving up.
MAX_REDIRECTS = 5

#: Longest ``image_url`` accepted.
MAX_URL_LENGTH = 8192

_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class FetchError(Exception):
    """An ``image_url`` that cannot be used; ``status`` is the answer to give (400 or 413)."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class UrlPolicy(NamedTuple):
    """Which addresses ``image_url`` may reach.

    Attributes
    ----------
    allow_private : bool
        Allow every address (``--allow-private-urls``).
    allowed_networks : tuple of ip networks
        Networks allowed even when private ones are not (an internal image store).
    """

    allow_private: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()


#: NAT64's well-known prefix (RFC 6052): ``64:ff9b::a.b.c.d`` reaches ``a.b.c.d``.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
#: IPv4-compatible addresses (``::a.b.c.d``, deprecated by RFC 4291).
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
#: Special-purpose ranges registered after the tables of the oldest Python supported
#: (3.10/3.11 call them global): IPv6 documentation (RFC 9637) and SRv6 SIDs (RFC 9602).
_NOT_GLOBAL_LATE = (ipaddress.IPv6Network("3fff::/20"), ipaddress.IPv6Network("5f00::/16"))


def embedded_ipv4(ip: IPAddress) -> tuple[ipaddress.IPv4Address, str] | None:
    """The IPv4 address an IPv6 address carries, and the form that carries it.

    IPv4-mapped (``::ffff:a.b.c.d``), NAT64 (``64:ff9b::a.b.c.d``), 6to4
    (``2002:AABB:CCDD::/48``), Teredo (the client address) and IPv4-compatible
    (``::a.b.c.d``) addresses all lead to an IPv4 host; ``None`` for anything else.

    Examples
    --------
    >>> embedded_ipv4(ipaddress.ip_address("2002:7f00:1::1"))
    (IPv4Address('127.0.0.1'), '6to4')
    >>> embedded_ipv4(ipaddress.ip_address("64:ff9b::a00:1"))
    (IPv4Address('10.0.0.1'), 'NAT64')
    >>> embedded_ipv4(ipaddress.ip_address("2606:4700::1")) is None
    True
    """
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped, "IPv4-mapped"
    if ip in _NAT64:
        return low32, "NAT64"
    if ip.sixtofour is not None:
        return ip.sixtofour, "6to4"
    if ip.teredo is not None:
        return ip.teredo[1], "Teredo"
    if ip in _IPV4_COMPATIBLE and int(ip) > 0xFFFF:  # not ::, ::1 or other small values
        return low32, "IPv4-compatible"
    return None


def _classify(ip: IPAddress) -> str | None:
    """Why ``ip`` itself is not a public address, or ``None`` when it is one.

    The ``ipaddress`` module's own classification decides (its ``is_global`` follows
    the IANA special-purpose registries); the named checks before it only pick the
    clearest word for the message.
    """
    checks = (
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_unspecified, "an unspecified address"),
        (ip.is_multicast, "a multicast address"),
        (ip.is_private, "a private address"),
        (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local, "a site-local address"),
        (ip.is_reserved, "a reserved address"),
        (not ip.is_global, "not a public address"),
        (any(ip in net for net in _NOT_GLOBAL_LATE), "not a public address"),
    )
    for refused, reason in checks:
        if refused:
            return reason
    return None


def refusal_reason(address: str, policy: UrlPolicy) -> str | None:
    """Why ``address`` may not be fetched under ``policy``, or ``None`` when it may.

    An IPv6 address that carries an IPv4 one (:func:`embedded_ipv4`) is judged by the
    IPv4 host it leads to as well: ``::ffff:10.0.0.1``, ``64:ff9b::a00:1`` and
    ``2002:a00:1::1`` all reach 10.0.0.1.

    Examples
    --------
    >>> refusal_reason("::ffff:169.254.169.254", UrlPolicy())
    'a link-local address'
    >>> refusal_reason("2002:7f00:1::1", UrlPolicy())
    'a loopback address (in a 6to4 address)'
    >>> refusal_reason("fec0::1", UrlPolicy())
    'a site-local address'
    """
    ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
    embedded = embedded_ipv4(ip)
    if policy.allow_private:
        return None
    targets = [ip] if embedded is None else [ip, embedded[0]]
    nets = policy.allowed_networks
    if any(t in net for t in targets for net in nets if t.version == net.version):
        return None
    if embedded is not None:
        inner, form = embedded
        reason = _classify(inner)
        if reason is not None:
            # mapped addresses are the IPv4 host itself: say it as for the host
            if form == "IPv4-mapped":
                return reason
            article = "an" if form.startswith("IPv4") else "a"
            return f"{reason} (in {article} {form} address)"
        if form in ("IPv4-mapped", "NAT64", "6to4"):
            # the packet goes to the public IPv4 host; the prefix is no place (and Python
            # 3.13's ipaddress calls all of 2002::/16 non-global, whatever host it carries)
            return None
    return _classify(ip)


def check_url(url: str) -> tuple[str, str, int]:
    """Check the form of ``url``; return (scheme, host, port).

    Raises
    ------
    FetchError
        Not an absolute http(s) URL with a host (status 400).

    Examples
    --------
    >>> check_url("https://images.example/a.jpg")
    ('https', 'images.example', 443)
    """
    if len(url) > MAX_URL_LENGTH:
        raise FetchError(f"image_url is {len(url)} characters long; the limit is {MAX_URL_LENGTH}.")
    if any(ch.isspace() for ch in url):
        raise FetchError("image_url contains spaces; URL-encode it (spaces as %20).")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise FetchError(f"image_url is not a valid URL ({exc}); send an http(s) URL.") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        shown = f"{scheme}:" if scheme else "no scheme"
        raise FetchError(
            f"image_url must be an http:// or https:// URL, got {shown}; upload the image "
            "as image_file instead, or give its public web address."
        )
    if not parts.hostname:
        raise FetchError(
            "image_url has no host name; send an absolute URL like https://host/a.jpg."
        )
    return scheme, parts.hostname, port or (443 if scheme == "https" else 80)


def _resolve(host: str, port: int, policy: UrlPolicy) -> list[tuple[Any, ...]]:
    """Resolve ``host`` and refuse it when any of its addresses is refused."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(
            f"image_url host {host!r} could not be resolved ({exc}); check the address."
        ) from None
    for info in infos:
        address = str(info[4][0])
        reason = refusal_reason(address, policy)
        if reason is not None:
            raise FetchError(
                f"image_url host {host!r} resolves to {address}, {reason}; the server only "
                "fetches public addresses (start it with --allow-private-urls to allow "
                "private, loopback and link-local ones)."
            )
    return infos


class _Deadline:
    """The end of one whole fetch, enforced on the sockets it opens.

    Socket timeouts only bound each wait for a byte, so an origin sending one byte a
    second is never "timed out". When the deadline passes, a timer shuts every socket
    of the fetch down; whatever read was blocked (headers or body, plain or TLS)
    returns at once and the fetch fails.
    """

    _current = threading.local()

    def __init__(self, seconds: float, started: float | None = None) -> None:
        self.seconds = seconds
        self.at = (time.monotonic() if started is None else started) + seconds
        self.expired = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(max(0.0, self.remaining()), self._expire)
        self._timer.daemon = True

    @classmethod
    def current(cls) -> _Deadline | None:
        """The deadline of the fetch running on this thread."""
        return getattr(cls._current, "deadline", None)

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def watch(self, sock: socket.socket) -> None:
        """Shut ``sock`` down when the deadline passes (at once if it has)."""
        with self._lock:
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            _shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)

    def __enter__(self) -> _Deadline:
        self._timer.start()
        self._current.deadline = self
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._current.deadline = None
        self._timer.cancel()


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # closed already: the fetch ended on its own
        sock.shutdown(socket.SHUT_RDWR)


class _GuardedConnectionMixin:
    """Connect only to addresses the policy allows, checked on the address dialled."""

    policy: UrlPolicy = UrlPolicy()
    _dns_host: str
    port: int
    timeout: Any
    source_address: Any
    socket_options: Any

    def _new_conn(self) -> socket.socket:
        try:
            infos = _resolve(self._dns_host, self.port, self.policy)
        except FetchError as exc:
            raise NewConnectionError(self, exc.message) from None  # type: ignore[arg-type]
        deadline = _Deadline.current()
        last: OSError | None = None
        for info in infos:
            timeout = self.timeout
            if deadline is not None:
                left = deadline.remaining()
                if left <= 0:
                    raise NewConnectionError(self, "the fetch deadline passed")  # type: ignore[arg-type]
                timeout = left if timeout is None else min(timeout, left)
            try:
                # an address literal: create_connection does no further lookup
                sock = create_connection(
                    (str(info[4][0]), self.port),
                    timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except OSError as exc:
                last = exc
                continue
            if deadline is not None:
                sock.settimeout(self.timeout)  # connected: reads wait the read timeout
                deadline.watch(sock)
            return sock
        message = f"Failed to establish a new connection: {last}"
        raise NewConnectionError(self, message)  # type: ignore[arg-type]


@functools.lru_cache(maxsize=8)
def _adapter_classes(policy: UrlPolicy) -> tuple[type, type]:
    http_conn = type(
        "GuardedHTTPConnection", (_GuardedConnectionMixin, HTTPConnection), {"policy": policy}
    )
    https_conn = type(
        "GuardedHTTPSConnection", (_GuardedConnectionMixin, HTTPSConnection), {"policy": policy}
    )
    http_pool = type(
        "GuardedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}
    )
    https_pool = type(
        "GuardedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}
    )
    return http_pool, https_pool


class _GuardedAdapter(HTTPAdapter):
    def __init__(self, policy: UrlPolicy) -> None:
        self._policy = policy
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        http_pool, https_pool = _adapter_classes(self._policy)
        self.poolmanager.pool_classes_by_scheme = {"http": http_pool, "https": https_pool}


def _session(policy: UrlPolicy) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # an environment proxy would dial on our behalf, unchecked
    adapter = _GuardedAdapter(policy)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = "clothseg-server"
    return session


def fetch_image(
    url: str,
    *,
    policy: UrlPolicy = UrlPolicy(),
    timeout: float = 10.0,
    max_bytes: int = limits.MAX_FILE_BYTES,
    total_timeout: float | None = None,
    started: float | None = None,
) -> bytes:
    """Download the image at ``url`` under ``policy``.

    Parameters
    ----------
    url
        An absolute http(s) URL.
    policy
        Which addresses may be reached.
    timeout
        Connect timeout, and the longest wait for any one read.
    max_bytes
        Largest body accepted; reading stops as soon as it is passed.
    total_timeout
        Deadline of the whole fetch in seconds: connecting, every redirect, the
        headers and the body together, however slowly the bytes arrive (default:
        four times ``timeout``).
    started
        The :func:`time.monotonic` time the deadline counts from (default: now); a
        fetch that waited for a thread has that much less time left.

    Returns
    -------
    bytes

    Raises
    ------
    FetchError
        ``status=413`` when the body is larger than ``max_bytes``; ``status=400`` for a
        refused or malformed URL, a failed connection, a timeout, a fetch past its
        deadline, too many redirects, or an answer other than 200. Messages name the
        host, never the query string.

    Examples
    --------
    >>> fetch_image("ftp://images.example/a.jpg")
    Traceback (most recent call last):
    ...
    clothseg_tools.server.fetch.FetchError: image_url must be an http:// or https:// URL, ...
    """
    total = 4 * timeout if total_timeout is None else total_timeout
    check_url(url)
    with _Deadline(total, started) as deadline, _session(policy) as session:
        for _hop in range(MAX_REDIRECTS + 1):
            _scheme, host, port = check_url(url)
            _resolve(host, port, policy)  # a clear message before any connection is made
            try:
                response = session.get(
                    url, stream=True, allow_redirects=False, timeout=(timeout, timeout)
                )
            except requests.RequestException as exc:
                raise _fetch_failed(exc, host, timeout, deadline) from None
            with response:
                if response.status_code in _REDIRECT_CODES and "location" in response.headers:
                    url = urljoin(url, response.headers["location"])
                    continue
                if response.status_code != 200:
                    raise FetchError(
                        f"image_url answered HTTP {response.status_code} from {host!r}; check "
                        "that the address is right and publicly readable."
                    )
                return _read_capped(response, host=host, max_bytes=max_bytes, deadline=deadline)
    raise FetchError(
        f"image_url redirected more than {MAX_REDIRECTS} times; give the final address."
    )


def _past_deadline(host: str, deadline: _Deadline) -> FetchError:
    return FetchError(
        f"image_url fetch from {host!r} did not finish within {deadline.seconds:g} s "
        "(connecting, headers and body together); use a faster host, or upload the "
        "image as image_file."
    )


def _fetch_failed(
    exc: requests.RequestException, host: str, timeout: float, deadline: _Deadline
) -> FetchError:
    if deadline.expired or deadline.remaining() <= 0:
        return _past_deadline(host, deadline)
    if isinstance(exc, requests.Timeout):
        return FetchError(f"image_url host {host!r} did not answer within {timeout:g} s.")
    return FetchError(f"image_url could not be fetched from {host!r}: {_reason(exc)}.")


def _read_capped(
    response: requests.Response, *, host: str, max_bytes: int, deadline: _Deadline
) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(_too_large(int(declared), max_bytes), status=413)
    chunks: list[bytes] = []
    total = 0
    try:
        for chunk in response.iter_content(chunk_size=64 * 1024):
            total += len(chunk)
            if total > max_bytes:
                raise FetchError(_too_large(total, max_bytes, at_least=True), status=413)
            chunks.append(chunk)
    except requests.RequestException as exc:
        if deadline.expired:
            raise _past_deadline(host, deadline) from None
        raise FetchError(f"image_url download from {host!r} broke off: {_reason(exc)}.") from None
    if deadline.expired:  # a shut-down socket may also read as a clean end of the body
        raise _past_deadline(host, deadline)
    return b"".join(chunks)


class FetchPool:
    """Threads that run ``image_url`` fetches, apart from the server's other work.

    A fetch waits on someone else's server; with its own threads and its own bound, a
    crowd of slow origins can fill this pool but never the threads that read uploads
    and check images. A fetch that finds every thread busy waits in a queue of at most
    ``max_waiting``; past that the request is refused at once (the server answers
    429), and a fetch that waits longer than its deadline is dropped.

    Parameters
    ----------
    workers
        Fetches that run at once.
    max_waiting
        Fetches that may wait for a thread.
    """

    def __init__(self, workers: int, max_waiting: int) -> None:
        self.workers = workers
        self.max_waiting = max_waiting
        self.in_flight = 0  # changed on the event loop only
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="clothseg-fetch"
        )

    def is_full(self) -> bool:
        """True when a new fetch would have no place, running or waiting."""
        return self.in_flight >= self.workers + self.max_waiting

    def retry_after(self, total_timeout: float) -> int:
        """Seconds a refused caller should wait: one round of fetch deadlines."""
        return max(1, math.ceil(total_timeout))

    def busy(self, total_timeout: float) -> FetchError:
        """The refusal when no fetch thread is free in time (``status=429``)."""
        return FetchError(
            f"The server is busy fetching other image_url addresses ({self.workers} at "
            f"once, {self.max_waiting} waiting); retry in {self.retry_after(total_timeout)} "
            "s, or upload the image as image_file.",
            status=429,
        )

    async def fetch(
        self, url: str, *, policy: UrlPolicy, timeout: float, total_timeout: float
    ) -> bytes:
        """Fetch ``url`` on the pool within ``total_timeout`` seconds of this call.

        Raises
        ------
        FetchError
            As :func:`fetch_image`; also when the fetch waited for a thread until
            its deadline passed (``status=429``).
        """
        submitted = time.monotonic()
        started = threading.Event()

        def run() -> bytes:
            started.set()
            if time.monotonic() - submitted >= total_timeout:
                raise self.busy(total_timeout)
            return fetch_image(
                url, policy=policy, timeout=timeout, total_timeout=total_timeout, started=submitted
            )

        loop = asyncio.get_running_loop()
        self.in_flight += 1
        try:
            future = loop.run_in_executor(self._pool, run)
            # the thread stops itself at the deadline; this bounds the answer even
            # when it cannot (a host name lookup is not interruptible)
            try:
                return await asyncio.wait_for(future, total_timeout + 1.0)
            except asyncio.TimeoutError:
                if not started.is_set():
                    raise self.busy(total_timeout) from None
                host = urlsplit(url).hostname or "?"
                raise FetchError(
                    f"image_url fetch from {host!r} did not finish within "
                    f"{total_timeout:g} s; use a faster host, or upload the image as "
                    "image_file."
                ) from None
        finally:
            self.in_flight -= 1

    def shutdown(self) -> None:
        """Drop waiting fetches; running ones end at their deadlines."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def _too_large(size: int, limit: int, *, at_least: bool = False) -> str:
    more = "more than " if at_least else ""
    return (
        f"The image at image_url is {more}{size} bytes; the limit is {limit} bytes "
        f"({limit // (1024 * 1024)} MB). Resize or recompress it."
    )


def _reason(exc: BaseException) -> str:
    # the innermost cause is the informative one ("Connection refused"); never the URL
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    text = str(exc)
    marker = "Failed to establish a new connection: "
    if marker in text:
        text = text.split(marker, 1)[1]
    return text.split(" (Caused by", 1)[0] or type(exc).__name__
