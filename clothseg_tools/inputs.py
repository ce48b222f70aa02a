"""Input photos: open them safely, check them against the service's limits, decode once.

Every photo enters here, whichever way it goes on: :func:`load_input` gives the bytes
to upload, :func:`open_photo` the pixels for an in-process engine (a file is checked
and opened once; an array is never encoded to be decoded again). Opening any image
safely (:func:`open_image`, :func:`read_image`: format allow-list, pixel cap read from
the header) lives here too, for the mask decoder as well.

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
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import numpy.typing as npt

from . import limits
from ._io import encode_png, read_regular_file
from .contract import is_url
from .errors import (
    ClothsegError,
    FileTooLargeError,
    ImageDecodeError,
    ImageTooLargeError,
    InputError,
    MaskDecodeError,
    UnsupportedFormatError,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import IO

    from PIL import Image as PILImage

__all__ = [
    "EXTENSIONS",
    "IMAGE_FORMATS",
    "ImageInfo",
    "Photo",
    "check_image_bytes",
    "check_size",
    "decode_input_image",
    "load_checked",
    "load_input",
    "open_image",
    "open_photo",
    "read_image",
    "scale_deep_image",
    "sniff_format",
]

#: Formats :func:`read_image` opens. Pillow's other plugins (EPS through Ghostscript,
#: PDF, ...) are never tried on untrusted bytes.
IMAGE_FORMATS: tuple[str, ...] = tuple(
    sorted(set(limits.INPUT_FORMATS) | set(limits.MASK_FORMATS) | {"GIF", "PPM"})
)

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


# -- opening images safely -------------------------------------------------------------


def _png_header_size(data: bytes) -> tuple[int, int] | None:
    # Read the size from IHDR ourselves: Pillow warns (DecompressionBombWarning) on
    # huge sizes before we get to refuse them, and PNG is the common case.
    if len(data) >= 24 and data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        w, h = struct.unpack(">II", data[16:24])
        return int(w), int(h)
    return None


def check_size(
    size: tuple[int, int],
    what: str,
    *,
    max_pixels: int | None,
    max_side: int | None,
    too_large: type[ClothsegError],
    undecodable: type[ClothsegError],
) -> None:
    w, h = size
    if w <= 0 or h <= 0:
        raise undecodable(f"{what} has an empty size ({w} x {h}).")
    if max_side is not None and max(w, h) > max_side:
        raise too_large(
            f"{what} is {w} x {h} pixels; the limit is {max_side} x {max_side}. "
            "Scale it down first."
        )
    if max_pixels is not None and w * h > max_pixels:
        raise too_large(
            f"{what} is {w} x {h} = {w * h:,} pixels, over the limit of {max_pixels:,} "
            "(decompression-bomb guard). Scale it down, or raise max_pixels if it is genuine."
        )


def open_image(
    source: bytes | IO[bytes],
    what: str,
    *,
    formats: Sequence[str],
    max_pixels: int | None,
    max_side: int | None = None,
    too_large: type[ClothsegError] = MaskDecodeError,
    undecodable: type[ClothsegError] = MaskDecodeError,
) -> PILImage.Image:
    """Open (header only) and size-check an image; pixel data is not decoded yet."""
    from PIL import Image, UnidentifiedImageError

    limits_kw = {
        "max_pixels": max_pixels,
        "max_side": max_side,
        "too_large": too_large,
        "undecodable": undecodable,
    }
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise undecodable(f"{what} is empty (0 bytes).")
        header = _png_header_size(data)
        if header is not None:
            check_size(header, what, **limits_kw)  # type: ignore[arg-type]
        fp: IO[bytes] = io.BytesIO(data)
    else:
        fp = source
    try:
        img = Image.open(fp, formats=list(formats))
    except UnidentifiedImageError:
        raise undecodable(
            f"{what} is not a readable {'/'.join(formats)} image; check that it is an "
            "image file and not an error page or a truncated download."
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise too_large(f"{what} is too large to decode safely: {exc}") from exc
    except Exception as exc:  # Pillow raises many types on malformed headers
        raise undecodable(
            f"{what} is not a readable {'/'.join(formats)} image ({type(exc).__name__}: {exc}); "
            "check that it is an image file and not an error page or a truncated download."
        ) from exc
    check_size(img.size, what, **limits_kw)  # type: ignore[arg-type]
    return img


def load_checked(img: PILImage.Image, what: str, undecodable: type[ClothsegError]) -> None:
    try:
        img.load()
    except ClothsegError:
        raise
    except Exception as exc:  # truncated data, bad CRC, zlib errors, broken TIFF tags...
        raise undecodable(
            f"{what} could not be decoded ({type(exc).__name__}: {exc}); the data is "
            "corrupt or truncated."
        ) from exc


def read_image(
    source: str | os.PathLike[str] | bytes,
    *,
    max_pixels: int | None = limits.MAX_PIXELS,
) -> PILImage.Image:
    """Open and fully decode an image from a path or bytes, refusing bombs.

    Parameters
    ----------
    source
        Path to an image file, or its encoded bytes.
    max_pixels
        Largest width x height accepted, checked from the header before decoding.

    Returns
    -------
    PIL.Image.Image
        The decoded image, in the mode the file stores (no EXIF rotation).

    Raises
    ------
    FileNotFoundError
        The path does not exist.
    ImageTooLargeError
        More than ``max_pixels`` pixels.
    ImageDecodeError
        Not one of the supported formats, or corrupt data.

    Examples
    --------
    >>> from clothseg_tools._io import encode_png
    >>> read_image(encode_png(np.zeros((2, 3), np.uint8))).size
    (3, 2)
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, what = bytes(source), "image"
    else:
        path = Path(source)
        data, what = read_regular_file(path), f"image {path.name!r}"
    img = open_image(
        data,
        what,
        formats=IMAGE_FORMATS,
        max_pixels=max_pixels,
        too_large=ImageTooLargeError,
        undecodable=ImageDecodeError,
    )
    load_checked(img, what, ImageDecodeError)
    return img


