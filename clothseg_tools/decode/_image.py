"""The mode -> uint8 mask conversion rule, and decoding an opened mask into a stack.

Opening images safely (format allow-list, pixel cap from the header) belongs to
:mod:`clothseg_tools.inputs`; the names are re-exported here for older imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..errors import ClothsegError, MaskDecodeError
from ..inputs import (
    IMAGE_FORMATS,
    check_size,
    load_checked,
    open_image,
    read_image,
    scale_deep_image,
)
from ..limits import MASK_FORMATS

if TYPE_CHECKING:
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

# Formats whose decoders write straight into the image memory Pillow is handed
# before load(); only these take the no-copy path of decode_into.
_IN_PLACE_FORMATS = frozenset({"PNG", "JPEG", "BMP"})
# Colour spread (levels) below which an RGBA/LA mask counts as "one colour".
_CONSTANT_COLOUR_TOLERANCE = 16


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
    if mode.startswith("I") or mode == "F":
        return scale_deep_image(image)
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
