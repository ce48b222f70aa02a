import base64
import io
import logging
import struct
import traceback
import zlib

import numpy as np
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image, ImageFile

from clothseg_tools import MaskSet
from clothseg_tools._io import encode_png
from clothseg_tools.decode import _b64decode as b64decode_loose
from clothseg_tools.decode import (
    decode_mask,
    decode_masks,
    default_session,
    download,
    mask_from_bytes,
    mask_from_image,
    read_image,
    read_mask_file,
    redact_url,
)
from clothseg_tools.errors import (
    APIConnectionError,
    APITimeoutError,
    ImageDecodeError,
    ImageTooLargeError,
    MaskDecodeError,
    ResultExpiredError,
    ShapeMismatchError,
)

SECRET = "X-Amz-Signature=SECRET0123456789"


def encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def soft_mask(h=24, w=31, seed=0):
    """A blob with a soft edge: 0 outside, 255 inside, a ramp between."""
    yy, xx = np.mgrid[0:h, 0:w]
    d = np.hypot((yy - h / 2) / (h / 3), (xx - w / 2) / (w / 3))
    return np.clip((1.2 - d) * 400, 0, 255).astype(np.uint8)


def png_with_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height but holds almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def tiff_with_header(width: int, height: int) -> bytes:
    """A little-endian TIFF whose tags claim width x height, with one tiny strip."""
    entries = [
        (256, 4, 1, width),
        (257, 4, 1, height),
        (258, 3, 1, 8),
        (259, 3, 1, 1),
        (262, 3, 1, 1),
        (273, 4, 1, 8),  # strip offset: right after the header
        (277, 3, 1, 1),
        (278, 4, 1, height),
        (279, 4, 1, 16),
    ]
    strip = bytes(16)
    ifd_offset = 8 + len(strip)
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        ifd += struct.pack("<HHII", tag, typ, count, value)
    ifd += struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", ifd_offset) + strip + ifd


# -- encodings ------------------------------------------------------------------------


def b64_variants(data: bytes) -> dict[str, str]:
    std = base64.b64encode(data).decode()
    return {
        "padded": std,
        "unpadded": std.rstrip("="),
        "urlsafe": base64.urlsafe_b64encode(data).decode(),
        "urlsafe_unpadded": base64.urlsafe_b64encode(data).decode().rstrip("="),
        "newlines": base64.encodebytes(data).decode(),  # MIME style, 76 per line
        "spaces_around": "  \n" + std + "\n  ",
        "data_uri": "data:image/png;base64," + std,
        "data_uri_percent": "data:image/png;base64," + std.replace("=", "%3D").replace("+", "%2B"),
    }


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(mask=arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40))))
def test_round_trip_every_encoding(mask, tmp_path, http_server):
    png = encode_png(mask)
    values = dict(b64_variants(png))
    values["bytes"] = png
    values["bytearray"] = bytearray(png)
    path = tmp_path / "tops.png"
    path.write_bytes(png)
    values["path_str"] = str(path)
    values["pathlib"] = path
    values["url"] = http_server.add("/m/tops.png", png, content_type="image/png") + "?" + SECRET
    values["base64_as_bytes"] = base64.b64encode(png)
    for kind, value in values.items():
        out = decode_mask(value, name="tops")
        assert out.dtype == np.uint8 and out.shape == mask.shape, kind
        np.testing.assert_array_equal(out, mask, err_msg=kind)
        assert out.flags.writeable and out.flags.c_contiguous, kind


@given(data=st.binary(max_size=200))
def test_loose_base64_decodes_every_variant(data):
    for kind, text in b64_variants(data).items():
        if kind.startswith("data_uri"):
            continue
        assert b64decode_loose(text) == data, kind


def test_jpeg_base64_is_not_taken_for_a_path():
    # base64 JPEGs start with "/9j/", which looks like an absolute path
    mask = soft_mask()
    value = base64.b64encode(encode(Image.fromarray(mask), "JPEG", quality=95)).decode()
    assert value.startswith("/9j/")
    out = decode_mask(value)
    assert np.abs(out.astype(int) - mask).max() <= 8


