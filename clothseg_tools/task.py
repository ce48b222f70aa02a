"""The service's task answer (API.md) as a typed :class:`Task`, and the body-status rule.

The service sends numbers as numbers or as strings (``"state": "1"``) and timestamps as
Unix-time strings; :meth:`Task.from_response` accepts both and gives typed fields.
A task succeeded only when the body's ``status`` is 200 **and** ``state == 1``
(API.md, guideline 2); :func:`check_body_status` turns a non-200 body status into the
same typed error the HTTP status would have given.

Examples
--------
>>> body = {"status": 200, "message": "success",
...         "data": {"task_id": "t1", "state": "1", "progress": "100",
...                  "created_at": "1700000000", "class_masks": {"tops": "aGk="}}}
>>> task = Task.from_response(body)
>>> task.task_id, task.state, task.progress, task.is_done
('t1', 1, 100, True)
>>> task.created_at.isoformat()
'2023-11-14T22:13:20+00:00'
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
from collections.abc import Mapping
from typing import Any

from .contract import STATE_SUCCEEDED, redact_value
from .errors import APIError, TaskFailedError, status_error

__all__ = [
    "STATE_SUCCEEDED",
    "Task",
    "check_body_status",
    "is_finished",
    "parse_int",
    "parse_time",
    "redact_url",
]


def parse_int(value: Any, *, field: str) -> int | None:
    """Read an integer sent as a number or a numeric string; ``None``/``""`` give ``None``.

    Parameters
    ----------
    value
        The raw JSON value.
    field
        Field name for the error message.

    Returns
    -------
    int or None

    Raises
    ------
    APIError
        The value is not a whole number (the service's answer is malformed).

    Examples
    --------
    >>> parse_int("42", field="progress"), parse_int(7.0, field="state"), parse_int("", field="x")
    (42, 7, None)
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number != int(number):
        raise APIError(
            f"The service sent {field}={value!r}, which is not a whole number; the answer is "
            "malformed. Check base_url points at a clothing segmentation service."
        )
    return int(number)


def parse_time(value: Any, *, field: str) -> _dt.datetime | None:
    """Read a Unix timestamp (number or string) as an aware UTC datetime.

    ``None``, ``""`` and ``0`` mean "not yet" and give ``None``.

    Raises
    ------
    APIError
        The value is not a number.

    Examples
    --------
    >>> parse_time("1700000000.5", field="created_at").isoformat()
    '2023-11-14T22:13:20.500000+00:00'
    >>> parse_time("0", field="completed_at") is None
    True
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise APIError(
            f"The service sent {field}={value!r}, which is not a Unix timestamp; the answer "
            "is malformed."
        )
    if seconds == 0:
        return None
    return _dt.datetime.fromtimestamp(seconds, tz=_dt.timezone.utc)


#: A mask value as messages and saved files show it (the contract's ``redact_value``).
redact_url = redact_value


def check_body_status(
    body: Mapping[str, Any], *, task_id: str | None = None, request_id: str | None = None
) -> None:
    """Raise the typed error when the body's ``status`` is not 200.

    An HTTP 200 only says the request went through; the body's ``status`` decides
    (API.md). A missing ``status`` is accepted (the local server always sends it, but
    a proxy in between may not).

    Raises
    ------
    APIStatusError
        The subclass matching the body's status (401 -> AuthenticationError ...).

    Examples
    --------
    >>> check_body_status({"status": "401", "message": "bad key"})
    Traceback (most recent call last):
    ...
    clothseg_tools.errors.AuthenticationError: The service answered status 401: bad key
    """
    status = parse_int(body.get("status"), field="status")
    if status is None or status == 200:
        return
    message = str(body.get("message") or "no message")
    raise status_error(
        status,
        f"The service answered status {status}: {message}",
        task_id=task_id,
        request_id=request_id,
    )


@dataclasses.dataclass(frozen=True)
class Task:
    """A segmentation task as the service reports it.

    Attributes
    ----------
    task_id : str
        The service's id of the task.
    state : int or None
        ``1`` succeeded, ``> 1`` processing, ``< 0`` failed; ``None`` when the answer
        carried no state (the reply to an asynchronous create).
    progress : int or None
        0..100.
    created_at, processed_at, completed_at : datetime or None
        Aware UTC datetimes (``None`` while not reached).
    class_masks : dict of str to str
        Raw mask values per class: a URL, base64 or a data URI (see ``decode``).
    clothes_masks : str or None
        URL (or inline data) of the per-garment ZIP, for ``output_type`` 2 and 3.
    output_type : int or None
        The output type the service returned.
    status : int
        The body's status (200 for a successful request).
    message : str
        The service's message.

    Notes
    -----
    The repr and :meth:`to_dict` never show a URL's query string: result links are
    signed and the signature is a secret.
    """

    task_id: str
    state: int | None = None
    progress: int | None = None
    created_at: _dt.datetime | None = None
    processed_at: _dt.datetime | None = None
    completed_at: _dt.datetime | None = None
    class_masks: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False)
    clothes_masks: str | None = dataclasses.field(default=None, repr=False)
    output_type: int | None = None
    status: int = 200
    message: str = ""

    # -- state ----------------------------------------------------------------------

    @property
    def is_done(self) -> bool:
        """True when the task succeeded: body status 200 and ``state == 1``."""
        return self.status == 200 and self.state == STATE_SUCCEEDED

    @property
    def is_failed(self) -> bool:
        """True when the task failed (``state < 0``)."""
        return self.state is not None and self.state < 0

    @property
    def is_processing(self) -> bool:
        """True while the service is still working (``state > 1``, or no state yet)."""
        return self.state is None or self.state > STATE_SUCCEEDED

    @property
    def is_known_state(self) -> bool:
        """False for a state the contract does not define (``0``); a waiter must stop."""
        return self.is_done or self.is_failed or self.is_processing

    # -- parsing --------------------------------------------------------------------

    @classmethod
    def from_response(cls, body: Mapping[str, Any], *, task_id: str | None = None) -> Task:
        """Parse a create or query answer ``{"status", "message", "data": {...}}``.

        Parameters
        ----------
        body
            The decoded JSON body.
        task_id
            The id the request was about, used when ``data`` omits it.

        Raises
        ------
        APIStatusError
            The body's status is not 200 (see :func:`check_body_status`).
        APIError
            The body is not a task answer.
        """
        if not isinstance(body, Mapping):
            raise APIError(
                f"The service answered a JSON {type(body).__name__}, not an object; check "
                "base_url points at a clothing segmentation service."
            )
        check_body_status(body, task_id=task_id)
        data = body.get("data")
        if not isinstance(data, Mapping):
            raise APIError(
                "The service's answer has no 'data' object; check base_url points at a "
                "clothing segmentation service."
            )
        return cls.from_data(
            data,
            task_id=task_id,
            status=parse_int(body.get("status"), field="status") or 200,
            message=str(body.get("message") or ""),
        )

    @classmethod
    def from_data(
        cls,
        data: Mapping[str, Any],
        *,
        task_id: str | None = None,
        status: int = 200,
        message: str = "",
    ) -> Task:
        """Parse the ``data`` object of an answer (or a saved :meth:`to_dict`).

        Examples
        --------
        >>> Task.from_data({"task_id": 12, "state": "3", "progress": "40"}).is_processing
        True
        """
        raw_id = data.get("task_id", task_id)
        if raw_id is None or str(raw_id) == "":
            raise APIError("The service's answer carries no task_id; the answer is malformed.")
        masks = data.get("class_masks") or {}
        if not isinstance(masks, Mapping):
            raise APIError(
                f"class_masks should be an object of class -> mask, got {type(masks).__name__}."
            )
        zip_value = data.get("clothes_masks")
        return cls(
            task_id=str(raw_id),
            state=parse_int(data.get("state"), field="state"),
            progress=parse_int(data.get("progress"), field="progress"),
            created_at=parse_time(data.get("created_at"), field="created_at"),
            processed_at=parse_time(data.get("processed_at"), field="processed_at"),
            completed_at=parse_time(data.get("completed_at"), field="completed_at"),
            class_masks={str(k): str(v) for k, v in masks.items() if v not in (None, "")},
            clothes_masks=str(zip_value) if zip_value else None,
            output_type=parse_int(data.get("output_type"), field="output_type"),
            status=parse_int(data.get("status", status), field="status") or status,
            message=str(data.get("message", message) or ""),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict for ``result.json``: no signed URLs, no inline mask data.

        Timestamps become Unix seconds; mask values become their redacted URL (or an
        ``<inline data>`` marker). :meth:`from_data` reads it back.

        Examples
        --------
        >>> t = Task("t1", state=1, class_masks={"tops": "https://h/t.png?sig=secret"})
        >>> t.to_dict()["class_masks"]
        {'tops': 'https://h/t.png'}
        """

        def stamp(value: _dt.datetime | None) -> float | None:
            return None if value is None else value.timestamp()

        return {
            "task_id": self.task_id,
            "state": self.state,
            "progress": self.progress,
            "created_at": stamp(self.created_at),
            "processed_at": stamp(self.processed_at),
            "completed_at": stamp(self.completed_at),
            "class_masks": {k: redact_url(v) for k, v in self.class_masks.items()},
            "clothes_masks": None if self.clothes_masks is None else redact_url(self.clothes_masks),
            "output_type": self.output_type,
            "status": self.status,
            "message": self.message,
        }


def is_finished(task: Task) -> bool:
    """True when ``task`` is done, False while it is processing.

    Raises
    ------
    TaskFailedError
        The task failed (``state < 0``).
    APIError
        A state the contract does not define (``0``): a waiter must stop, not loop.

    Examples
    --------
    >>> is_finished(Task("t", state=1)), is_finished(Task("t", state=3))
    (True, False)
    >>> is_finished(Task("t", state=0))
    Traceback (most recent call last):
    ...
    clothseg_tools.errors.APIError: Task t reported state 0, which the contract does not ...
    """
    if task.is_done:
        return True
    if task.is_failed:
        raise TaskFailedError(
            f"Task {task.task_id} failed with state {task.state}: {task.message or 'no message'}.",
            task_id=task.task_id,
            state=task.state,
            status=task.status,
        )
    if task.is_processing:
        return False
    raise APIError(
        f"Task {task.task_id} reported state {task.state!r}, which the contract does not define "
        "(1 done, > 1 processing, < 0 failed); stopping instead of polling forever."
    )
