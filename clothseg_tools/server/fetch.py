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

import functools
import ipaddress
import socket
import time
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
        if form in ("IPv4-mapped", "NAT64"):
            return None  # the packet goes to the public IPv4 host; the prefix is no place
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
        last: OSError | None = None
        for info in infos:
            try:
                # an address literal: create_connection does no further lookup
                return create_connection(
                    (str(info[4][0]), self.port),
                    self.timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except OSError as exc:
                last = exc
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
) -> bytes:
    """Download the image at ``url`` under ``policy``.

    Parameters
    ----------
    url
        An absolute http(s) URL.
    policy
        Which addresses may be reached.
    timeout
        Connect and read timeout in seconds; the whole download stops after four times
        this.
    max_bytes
        Largest body accepted; reading stops as soon as it is passed.

    Returns
    -------
    bytes

    Raises
    ------
    FetchError
        ``status=413`` when the body is larger than ``max_bytes``; ``status=400`` for a
        refused or malformed URL, a failed connection, a timeout, too many redirects, or
        an answer other than 200. Messages name the host, never the query string.
    """
    deadline = time.monotonic() + 4 * timeout
    with _session(policy) as session:
        for _hop in range(MAX_REDIRECTS + 1):
            _scheme, host, port = check_url(url)
            _resolve(host, port, policy)  # a clear message before any connection is made
            try:
                response = session.get(
                    url, stream=True, allow_redirects=False, timeout=(timeout, timeout)
                )
            except requests.Timeout:
                raise FetchError(
                    f"image_url host {host!r} did not answer within {timeout:g} s."
                ) from None
            except requests.RequestException as exc:
                raise FetchError(
                    f"image_url could not be fetched from {host!r}: {_reason(exc)}."
                ) from None
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


def _read_capped(
    response: requests.Response, *, host: str, max_bytes: int, deadline: float
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
            if time.monotonic() > deadline:
                raise FetchError(
                    f"image_url download from {host!r} took too long; use a faster host."
                )
            chunks.append(chunk)
    except requests.RequestException as exc:
        raise FetchError(f"image_url download from {host!r} broke off: {_reason(exc)}.") from None
    return b"".join(chunks)


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
