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
F           NaN -> 0; a maximum of at most 1.0 is a probability, scaled by 255;
            larger values are clipped to 0..255; rounded
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
import io
import logging
import os
import struct
import threading
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import numpy as np
import numpy.typing as npt

from . import limits
from .errors import (
    APIConnectionError,
    APITimeoutError,
    ClothsegError,
    ImageDecodeError,
    ImageTooLargeError,
    MaskDecodeError,
    ResultExpiredError,
    ShapeMismatchError,
)

if TYPE_CHECKING:
    import requests
    from PIL import Image as PILImage

    from .masks import MaskSet

__all__ = [
    "DEFAULT_TIMEOUT",
    "MASK_FORMATS",
    "decode_mask",
    "decode_masks",
    "default_session",
    "download",
    "mask_from_bytes",
    "mask_from_image",
    "read_image",
    "read_mask_file",
    "redact_url",
]

logger = logging.getLogger("clothseg_tools")

#: Pillow formats a mask may come in.
MASK_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "BMP", "TIFF")

#: Formats :func:`read_image` opens. Pillow's other plugins (EPS through Ghostscript,
#: PDF, ...) are never tried on untrusted bytes.
IMAGE_FORMATS: tuple[str, ...] = tuple(
    sorted(set(limits.INPUT_FORMATS) | set(MASK_FORMATS) | {"GIF", "PPM"})
)

#: (connect, read) seconds for one download.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 30.0)

#: HTTP statuses that mean the signed link has expired or was revoked.
EXPIRED_STATUSES = frozenset({403, 404, 410})

# Formats whose decoders write straight into the image memory Pillow is handed
# before load(); only these take the no-copy path of _decode_into.
_IN_PLACE_FORMATS = frozenset({"PNG", "JPEG", "BMP"})
# Colour spread (levels) below which an RGBA/LA mask counts as "one colour".
_CONSTANT_COLOUR_TOLERANCE = 16
_DOWNLOAD_CHUNK = 256 * 1024

_T = TypeVar("_T")


# -- URLs and HTTP --------------------------------------------------------------------


def redact_url(url: str) -> str:
    """Return ``url`` without its query string, fragment and credentials.

    Signed result links carry their token in the query string; this is the only
    form of a URL the library puts in messages and logs.

    Examples
    --------
    >>> redact_url("https://user:pw@cdn.example.com/m/tops.png?X-Amz-Signature=abc#x")
    'https://cdn.example.com/m/tops.png'
    """
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
    except ValueError:
        return "<unparsable URL>"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


_session_lock = threading.Lock()
_session: requests.Session | None = None
_session_pid: int | None = None


def default_session() -> requests.Session:
    """The pooled :class:`requests.Session` shared by every download of this process.

    Connections are kept alive and reused (up to 16 per host, so threads do not
    wait for each other). Connection errors and 429/5xx answers to GET are retried
    three times with a short exponential backoff (urllib3 ``Retry``). A forked
    child gets its own session.

    Examples
    --------
    >>> default_session() is default_session()
    True
    """
    global _session, _session_pid
    with _session_lock:
        if _session is None or _session_pid != os.getpid():
            _session = _new_session()
            _session_pid = os.getpid()
        return _session


def _new_session() -> requests.Session:
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    from . import __version__

    retry = Retry(
        total=3,
        backoff_factor=0.3,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"GET", "HEAD"}),
        # a Retry-After of an hour would stall a whole batch; back off briefly instead
        respect_retry_after_header=False,
        raise_on_status=False,
    )
    adapter = HTTPAdapter(pool_connections=8, pool_maxsize=16, max_retries=retry)
    session = requests.Session()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = f"clothseg_tools/{__version__}"
    return session


