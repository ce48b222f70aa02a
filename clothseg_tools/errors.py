"""The one exception hierarchy of clothseg_tools.

Every error the library raises on purpose derives from :class:`ClothsegError`, so a
caller (or the CLI) can catch the whole family with one ``except``. Errors about bad
values also derive from :class:`ValueError`, so code written against plain numpy
conventions keeps working. Messages say what was wrong and what to do; they never
contain the API key or a signed URL's query string.

::

    ClothsegError
    ├── ConfigurationError                 missing key / base URL, unknown engine
    │   ├── EngineUnavailableError         engine's optional dependency not installed
    │   ├── OptionalDependencyError        a feature's optional package not installed
    │   └── ModelError                     a model file missing, unreadable, or not
    │                                      fitting its label set or input
    ├── ShapeMismatchError (ValueError)    arrays of different (H, W)
    ├── InputError (ValueError)            an input image the service would refuse
    │   ├── FileTooLargeError              over 20 MB                       (413)
    │   ├── UnsupportedFormatError         not one of API.md's formats      (415)
    │   ├── ImageTooLargeError             over 4096 x 4096 pixels          (422)
    │   ├── ImageDecodeError               bytes that do not decode         (422)
    │   ├── NotAFileError                  a FIFO, socket, device, link loop
    │   └── InvalidRequestError            no or two image sources, bad option (400)
    ├── KeypointError (ValueError)         pose keypoints missing or malformed
    ├── MaskDecodeError (ValueError)       a mask value that does not decode
    │   └── LabelFormatError               a labeling tool's file that cannot be read
    ├── MaskZipError (ValueError)          a per-garment ZIP that cannot be read
    │   └── UnsafeZipError                 path tricks, too many entries, zip bombs
    ├── LabelSetError (ValueError)         an unknown or malformed label set, a parsing
    │   │                                  map value outside its label set
    │   └── LabelSetMatchError             a model's label names match no known set
    ├── ResultExpiredError                 result link or task past its hour
    ├── EngineError                        a segmentation engine failed
    │   └── NoRecordError                  the replay engine has no record of an image
    └── APIError                           talking to the service went wrong
        ├── APIConnectionError             no connection / connection dropped
        │   └── APITimeoutError            connect or read timeout
        ├── APIStatusError                 the service answered a non-200 status
        │   ├── BadRequestError            400
        │   ├── AuthenticationError        401
        │   ├── TaskNotFoundError          404
        │   ├── APIInputError (InputError) 413 / 415 / 422
        │   ├── RateLimitError             429
        │   └── ServerError                5xx
        ├── TaskFailedError                the task ended with state < 0
        └── WaitTimeoutError               polling passed its deadline (task id kept)

Examples
--------
>>> from clothseg_tools.errors import ClothsegError, FileTooLargeError
>>> issubclass(FileTooLargeError, ClothsegError) and issubclass(FileTooLargeError, ValueError)
True
"""

from __future__ import annotations

import os

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIInputError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ClothsegError",
    "ConfigurationError",
    "EngineError",
    "EngineUnavailableError",
    "FileTooLargeError",
    "ImageDecodeError",
    "ImageTooLargeError",
    "InputError",
    "InvalidRequestError",
    "KeypointError",
    "LabelFormatError",
    "LabelSetError",
    "LabelSetMatchError",
    "MaskDecodeError",
    "MaskZipError",
    "ModelError",
    "NoRecordError",
    "NotAFileError",
    "OptionalDependencyError",
    "RateLimitError",
    "ResultExpiredError",
    "ServerError",
    "ShapeMismatchError",
    "TaskFailedError",
    "TaskNotFoundError",
    "UnsafeZipError",
    "UnsupportedFormatError",
    "WaitTimeoutError",
    "status_error",
]


class ClothsegError(Exception):
    """Base class of every error clothseg_tools raises on purpose."""


class ConfigurationError(ClothsegError):
    """A setting is missing or invalid (API key, base URL, engine name...)."""


class EngineUnavailableError(ConfigurationError):
    """An engine was asked for whose optional dependencies are not installed."""


class OptionalDependencyError(ConfigurationError):
    """A feature needs an optional package that is not installed; the message says
    which extra to install."""


def install_hint(extra: str) -> str:
    """The commands that install the optional extra ``extra``, from PyPI and from a checkout.

    Messages that ask for an extra use it, so a user who installed from a checkout is
    not sent to a package index for code they already have.

    Examples
    --------
    >>> print(install_hint("server"))
    pip install 'clothseg_tools[server]' (from a checkout: pip install -e ".[server]")
    """
    return f"pip install 'clothseg_tools[{extra}]' (from a checkout: pip install -e \".[{extra}]\")"


class ModelError(ConfigurationError):
    """A model file is missing or unreadable, or does not fit its label set or options."""


class ShapeMismatchError(ClothsegError, ValueError):
    """Two arrays that must share a (H, W) shape do not."""


class InputError(ClothsegError, ValueError):
    """An input image that breaks the service's documented limits.

    Parameters
    ----------
    message
        What was wrong and what to do.
    status
        The HTTP status the service uses for this kind of refusal, when there is one.
    """

    status: int | None = None

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class FileTooLargeError(InputError):
    """The file is larger than the service accepts (20 MB)."""

    status = 413


class UnsupportedFormatError(InputError):
    """The bytes are not one of the image formats the service accepts."""

    status = 415


class ImageTooLargeError(InputError):
    """The image has more pixels than the service accepts (4096 x 4096)."""

    status = 422


