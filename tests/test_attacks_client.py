"""Attacks on the client and the decoder, each reproduced as a regression test.

A hostile or broken service controls every value in a task answer: mask values, the
per-garment ZIP and its entries. None of them may make the client read a local file,
decode gigabytes of pixels, or take a non-image ``data:`` URI as a mask.
"""

from __future__ import annotations

import base64
import io
import logging
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import responses

import clothseg_tools.decode as decode_module
from clothseg_tools._io import encode_png
from clothseg_tools.api import Client
from clothseg_tools.decode import decode_mask
from clothseg_tools.errors import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    MaskDecodeError,
    MaskZipError,
    TaskFailedError,
    UnsafeZipError,
)
from clothseg_tools.zipmasks import MAX_ZIP_TOTAL_PIXELS, read_mask_zip

KEY = "sk-live-attack-0123456789"
BASE = "http://api.test"
CREATE = f"{BASE}/api/tasks/visual/clothing-segmentation"
DONE = {"task_id": "t1", "state": 1, "progress": 100, "output_type": 1}


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def client() -> Iterator[Client]:
    with Client(api_key=KEY, base_url=BASE, max_retries=0) as c:
        yield c


def answer_with(masks: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"status": 200, "message": "success", "data": {**DONE, "class_masks": masks, **extra}}


# -- a service answer naming a local file --------------------------------------------------------


@pytest.mark.parametrize(
    "dress",
    [
        "{path}",
        " {path}",  # passed a guard that checked the raw string; the decoder strips it
        "{path}\n",
        "\t{path} \r\n",
        "file://{path}",
        "file:{path}",
    ],
)
def test_a_mask_value_naming_a_local_file_is_never_read(
    rsps: responses.RequestsMock, client: Client, tmp_path: Path, dress: str
) -> None:
    secret = tmp_path / "secret.png"
    secret.write_bytes(encode_png(np.full((4, 4), 255, np.uint8)))
    rsps.post(CREATE, json=answer_with({"tops": dress.format(path=secret)}))
    with pytest.raises(MaskDecodeError) as info:
        client.segment(np.zeros((4, 4, 3), np.uint8))
    assert "mask 'tops'" in str(info.value)


def test_the_network_path_never_opens_a_file(
    rsps: responses.RequestsMock,
    client: Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = tmp_path / "secret.png"
    secret.write_bytes(encode_png(np.full((4, 4), 255, np.uint8)))
    opened: list[str] = []
    real_open = Path.read_bytes

    def spy(self: Path) -> bytes:
        opened.append(str(self))
        return real_open(self)

    monkeypatch.setattr(Path, "read_bytes", spy)
    rsps.post(CREATE, json=answer_with({"tops": f" {secret}\n"}))
    with pytest.raises(MaskDecodeError, match="local files are never read"):
        client.segment(np.zeros((4, 4, 3), np.uint8))
    assert opened == []


def test_a_path_object_is_refused_without_allow_paths(tmp_path: Path) -> None:
    secret = tmp_path / "secret.png"
    secret.write_bytes(encode_png(np.zeros((2, 2), np.uint8)))
    with pytest.raises(MaskDecodeError, match="local files are not read"):
        decode_mask(secret, allow_paths=False)
    # the local use still reads it, on the same stripped text
    assert decode_mask(f" {secret}\n").shape == (2, 2)


# -- data URIs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "media_type",
    ["text/html", "application/octet-stream", "", "application/zip", " text/plain"],
)
def test_a_data_uri_that_is_not_an_image_is_refused(media_type: str) -> None:
    payload = base64.b64encode(encode_png(np.zeros((2, 2), np.uint8))).decode()
    with pytest.raises(MaskDecodeError, match=r"media type .* not an image type"):
        decode_mask(f"data:{media_type};base64,{payload}", name="tops")


@pytest.mark.parametrize("media_type", ["image/png", "IMAGE/PNG", "image/webp", "image/x-foo"])
def test_a_data_uri_of_an_image_type_is_read(media_type: str) -> None:
    payload = base64.b64encode(encode_png(np.full((1, 2), 255, np.uint8))).decode()
    assert decode_mask(f"data:{media_type};base64,{payload}").tolist() == [[255, 255]]