# -- formats and modes ----------------------------------------------------------------

MASK = soft_mask()


def _const(value, mode="L"):
    return Image.new(mode, (MASK.shape[1], MASK.shape[0]), value)


LOSSLESS = [
    ("PNG", {}),
    ("BMP", {}),
    ("TIFF", {}),
    ("TIFF", {"compression": "tiff_lzw"}),
    ("WEBP", {"lossless": True}),
]


@pytest.mark.parametrize(("fmt", "kwargs"), LOSSLESS, ids=lambda v: str(v))
@pytest.mark.parametrize("mode", ["L", "RGB", "P"])
def test_lossless_formats_and_modes_are_exact(fmt, kwargs, mode):
    img = Image.fromarray(MASK).convert(mode)
    np.testing.assert_array_equal(decode_mask(encode(img, fmt, **kwargs)), MASK)


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_jpeg_is_close(mode):
    data = encode(Image.fromarray(MASK).convert(mode), "JPEG", quality=95)
    assert np.abs(decode_mask(data).astype(int) - MASK).max() <= 8


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16bit_is_scaled(fmt):
    values = np.array([[0, 257, 128, 129, 65535, 257 * 200]], np.uint16)
    img = Image.fromarray(values)
    assert img.mode == "I;16"
    out = decode_mask(encode(img, fmt))
    # round(v * 255 / 65535): 128 -> 0, 129 -> 1
    np.testing.assert_array_equal(out, [[0, 1, 0, 1, 255, 200]])


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([[0, 1, 128, 255]], [[0, 1, 128, 255]]),  # 8-bit data kept as it is
        ([[-5, 0, 255, 255]], [[0, 0, 255, 255]]),  # negatives clipped
        ([[0, 65535, 257 * 100, 10**7]], [[0, 255, 100, 255]]),  # 16-bit range scaled
    ],
)
def test_32bit_integer_rule(values, expected):
    img = Image.fromarray(np.array(values, np.int32))
    assert img.mode == "I"
    np.testing.assert_array_equal(decode_mask(encode(img, "TIFF")), expected)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([[0.0, 0.5, 1.0, np.nan]], [[0, 128, 255, 0]]),  # probabilities
        ([[0.0, 2.4, 254.6, 300.0]], [[0, 2, 255, 255]]),  # 0..255 range, clipped
        ([[-1.0, 0.25, np.inf, 0.0]], [[0, 64, 255, 0]]),
    ],
)
def test_float_rule(values, expected):
    img = Image.fromarray(np.array(values, np.float32))
    assert img.mode == "F"
    np.testing.assert_array_equal(decode_mask(encode(img, "TIFF")), expected)


def test_mode_1_is_0_or_255():
    bits = MASK >= 128
    img = Image.fromarray(bits)
    assert img.mode == "1"
    for fmt in ("PNG", "BMP", "TIFF"):
        np.testing.assert_array_equal(decode_mask(encode(img, fmt)), bits * np.uint8(255))


@pytest.mark.parametrize("colour", [255, 0, 90])
@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "WEBP"])
def test_grayscale_in_alpha_is_recognised(colour, fmt):
    # one colour everywhere, the mask in alpha: the common "cut-out" export
    rgba = Image.merge("RGBA", [_const(colour)] * 3 + [Image.fromarray(MASK)])
    kwargs = {"lossless": True, "exact": True} if fmt == "WEBP" else {}
    np.testing.assert_array_equal(decode_mask(encode(rgba, fmt, **kwargs)), MASK)
    la = Image.merge("LA", [_const(colour), Image.fromarray(MASK)])
    if fmt != "WEBP":
        np.testing.assert_array_equal(decode_mask(encode(la, fmt)), MASK)


def test_alpha_with_colour_outside_visible_pixels_still_reads_alpha():
    # exporters often write black under alpha 0 and white where visible
    colour = np.where(MASK > 0, 255, 0).astype(np.uint8)
    rgba = Image.merge("RGBA", [Image.fromarray(colour)] * 3 + [Image.fromarray(MASK)])
    np.testing.assert_array_equal(decode_mask(encode(rgba, "PNG")), MASK)