class ImageDecodeError(InputError):
    """The bytes claim to be an image but cannot be decoded."""

    status = 422


class NotAFileError(InputError):
    """A path names a FIFO, socket, device or symbolic-link loop, not a regular file.

    Reading a FIFO would wait for a writer forever and a device may never end, so
    such paths are refused before a byte is read.
    """


class InvalidRequestError(InputError):
    """A request the service would refuse with 400: no image source or two of them, or
    an option outside its documented values."""

    status = 400


class KeypointError(ClothsegError, ValueError):
    """Pose keypoints that a rule needs are missing or not in a known layout."""


class MaskDecodeError(ClothsegError, ValueError):
    """A mask value (URL, base64, bytes or file) could not be decoded."""


class LabelFormatError(MaskDecodeError):
    """A labeling tool's file (COCO JSON, YOLO labels, CVAT masks) that cannot be read.

    Attributes
    ----------
    path : str
        The file at fault.
    line : int or None
        The line at fault, for line-based formats (YOLO labels, ``labelmap.txt``).
    """

    def __init__(self, message: str, *, path: str | os.PathLike[str], line: int | None = None):
        where = f"{os.fspath(path)}, line {line}" if line is not None else os.fspath(path)
        super().__init__(f"{where}: {message}")
        self.path = os.fspath(path)
        self.line = line


class MaskZipError(ClothsegError, ValueError):
    """A per-garment mask ZIP could not be read."""


class UnsafeZipError(MaskZipError):
    """A ZIP was refused: path tricks, too many entries, or a decompression bomb."""


class LabelSetError(ClothsegError, ValueError):
    """A label set that is unknown or malformed, or a parsing map that does not fit it."""


class LabelSetMatchError(LabelSetError):
    """A model's label names match no registered label set.

    Attributes
    ----------
    closest : tuple of LabelSet
        The registered sets nearest to the names, best first.
    """

    def __init__(self, message: str, *, closest: tuple[object, ...] = ()) -> None:
        super().__init__(message)
        self.closest = closest


class ResultExpiredError(ClothsegError):
    """A result link or task is past its lifetime (one hour): query the task again."""


class EngineError(ClothsegError):
    """A segmentation engine failed on an image."""


class NoRecordError(EngineError):
    """The replay engine has no recorded result for the image it was given."""


class APIError(ClothsegError):
    """Base of the errors that come from talking to the service."""


class APIConnectionError(APIError):
    """The service could not be reached, or the connection dropped."""


class APITimeoutError(APIConnectionError):
    """Connecting to the service or reading its answer took too long."""


class APIStatusError(APIError):
    """The service answered with a non-success status.

    Attributes
    ----------
    status : int
        The status code (from the body's ``status`` when the HTTP status was 200).
    message : str
        The service's message.
    task_id : str or None
        The task the request was about, when known.
    request_id : str or None
        The service's request id header, when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        task_id: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.task_id = task_id
        self.request_id = request_id


class BadRequestError(APIStatusError):
    """400: the request's parameters were refused."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing or wrong."""


class TaskNotFoundError(APIStatusError):
    """404: the task id is unknown or its result has expired."""


class APIInputError(APIStatusError, InputError):
    """413 / 415 / 422: the service refused the image itself."""

    status: int  # always set from the answer; InputError's class default is None


class RateLimitError(APIStatusError):
    """429: too many requests.

    Attributes
    ----------
    retry_after : float or None
        Seconds the service asked to wait, when it said.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object):
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class ServerError(APIStatusError):
    """5xx: the service failed."""


class TaskFailedError(APIError):
    """The task finished with ``state < 0``.

    Attributes
    ----------
    task_id : str or None
        The failed task.
    state : int or None
        The state the service reported.
    status : int or None
        The status the service answered the failed task with (422: the image could
        not be processed; 500: the engine failed), when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        task_id: str | None = None,
        state: int | None = None,
        status: int | None = None,
    ):
        super().__init__(message)
        self.task_id = task_id
        self.state = state
        self.status = status


class WaitTimeoutError(APIError):
    """Polling passed its deadline; ``task_id`` lets a caller resume with ``Client.wait``.

    Attributes
    ----------
    task_id : str
        The task that was still processing.
    progress : int or None
        The last progress the service reported.
    """

    def __init__(self, message: str, *, task_id: str, progress: int | None = None):
        super().__init__(message)
        self.task_id = task_id
        self.progress = progress


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: AuthenticationError,
    404: TaskNotFoundError,
    413: APIInputError,
    415: APIInputError,
    422: APIInputError,
    429: RateLimitError,
}


def status_error(
    status: int,
    message: str,
    *,
    task_id: str | None = None,
    request_id: str | None = None,
    retry_after: float | None = None,
) -> APIStatusError:
    """Build the typed error for a non-success ``status``.

    Parameters
    ----------
    status
        Status code from the HTTP response or the body's ``status`` field.
    message
        Human-readable explanation (already free of secrets).
    task_id, request_id
        Kept on the error for the caller.
    retry_after
        Seconds to wait, for 429.

    Returns
    -------
    APIStatusError
        An instance of the subclass that matches ``status``.

    Examples
    --------
    >>> err = status_error(429, "slow down", retry_after=2.0)
    >>> type(err).__name__, err.status, err.retry_after
    ('RateLimitError', 429, 2.0)
    """
    if status == 429:
        return RateLimitError(
            message, status=status, task_id=task_id, request_id=request_id, retry_after=retry_after
        )
    cls = _STATUS_CLASSES.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else APIStatusError
    return cls(message, status=status, task_id=task_id, request_id=request_id)
