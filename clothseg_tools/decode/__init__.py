"""Turn the service's mask values into (H, W) uint8 arrays.

A mask value may be an http(s) URL, raw base64 (padded or not, standard or url-safe
alphabet, with embedded newlines), a ``data:image/...;base64,`` URI, encoded bytes, a
path, or a PIL image. PNG, JPEG, WebP, BMP and TIFF are decoded.

Conversion rule
---------------
Every mode becomes one (H, W) uint8 plane, 0 = not the class, 255 = the class:

==========  ==================================================================
mode        rule
==========  ==================================================================
L           kept as it is
1           0 / 255
P           each palette entry's brightest channel (grey palettes: the grey);
            with transparency, as RGBA
RGB         the brightest channel per pixel (a grey pixel keeps its grey, a pure
            red or green mask reads as 255)
LA, RGBA    alpha all 255: the colour rule above. Colour constant (within 16
            levels) where alpha > 0: the alpha channel (grayscale-in-alpha masks).
            Otherwise colour x alpha / 255 (transparent = not the class)
I;16        16-bit scaled to 8 bit: ``round(v * 255 / 65535)``
I           16-bit PNGs as I;16; other 32-bit images: negatives -> 0, a maximum of
            at most 255 is kept as it is, larger values are clipped to 65535 and
            scaled as 16-bit
F           NaN -> 0; finite values of at most 1.0 are probabilities, scaled by
            255; larger values are clipped to 0..255; +inf -> 255; rounded
others      converted to RGB (RGBA when they carry alpha) first
==========  ==================================================================

Downloads go through one pooled :class:`requests.Session` per process, with a
timeout and a byte cap. Signed URLs never appear in messages: only scheme, host and
path do. Before decoding, the size in the image header is checked against a pixel
cap, so a decompression bomb is refused before anything is allocated.

Examples
--------
>>> import base64, numpy as np
>>> from clothseg_tools._io import encode_png
>>> mask = np.array([[0, 128, 255]], np.uint8)
>>> value = base64.b64encode(encode_png(mask)).decode().rstrip("=")
>>> decode_mask(value, name="tops")
array([[  0, 128, 255]], dtype=uint8)
"""

from __future__ import annotations

import base64
import binascii
import os
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import numpy.typing as npt

from .. import limits
from .._io import read_regular_file
from ..contract import is_url, redact_url
from ..errors import MaskDecodeError, ShapeMismatchError
from ..inputs import sniff_format
from ._http import DEFAULT_TIMEOUT, EXPIRED_STATUSES, default_session, download
from ._image import (
    IMAGE_FORMATS,
    MASK_FORMATS,
    check_size,
    decode_into,
    mask_from_image,
    open_image,
    read_image,
)

if TYPE_CHECKING:
    import requests
    from PIL import Image as PILImage

__all__ = [
    "DEFAULT_TIMEOUT",
    "EXPIRED_STATUSES",
    "IMAGE_FORMATS",
    "MASK_FORMATS",
    "decode_mask",
    "decode_masks",
    "decode_stack",
    "default_session",
    "download",
    "mask_from_bytes",
    "mask_from_image",
    "read_image",
    "read_mask_file",
    "redact_url",
]

_T = TypeVar("_T")


# -- decoding masks -------------------------------------------------------------------


def _open_mask(data: bytes, what: str, max_pixels: int | None) -> PILImage.Image:
    return open_image(data, what, formats=MASK_FORMATS, max_pixels=max_pixels)


def mask_from_bytes(
    data: bytes,
    *,
    name: str | None = None,
    max_pixels: int | None = limits.MAX_PIXELS,
) -> npt.NDArray[np.uint8]:
    """Decode encoded image bytes (PNG, JPEG, WebP, BMP, TIFF) to an (H, W) uint8 mask.

    Parameters
    ----------
    data
        The encoded image.
    name
        Class or source name, used in error messages.
    max_pixels
        Largest width x height accepted, checked from the header before decoding.

    Returns
    -------
    numpy.ndarray
        (H, W) uint8, converted by the module's rule.

    Raises
    ------
    MaskDecodeError
        Empty, undecodable, truncated, or larger than ``max_pixels``.

    Examples
    --------
    >>> from clothseg_tools._io import encode_png
    >>> mask_from_bytes(encode_png(np.full((1, 2), 255, np.uint8)))
    array([[255, 255]], dtype=uint8)
    """
    what = f"mask {name!r}" if name else "mask"
    return _Opened(_open_mask(data, what, max_pixels), what).decode()