def test_opaque_rgba_reads_the_colour():
    rgba = Image.fromarray(MASK).convert("RGBA")
    assert np.asarray(rgba)[..., 3].min() == 255
    np.testing.assert_array_equal(decode_mask(encode(rgba, "PNG")), MASK)


def test_varying_colour_with_alpha_multiplies():
    grey = np.tile(np.array([0, 100, 200, 255], np.uint8), (2, 1))
    alpha = np.array([[255, 255, 255, 255], [0, 128, 255, 51]], np.uint8)
    la = Image.merge("LA", [Image.fromarray(grey), Image.fromarray(alpha)])
    expected = (grey.astype(int) * alpha + 127) // 255
    np.testing.assert_array_equal(decode_mask(encode(la, "PNG")), expected)


def test_colour_mask_takes_brightest_channel():
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)
    rgb[0, 1] = (0, 200, 0)
    rgb[0, 2] = (10, 20, 30)
    rgb[1] = 77
    out = decode_mask(encode(Image.fromarray(rgb), "PNG"))
    np.testing.assert_array_equal(out, [[255, 200, 30], [77, 77, 77]])


def test_palette_rules():
    idx = np.array([[0, 1, 2]], np.uint8)
    img = Image.fromarray(idx, mode="L").convert("P")
    img.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 128] + [0] * (253 * 3))
    np.testing.assert_array_equal(decode_mask(encode(img, "PNG")), [[0, 255, 128]])
    img.info["transparency"] = 1  # index 1 fully transparent
    with_t = encode(img, "PNG", transparency=1)
    # palette colours differ and index 1 is transparent: colour x alpha
    np.testing.assert_array_equal(decode_mask(with_t), [[0, 0, 128]])


@pytest.mark.parametrize("mode", ["CMYK", "YCbCr", "HSV", "RGBa", "La", "PA"])
def test_other_modes_go_through_rgb(mode):
    rgb = Image.fromarray(MASK).convert("RGB")
    if mode in ("RGBa", "La", "PA"):
        img = Image.fromarray(MASK).convert("RGBA").convert(mode)
    else:
        img = rgb.convert(mode)
    out = mask_from_image(img)
    assert out.shape == MASK.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - MASK).max() <= 3


# -- bad data -------------------------------------------------------------------------

PNG = encode_png(MASK)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (b"", "empty"),
        (PNG[: len(PNG) // 2], "corrupt or truncated"),
        (PNG[:40], "tops"),
        (PNG[:8] + b"garbage" * 10, "not a readable PNG/JPEG/WEBP/BMP/TIFF image"),
        (b"<html><body>Access denied</body></html>", "tops"),
        (b"\x00\x01\x02binary junk", "not a readable"),
        ("bm90IGFuIGltYWdl", "not a readable"),  # base64 of "not an image"
        ("data:image/png;base64", "malformed"),
        ("data:image/png;base64,!!!!", "malformed"),
        ("ftp://example.com/m.png", "only http"),
        ("no/such/file.png", "not a URL, a data URI"),
        (12345, "got int"),
        (None, "got NoneType"),
    ],
)
def test_undecodable_values_raise_mask_decode_error_naming_the_class(value, match):
    with pytest.raises(MaskDecodeError, match=match) as exc:
        decode_mask(value, name="tops")
    assert "tops" in str(exc.value)
    assert isinstance(exc.value, ValueError)


def test_corrupt_crc_is_refused():
    bad = bytearray(PNG)
    idat = bad.index(b"IDAT")
    bad[idat + 10] ^= 0xFF
    with pytest.raises(MaskDecodeError, match="hair"):
        decode_mask(bytes(bad), name="hair")


def test_truncated_data_names_the_source_file(tmp_path):
    path = tmp_path / "bottoms.png"
    path.write_bytes(PNG[:-30])
    with pytest.raises(MaskDecodeError, match=r"bottoms\.png"):
        read_mask_file(path)
    with pytest.raises(FileNotFoundError):
        read_mask_file(tmp_path / "missing.png")


