"""Attacks on the server, each reproduced as a regression test: SSRF through address
forms that hide an IPv4 host, and the other probes of a hostile caller or origin."""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from _drip_support import DripOrigin, png_answer
from _server_support import TASKS, body_of, create, photo, record_photo
from hypothesis import given, settings
from hypothesis import strategies as st

from clothseg_tools.server import run_in_thread
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


_refused_v4 = (
    st.integers(0, 2**32 - 1)
    .map(ipaddress.IPv4Address)
    .filter(lambda ip: refusal_reason(str(ip), UrlPolicy()) is not None)
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


# -- a dripping origin ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def replay_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("replay")
    record_photo(folder, 0)
    return folder


@pytest.mark.parametrize("where", ["headers", "body"])
def test_a_dripping_origin_is_cut_at_the_deadline(where: str) -> None:
    answer = png_answer(photo(0))
    # "body": the headers at once, then the body a byte at a time
    at_once = answer.index(b"\r\n\r\n") + 4 if where == "body" else 0
    with DripOrigin(answer, interval=0.05, at_once=at_once) as origin:
        with pytest.raises(FetchError, match=r"did not finish within 1 s") as info:
            fetch_image(
                origin.url(),
                policy=UrlPolicy(allow_private=True),
                timeout=5.0,  # each byte comes well within the read timeout
                total_timeout=1.0,
            )
        # the fetch gave up while the origin still had most of its answer to drip
        assert origin.sent < len(answer) // 2
    assert info.value.status == 400


def test_the_deadline_covers_redirect_hops(http_server: Any) -> None:
    with DripOrigin(png_answer(photo(0)), interval=0.05) as origin:
        url = http_server.add("/hop", status=302, headers={"Location": origin.url()})
        with pytest.raises(FetchError, match=r"did not finish within 0\.5 s"):
            fetch_image(
                url, policy=UrlPolicy(allow_private=True), timeout=5.0, total_timeout=0.5
            )


def test_a_fast_origin_is_fetched_whole() -> None:
    data = photo(0)
    with DripOrigin(png_answer(data), interval=0.0) as origin:
        got = fetch_image(origin.url(), policy=UrlPolicy(allow_private=True), total_timeout=10)
    assert got == data


def test_uploads_are_answered_while_45_fetches_drip(replay_dir: Path) -> None:
    # the reported attack: 45 dripping image_url fetches made a normal upload wait 27 s,
    # because fetches held every thread that also reads uploads and checks images
    upload = photo(0)
    with (
        DripOrigin(png_answer(photo(1)), interval=0.5) as origin,
        run_in_thread(
            engine_options={"replay_dir": replay_dir},
            allow_private_urls=True,
            fetch_deadline=60.0,
        ) as base,
        ThreadPoolExecutor(max_workers=45) as pool,
    ):
        drips = [
            pool.submit(create, base, image_url=origin.url(f"/{i}.png"), timeout=90)
            for i in range(45)
        ]
        wait_until(lambda: origin.connections >= 16)  # every fetch thread is taken
        answer = create(base, upload, sync=1, timeout=30)
        assert body_of(answer)["data"]["state"] == 1
        # the upload was answered while the fetches were still dripping
        assert not any(d.done() for d in drips)
        origin.close()  # end the drips: each fetch fails at once
        outcomes = [d.result() for d in drips]
    assert all(r.status_code == 400 for r in outcomes)


def test_fetches_beyond_the_queue_are_refused_with_429(replay_dir: Path) -> None:
    with (
        DripOrigin(png_answer(photo(1)), interval=0.5) as origin,
        run_in_thread(
            engine_options={"replay_dir": replay_dir},
            allow_private_urls=True,
            fetch_workers=1,
            max_fetch_queue=1,
            fetch_deadline=60.0,
        ) as base,
        ThreadPoolExecutor(max_workers=2) as pool,
    ):
        first = [pool.submit(create, base, image_url=origin.url(), timeout=90) for _ in range(2)]
        wait_until(lambda: origin.connections >= 1)
        wait_until(lambda: _queued(base) >= 2)
        refused = create(base, image_url=origin.url())
        body = body_of(refused)
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        assert "busy fetching" in body["message"]
        origin.close()
        assert all(f.result().status_code == 400 for f in first)


def _queued(base: str) -> int:
    return int(requests.get(base + "/healthz", timeout=5).json()["fetches"])


def test_a_fetch_past_its_deadline_is_a_400_with_a_message(replay_dir: Path) -> None:
    with (
        DripOrigin(png_answer(photo(1)), interval=0.05) as origin,
        run_in_thread(
            engine_options={"replay_dir": replay_dir}, allow_private_urls=True, fetch_deadline=0.5
        ) as base,
    ):
        answer = create(base, image_url=origin.url())
    assert answer.status_code == 400
    assert "did not finish within 0.5 s" in body_of(answer)["message"]


def wait_until(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


# -- slow and oversized requests (uvicorn) -------------------------------------------------------


@pytest.fixture(scope="module")
def strict_server(replay_dir: Path) -> Iterator[str]:
    with run_in_thread(
        engine_options={"replay_dir": replay_dir},
        header_timeout=0.5,
        body_timeout=0.8,
        max_header_bytes=8 * 1024,
    ) as base:
        yield base


def _connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def _read_answer(sock: socket.socket) -> tuple[int, dict[str, Any]]:
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


def test_slow_headers_get_408(strict_server: str) -> None:
    sock = _connect(strict_server)
    with sock:
        sock.sendall(b"POST " + TASKS.encode() + b" HTTP/1.1\r\nHost: x\r\n")
        status, body = _read_answer(sock)  # no more bytes: the server must end it
    assert status == 408 and body["status"] == 408
    assert "headers did not arrive within 0.5 s" in body["message"]


def test_a_silent_connection_is_closed(strict_server: str) -> None:
    sock = _connect(strict_server)
    with sock:
        status, _ = _read_answer(sock)
    assert status == 408


def test_a_slow_body_gets_408(strict_server: str) -> None:
    sock = _connect(strict_server)
    with sock:
        sock.sendall(
            b"POST " + TASKS.encode() + b" HTTP/1.1\r\nHost: x\r\nX-API-KEY: test-key\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"ima"
        )
        status, body = _read_answer(sock)
    assert status == 408
    assert "body did not arrive within 0.8 s" in body["message"]


def test_an_oversized_header_block_gets_431_not_a_reset(strict_server: str) -> None:
    answer = requests.get(
        strict_server + "/healthz", headers={"X-Padding": "a" * 20_000}, timeout=10
    )
    assert answer.status_code == 431
    assert answer.json()["status"] == 431
    assert "8192 bytes" in answer.json()["message"]


def test_normal_requests_pass_the_limits(strict_server: str) -> None:
    with requests.Session() as session:  # kept alive across requests
        for _ in range(3):
            assert session.get(strict_server + "/healthz", timeout=10).status_code == 200
            time.sleep(0.3)
    answer = create(strict_server, photo(0), sync=1)
    assert body_of(answer)["data"]["state"] == 1


# -- option values: never a 500 ------------------------------------------------------------------

_ALLOWED = {"class_type": (1, 2, 3, 4), "quality": (1, 2), "sync": (0, 1)}
_ASCII_NUMERAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)


def _states_allowed(text: str, name: str) -> bool:
    """The test's own reading of "this text states one of the option's values"."""
    text = text.strip(" \t\r\n\x0b\x0c")
    if not (len(text) <= 64 and _ASCII_NUMERAL.fullmatch(text)):
        return False
    return Decimal(text) in [Decimal(v) for v in _ALLOWED[name]]


@pytest.fixture(scope="module")
def plain_server(replay_dir: Path) -> Iterator[str]:
    with run_in_thread(engine_options={"replay_dir": replay_dir}) as base:
        yield base


def _post_json(base: str, body: str) -> requests.Response:
    return requests.post(
        base + TASKS,
        data=body.encode(),
        headers={"X-API-KEY": "test-key", "Content-Type": "application/json"},
        timeout=30,
    )


def _check_answer(answer: requests.Response, name: str, valid: bool) -> None:
    assert answer.status_code == 400, answer.text[:300]
    body = answer.json()
    assert body["status"] == 400 and body["message"]
    if valid:  # the option passed; the request lacks an image
        assert body["message"].startswith("No image"), body["message"]
    else:
        assert body["message"].startswith(f"{name} must be one of"), body["message"]


def test_an_integer_too_large_for_a_float_is_a_400(plain_server: str) -> None:
    # the reported probe: OverflowError in the option parser answered 500
    answer = _post_json(plain_server, '{"class_type": 1' + "0" * 400 + "}")
    _check_answer(answer, "class_type", valid=False)
    assert "digits" in answer.json()["message"]


@pytest.mark.parametrize(
    "text",
    [
        "1" + "0" * 5000,
        "1e400",
        "-1e400",
        "1e-400",
        "1.0000000000000000001",
        "1e99999999999",
        "NaN",
        "Infinity",
        '"\\ud800"',  # a lone surrogate: not even encodable as UTF-8
    ],
)
def test_extreme_json_numbers_are_400s(plain_server: str, text: str) -> None:
    answer = _post_json(plain_server, '{"class_type": ' + text + "}")
    assert answer.status_code == 400 and answer.json()["message"]
    assert "Decimal(" not in answer.json()["message"]


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("\u0661", False),  # ARABIC-INDIC DIGIT ONE: float() would read 1
        ("\uff11", False),  # FULLWIDTH DIGIT ONE
        ("\u00a01", False),  # a no-break space is not ASCII whitespace
        ("1_0", False),
        ("0x1", False),
        ("inf", False),
        (" 1 ", True),
        ("1.0", True),
        ("+1", True),
        ("1e0", True),
        ("0.1e1", True),
    ],
)
def test_only_ascii_numerals_are_read(plain_server: str, value: str, valid: bool) -> None:
    answer = _post_json(plain_server, json.dumps({"class_type": value}))
    _check_answer(answer, "class_type", valid=valid)
    form = requests.post(
        plain_server + TASKS,
        data={"class_type": value},
        headers={"X-API-KEY": "test-key"},
        timeout=30,
    )
    _check_answer(form, "class_type", valid=valid)