def read_mask_file(
    path: str | os.PathLike[str], *, max_pixels: int | None = limits.MAX_PIXELS
) -> npt.NDArray[np.uint8]:
    """Read a mask image file as an (H, W) uint8 array.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    MaskDecodeError
        The file is not a decodable image (the message names the file).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from clothseg_tools._io import write_png
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "tops.png"
    >>> write_png(p, np.eye(2, dtype=np.uint8) * 255)
    >>> read_mask_file(p)
    array([[255,   0],
           [  0, 255]], dtype=uint8)
    """
    p = Path(path)
    return mask_from_bytes(read_regular_file(p), name=str(p), max_pixels=max_pixels)


def _b64decode(text: str) -> bytes:
    """Base64 with or without padding, either alphabet, whitespace anywhere."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        pass
    s = "".join(text.split())
    if "%" in s:  # percent-encoded inside a data URI
        s = urllib.parse.unquote(s)
    s = s.replace("-", "+").replace("_", "/").rstrip("=")
    if len(s) % 4 == 1:
        raise binascii.Error("base64 text has an impossible length")
    return base64.b64decode(s + "=" * (-len(s) % 4), validate=True)


class _NotAnImageType(Exception):
    """A data URI whose media type is not ``image/...``."""


def _parse_data_uri(uri: str) -> bytes:
    header, sep, payload = uri.partition(",")
    if not sep:
        raise ValueError("a data URI needs a ',' before its data")
    # RFC 2397: no media type means text/plain; only images are masks
    media_type = header[len("data:") :].split(";", 1)[0].strip().lower() or "text/plain"
    if not media_type.startswith("image/"):
        raise _NotAnImageType(media_type)
    if header.lower().rstrip().endswith(";base64"):
        return _b64decode(payload)
    return urllib.parse.unquote_to_bytes(payload)


def _check_inline_size(text: str, label: str, max_bytes: int) -> None:
    """Refuse base64 text whose decoded size would pass ``max_bytes``, before decoding."""
    # an upper bound (whitespace and a data URI's header only shrink it), exact for
    # plain base64; counted on the text, so nothing is decoded to refuse it
    decoded = len(text.rstrip().rstrip("=")) * 3 // 4
    if decoded > max_bytes:
        raise MaskDecodeError(
            f"{label}: the inline (base64) value is {len(text):,} characters, up to "
            f"{decoded:,} bytes decoded, over the limit of {max_bytes:,} bytes; pass a "
            "larger max_bytes if such masks are expected."
        )


_PRINTABLE = b"\t\n\r\x0b\x0c" + bytes(range(32, 127))


def _is_text(data: bytes) -> bool:
    """Printable ASCII (base64 text or a URL sent as bytes), not binary junk."""
    return bool(data.strip()) and not data.translate(None, _PRINTABLE)


def _short(text: str, n: int = 32) -> str:
    return repr(text if len(text) <= n else text[:n] + "...")


def _is_existing_file(text: str) -> bool:
    if len(text) > 4096 or "\n" in text or "\0" in text:
        return False
    try:
        return os.path.isfile(text)
    except (OSError, ValueError):
        return False


class _Opened:
    """A mask fetched and opened (header read), waiting to be decoded.

    ``ours`` is False for a PIL image the caller passed in: it is never decoded into
    our buffer, which would tie the caller's image to the returned array.
    """

    __slots__ = ("image", "ours", "what")

    def __init__(self, image: PILImage.Image, what: str, *, ours: bool = True) -> None:
        self.image = image
        self.what = what
        self.ours = ours

    def decode_into(self, out: npt.NDArray[np.uint8]) -> None:
        decode_into(self.image, out, self.what, in_place=self.ours)

    def decode(self) -> npt.NDArray[np.uint8]:
        out = np.empty((self.image.size[1], self.image.size[0]), np.uint8)
        self.decode_into(out)
        return out


def _open_value(
    value: Any,
    *,
    name: str | None,
    session: requests.Session | None,
    timeout: float | tuple[float, float],
    max_bytes: int,
    max_pixels: int | None,
    allow_paths: bool = True,
) -> _Opened:
    """Fetch ``value`` (URL, base64, data URI, bytes, path, PIL image) and open it."""
    from PIL import Image

    label = f"mask {name!r}" if name else "mask"
    if isinstance(value, Image.Image):
        check_size(
            value.size,
            label,
            max_pixels=max_pixels,
            max_side=None,
            too_large=MaskDecodeError,
            undecodable=MaskDecodeError,
        )
        return _Opened(value, label, ours=False)
    if isinstance(value, os.PathLike) and not allow_paths:
        raise MaskDecodeError(f"{label}: local files are not read here (allow_paths=False).")
    if isinstance(value, os.PathLike):
        path = Path(value)
        what = f"{label} ({path})"
        return _Opened(_open_mask(read_regular_file(path), what, max_pixels), what)
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)

        if sniff_format(data) is None and _is_text(data):
            value = data.decode("ascii")  # base64 text or a URL sent as bytes
        else:
            return _Opened(_open_mask(data, label, max_pixels), label)
    if not isinstance(value, str):
        raise MaskDecodeError(
            f"{label}: expected a URL, base64 text, a data URI, bytes or a path, "
            f"got {type(value).__name__}."
        )
    text = value.strip()
    head = text[:8].lower()
    if is_url(text):
        what = f"{label} ({redact_url(text)})"
        data = download(text, session=session, timeout=timeout, max_bytes=max_bytes, what=label)
        return _Opened(_open_mask(data, what, max_pixels), what)
    if head.startswith("data:"):
        _check_inline_size(text, label, max_bytes)
        try:
            data = _parse_data_uri(text)
        except _NotAnImageType as exc:
            raise MaskDecodeError(
                f"{label}: the data URI's media type is {str(exc)!r}, not an image type; a mask "
                "is sent as data:image/png;base64,..."
            ) from None
        except (binascii.Error, ValueError) as exc:
            raise MaskDecodeError(f"{label}: the data URI is malformed ({exc}).") from None
        what = f"{label} (data URI)"
        return _Opened(_open_mask(data, what, max_pixels), what)
    if "://" in text[:16]:
        raise MaskDecodeError(f"{label}: only http(s) URLs are fetched, got {redact_url(text)}.")
    # the one check of "may this name a file": on the same stripped text that is read
    if allow_paths and _is_existing_file(text):
        what = f"{label} ({text})"
        return _Opened(_open_mask(read_regular_file(text), what, max_pixels), what)
    _check_inline_size(text, label, max_bytes)
    try:
        data = _b64decode(text)
    except (binascii.Error, ValueError):
        kinds = "a URL, a data URI, base64 image data, or an existing file"
        if not allow_paths:
            kinds = "a URL, a data URI, or base64 image data (local files are never read here)"
        raise MaskDecodeError(f"{label}: the value {_short(text)} is not {kinds}.") from None
    what = f"{label} (base64, {len(data):,} bytes)"
    return _Opened(_open_mask(data, what, max_pixels), what)


def decode_mask(
    value: Any,
    *,
    name: str | None = None,
    session: requests.Session | None = None,
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
    max_bytes: int = limits.MAX_MASK_BYTES,
    max_pixels: int | None = limits.MAX_PIXELS,
    allow_paths: bool = True,
) -> npt.NDArray[np.uint8]:
    """Decode one mask value to an (H, W) uint8 array.

    Parameters
    ----------
    value
        An http(s) URL; raw base64 (padding optional, standard or url-safe alphabet,
        whitespace and newlines allowed); a ``data:image/...;base64,`` URI; encoded
        bytes; a path (``str`` naming an existing file, or ``os.PathLike``); or a
        PIL image.
    name
        Class name, used in error messages.
    session
        Session for URL downloads (default: :func:`default_session`).
    timeout, max_bytes
        Passed to :func:`download`.
    max_pixels
        Largest width x height accepted, checked before decoding.
    allow_paths
        Whether a value may name a local file. Pass False for values that come
        from the network: a service must not be able to make the client read
        ``/etc/passwd``.

    Returns
    -------
    numpy.ndarray
        (H, W) uint8, writable, converted by the module's rule.

    Raises
    ------
    MaskDecodeError
        The value cannot be decoded (the message names the class and source, never a
        URL's query string), or the image is over ``max_pixels``.
    ResultExpiredError
        A URL answered 403/404/410 (links live one hour: query the task again).
    APIConnectionError, APITimeoutError
        The download failed (see :func:`download`).

    Examples
    --------
    >>> from clothseg_tools._io import encode_png
    >>> png = encode_png(np.ones((1, 1), np.uint8))
    >>> uri = "data:image/png;base64," + base64.b64encode(png).decode()
    >>> decode_mask(uri)
    array([[1]], dtype=uint8)
    >>> decode_mask("not an image", name="tops")
    Traceback (most recent call last):
    ...
    clothseg_tools.errors.MaskDecodeError: mask 'tops': the value 'not an image' is not a URL, ...
    """
    return _open_value(
        value,
        name=name,
        session=session,
        timeout=timeout,
        max_bytes=max_bytes,
        max_pixels=max_pixels,
        allow_paths=allow_paths,
    ).decode()


def _run_all(fn: Callable[[Any], _T], items: Sequence[Any], workers: int) -> list[_T]:
    """``[fn(x) for x in items]`` on up to ``workers`` threads; the first error (in
    item order) is raised and work not yet started is cancelled."""
    if workers <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        futures: list[Future[_T]] = [pool.submit(fn, x) for x in items]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def decode_stack(
    mapping: Mapping[str, Any],
    *,
    workers: int = 4,
    session: requests.Session | None = None,
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
    max_bytes: int = limits.MAX_MASK_BYTES,
    max_pixels: int | None = limits.MAX_PIXELS,
    shape: tuple[int, int] | None = None,
    allow_paths: bool = True,
) -> tuple[list[str], npt.NDArray[np.uint8]]:
    """Decode many mask values at once, in threads, into one (C, H, W) uint8 stack.

    Downloads run concurrently, and so does decoding: Pillow releases the GIL while
    it inflates and unfilters. Masks are decoded straight into the stack.
    :func:`clothseg_tools.masks.decode_masks` wraps the stack in a MaskSet.

    Parameters
    ----------
    mapping
        Class name -> mask value (anything :func:`decode_mask` accepts). Order is kept.
    workers
        Threads to use; 1 decodes in the calling thread.
    session, timeout, max_bytes, max_pixels, allow_paths
        As for :func:`decode_mask`.
    shape
        Expected (H, W) of every mask (the source image's size), if known. Required
        when ``mapping`` is empty.

    Returns
    -------
    names : list of str
        The class names, in ``mapping`` order.
    stack : numpy.ndarray
        (C, H, W) uint8, one plane per name.

    Raises
    ------
    ShapeMismatchError
        Two masks (or a mask and ``shape``) differ in size; both are named.
    MaskDecodeError, ResultExpiredError, APIConnectionError
        As for :func:`decode_mask`; the first failing class (in mapping order) is
        reported.

    Examples
    --------
    >>> from clothseg_tools._io import encode_png
    >>> png = encode_png(np.full((2, 3), 255, np.uint8))
    >>> names, stack = decode_stack({"tops": base64.b64encode(png).decode(), "hair": png})
    >>> names, stack.shape
    (['tops', 'hair'], (2, 2, 3))
    """
    names = list(mapping)
    if not names:
        if shape is None:
            raise ValueError("decode_masks got no masks; pass shape=(H, W) for an empty set.")
        return names, np.empty((0, int(shape[0]), int(shape[1])), np.uint8)

    def fetch(name: str) -> _Opened:
        return _open_value(
            mapping[name],
            name=name,
            session=session,
            timeout=timeout,
            max_bytes=max_bytes,
            max_pixels=max_pixels,
            allow_paths=allow_paths,
        )

    opened = _run_all(fetch, names, workers)
    w, h = opened[0].image.size
    ref_label, ref_shape = repr(names[0]), (h, w)
    if shape is not None:
        ref_label, ref_shape = "the image", (int(shape[0]), int(shape[1]))
    for name, item in zip(names, opened, strict=True):
        got = (item.image.size[1], item.image.size[0])
        if got != ref_shape:
            raise ShapeMismatchError(
                f"mask {name!r} has shape {got} but {ref_label} has shape {ref_shape}; "
                "the masks of one result must all have the image's size."
            )
    stack = np.empty((len(names), *ref_shape), np.uint8)

    def decode(i: int) -> None:
        opened[i].decode_into(stack[i])

    _run_all(decode, range(len(names)), workers)
    return names, stack


def __getattr__(name: str) -> Any:
    if name == "decode_masks":
        # alias: decode_masks builds a MaskSet, so it lives in masks (a layer above)
        from ..masks import decode_masks

        return decode_masks
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