# -- decompression bombs --------------------------------------------------------------


def _forbid_decoding(monkeypatch):
    def boom(self):
        raise AssertionError("pixel data was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", boom)


@pytest.mark.parametrize(
    ("data", "size"),
    [
        (png_with_header(100_000, 100_000), "100000 x 100000"),
        (png_with_header(5000, 5000), "5000 x 5000"),
        (png_with_header(2**31 - 1, 2**31 - 1), "2147483647"),
        (tiff_with_header(5000, 5000), "5000 x 5000"),
        (tiff_with_header(60_000, 60_000), "too large"),
    ],
)
def test_bombs_are_refused_from_the_header(monkeypatch, data, size):
    _forbid_decoding(monkeypatch)
    with pytest.raises(MaskDecodeError, match=size):
        decode_mask(data, name="tops")
    with pytest.raises(ImageTooLargeError):
        read_image(data)


def test_pixel_cap_is_configurable():
    data = encode_png(np.zeros((10, 10), np.uint8))
    with pytest.raises(MaskDecodeError, match="100 pixels, over the limit of 99"):
        mask_from_bytes(data, name="tops", max_pixels=99)
    assert mask_from_bytes(data, max_pixels=100).shape == (10, 10)
    assert decode_mask(data, max_pixels=None).shape == (10, 10)


# -- read_image -----------------------------------------------------------------------


def test_read_image_path_and_bytes(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    data = encode_png(rgb)
    path = tmp_path / "photo.png"
    path.write_bytes(data)
    for source in (path, str(path), data):
        img = read_image(source)
        assert img.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(img), rgb)


@pytest.mark.parametrize(
    "data",
    [
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n",  # never handed to Ghostscript
        b"%PDF-1.4\n",
        b"",
        encode_png(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8))[:2000],
    ],
)
def test_read_image_refuses_other_formats_and_corrupt_data(data):
    with pytest.raises(ImageDecodeError):
        read_image(data)


# -- URLs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("https://cdn.example.com/a/b.png?" + SECRET, "https://cdn.example.com/a/b.png"),
        ("http://u:p@h:8080/x#frag", "http://h:8080/x"),
        ("https://h/x;params?q=1", "https://h/x;params"),
        ("https://[::1]:99/m", "https://::1:99/m"),
    ],
)
def test_redact_url(url, safe):
    assert redact_url(url) == safe


def _assert_secret_hidden(exc: BaseException, caplog) -> None:
    # every message a traceback would print, causes and contexts included
    seen, cur, texts = set(), exc, []
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        texts += traceback.format_exception_only(type(cur), cur)
        cur = cur.__cause__ or cur.__context__
    assert "SECRET" not in "".join(texts)
    assert "SECRET" not in repr(exc)
    assert "SECRET" not in caplog.text


@pytest.mark.parametrize("status", [403, 404, 410])
def test_expired_links_raise_result_expired(http_server, caplog, status):
    caplog.set_level(logging.DEBUG, logger="clothseg_tools")
    url = http_server.add("/m/tops.png", b"AccessDenied", status=status) + "?" + SECRET
    with pytest.raises(ResultExpiredError, match=r"one hour.*[Qq]uery the task again") as exc:
        decode_mask(url, name="tops")
    assert str(status) in str(exc.value) and "/m/tops.png" in str(exc.value)
    _assert_secret_hidden(exc.value, caplog)
    # the signed query string did reach the server
    assert http_server.requests[-1].query == SECRET


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, MaskDecodeError), (401, MaskDecodeError), (500, APIConnectionError),
     (503, APIConnectionError), (429, APIConnectionError)],
)  # fmt: skip
def test_other_statuses(http_server, caplog, status, error):
    url = http_server.add("/m/x.png", b"nope", status=status) + "?" + SECRET
    with pytest.raises(error, match=str(status)) as exc:
        download(url, session=requests.Session(), what="mask 'x'")
    _assert_secret_hidden(exc.value, caplog)


