"""Input images: recognise, check against the service's limits, encode, decode.

The service (API.md) accepts JPEG, PNG, BMP, WebP, TIFF and SGI (``.rgb``) files of at
most 20 MB and 4096 x 4096 pixels. :func:`check_image_bytes` applies those limits
from the bytes and the image header alone, so a client can refuse a file before
uploading it and the server can refuse it before decoding it.

Examples
--------
>>> import numpy as np
>>> data, filename = load_input(np.zeros((4, 6, 3), np.uint8))
>>> filename, check_image_bytes(data).width
('image.png', 6)
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import numpy.typing as npt

from . import limits
from ._io import encode_png, read_regular_file
from .contract import is_url
from .decode._image import load_checked, mask_from_image, open_image
from .errors import (
    FileTooLargeError,
    ImageDecodeError,
    ImageTooLargeError,
    InputError,
    UnsupportedFormatError,
)

if TYPE_CHECKING:
    from PIL import Image as PILImage

__all__ = [
    "EXTENSIONS",
    "ImageInfo",
    "check_image_bytes",
    "decode_input_image",
    "load_input",
    "sniff_format",
]

#: File extension for each format, used to name uploads that have no file name.
EXTENSIONS: dict[str, str] = {
    "JPEG": ".jpg",
    "PNG": ".png",
    "BMP": ".bmp",
    "WEBP": ".webp",
    "TIFF": ".tif",
    "SGI": ".rgb",
    "GIF": ".gif",
}

# (offset, magic, format). Formats the service refuses are recognised too, so the
# error can say "GIF is not accepted" rather than "unknown data".
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xff\xd8\xff", "JPEG"),
    (0, b"\x89PNG\r\n\x1a\n", "PNG"),
    (0, b"II*\x00", "TIFF"),
    (0, b"MM\x00*", "TIFF"),
    (0, b"II+\x00", "TIFF"),  # BigTIFF
    (0, b"MM\x00+", "TIFF"),
    (0, b"\x01\xda", "SGI"),
    (0, b"GIF87a", "GIF"),
    (0, b"GIF89a", "GIF"),
    (0, b"8BPS", "PSD"),
    (0, b"%PDF", "PDF"),
    (0, b"\x00\x00\x01\x00", "ICO"),
    (0, b"\xff\x0a", "JPEG2000"),
    (0, b"\x00\x00\x00\x0cjP  ", "JPEG2000"),
)
# BMP's info-header sizes (core, v1..v5): "BM" alone is too weak a signature.
_BMP_HEADER_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})
_HEIF_BRANDS = {b"avif": "AVIF", b"avis": "AVIF", b"heic": "HEIF", b"heix": "HEIF",
                b"hevc": "HEIF", b"mif1": "HEIF", b"msf1": "HEIF"}  # fmt: skip


class ImageInfo(NamedTuple):
    """What :func:`check_image_bytes` learned about an input image."""

    format: str
    """Pillow format name (``"JPEG"``, ``"PNG"``...)."""
    width: int
    height: int
    nbytes: int
    """Size of the encoded file."""


def sniff_format(data: bytes) -> str | None:
    """Name the image format of ``data`` from its magic bytes, or ``None``.

    Returns Pillow's format name (``"JPEG"``, ``"PNG"``, ``"BMP"``, ``"WEBP"``,
    ``"TIFF"``, ``"SGI"``, ``"GIF"``...), also for some formats the service refuses.

    Examples
    --------
    >>> sniff_format(b"\\x89PNG\\r\\n\\x1a\\n" + bytes(8))
    'PNG'
    >>> sniff_format(b"RIFF\\x00\\x00\\x00\\x00WEBPVP8 ")
    'WEBP'
    >>> sniff_format(b"hello") is None
    True
    """
    head = bytes(data[:32])
    for offset, magic, fmt in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return fmt
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:2] == b"BM" and int.from_bytes(head[14:18], "little") in _BMP_HEADER_SIZES:
        return "BMP"
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return _HEIF_BRANDS[head[8:12]]
    if len(head) >= 3 and head[0:1] == b"P" and head[1:2] in b"123456" and head[2:3].isspace():
        return "PPM"
    return None


def _accepted() -> str:
    return "JPEG, PNG, BMP, WebP, TIFF and SGI (.rgb)"


def check_image_bytes(data: bytes, *, name: str = "image") -> ImageInfo:
    """Check encoded image bytes against the service's limits, from the header alone.

    Parameters
    ----------
    data
        The encoded file.
    name
        What to call it in messages (a file name, typically).

    Returns
    -------
    ImageInfo
        Format, width, height and byte size.

    Raises
    ------
    FileTooLargeError
        Over 20 MB (:data:`~clothseg_tools.limits.MAX_FILE_BYTES`).
    UnsupportedFormatError
        Not one of the accepted formats.
    ImageTooLargeError
        Over 4096 pixels on a side.
    ImageDecodeError
        Empty, or the header cannot be read. (Pixel data is not decoded here; see
        :func:`decode_input_image`.)

    Examples
    --------
    >>> check_image_bytes(b"GIF89a" + bytes(20), name="cat.gif")
    Traceback (most recent call last):
    ...
    clothseg_tools.errors.UnsupportedFormatError: cat.gif is a GIF file; the service accepts ...
    """
    nbytes = len(data)
    if nbytes > limits.MAX_FILE_BYTES:
        raise FileTooLargeError(
            f"{name} is {nbytes / 2**20:.1f} MB ({nbytes:,} bytes); the service accepts at most "
            f"{limits.MAX_FILE_BYTES / 2**20:.0f} MB. Save it as JPEG or scale it down."
        )
    if nbytes == 0:
        raise ImageDecodeError(f"{name} is empty (0 bytes).")
    fmt = sniff_format(data)
    if fmt is None:
        raise UnsupportedFormatError(
            f"{name} is not in a recognised image format (it starts with bytes "
            f"{bytes(data[:8]).hex(' ')}); the service accepts {_accepted()}."
        )
    if fmt not in limits.INPUT_FORMATS:
        raise UnsupportedFormatError(
            f"{name} is a {fmt} file; the service accepts {_accepted()}. Convert it to PNG "
            "or JPEG first."
        )
    img = open_image(
        data,
        name,
        formats=(fmt,),
        max_pixels=limits.MAX_PIXELS,
        max_side=limits.MAX_SIDE,
        too_large=ImageTooLargeError,
        undecodable=ImageDecodeError,
    )
    return ImageInfo(fmt, img.size[0], img.size[1], nbytes)


def _encode_lossless(image: PILImage.Image) -> bytes:
    """PNG of a PIL image, converting modes PNG cannot store."""
    if image.mode not in ("1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I"):
        has_alpha = "A" in image.getbands() or "a" in image.getbands()
        image = image.convert("RGBA" if has_alpha else "RGB")
    for level in (1, 6, 9):
        # fast first; a noisy photo may only fit under 20 MB with stronger compression
        buf = io.BytesIO()
        image.save(buf, format="PNG", compress_level=level)
        if buf.tell() <= limits.MAX_FILE_BYTES:
            break
    return buf.getvalue()


def _array_png(arr: npt.NDArray[Any]) -> bytes:
    if arr.dtype != np.uint8:
        raise InputError(
            f"An image array must be uint8, but got dtype {arr.dtype}. "
            "Scale floats with np.clip(img * 255, 0, 255).astype(np.uint8)."
        )
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
        raise InputError(
            f"An image array must have shape (H, W), (H, W, 3) or (H, W, 4), but got "
            f"shape {arr.shape}."
        )
    data = encode_png(arr)
    if len(data) > limits.MAX_FILE_BYTES:
        from PIL import Image

        data = _encode_lossless(Image.fromarray(np.ascontiguousarray(arr)))
    return data


def load_input(image: Any) -> tuple[bytes, str]:
    """Turn an input image into ``(encoded bytes, filename)`` ready to upload.

    Parameters
    ----------
    image
        A path (sent as it is), encoded bytes, a binary file object, a PIL image or
        a uint8 array of shape (H, W), (H, W, 3) or (H, W, 4). PIL images and arrays
        are encoded losslessly as PNG.

    Returns
    -------
    tuple of (bytes, str)
        The file's bytes and a file name (the path's name, the file object's name,
        or ``image.<ext>`` from the detected format).

    Raises
    ------
    FileNotFoundError
        The path does not exist.
    NotAFileError
        The path is a FIFO, socket, device or symbolic-link loop (an ``InputError``).
    InputError
        A URL was given (pass it as ``image_url``), the type is not supported, or
        the image breaks the service's limits (see :func:`check_image_bytes`).

    Examples
    --------
    >>> from clothseg_tools._io import encode_png
    >>> load_input(encode_png(np.zeros((2, 2), np.uint8)))[1]
    'image.png'
    """
    from PIL import Image

    filename: str | None = None
    if is_url(image):
        raise InputError(
            "load_input got a URL; pass it as image_url=... so the service fetches it."
        )
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        data = read_regular_file(path)  # a FIFO named like a photo never blocks here
        filename = path.name
    elif isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
    elif isinstance(image, Image.Image):
        data = _encode_lossless(image)
        filename = "image.png"
    elif isinstance(image, np.ndarray):
        data = _array_png(image)
        filename = "image.png"
    elif hasattr(image, "read"):
        data = image.read()
        if not isinstance(data, (bytes, bytearray)):
            raise InputError("The file object must be opened in binary mode ('rb').")
        data = bytes(data)
        fname = getattr(image, "name", None)
        if isinstance(fname, str) and fname:
            filename = os.path.basename(fname)
    else:
        raise InputError(
            f"Cannot use a {type(image).__name__} as an image; pass a path, bytes, a binary "
            "file object, a PIL image or a uint8 array."
        )
    info = check_image_bytes(data, name=filename or "image")
    if not filename:
        filename = "image" + EXTENSIONS.get(info.format, ".bin")
    return data, filename


def decode_input_image(data: bytes) -> npt.NDArray[np.uint8]:
    """Decode an input image (after :func:`check_image_bytes`) to (H, W, 3) uint8 RGB.

    No EXIF rotation is applied: masks align with the stored pixel grid, as Pillow
    opens it. Transparent pixels are composited over white (segmentation models
    read a cut-out on white far better than the arbitrary colour under alpha 0);
    16-bit and float images are scaled as masks are (see :mod:`clothseg_tools.decode`).

    Raises
    ------
    FileTooLargeError, UnsupportedFormatError, ImageTooLargeError
        From :func:`check_image_bytes`.
    ImageDecodeError
        The pixel data is corrupt or truncated.

    Examples
    --------
    >>> from clothseg_tools._io import encode_png
    >>> rgba = np.zeros((1, 2, 4), np.uint8); rgba[0, 1] = (10, 20, 30, 255)
    >>> decode_input_image(encode_png(rgba))
    array([[[255, 255, 255],
            [ 10,  20,  30]]], dtype=uint8)
    """
    from PIL import Image

    info = check_image_bytes(data)
    img = open_image(
        data,
        "image",
        formats=(info.format,),
        max_pixels=limits.MAX_PIXELS,
        too_large=ImageTooLargeError,
        undecodable=ImageDecodeError,
    )
    load_checked(img, "image", ImageDecodeError)
    mode = img.mode
    if mode == "RGB":
        return np.array(img)
    if mode.startswith("I") or mode == "F":
        grey = mask_from_image(img)  # the same scaling masks get
        return np.repeat(grey[:, :, None], 3, axis=2)
    bands = img.getbands()
    if "A" in bands or "a" in bands or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.array(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.array(img.convert("RGB"))
