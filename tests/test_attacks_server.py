"""Attacks on the server, each reproduced as a regression test: SSRF through address
forms that hide an IPv4 host, and the other probes of a hostile caller or origin."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clothseg_tools.server.fetch import (
    FetchError,
    UrlPolicy,
    embedded_ipv4,
    fetch_image,
    refusal_reason,
)

# -- SSRF: address classification ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("2002:7f00:1::1", "a loopback address (in a 6to4 address)"),
        ("2002:a00:1::1", "a private address (in a 6to4 address)"),
        ("2002:a9fe:a9fe::", "a link-local address (in a 6to4 address)"),
        ("fec0::1", "a site-local address"),
        ("feff:ffff::1", "a site-local address"),
        ("64:ff9b::7f00:1", "a loopback address (in a NAT64 address)"),
        ("64:ff9b::a9fe:a9fe", "a link-local address (in a NAT64 address)"),
        ("::ffff:10.0.0.1", "a private address"),
        ("::a00:1", "a private address (in an IPv4-compatible address)"),
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "a private address (in a Teredo address)"),
        ("2001:db8::1", "a private address"),
        ("3fff::1", "not a public address"),
        ("5f00::1", "not a public address"),
        ("100::1", "a private address"),
        ("64:ff9b:1::a00:1", "a reserved address"),
        ("192.0.0.1", "a private address"),
        ("198.18.0.1", "a private address"),
        ("240.0.0.1", "a private address"),
        ("255.255.255.255", "a private address"),
    ],
)
def test_special_addresses_are_refused(address: str, reason: str) -> None:
    got = refusal_reason(address, UrlPolicy())
    if "(in " in reason or reason.endswith(("loopback address", "site-local address")):
        assert got == reason
    else:
        # newer Pythons name some ranges differently (private / reserved / not public)
        assert got is not None
    assert refusal_reason(address, UrlPolicy(allow_private=True)) is None


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::5db8:d822",  # NAT64 of 93.184.216.34
        "::ffff:93.184.216.34",
        "2002:5db8:d822::1",  # 6to4 of a public host
        "2606:4700:4700::1111",
        "8.8.8.8",
    ],
)
def test_public_hosts_behind_ipv6_forms_are_allowed(address: str) -> None:
    assert refusal_reason(address, UrlPolicy()) is None


def test_an_allowed_network_covers_its_embedded_forms() -> None:
    policy = UrlPolicy(allowed_networks=(ipaddress.ip_network("10.1.0.0/16"),))
    for address in ("10.1.2.3", "::ffff:10.1.2.3", "64:ff9b::a01:203", "2002:a01:203::1"):
        assert refusal_reason(address, policy) is None, address
    assert refusal_reason("2002:a02:1::1", policy) == "a private address (in a 6to4 address)"


_refused_v4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address).filter(
    lambda ip: refusal_reason(str(ip), UrlPolicy()) is not None
)


@given(_refused_v4)
def test_every_form_carrying_a_refused_ipv4_is_refused(ip: ipaddress.IPv4Address) -> None:
    forms = [
        ipaddress.IPv6Address(f"::ffff:{ip}"),
        ipaddress.IPv6Address(int(ipaddress.IPv6Address("64:ff9b::")) | int(ip)),
        ipaddress.IPv6Address((0x2002 << 112) | (int(ip) << 80) | 1),
        # Teredo stores the client address inverted
        ipaddress.IPv6Address((0x20010000 << 96) | (int(ip) ^ 0xFFFFFFFF)),
    ]
    for form in forms:
        assert embedded_ipv4(form) is not None and embedded_ipv4(form)[0] == ip  # type: ignore[index]
        assert refusal_reason(str(form), UrlPolicy()) is not None, form


@pytest.mark.parametrize(
    "host", ["[2002:7f00:1::1]", "[64:ff9b::7f00:1]", "[fec0::1]", "[::ffff:127.0.0.1]"]
)
def test_fetch_refuses_hidden_loopback_before_connecting(host: str) -> None:
    with pytest.raises(FetchError, match="the server only fetches public addresses") as info:
        fetch_image(f"http://{host}:9/a.png", timeout=1.0)
    assert info.value.status == 400
