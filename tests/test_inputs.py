import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from clothseg_tools import limits
from clothseg_tools._io import encode_png
from clothseg_tools.errors import (
    FileTooLargeError,
    ImageDecodeError,
    ImageTooLargeError,
    InputError,
    UnsupportedFormatError,
)
from clothseg_tools.inputs import (
    ImageInfo,
    check_image_bytes,
    decode_input_image,
    load_input,
    sniff_format,
)

RGB = np.random.default_rng(7).integers(0, 256, (12, 17, 3), dtype=np.uint8)


def encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


# Real files written by Pillow, one per format: (save format, kwargs, sniffed name, accepted)
FORMATS = [
    ("JPEG", {}, "JPEG", True),
    ("PNG", {}, "PNG", True),
    ("BMP", {}, "BMP", True),
    ("WEBP", {}, "WEBP", True),
    ("TIFF", {}, "TIFF", True),
    ("TIFF", {"compression": "tiff_lzw"}, "TIFF", True),
    ("TIFF", {"big_tiff": True}, "TIFF", True),
    ("SGI", {}, "SGI", True),
    ("GIF", {}, "GIF", False),
    ("PPM", {}, "PPM", False),
    ("ICO", {}, "ICO", False),
]


@pytest.mark.parametrize(("fmt", "kwargs", "name", "accepted"), FORMATS, ids=str)
def test_sniff_and_check_every_format(fmt, kwargs, name, accepted):
    data = encode(Image.fromarray(RGB), fmt, **kwargs)
    assert sniff_format(data) == name
    if accepted:
        assert check_image_bytes(data) == ImageInfo(name, 17, 12, len(data))
    else:
        with pytest.raises(UnsupportedFormatError, match=f"is a {name} file") as exc:
            check_image_bytes(data, name=f"photo.{fmt.lower()}")
        assert exc.value.status == 415
        assert f"photo.{fmt.lower()}" in str(exc.value)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", None),
        (b"hello world", None),
        (b"BM" + bytes(30), None),  # "BM" without a BMP info header
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", None),
        (b"\x00\x00\x00\x1cftypavif" + bytes(8), "AVIF"),
        (b"\x00\x00\x00\x18ftypheic" + bytes(8), "HEIF"),
        (b"%PDF-1.7\n", "PDF"),
        (b"8BPS\x00\x01", "PSD"),
    ],
)
def test_sniff_table(data, expected):
    assert sniff_format(data) == expected


@pytest.mark.parametrize("data", [b"%PDF-1.7\n" + bytes(100), b"\x00\x00\x00\x1cftypheic"])
def test_other_formats_are_named_in_the_refusal(data):
    with pytest.raises(UnsupportedFormatError, match="PNG or JPEG"):
        check_image_bytes(data)


def test_unknown_bytes_are_unsupported():
    with pytest.raises(UnsupportedFormatError, match="not in a recognised image format") as exc:
        check_image_bytes(b"just some text, not a picture")
    assert "JPEG, PNG, BMP, WebP, TIFF" in str(exc.value)


def test_file_over_20_mb_is_refused_before_anything_else():
    data = b"\x89PNG\r\n\x1a\n" + bytes(limits.MAX_FILE_BYTES)
    with pytest.raises(FileTooLargeError, match=r"20\.0 MB .*at most 20 MB") as exc:
        check_image_bytes(data, name="huge.png")
    assert exc.value.status == 413
    assert "huge.png" in str(exc.value)


@pytest.mark.parametrize(("w", "h"), [(4097, 10), (10, 4097), (5000, 5000)])
def test_over_4096_on_a_side_is_refused(w, h):
    data = encode_png(np.zeros((h, w), np.uint8))
    with pytest.raises(ImageTooLargeError, match=f"{w} x {h} pixels; the limit is 4096 x 4096"):
        check_image_bytes(data)


def test_exactly_4096_is_accepted():
    data = encode_png(np.zeros((4096, 1), np.uint8))
    assert check_image_bytes(data).height == 4096


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,
        b"\xff\xd8\xff" + b"\x00" * 40,
    ],
)
def test_unreadable_headers(data):
    with pytest.raises(ImageDecodeError) as exc:
        check_image_bytes(data)
    assert exc.value.status == 422


# -- load_input -----------------------------------------------------------------------


def test_path_is_sent_as_it_is(tmp_path):
    data = encode(Image.fromarray(RGB), "JPEG", quality=80)
    path = tmp_path / "shirt photo.jpeg"
    path.write_bytes(data)
    assert load_input(path) == (data, "shirt photo.jpeg")
    assert load_input(str(path)) == (data, "shirt photo.jpeg")