_json_numbers = st.from_regex(
    r"-?(0|[1-9][0-9]{0,450})(\.[0-9]{1,30})?([eE][+-]?[0-9]{1,4})?", fullmatch=True
)


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(sorted(_ALLOWED)), number=_json_numbers)
def test_no_json_number_yields_a_500(plain_server: str, name: str, number: str) -> None:
    answer = _post_json(plain_server, f'{{"{name}": {number}}}')
    _check_answer(answer, name, valid=Decimal(number) in [Decimal(v) for v in _ALLOWED[name]])


_option_strings = st.one_of(
    st.text(max_size=80),
    st.from_regex(r"\s*[+-]?[0-9]{0,3}(\.[0-9]{0,3})?([eE][+-]?[0-9]{1,3})?\s*", fullmatch=True),
    st.text(alphabet=st.characters(categories=["Nd", "Zs"]), max_size=4),
)


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(sorted(_ALLOWED)), value=_option_strings)
def test_no_option_string_yields_a_500(plain_server: str, name: str, value: str) -> None:
    answer = _post_json(plain_server, json.dumps({name: value}))
    if not value.strip(" \t\r\n\x0b\x0c"):
        assert answer.status_code == 400  # an empty value is the default
        return
    _check_answer(answer, name, valid=_states_allowed(value, name))


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(sorted(_ALLOWED)),
    value=st.recursive(
        st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
        max_leaves=5,
    ),
)
def test_no_json_value_yields_a_500(plain_server: str, name: str, value: Any) -> None:
    answer = _post_json(plain_server, json.dumps({name: value}))
    assert answer.status_code == 400 and answer.json()["message"]
