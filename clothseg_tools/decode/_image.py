"""Opening images safely (format allow-list, pixel cap from the header) and the
mode -> uint8 mask conversion rule.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .. import limits
from .._io import read_regular_file
from ..errors import ClothsegError, ImageDecodeError, ImageTooLargeError, MaskDecodeError

if TYPE_CHECKING:
    import os

    from PIL import Image as PILImage

__all__ = [
    "IMAGE_FORMATS",
    "MASK_FORMATS",
    "check_size",
    "decode_into",
    "load_checked",
    "mask_from_image",
    "open_image",
    "read_image",
]

#: Pillow formats a mask may come in.
MASK_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "BMP", "TIFF")

#: Formats :func:`read_image` opens. Pillow's other plugins (EPS through Ghostscript,
#: PDF, ...) are never tried on untrusted bytes.
IMAGE_FORMATS: tuple[str, ...] = tuple(
    sorted(set(limits.INPUT_FORMATS) | set(MASK_FORMATS) | {"GIF", "PPM"})
)

# Formats whose decoders write straight into the image memory Pillow is handed
# before load(); only these take the no-copy path of decode_into.
_IN_PLACE_FORMATS = frozenset({"PNG", "JPEG", "BMP"})
# Colour spread (levels) below which an RGBA/LA mask counts as "one colour".
_CONSTANT_COLOUR_TOLERANCE = 16


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


# -- mode conversion ------------------------------------------------------------------


def _brightest(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    out = np.maximum(rgb[..., 0], rgb[..., 1])
    np.maximum(out, rgb[..., 2], out=out)
    return out


def _colour_plane(img: PILImage.Image) -> npt.NDArray[np.uint8]:
    """Grey plane of an L/LA/RGB/RGBA image by the brightest-channel rule."""
    if img.mode in ("L", "LA"):
        return np.array(img.getchannel(0))
    return _brightest(np.asarray(img.convert("RGB")))


def _with_alpha(colour: npt.NDArray[np.uint8], alpha: npt.NDArray[np.uint8]) -> Any:
    if int(alpha.min()) == 255:
        return colour
    visible = colour[alpha > 0]
    if visible.size == 0:
        return alpha.copy()
    if int(visible.max()) - int(visible.min()) <= _CONSTANT_COLOUR_TOLERANCE:
        # grayscale-in-alpha: one colour painted through an alpha mask
        return alpha.copy()
    product = colour.astype(np.uint16)
    product *= alpha
    product += 127
    product //= 255
    return product.astype(np.uint8)


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


def _from_palette(img: PILImage.Image) -> npt.NDArray[np.uint8]:
    if "transparency" in img.info:
        return mask_from_image(img.convert("RGBA"))
    palette = np.frombuffer(bytes(img.getpalette("RGB") or b""), np.uint8)
    lut = np.zeros(256, np.uint8)
    entries = _brightest(palette.reshape(-1, 3))[:256]
    lut[: entries.size] = entries
    return lut[np.asarray(img)]


def mask_from_image(image: PILImage.Image) -> npt.NDArray[np.uint8]:
    """Convert a PIL image of any mode to an (H, W) uint8 mask by the module's rule.

    See the table in this module's docstring: 16-bit data is scaled, RGB takes the
    brightest channel, and an RGBA/LA image whose colour is constant is read from
    its alpha channel.

    Parameters
    ----------
    image
        A PIL image (decoded on demand).

    Returns
    -------
    numpy.ndarray
        (H, W) uint8, writable.

    Examples
    --------
    >>> from PIL import Image
    >>> rgba = np.zeros((1, 2, 4), np.uint8); rgba[..., :3] = 255; rgba[0, 1, 3] = 200
    >>> mask_from_image(Image.fromarray(rgba))  # white painted through alpha
    array([[  0, 200]], dtype=uint8)
    >>> mask_from_image(Image.fromarray(np.array([[0, 65535]], np.uint16)))
    array([[  0, 255]], dtype=uint8)
    """
    mode = image.mode
    if mode == "L":
        arr = np.asarray(image)
        return arr if arr.flags.writeable else arr.copy()
    if mode == "1":
        return np.array(image.convert("L"))
    if mode == "P":
        return _from_palette(image)
    if mode == "RGB":
        return _brightest(np.asarray(image))
    if mode in ("LA", "RGBA"):
        return _with_alpha(_colour_plane(image), np.asarray(image.getchannel("A")))
    if mode.startswith("I;16"):
        return _scale_16bit(np.asarray(image))
    if mode == "I":
        return _from_int32(image)
    if mode == "F":
        return _from_float(image)
    if mode in ("La", "RGBa"):  # premultiplied: Pillow only converts these to straight alpha
        return mask_from_image(image.convert(mode.upper()))
    has_alpha = "A" in image.getbands()
    return mask_from_image(image.convert("RGBA" if has_alpha else "RGB"))


def decode_into(
    img: PILImage.Image, out: npt.NDArray[np.uint8], what: str, *, in_place: bool = True
) -> None:
    """Decode an opened image into ``out`` (an (H, W) uint8 C-contiguous array).

    With ``in_place``, an 8-bit grey PNG/JPEG/BMP is decoded straight into ``out``
    (``img`` then shares ``out``'s memory); anything else is decoded and copied.
    """
    if (
        in_place
        and img.mode == "L"
        and img.format in _IN_PLACE_FORMATS
        and getattr(img, "tile", None)
        and out.flags.c_contiguous
        and out.flags.writeable
        and out.shape == (img.size[1], img.size[0])
    ):
        from PIL import Image

        # Hand Pillow our array as the image memory, so the decoder writes the
        # pixels where they belong: no tobytes() copy, no copy into the stack.
        core = Image.core.map_buffer(out, img.size, "raw", 0, ("L", 0, 1))
        img.im = core
        load_checked(img, what, MaskDecodeError)
        if img.im is core:
            return
        # This Pillow replaced the buffer while loading: fall back to a copy.
    else:
        load_checked(img, what, MaskDecodeError)
    try:
        out[...] = mask_from_image(img)
    except ClothsegError:
        raise
    except Exception as exc:
        raise MaskDecodeError(f"{what} could not be converted to a mask: {exc}") from exc