def test_server_errors_are_retried_by_the_default_session(http_server):
    calls = []

    def flaky(req):
        calls.append(req)
        if len(calls) < 3:
            return 503, {}, b"busy"
        return 200, {"Content-Type": "image/png"}, PNG

    url = http_server.add_handler("/flaky.png", flaky)
    np.testing.assert_array_equal(decode_mask(url), MASK)
    assert len(calls) == 3


def test_slow_server_times_out(http_server, caplog):
    url = http_server.add("/slow.png", PNG, delay=1.0) + "?" + SECRET
    with pytest.raises(APITimeoutError, match=r"slow\.png") as exc:
        download(url, session=requests.Session(), timeout=(2.0, 0.2))
    assert isinstance(exc.value, APIConnectionError)
    _assert_secret_hidden(exc.value, caplog)


def test_slow_body_times_out(http_server):
    url = http_server.add("/drip.png", PNG * 4, chunked=True, chunk_size=1000, chunk_delay=0.5)
    with pytest.raises(APITimeoutError):
        download(url, session=requests.Session(), timeout=(2.0, 0.2))


def test_declared_oversize_is_refused_before_reading(http_server):
    url = http_server.add("/big.png", b"x" * 500_000)
    with pytest.raises(MaskDecodeError, match=r"500,000 bytes, over the limit of 1,000"):
        download(url, max_bytes=1000)


def test_undeclared_oversize_stops_at_the_cap(http_server):
    body = bytes(64 * 1024) * 400  # 25 MiB, sent slowly in 64 KiB chunks
    url = http_server.add("/endless.png", body, chunked=True, chunk_delay=0.005)
    with pytest.raises(MaskDecodeError, match="larger than the limit of 300,000"):
        download(url, max_bytes=300_000, session=requests.Session())
    route = http_server.route("/endless.png")
    assert route.finished.wait(10)
    # the client hung up long before the 400 chunks (socket buffers hold a few)
    assert route.sent_chunks < 200


def test_connection_refused(caplog):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nobody listens
    url = f"http://127.0.0.1:{port}/m.png?{SECRET}"
    with pytest.raises(APIConnectionError, match=f"127.0.0.1:{port}/m.png") as exc:
        download(url, session=requests.Session(), timeout=(1.0, 1.0))
    _assert_secret_hidden(exc.value, caplog)


def test_html_answer_names_the_class_not_the_token(http_server, caplog):
    url = http_server.add("/m/tops.png", b"<html>oops</html>", content_type="text/html")
    with pytest.raises(MaskDecodeError, match="tops") as exc:
        decode_mask(url + "?" + SECRET, name="tops")
    assert "/m/tops.png" in str(exc.value)
    _assert_secret_hidden(exc.value, caplog)


def test_default_session_is_pooled_and_reused(http_server):
    session = default_session()
    assert default_session() is session
    adapter = session.get_adapter("https://example.com")
    assert adapter.max_retries.total == 3
    urls = [http_server.add(f"/m/{i}.png", PNG) for i in range(3)]
    for url in urls:
        decode_mask(url)
    ports = {r.client for r in http_server.requests}
    assert len(ports) == 1  # one kept-alive connection served all three


# -- decode_masks ---------------------------------------------------------------------


def _masks(n, shape=(20, 30)):
    rng = np.random.default_rng(n)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(n)]


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_decode_masks_keeps_order_and_mixes_encodings(http_server, tmp_path, workers):
    masks = _masks(6)
    names = ["shoes", "tops", "acc", "hair", "bag", "dress"]
    values = {}
    for i, (name, m) in enumerate(zip(names, masks, strict=True)):
        png = encode_png(m)
        if i % 3 == 0:
            values[name] = http_server.add(f"/m/{name}.png", png) + "?" + SECRET
        elif i % 3 == 1:
            values[name] = base64.b64encode(png).decode()
        else:
            (tmp_path / f"{name}.png").write_bytes(png)
            values[name] = tmp_path / f"{name}.png"
    ms = decode_masks(values, workers=workers)
    assert isinstance(ms, MaskSet)
    assert ms.classes == tuple(names)
    for name, m in zip(names, masks, strict=True):
        np.testing.assert_array_equal(ms[name], m)


