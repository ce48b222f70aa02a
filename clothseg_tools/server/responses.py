"""Response bodies: the API's JSON shapes, their OpenAPI models, and error answers.

Every answer of the API endpoints is ``{"status", "message", "data"}`` with the same
status in the HTTP status line and in the body (API.md, project decisions).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from ..contract import KEY_HEADER
from .store import STATE_FAILED, STATE_QUEUED, STATE_SUCCEEDED, TaskRecord
from .worker import ZIP_NAME

__all__ = [
    "ApiProblem",
    "CreatedResponse",
    "ErrorResponse",
    "TaskData",
    "TaskResponse",
    "api_json",
    "error_responses",
    "result_url",
    "task_data",
]


class TaskData(BaseModel):
    """``data`` of a task answer."""

    model_config = ConfigDict(extra="forbid")

    task_id: str = Field(description="The task id.")
    created_at: str | None = Field(None, description="Unix time of creation, as a string.")
    processed_at: str | None = Field(None, description="Unix time processing started.")
    completed_at: str | None = Field(None, description="Unix time processing finished.")
    class_masks: dict[str, str] | None = Field(
        None,
        description="Grayscale PNG mask per class: a URL, or base64 with --mask-format base64.",
    )
    clothes_masks: str | None = Field(
        None, description="URL of the ZIP of per-garment masks (output_type 2 or 3)."
    )
    output_type: int | None = Field(None, description="The output type returned.")
    progress: int | None = Field(None, ge=0, le=100, description="0..100; 100 = complete.")
    state: int | None = Field(
        None, description="1 succeeded; > 1 processing (2 queued, 3 running); < 0 failed."
    )


class CreatedData(BaseModel):
    """``data`` of an asynchronous create."""

    model_config = ConfigDict(extra="forbid")

    task_id: str


class TaskResponse(BaseModel):
    """A task answer (status 200)."""

    model_config = ConfigDict(extra="forbid")

    status: int = Field(description="200.")
    message: str
    data: TaskData


class CreatedResponse(BaseModel):
    """Answer of a create: the task id (``sync=0``) or the task (``sync=1``)."""

    model_config = ConfigDict(extra="forbid")

    status: int
    message: str
    data: TaskData | CreatedData


class ErrorResponse(BaseModel):
    """An error answer: ``status`` repeats the HTTP status; ``message`` says how to fix it.

    ``data`` carries the task for a task that failed (``state < 0``).
    """

    model_config = ConfigDict(extra="forbid")

    status: int
    message: str
    data: TaskData | None = None


_ERROR_TEXT = {
    400: "Bad parameters: no image or two, an option outside its values, an unusable image_url.",
    401: f"Missing or wrong {KEY_HEADER}.",
    404: "Unknown or expired task id.",
    413: "Image over 20 MB.",
    415: "Image format not accepted.",
    422: "Image that cannot be decoded, is over 4096 x 4096, or has no result (task failed).",
    429: "Too many tasks queued; retry after the Retry-After header's seconds.",
    500: "Internal error, or the engine failed on the image (task failed).",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for error ``codes``."""
    return {code: {"model": ErrorResponse, "description": _ERROR_TEXT[code]} for code in codes}


class ApiProblem(Exception):
    """Raised by handlers to answer ``status`` with ``message`` (and extra headers)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})
        self.data = data


def api_json(
    status: int,
    message: str,
    data: dict[str, Any] | None,
    *,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The ``{"status", "message", "data"}`` answer, with ``status`` as the HTTP status too."""
    return JSONResponse(
        {"status": status, "message": message, "data": data},
        status_code=status,
        headers=dict(headers or {}),
    )


def _stamp(value: float | None) -> str | None:
    return None if value is None else str(int(value))


def task_data(
    rec: TaskRecord,
    *,
    state: int,
    progress: int,
    base_url: str,
    inline: Mapping[str, bytes] | None = None,
) -> dict[str, Any]:
    """The ``data`` object for ``rec`` as it is revealed (``state``, ``progress``).

    Masks are listed only once the task is shown as succeeded: links under
    ``base_url`` signed with the task's token, or, when ``inline`` holds the PNG bytes,
    base64. The ZIP is always a link.
    """
    done = state == STATE_SUCCEEDED
    finished = state in (STATE_SUCCEEDED, STATE_FAILED)
    masks: dict[str, str] = {}
    if done:
        for name in rec.classes:
            fname = f"{name}.png"
            if inline is not None and fname in inline:
                masks[name] = base64.b64encode(inline[fname]).decode("ascii")
            else:
                masks[name] = result_url(base_url, rec, fname)
    # keys in API.md's order
    data: dict[str, Any] = {
        "task_id": rec.task_id,
        "created_at": _stamp(rec.created_at),
        "processed_at": None if state == STATE_QUEUED else _stamp(rec.processed_at),
        "completed_at": _stamp(rec.completed_at) if finished else None,
        "class_masks": masks,
    }
    if rec.output_type in (2, 3):
        data["clothes_masks"] = result_url(base_url, rec, ZIP_NAME) if done else None
    data.update(output_type=rec.output_type, progress=progress, state=state)
    return data


def result_url(base_url: str, rec: TaskRecord, name: str) -> str:
    """The signed link of one result file."""
    return f"{base_url}/results/{rec.task_id}/{name}?sig={rec.token}"