def test_bytes_and_file_objects(tmp_path):
    data = encode(Image.fromarray(RGB), "WEBP")
    assert load_input(data) == (data, "image.webp")
    assert load_input(bytearray(data)) == (data, "image.webp")
    assert load_input(io.BytesIO(data)) == (data, "image.webp")
    path = tmp_path / "look.webp"
    path.write_bytes(data)
    with open(path, "rb") as fh:
        assert load_input(fh) == (data, "look.webp")
    with open(path, encoding="latin-1") as fh, pytest.raises(InputError, match="binary mode"):
        load_input(fh)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "I;16", "CMYK"])
def test_pil_images_are_encoded_losslessly(mode):
    img = Image.fromarray(RGB).convert(mode)
    data, name = load_input(img)
    assert name == "image.png" and sniff_format(data) == "PNG"
    back = Image.open(io.BytesIO(data))
    expected = img if mode != "CMYK" else img.convert("RGB")
    assert back.mode == expected.mode
    np.testing.assert_array_equal(np.asarray(back), np.asarray(expected))


@settings(max_examples=25, deadline=None)
@given(
    arr=arrays(
        np.uint8,
        st.one_of(
            st.tuples(st.integers(1, 24), st.integers(1, 24)),
            st.tuples(st.integers(1, 24), st.integers(1, 24), st.sampled_from([3, 4])),
        ),
    )
)
def test_arrays_round_trip_through_load_input(arr):
    data, name = load_input(arr)
    assert name == "image.png"
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))), arr)


@pytest.mark.parametrize(
    ("image", "error", "match"),
    [
        (np.zeros((4, 4), np.float32), InputError, "uint8"),
        (np.zeros((4, 4, 2), np.uint8), InputError, r"shape \(4, 4, 2\)"),
        (np.zeros(4, np.uint8), InputError, "shape"),
        (12, InputError, "Cannot use a int"),
        ("https://example.com/a.jpg?sig=1", InputError, "image_url"),
        ("/no/such/photo.jpg", FileNotFoundError, "photo.jpg"),
        (encode(Image.fromarray(RGB), "GIF"), UnsupportedFormatError, "GIF"),
        (encode_png(np.zeros((5000, 2), np.uint8)), ImageTooLargeError, "5000"),
    ],
)
def test_load_input_refusals(image, error, match):
    with pytest.raises(error, match=match):
        load_input(image)


def test_stronger_compression_is_tried_when_the_fast_png_is_over_the_cap(monkeypatch):
    # 3 bits of noise per channel: zlib level 1 gives ~121 kB, level 6 ~105 kB
    arr = (np.random.default_rng(0).integers(0, 8, (300, 300, 3)) * 32).astype(np.uint8)
    fast = len(encode_png(arr))
    monkeypatch.setattr(limits, "MAX_FILE_BYTES", fast - 5000)
    data, _ = load_input(arr)
    assert len(data) <= fast - 5000
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))), arr)
    monkeypatch.setattr(limits, "MAX_FILE_BYTES", 50_000)  # too small for any level
    with pytest.raises(FileTooLargeError, match="Save it as JPEG"):
        load_input(arr)


# -- decode_input_image ---------------------------------------------------------------


LOSSLESS = [("PNG", {}), ("BMP", {}), ("TIFF", {}), ("WEBP", {"lossless": True}), ("SGI", {})]


@pytest.mark.parametrize(("fmt", "kwargs"), LOSSLESS)
def test_decode_lossless_rgb(fmt, kwargs):
    out = decode_input_image(encode(Image.fromarray(RGB), fmt, **kwargs))
    assert out.dtype == np.uint8 and out.flags.writeable
    np.testing.assert_array_equal(out, RGB)


def test_decode_grey_palette_and_16bit():
    grey = RGB[..., 0]
    for img in (Image.fromarray(grey), Image.fromarray(grey).convert("P")):
        np.testing.assert_array_equal(decode_input_image(encode(img, "PNG"))[..., 1], grey)
    wide = Image.fromarray(grey.astype(np.uint16) * 257)
    np.testing.assert_array_equal(decode_input_image(encode(wide, "PNG"))[..., 2], grey)


def test_transparent_pixels_become_white():
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (10, 20, 30, 255)
    rgba[0, 1] = (200, 0, 0, 0)
    rgba[1, 0] = (0, 0, 0, 128)
    out = decode_input_image(encode_png(rgba))
    assert tuple(out[0, 0]) == (10, 20, 30)
    assert tuple(out[0, 1]) == (255, 255, 255)
    assert tuple(out[1, 0]) == (127, 127, 127)


def test_exif_rotation_is_not_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    data = encode(Image.fromarray(RGB), "JPEG", exif=exif.tobytes())
    assert decode_input_image(data).shape == RGB.shape  # stored grid, not display grid


def test_truncated_jpeg_is_a_decode_error():
    big = np.random.default_rng(3).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    data = encode(Image.fromarray(big), "JPEG")
    check_image_bytes(data[: len(data) // 2])  # the header alone is fine
    with pytest.raises(ImageDecodeError, match="corrupt or truncated") as exc:
        decode_input_image(data[: len(data) // 2])
    assert exc.value.status == 422