def download(
    url: str,
    *,
    session: requests.Session | None = None,
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
    max_bytes: int = limits.MAX_MASK_BYTES,
    what: str = "mask",
) -> bytes:
    """Download ``url`` into memory, streaming, and stop at ``max_bytes``.

    Parameters
    ----------
    url
        An http(s) URL (a signed result link, typically).
    session
        Session to use; defaults to :func:`default_session`.
    timeout
        Seconds, or ``(connect, read)`` seconds; the read timeout applies to each
        wait for data, as in requests.
    max_bytes
        Largest body accepted. A ``Content-Length`` over it is refused before the
        body is read; a body without one is cut off as soon as it passes the cap.
    what
        What is being downloaded, for messages (``"mask 'tops'"``).

    Returns
    -------
    bytes
        The body (after any ``Content-Encoding`` is undone).

    Raises
    ------
    ResultExpiredError
        The link answered 403, 404 or 410: result links live one hour.
    MaskDecodeError
        Not an http(s) URL, another 4xx answer, or a body over ``max_bytes``.
    APITimeoutError
        Connecting or waiting for data took longer than ``timeout``.
    APIConnectionError
        No connection, a dropped connection, or 429/5xx after the retries.

    Notes
    -----
    Messages name the URL without its query string (see :func:`redact_url`), and
    the requests exception is not chained because its text holds the full URL.
    """
    import requests

    safe = redact_url(url)
    if urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https"):
        raise MaskDecodeError(f"Cannot download {what} from {safe}: only http(s) URLs are fetched.")
    sess = session if session is not None else default_session()
    try:
        with sess.get(url, timeout=timeout, stream=True) as resp:
            _check_status(resp.status_code, safe, what)
            return _read_capped(resp, max_bytes, safe, what)
    except requests.Timeout:
        err: ClothsegError = APITimeoutError(
            f"Timed out downloading {what} from {safe} (timeout={timeout!r} s). "
            "Check the network, or pass a longer timeout."
        )
    except requests.RequestException as exc:
        if _is_read_timeout(exc):
            err = APITimeoutError(
                f"Timed out reading {what} from {safe} (timeout={timeout!r} s). "
                "Check the network, or pass a longer timeout."
            )
        else:
            err = APIConnectionError(
                f"Could not download {what} from {safe} ({type(exc).__name__}). "
                "Check the network and try again."
            )
    # requests' own message embeds the full URL, signed query included: not chained.
    raise err from None


def _check_status(status: int, safe: str, what: str) -> None:
    if status < 400:
        return
    if status in EXPIRED_STATUSES:
        raise ResultExpiredError(
            f"The {what} link {safe} answered HTTP {status}: result links are valid for one "
            "hour. Query the task again (Client.get_task) for fresh links, or run it again."
        )
    if status == 429 or status >= 500:
        raise APIConnectionError(
            f"The server holding {what} ({safe}) answered HTTP {status} after retries; "
            "try again later."
        )
    raise MaskDecodeError(f"Downloading {what} from {safe} failed with HTTP {status}.")


def _read_capped(resp: requests.Response, max_bytes: int, safe: str, what: str) -> bytes:
    declared = resp.headers.get("Content-Length")
    if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
        raise MaskDecodeError(
            f"{what} at {safe} is {int(declared):,} bytes, over the limit of {max_bytes:,}; "
            "refusing to download it (raise max_bytes if it is genuine)."
        )
    buf = bytearray()
    for chunk in resp.iter_content(chunk_size=_DOWNLOAD_CHUNK):
        buf += chunk
        if len(buf) > max_bytes:
            raise MaskDecodeError(
                f"{what} at {safe} is larger than the limit of {max_bytes:,} bytes; "
                "stopped downloading (raise max_bytes if it is genuine)."
            )
    logger.debug("downloaded %s from %s (%d bytes)", what, safe, len(buf))
    return bytes(buf)


def _is_read_timeout(exc: BaseException) -> bool:
    # requests reports a read timeout in the middle of a streamed body as a
    # ConnectionError wrapping urllib3's ReadTimeoutError.
    from urllib3.exceptions import ReadTimeoutError

    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        cur = stack.pop()
        if id(cur) in seen or not isinstance(cur, BaseException):
            continue
        seen.add(id(cur))
        if isinstance(cur, ReadTimeoutError):
            return True
        stack.extend([*cur.args, cur.__cause__, cur.__context__])
    return False


