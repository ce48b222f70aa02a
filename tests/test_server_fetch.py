"""image_url: fetched over http(s) with a byte cap, timeouts and an SSRF guard that checks
every address, every redirect, and the address actually dialled."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import pytest
from _server_support import (
    body_of,
    create,
    masks_for,
    png_array,
    record_photo,
    replay_fixture,
    server_fixture,
)
from requests import get

from clothseg_tools import limits
from clothseg_tools.server.fetch import FetchError, UrlPolicy, fetch_image, refusal_reason


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.8.9.10", "a loopback address"),
        ("::1", "a loopback address"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("10.0.0.1", "a private address"),
        ("172.16.5.4", "a private address"),
        ("192.168.1.1", "a private address"),
        ("fc00::1", "a private address"),
        ("169.254.169.254", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("0.0.0.0", "an unspecified address"),
        ("224.0.0.1", "a multicast address"),
        ("100.64.0.1", "not a public address"),
        ("8.8.8.8", None),
        ("93.184.216.34", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_refusal_reasons(address: str, reason: str | None) -> None:
    assert refusal_reason(address, UrlPolicy()) == reason
    assert refusal_reason(address, UrlPolicy(allow_private=True)) is None


def test_allowed_networks_open_only_themselves() -> None:
    policy = UrlPolicy(allowed_networks=(ipaddress.ip_network("10.1.0.0/16"),))
    assert refusal_reason("10.1.2.3", policy) is None
    assert refusal_reason("10.2.0.1", policy) == "a private address"


replay_dir = replay_fixture()
# the default policy: private addresses refused
guarded = server_fixture()
# started with --allow-private-urls (so it can reach the test's host)
open_server = server_fixture(allow_private_urls=True, fetch_timeout=1.0)


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("127.0.0.1:{port}", "a loopback address"),
        ("localhost:{port}", "a loopback address"),
        ("[::1]:{port}", "a loopback address"),
        ("169.254.169.254", "a link-local address"),
        ("10.0.0.7:8080", "a private address"),
        ("[::ffff:192.168.0.1]", "a private address"),
        ("0.0.0.0:{port}", "an unspecified address"),
    ],
)
def test_private_addresses_are_refused(guarded: str, http_server, host: str, reason: str) -> None:
    port = http_server.base_url.rsplit(":", 1)[1]
    http_server.add("/secret.png", b"internal")
    url = f"http://{host.format(port=port)}/secret.png?token=abc"
    body = body_of(create(guarded, image_url=url))
    assert body["status"] == 400
    assert reason in body["message"] and "--allow-private-urls" in body["message"]
    assert "token=abc" not in body["message"]  # the query string is never echoed
    assert http_server.requests == []  # refused before any connection


def test_image_url_is_fetched_when_allowed(open_server: str, replay_dir: Path, http_server) -> None:
    url = http_server.add("/p.png", record_photo(replay_dir, 0), content_type="image/png")
    data = body_of(create(open_server, image_url=url, sync=1))["data"]
    tops = png_array(get(data["class_masks"]["tops"], timeout=10).content)
    assert (tops == masks_for(0)["tops"]).all()


def test_redirects_are_followed_and_each_hop_checked(
    open_server: str, replay_dir: Path, http_server
) -> None:
    target = http_server.add("/final.png", record_photo(replay_dir, 0))
    start = http_server.add("/start", status=302, headers={"Location": "/middle"})
    http_server.add("/middle", status=307, headers={"Location": target})
    assert body_of(create(open_server, image_url=start, sync=1))["data"]["state"] == 1
    http_server.add("/to-ftp", status=301, headers={"Location": "ftp://files/a.png"})
    body = body_of(create(open_server, image_url=http_server.url("/to-ftp")))
    assert body["status"] == 400 and "http:// or https://" in body["message"]
    http_server.add("/loop", status=302, headers={"Location": "/loop"})
    body = body_of(create(open_server, image_url=http_server.url("/loop")))
    assert body["status"] == 400 and "redirected more than 5 times" in body["message"]


def test_redirect_into_a_refused_network_is_refused(http_server) -> None:
    """Only 127.0.0.1 is allowed: a redirect to 127.0.0.2 is refused before connecting."""
    policy = UrlPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.1/32"),))
    port = http_server.base_url.rsplit(":", 1)[1]
    ok = http_server.add("/ok", b"fine")
    assert fetch_image(ok, policy=policy) == b"fine"
    http_server.add("/jump", status=302, headers={"Location": f"http://127.0.0.2:{port}/ok"})
    with pytest.raises(FetchError, match=r"127\.0\.0\.2, a loopback address") as info:
        fetch_image(http_server.url("/jump"), policy=policy)
    assert info.value.status == 400
    assert [r.path for r in http_server.requests] == ["/ok", "/jump"]


def test_dns_rebinding_is_caught_at_connection_time(http_server, monkeypatch) -> None:
    """The name resolves to a public address for the check, then to loopback for the
    connection: the connection itself refuses it."""
    port = int(http_server.base_url.rsplit(":", 1)[1])
    http_server.add("/x", b"internal")
    real = socket.getaddrinfo
    answers = iter(["93.184.216.34", "127.0.0.1"])

    def fake(host, *args, **kwargs):
        if host == "rebind.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    with pytest.raises(FetchError, match=r"resolves to 127\.0\.0\.1, a loopback address"):
        fetch_image(f"http://rebind.test:{port}/x", policy=UrlPolicy())
    assert http_server.requests == []


@pytest.mark.parametrize(
    ("route", "status", "match"),
    [
        ({"status": 404}, 400, "answered HTTP 404"),
        ({"body": b"x" * (limits.MAX_FILE_BYTES + 1)}, 413, "the limit is 20971520 bytes"),
        (
            {"body": b"x" * (limits.MAX_FILE_BYTES + 10**6), "chunked": True, "chunk_size": 2**20},
            413,
            "more than",
        ),
        ({"body": b"GIF89a" + bytes(30)}, 415, "the image at image_url is a GIF"),
        ({"body": b"late", "delay": 3.0}, 400, "did not answer within 1 s"),
    ],
)
def test_unusable_urls(open_server: str, http_server, route: dict, status: int, match: str):
    url = http_server.add("/img", **route)
    body = body_of(create(open_server, image_url=url))
    assert body["status"] == status and match in body["message"]
    if route.get("chunked"):
        served = http_server.route("/img")
        assert served.finished.wait(10)
        assert served.sent_chunks <= 22  # stopped reading just past the limit


def test_unresolvable_host(open_server: str, monkeypatch) -> None:
    real = socket.getaddrinfo

    def fake(host, *args, **kwargs):
        if host == "no-such-host.invalid":  # answered here: tests never query real DNS
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    body = body_of(create(open_server, image_url="http://no-such-host.invalid/a.png"))
    assert body["status"] == 400 and "could not be resolved" in body["message"]


def test_connection_refused(open_server: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    body = body_of(create(open_server, image_url=f"http://127.0.0.1:{port}/a.png"))
    assert body["status"] == 400 and "could not be fetched" in body["message"]
    assert "refused" in body["message"].lower()