# -- deep images (16-bit, 32-bit, float) to 8 bit ----------------------------------------


def _scale_16bit(values: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    wide = values.astype(np.uint32)
    wide += 128
    wide //= 257  # round(v * 255 / 65535), exactly
    return wide.astype(np.uint8)


def _from_int32(img: PILImage.Image) -> npt.NDArray[np.uint8]:
    arr = np.asarray(img)
    if img.format == "PNG":  # PNG has no 32-bit samples: this is 16-bit data
        return _scale_16bit(np.clip(arr, 0, 65535))
    top = int(arr.max()) if arr.size else 0
    if top <= 255:
        return np.clip(arr, 0, 255).astype(np.uint8)
    return _scale_16bit(np.clip(arr, 0, 65535))


def _from_float(img: PILImage.Image) -> npt.NDArray[np.uint8]:
    arr = np.array(img, dtype=np.float32)
    finite = arr[np.isfinite(arr)]
    # the range of the finite values decides the scale; +inf then means "fully on"
    if finite.size == 0 or float(finite.max()) <= 1.0:
        arr *= 255.0
    np.nan_to_num(arr, copy=False, nan=0.0, posinf=255.0, neginf=0.0)
    np.clip(arr, 0.0, 255.0, out=arr)
    np.rint(arr, out=arr)
    return arr.astype(np.uint8)


def scale_deep_image(image: PILImage.Image) -> npt.NDArray[np.uint8]:
    """An I;16, I or F image as an (H, W) uint8 plane, by the rule masks are read with.

    16-bit data is scaled (``round(v * 255 / 65535)``); other 32-bit images keep a
    maximum of at most 255 as it is and scale larger ones as 16-bit; float values of
    at most 1.0 are probabilities scaled by 255, larger ones are clipped to 0..255.

    Raises
    ------
    ValueError
        ``image`` is in another mode.

    Examples
    --------
    >>> from PIL import Image
    >>> scale_deep_image(Image.fromarray(np.array([[0, 65535]], np.uint16)))
    array([[  0, 255]], dtype=uint8)
    """
    mode = image.mode
    if mode.startswith("I;16"):
        return _scale_16bit(np.asarray(image))
    if mode == "I":
        return _from_int32(image)
    if mode == "F":
        return _from_float(image)
    raise ValueError(f"scale_deep_image reads I;16, I and F images, not mode {mode}.")


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
    return _check_open(data, name)[0]


def _check_open(data: bytes, name: str) -> tuple[ImageInfo, PILImage.Image]:
    """:func:`check_image_bytes`, also giving the opened (not yet decoded) image."""
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
    return ImageInfo(fmt, img.size[0], img.size[1], nbytes), img


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


def _check_array(arr: npt.NDArray[Any]) -> None:
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


def _array_png(arr: npt.NDArray[Any]) -> bytes:
    _check_array(arr)
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
    data, filename, _ = _load_opened(image)
    return data, filename


def _load_opened(image: Any, *, name: str | None = None) -> tuple[bytes, str, PILImage.Image]:
    """:func:`load_input`, also giving the checked image, opened (header read) once."""
    from PIL import Image

    filename: str | None = name
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
    info, img = _check_open(data, filename or "image")
    if not filename:
        filename = "image" + EXTENSIONS.get(info.format, ".bin")
    return data, filename, img


def decode_input_image(data: bytes) -> npt.NDArray[np.uint8]:
    """Check and decode an input image to (H, W, 3) uint8 RGB.

    No EXIF rotation is applied: masks align with the stored pixel grid, as Pillow
    opens it. Transparent pixels are composited over white (segmentation models
    read a cut-out on white far better than the arbitrary colour under alpha 0);
    16-bit and float images are scaled as masks are (see :func:`scale_deep_image`).

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
    return _decoded_rgb(_check_open(data, "image")[1], "image")


def _decoded_rgb(img: PILImage.Image, what: str) -> npt.NDArray[np.uint8]:
    """Decode an opened, checked image to (H, W, 3) uint8 RGB (the rule above)."""
    from PIL import Image

    load_checked(img, what, ImageDecodeError)
    mode = img.mode
    if mode == "RGB":
        return np.array(img)
    if mode.startswith("I") or mode == "F":
        grey = scale_deep_image(img)  # the same scaling masks get
        return np.repeat(grey[:, :, None], 3, axis=2)
    bands = img.getbands()
    if "A" in bands or "a" in bands or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.array(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.array(img.convert("RGB"))


def _array_rgb(arr: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    """A checked uint8 array as (H, W, 3) RGB, without encoding it.

    The result equals what encoding the array as PNG and decoding it would give;
    an RGB array is returned as a read-only view, not copied.
    """
    _check_array(arr)
    check_size(
        (arr.shape[1], arr.shape[0]),
        "The image array",
        max_pixels=limits.MAX_PIXELS,
        max_side=limits.MAX_SIDE,
        too_large=ImageTooLargeError,
        undecodable=ImageDecodeError,
    )
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2)
    if arr.shape[2] == 4:
        from PIL import Image

        white = Image.new("RGBA", (arr.shape[1], arr.shape[0]), (255, 255, 255, 255))
        rgba = Image.fromarray(np.ascontiguousarray(arr), "RGBA")
        return np.array(Image.alpha_composite(white, rgba).convert("RGB"))
    view = arr.view()
    view.flags.writeable = False
    return view


class Photo(NamedTuple):
    """An input photo, checked once and decoded once (see :func:`open_photo`)."""

    pixels: npt.NDArray[np.uint8]
    """(H, W, 3) uint8 RGB."""
    data: bytes | None
    """The encoded file (``None`` for an array given without ``need_bytes``)."""
    filename: str
    """The file's name, or ``image.<ext>`` for inputs without one."""


def open_photo(image: Any, *, name: str | None = None, need_bytes: bool = True) -> Photo:
    """Check and decode an input photo for an in-process engine, opening it once.

    Parameters
    ----------
    image
        Anything :func:`load_input` takes. A uint8 array is converted to RGB as it
        is: it is not encoded to PNG and decoded back.
    name
        The file name of bytes (for messages and :attr:`Photo.filename`).
    need_bytes
        Also give an array's encoded PNG (engines that key on file bytes, such as
        replay, need them). Other inputs always come with their bytes.

    Returns
    -------
    Photo

    Raises
    ------
    InputError
        As for :func:`load_input` and :func:`decode_input_image`. Arrays are held to
        the pixel limits; the 20 MB file limit applies to files.

    Examples
    --------
    >>> photo = open_photo(np.zeros((2, 3), np.uint8), need_bytes=False)
    >>> photo.pixels.shape, photo.data, photo.filename
    ((2, 3, 3), None, 'image.png')
    """
    if isinstance(image, np.ndarray):
        pixels = _array_rgb(image)
        return Photo(pixels, _array_png(image) if need_bytes else None, "image.png")
    data, filename, img = _load_opened(image, name=name)
    return Photo(_decoded_rgb(img, filename), data, filename)
