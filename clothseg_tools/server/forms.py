"""Reading a create request: multipart, form fields or JSON, with bounded reads.

The body is parsed by python-multipart (through Starlette) while its bytes are
counted: a body larger than the 20 MB image limit plus room for the form's own
framing is refused with 413 as soon as the count passes it, and a declared
``Content-Length`` over it is refused before reading anything. Nothing is buffered
beyond the limit. Options are accepted as numbers or numeric strings, and every
refusal says what was wrong and how to send it instead.
"""

from __future__ import annotations

import dataclasses
import decimal
import json
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import FormParser, MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request

from .. import contract, limits
from ..errors import InvalidRequestError
from .responses import ApiProblem

__all__ = ["FIELDS_LIMIT", "MULTIPART_LIMIT", "OPTIONS", "CreateRequest", "read_create_request"]

#: Multipart framing allowed on top of the image (boundaries, part headers, fields).
MULTIPART_OVERHEAD = 64 * 1024

#: Largest multipart body read.
MULTIPART_LIMIT = limits.MAX_FILE_BYTES + MULTIPART_OVERHEAD

#: Largest body without a file (form fields or JSON).
FIELDS_LIMIT = 64 * 1024

#: Option name -> (accepted values, default), read from the contract's option table.
OPTIONS: dict[str, tuple[tuple[int, ...], int]] = {
    name: (spec.allowed, spec.default) for name, spec in contract.OPTIONS.items()
}


class _BodyTooLarge(MultiPartException):
    """The body passed its limit while being read (a MultiPartException, so Starlette
    closes the temporary files it opened)."""


class _MultiPartParser(MultiPartParser):
    """Starlette's parser, closing its temporary files on every error, not only its own."""

    async def parse(self) -> FormData:
        try:
            return await super().parse()
        except Exception:
            for file in getattr(self, "_files_to_close_on_error", ()):
                file.close()
            raise


@dataclasses.dataclass(frozen=True)
class CreateRequest:
    """A parsed create request."""

    image_bytes: bytes | None
    image_name: str
    image_url: str | None
    sync: bool
    detail_mode: int
    output_type: int
    quality: int
    class_type: int

    @property
    def options(self) -> contract.Options:
        """The request's options as the contract's options object."""
        return contract.Options(
            class_type=self.class_type,
            output_type=self.output_type,
            detail_mode=self.detail_mode,
            quality=self.quality,
        )


async def _counted(stream: AsyncIterator[bytes], limit: int) -> AsyncGenerator[bytes, None]:
    total = 0
    async for chunk in stream:
        total += len(chunk)
        if total > limit:
            raise _BodyTooLarge(f"more than {limit} bytes")
        yield chunk


def _too_large(limit: int) -> ApiProblem:
    if limit == MULTIPART_LIMIT:
        return ApiProblem(
            413,
            f"The upload is larger than {limits.MAX_FILE_BYTES // 2**20} MB "
            f"({limits.MAX_FILE_BYTES} bytes), the largest image accepted; save it as JPEG "
            "or scale it down.",
        )
    return ApiProblem(
        413,
        f"The request body is larger than {limit} bytes, the most form fields without an "
        "image file may take; send the image as the multipart file image_file.",
    )


async def read_create_request(request: Request) -> CreateRequest:
    """Parse and validate the create request's body.

    Raises
    ------
    ApiProblem
        400 for a malformed body or bad fields, 413 for a body over the limit.
    """
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    limit = MULTIPART_LIMIT if ctype == "multipart/form-data" else FIELDS_LIMIT
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)  # refused before reading a byte of it
    stream = _counted(request.stream(), limit)
    fields: Mapping[str, Any]
    try:
        if ctype == "multipart/form-data":
            parser = _MultiPartParser(
                request.headers, stream, max_files=1, max_fields=32, max_part_size=FIELDS_LIMIT
            )
            fields = await parser.parse()
        elif ctype == "application/x-www-form-urlencoded":
            fields = await FormParser(request.headers, stream).parse()
        elif ctype == "application/json":
            fields = _json_fields(b"".join([chunk async for chunk in stream]))
        else:
            shown = f"Content-Type {ctype}" if ctype else "no Content-Type"
            raise ApiProblem(
                400,
                f"The request has {shown}; send multipart/form-data with the image as the "
                "file field image_file, or form fields with image_url.",
            )
    except _BodyTooLarge:
        raise _too_large(limit) from None
    except MultiPartException as exc:
        raise ApiProblem(
            400,
            f"The multipart body could not be read ({exc.message}); send one file field "
            "image_file and plain form fields for the options.",
        ) from None
    except ValueError as exc:  # python-multipart's parse errors are ValueErrors
        raise ApiProblem(
            400, f"The form body is malformed ({exc}); let your HTTP library encode it."
        ) from None
    except ClientDisconnect:
        raise ApiProblem(400, "The client disconnected before sending the whole body.") from None
    try:
        return await _parse_fields(fields)
    finally:
        for value in _values(fields):
            if isinstance(value, UploadFile):
                await value.close()


def _values(fields: Mapping[str, Any]) -> list[Any]:
    multi = getattr(fields, "multi_items", None)
    return [v for _, v in multi()] if multi is not None else list(fields.values())


def _json_fields(body: bytes) -> dict[str, Any]:
    try:
        # exact decimals: 1.0000000000000000001 must not read as class_type 1
        parsed = json.loads(body, parse_float=decimal.Decimal)
    except ValueError as exc:
        raise ApiProblem(400, f"The JSON body does not parse ({exc}).") from None
    if not isinstance(parsed, dict):
        raise ApiProblem(400, "The JSON body must be an object of fields (image_url, sync, ...).")
    return parsed


async def _parse_fields(fields: Mapping[str, Any]) -> CreateRequest:
    options = {name: _option(fields.get(name), name) for name in OPTIONS}
    upload = fields.get("image_file")
    url = fields.get("image_url")
    if url is not None and not isinstance(url, str):
        raise ApiProblem(400, "image_url must be a text field holding the image's address.")
    url = (url or "").strip() or None
    data: bytes | None = None
    name = "image_file"
    if isinstance(upload, UploadFile):
        if upload.size is not None and upload.size > limits.MAX_FILE_BYTES:
            raise ApiProblem(
                413,
                f"image_file is {upload.size} bytes; the limit is {limits.MAX_FILE_BYTES} bytes "
                f"({limits.MAX_FILE_BYTES // 2**20} MB). Save it as JPEG or scale it down.",
            )
        data = await upload.read()
        name = upload.filename or name
        if not data:
            data = None  # an empty file field counts as no file, as in an HTML form
    elif upload not in (None, ""):
        raise ApiProblem(
            400,
            "image_file must be sent as a multipart file part (with a filename), not as a "
            "text field.",
        )
    if data is not None and url is not None:
        raise ApiProblem(400, "Both image_file and image_url were given; send exactly one of them.")
    if data is None and url is None:
        raise ApiProblem(
            400,
            "No image: send the image as the multipart file field image_file, or its "
            "address in the field image_url.",
        )
    return CreateRequest(
        image_bytes=data,
        image_name=name,
        image_url=url,
        sync=bool(options.pop("sync")),
        **options,
    )


def _option(raw: Any, name: str) -> int:
    try:
        return contract.parse_option(name, raw)
    except InvalidRequestError as exc:
        raise ApiProblem(400, str(exc)) from None
