"""Request preparation: form fields, the image URL, the upload bytes, input names.

Everything here runs before a request is sent, so a bad input costs no round trip.

Examples
--------
>>> form_fields(sync=True, class_type=2, output_type=1, detail_mode=1, quality=1)
{'class_type': '2', 'output_type': '1', 'detail_mode': '1', 'quality': '1', 'sync': '1'}
>>> check_image_url("https://img.example/a photo.jpg")
'https://img.example/a%20photo.jpg'
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from requests.utils import requote_uri

from ..contract import OPTION_NAMES, Secret, check_options, is_url
from ..contract import redact_value as redact_url
from ..errors import InvalidRequestError
from ..inputs import check_image_bytes, load_input

__all__ = [
    "OPTION_NAMES",
    "Secret",
    "check_image_url",
    "describe",
    "form_fields",
    "is_url",
    "load_upload",
]


def form_fields(*, sync: bool, **options: Any) -> dict[str, str]:
    """The create request's option fields, checked against their documented values.

    Raises
    ------
    InvalidRequestError
        An option outside its values.
    """
    fields = {name: str(value) for name, value in check_options(**options).items()}
    fields["sync"] = "1" if sync else "0"
    return fields


def check_image_url(url: Any) -> str:
    """An ``image_url`` as sent: an http(s) URL with a host, percent-encoded (API.md).

    Raises
    ------
    InvalidRequestError
        Not an http(s) URL with a host.
    """
    text = str(url).strip()
    if not is_url(text) or not urlsplit(text).hostname:
        raise InvalidRequestError(
            f"image_url must be an http:// or https:// URL with a host, got "
            f"{redact_url(text) if is_url(text) else text[:80]!r}."
        )
    return requote_uri(text)


def load_upload(image: Any) -> tuple[bytes, str, str, tuple[int, int]]:
    """Checked upload bytes, file name, MIME type and the image's (H, W).

    Raises
    ------
    InputError
        The typed subclass for a format, size or decoding problem (the message names
        the limit and the actual value).
    """
    from PIL import Image

    data, filename = load_input(image)
    info = check_image_bytes(data, name=filename)  # header only: cheap the second time
    mime = Image.MIME.get(info.format, "application/octet-stream")
    return data, filename, mime, (info.height, info.width)


def describe(image: Any, index: int | None = None) -> str:
    """A printable name for an input: path, URL without query, or its kind.

    Examples
    --------
    >>> describe("https://h/p.jpg?token=x"), describe(b"...", 3), describe("a/b.png")
    ('https://h/p.jpg', '<bytes #3>', 'a/b.png')
    """
    if is_url(image):
        return redact_url(image.strip())
    if isinstance(image, (str, os.PathLike)):
        return str(image)
    name = getattr(image, "name", None)
    if isinstance(name, str) and name:
        return name
    if isinstance(image, (bytes, bytearray, memoryview)):
        kind = "bytes"
    elif isinstance(image, np.ndarray):
        kind = "array"
    else:
        kind = type(image).__name__
    return f"<{kind}>" if index is None else f"<{kind} #{index}>"