# -- inline base64 size --------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["", "data:image/png;base64,"])
def test_an_oversized_inline_value_is_refused_before_decoding(
    prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(*args: Any, **kwargs: Any) -> bytes:
        raise AssertionError("the oversized value was decoded")

    monkeypatch.setattr(decode_module, "_b64decode", never)
    with pytest.raises(MaskDecodeError, match=r"over the limit of 1,000 bytes.*max_bytes"):
        decode_mask(prefix + "A" * 4000, name="tops", max_bytes=1000)


def test_an_inline_value_within_the_limit_is_read() -> None:
    png = encode_png(np.zeros((3, 3), np.uint8))
    text = base64.b64encode(png).decode()
    assert decode_mask(text, max_bytes=len(png)).shape == (3, 3)


# -- the per-garment ZIP's decoded pixels ---------------------------------------------------------


def _zip_of(png: bytes, count: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for i in range(count):
            zf.writestr(f"tops/{i}.png", png)
    return buf.getvalue()


@pytest.fixture(scope="module")
def full_size_png() -> bytes:
    """A valid 4096 x 4096 mask PNG of about 20 kB: all zeros compress well."""
    return encode_png(np.zeros((4096, 4096), np.uint8), compress_level=9)


def test_many_full_size_entries_are_refused_before_any_decoding(
    full_size_png: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the reported archive: 300 valid 4096^2 PNGs in ~22 MB decode to 4.7 GiB
    data = _zip_of(full_size_png, 300)
    assert len(data) < 30 * 1024 * 1024

    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("an entry was decoded before the budget was checked")

    monkeypatch.setattr(decode_module, "decode_into", never)
    with pytest.raises(UnsafeZipError) as info:
        read_mask_zip(data)
    message = str(info.value)
    assert f"{MAX_ZIP_TOTAL_PIXELS:,} pixels" in message
    assert "max_total_pixels" in message
    assert "tops/32.png" in message  # the 33rd full-size entry passes the budget


def test_the_pixel_budget_can_be_raised_or_lowered() -> None:
    png = encode_png(np.full((64, 64), 255, np.uint8))
    data = _zip_of(png, 5)
    with pytest.raises(UnsafeZipError, match="16,384 pixels"):
        read_mask_zip(data, max_total_pixels=4 * 64 * 64)
    parts = read_mask_zip(data, max_total_pixels=5 * 64 * 64)
    assert len(parts) == 5 and all(int(m.min()) == 255 for m in parts.values())
    assert len(read_mask_zip(data, max_total_pixels=None)) == 5


def test_a_budget_error_is_a_zip_error() -> None:
    assert issubclass(UnsafeZipError, MaskZipError)


# -- the API key, wherever the service or a link puts it ------------------------------------------


def error_texts(exc: BaseException) -> list[str]:
    """str, repr and string attributes of an error and of every exception it chains."""
    out: list[str] = []
    seen: BaseException | None = exc
    while seen is not None:
        out += [str(seen), repr(seen)]
        out += [v for v in vars(seen).values() if isinstance(v, str)]
        seen = seen.__cause__ or seen.__context__
    return out


def assert_hidden(*texts: object) -> None:
    for text in texts:
        assert KEY not in str(text), text
        assert KEY.replace("-", "%2D").lower() not in str(text).lower()


def test_a_failed_tasks_message_hides_the_key(
    rsps: responses.RequestsMock, client: Client
) -> None:
    failed = {"task_id": "t1", "state": -1, "message": f"engine refused key {KEY}"}
    rsps.get(
        f"{CREATE}/t1",
        json={"status": 200, "message": f"failed for {KEY}", "data": failed},
    )
    with pytest.raises(TaskFailedError) as info:
        client.wait("t1", timeout=5)
    assert_hidden(*error_texts(info.value))
    assert "***" in str(info.value)


def test_a_failed_task_read_once_hides_the_key(
    rsps: responses.RequestsMock, client: Client
) -> None:
    failed = {"task_id": "t1", "state": -1}
    rsps.get(f"{CREATE}/t1", json={"status": 200, "message": f"no: {KEY}", "data": failed})
    task = client.get_task("t1")
    assert task.is_failed
    assert_hidden(task.message, repr(task), task.to_dict() if hasattr(task, "to_dict") else "")


def test_a_failed_task_answered_with_an_error_status_hides_the_key(
    rsps: responses.RequestsMock, client: Client
) -> None:
    failed = {"task_id": "t1", "state": -1}
    rsps.post(CREATE, status=422, json={"status": 422, "message": f"bad {KEY}", "data": failed})
    with pytest.raises(TaskFailedError) as info:
        client.create_task(image_url="https://img.test/a.jpg")
    assert_hidden(*error_texts(info.value))


@pytest.mark.parametrize(
    "message",
    [
        f"key-{KEY}-rejected",
        f"key={KEY}.",
        f"keys:{KEY},other",
        f"url-encoded {KEY.replace('-', '%2D')}",
        f"url-encoded {KEY.replace('-', '%2d')}",
    ],
)
def test_a_key_inside_a_longer_token_is_hidden(
    rsps: responses.RequestsMock, client: Client, message: str
) -> None:
    rsps.post(CREATE, status=401, json={"status": 401, "message": message, "data": None})
    with pytest.raises(AuthenticationError) as info:
        client.create_task(image_url="https://img.test/a.jpg")
    assert_hidden(*error_texts(info.value))


def test_a_key_in_a_mask_links_path_is_hidden(
    rsps: responses.RequestsMock, client: Client
) -> None:
    # the link is refused by the mock transport: its error names the whole URL
    link = f"http://cdn.test/{KEY}/tops.png?sig=x"
    rsps.post(CREATE, json=answer_with({"tops": link}))
    with pytest.raises(APIConnectionError) as info:
        client.segment("https://img.test/a.jpg")
    texts = error_texts(info.value)
    assert any("cdn.test" in t for t in texts)  # still says where
    assert_hidden(*texts)


def test_a_key_echoed_in_a_request_id_is_hidden(
    rsps: responses.RequestsMock, client: Client
) -> None:
    rsps.post(
        CREATE,
        status=400,
        json={"status": 400, "message": "bad request", "data": None},
        headers={"X-Request-Id": f"req-{KEY}-7"},
    )
    with pytest.raises(APIStatusError) as info:
        client.create_task(image_url="https://img.test/a.jpg")
    assert info.value.request_id == "req-***-7"
    assert_hidden(*error_texts(info.value))


def test_log_records_hide_the_key(
    rsps: responses.RequestsMock, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    from clothseg_tools.api import _retry

    rsps.get(f"{CREATE}/t1", status=503, json={"status": 503, "message": f"busy {KEY}"})
    rsps.get(f"{CREATE}/t1", json={"status": 200, "message": "success", "data": DONE})
    with caplog.at_level(logging.DEBUG, logger="clothseg_tools"):
        old_sleep = _retry.sleep
        _retry.sleep = lambda s: None
        try:
            client.wait("t1", timeout=30, poll_interval=0.01)
        finally:
            _retry.sleep = old_sleep
        logging.getLogger("clothseg_tools").warning("echo %s", f"id-{KEY}")
    assert caplog.records
    assert_hidden(caplog.text, *[r.getMessage() for r in caplog.records])


def test_manifest_lines_hide_the_key(tmp_path: Path, client: Client) -> None:
    from clothseg_tools.batch.manifest import Manifest

    with Manifest(tmp_path / "manifest.jsonl") as manifest:
        manifest.append({"source": f"https://img.test/{KEY}/a.jpg", "error": f"x-{KEY}"})
    assert_hidden((tmp_path / "manifest.jsonl").read_text())


def test_a_short_key_does_not_garble_words() -> None:
    from clothseg_tools.contract import scrub_secrets

    assert scrub_secrets("task k failed: key-k-bad", ["k"]) == "task *** failed: key-***-bad"