def test_decode_masks_mixes_in_place_and_converted_modes():
    m = soft_mask(40, 50)
    values = {
        "a": encode(Image.fromarray(m), "PNG"),  # L: decoded in place
        "b": encode(Image.fromarray(m).convert("P"), "PNG"),  # converted
        "c": encode(Image.fromarray(m.astype(np.uint16) * 257), "PNG"),  # 16-bit
        "d": encode(Image.fromarray(m), "BMP"),
        "e": encode(Image.fromarray(m), "WEBP", lossless=True),
    }
    ms = decode_masks(values, workers=2)
    for name in values:
        np.testing.assert_array_equal(ms[name], m, err_msg=name)


def test_decode_masks_shape_mismatch_names_both():
    a, b = encode_png(np.zeros((4, 5), np.uint8)), encode_png(np.zeros((5, 4), np.uint8))
    with pytest.raises(ShapeMismatchError, match=r"'hair' has shape \(5, 4\).*'tops'.*\(4, 5\)"):
        decode_masks({"tops": a, "hair": b})
    with pytest.raises(ShapeMismatchError, match=r"'tops' has shape \(4, 5\).*image.*\(8, 8\)"):
        decode_masks({"tops": a}, shape=(8, 8))


def test_decode_masks_reports_the_failing_class(http_server):
    good = encode_png(np.zeros((4, 5), np.uint8))
    gone = http_server.add("/m/hair.png", b"", status=410)
    with pytest.raises(ResultExpiredError, match="hair"):
        decode_masks({"tops": good, "hair": gone, "bag": good}, workers=3)
    with pytest.raises(MaskDecodeError, match="'bag'"):
        decode_masks({"tops": good, "bag": good[:30]}, workers=2)


def test_decode_masks_empty():
    assert decode_masks({}, shape=(3, 4)).shape == (3, 4)
    with pytest.raises(ValueError, match="shape"):
        decode_masks({})


def test_decode_masks_refuses_bombs_before_decoding(monkeypatch):
    _forbid_decoding(monkeypatch)
    with pytest.raises(MaskDecodeError, match="'bomb'"):
        decode_masks({"ok": encode_png(np.zeros((2, 2), np.uint8)),
                      "bomb": png_with_header(50_000, 50_000)})  # fmt: skip


def test_paths_can_be_refused_for_values_from_the_network(tmp_path):
    path = tmp_path / "secret.png"
    path.write_bytes(PNG)
    np.testing.assert_array_equal(decode_mask(str(path)), MASK)
    with pytest.raises(MaskDecodeError, match="not a URL, a data URI, or base64 image data"):
        decode_mask(str(path), name="tops", allow_paths=False)
    with pytest.raises(MaskDecodeError, match="allow_paths=False"):
        decode_mask(path, allow_paths=False)
    with pytest.raises(MaskDecodeError, match="'hair'"):
        decode_masks({"tops": PNG, "hair": str(path)}, allow_paths=False)


def test_a_callers_pil_image_is_not_tied_to_the_result():
    img = Image.open(io.BytesIO(PNG))  # opened, not yet loaded
    out = decode_mask(img)
    out[...] = 0
    np.testing.assert_array_equal(np.asarray(img), MASK)


def test_truncated_base64_names_the_source():
    value = base64.b64encode(PNG[: len(PNG) // 2]).decode()
    with pytest.raises(MaskDecodeError, match=r"mask 'tops' \(base64, [\d,]+ bytes\)"):
        decode_mask(value, name="tops")


def test_image_paths_with_16bit_data_are_scaled_not_clipped(tmp_path):
    from clothseg_tools._convert import as_image

    path = tmp_path / "depth.png"
    Image.fromarray(np.array([[0, 257 * 100, 65535]], np.uint16)).save(path)
    np.testing.assert_array_equal(as_image(path)[..., 0], [[0, 100, 255]])