# -- opening images safely ------------------------------------------------------------


def _png_header_size(data: bytes) -> tuple[int, int] | None:
    # Read the size from IHDR ourselves: Pillow warns (DecompressionBombWarning) on
    # huge sizes before we get to refuse them, and PNG is the common case.
    if len(data) >= 24 and data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        w, h = struct.unpack(">II", data[16:24])
        return int(w), int(h)
    return None


def _check_size(
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


def _open_image(
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
            _check_size(header, what, **limits_kw)  # type: ignore[arg-type]
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
        raise undecodable(f"{what} could not be read: {exc}") from exc
    _check_size(img.size, what, **limits_kw)  # type: ignore[arg-type]
    return img


def _load(img: PILImage.Image, what: str, undecodable: type[ClothsegError]) -> None:
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
        data, what = path.read_bytes(), f"image {path.name!r}"
    img = _open_image(
        data,
        what,
        formats=IMAGE_FORMATS,
        max_pixels=max_pixels,
        too_large=ImageTooLargeError,
        undecodable=ImageDecodeError,
    )
    _load(img, what, ImageDecodeError)
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
    np.nan_to_num(arr, copy=False, nan=0.0, posinf=255.0, neginf=0.0)
    if arr.size and float(arr.max()) <= 1.0:
        arr *= 255.0
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
    has_alpha = "A" in image.getbands() or "a" in image.getbands()
    return mask_from_image(image.convert("RGBA" if has_alpha else "RGB"))


# -- decoding masks -------------------------------------------------------------------


def _decode_into(img: PILImage.Image, out: npt.NDArray[np.uint8], what: str) -> None:
    """Decode an opened image into ``out`` (an (H, W) uint8 C-contiguous array)."""
    if (
        img.mode == "L"
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
        _load(img, what, MaskDecodeError)
        if img.im is core:
            return
        # This Pillow replaced the buffer while loading: fall back to a copy.
    else:
        _load(img, what, MaskDecodeError)
    try:
        out[...] = mask_from_image(img)
    except ClothsegError:
        raise
    except Exception as exc:
        raise MaskDecodeError(f"{what} could not be converted to a mask: {exc}") from exc


def _decode_opened(img: PILImage.Image, what: str) -> npt.NDArray[np.uint8]:
    out = np.empty((img.size[1], img.size[0]), np.uint8)
    _decode_into(img, out, what)
    return out


def _open_mask(data: bytes, what: str, max_pixels: int | None) -> PILImage.Image:
    return _open_image(data, what, formats=MASK_FORMATS, max_pixels=max_pixels)


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
    return _decode_opened(_open_mask(data, what, max_pixels), what)


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
    return mask_from_bytes(p.read_bytes(), name=str(p), max_pixels=max_pixels)


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


def _parse_data_uri(uri: str) -> bytes:
    header, sep, payload = uri.partition(",")
    if not sep:
        raise ValueError("a data URI needs a ',' before its data")
    if header.lower().rstrip().endswith(";base64"):
        return _b64decode(payload)
    return urllib.parse.unquote_to_bytes(payload)


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
    """A mask fetched and opened (header read), waiting to be decoded."""

    __slots__ = ("image", "what")

    def __init__(self, image: PILImage.Image, what: str) -> None:
        self.image = image
        self.what = what


def _open_value(
    value: Any,
    *,
    name: str | None,
    session: requests.Session | None,
    timeout: float | tuple[float, float],
    max_bytes: int,
    max_pixels: int | None,
) -> _Opened:
    """Fetch ``value`` (URL, base64, data URI, bytes, path, PIL image) and open it."""
    from PIL import Image

    label = f"mask {name!r}" if name else "mask"
    if isinstance(value, Image.Image):
        _check_size(
            value.size,
            label,
            max_pixels=max_pixels,
            max_side=None,
            too_large=MaskDecodeError,
            undecodable=MaskDecodeError,
        )
        return _Opened(value, label)
    if isinstance(value, os.PathLike):
        path = Path(value)
        return _Opened(_open_mask(path.read_bytes(), f"{label} ({path})", max_pixels), label)
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        from .inputs import sniff_format

        if sniff_format(data) is None and data.isascii() and data.strip():
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
    if head.startswith(("http://", "https://")):
        what = f"{label} ({redact_url(text)})"
        data = download(text, session=session, timeout=timeout, max_bytes=max_bytes, what=label)
        return _Opened(_open_mask(data, what, max_pixels), what)
    if head.startswith("data:"):
        try:
            data = _parse_data_uri(text)
        except (binascii.Error, ValueError) as exc:
            raise MaskDecodeError(f"{label}: the data URI is malformed ({exc}).") from None
        return _Opened(_open_mask(data, f"{label} (data URI)", max_pixels), label)
    if "://" in text[:16]:
        raise MaskDecodeError(f"{label}: only http(s) URLs are fetched, got {redact_url(text)}.")
    if _is_existing_file(text):
        return _Opened(_open_mask(Path(text).read_bytes(), f"{label} ({text})", max_pixels), label)
    try:
        data = _b64decode(text)
    except (binascii.Error, ValueError):
        raise MaskDecodeError(
            f"{label}: the value {_short(text)} is not a URL, a data URI, base64 image "
            "data, or an existing file."
        ) from None
    return _Opened(_open_mask(data, f"{label} (base64, {len(data):,} bytes)", max_pixels), label)


def decode_mask(
    value: Any,
    *,
    name: str | None = None,
    session: requests.Session | None = None,
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
    max_bytes: int = limits.MAX_MASK_BYTES,
    max_pixels: int | None = limits.MAX_PIXELS,
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
    opened = _open_value(
        value,
        name=name,
        session=session,
        timeout=timeout,
        max_bytes=max_bytes,
        max_pixels=max_pixels,
    )
    return _decode_opened(opened.image, opened.what)


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


def decode_masks(
    mapping: Mapping[str, Any],
    *,
    workers: int = 4,
    session: requests.Session | None = None,
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
    max_bytes: int = limits.MAX_MASK_BYTES,
    max_pixels: int | None = limits.MAX_PIXELS,
    shape: tuple[int, int] | None = None,
) -> MaskSet:
    """Decode many mask values at once, in threads, into one :class:`MaskSet`.

    Downloads run concurrently, and so does decoding: Pillow releases the GIL while
    it inflates and unfilters. Masks are decoded straight into the MaskSet's stack.

    Parameters
    ----------
    mapping
        Class name -> mask value (anything :func:`decode_mask` accepts). Order is kept.
    workers
        Threads to use; 1 decodes in the calling thread.
    session, timeout, max_bytes, max_pixels
        As for :func:`decode_mask`.
    shape
        Expected (H, W) of every mask (the source image's size), if known. Required
        when ``mapping`` is empty.

    Returns
    -------
    MaskSet
        The masks in ``mapping`` order.

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
    >>> ms = decode_masks({"tops": base64.b64encode(png).decode(), "hair": png})
    >>> ms.classes, ms.shape
    (('tops', 'hair'), (2, 3))
    """
    from .masks import MaskSet

    names = list(mapping)
    if not names:
        if shape is None:
            raise ValueError("decode_masks got no masks; pass shape=(H, W) for an empty set.")
        return MaskSet({}, shape=shape)

    def fetch(name: str) -> _Opened:
        return _open_value(
            mapping[name],
            name=name,
            session=session,
            timeout=timeout,
            max_bytes=max_bytes,
            max_pixels=max_pixels,
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
        _decode_into(opened[i].image, stack[i], opened[i].what)

    _run_all(decode, range(len(names)), workers)
    return MaskSet.from_stack(stack, names)
