import inspect

import pytest

import clothseg_tools
from clothseg_tools import errors
from clothseg_tools.errors import (
    APIConnectionError,
    APIInputError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClothsegError,
    FileTooLargeError,
    ImageDecodeError,
    ImageTooLargeError,
    InputError,
    MaskDecodeError,
    MaskZipError,
    RateLimitError,
    ServerError,
    ShapeMismatchError,
    TaskFailedError,
    TaskNotFoundError,
    UnsafeZipError,
    UnsupportedFormatError,
    WaitTimeoutError,
    status_error,
)

CLASSES = [
    obj
    for name in errors.__all__
    if inspect.isclass(obj := getattr(errors, name)) and issubclass(obj, BaseException)
]


def test_every_error_is_a_clothseg_error():
    assert len(CLASSES) == len(errors.__all__) - 1  # all but status_error
    for cls in CLASSES:
        assert issubclass(cls, ClothsegError), cls


def test_the_tree_in_the_docstring_names_every_class():
    doc = errors.__doc__ or ""
    for cls in CLASSES:
        assert cls.__name__ in doc, cls.__name__


@pytest.mark.parametrize(
    "cls",
    [ShapeMismatchError, InputError, FileTooLargeError, UnsupportedFormatError,
     ImageTooLargeError, ImageDecodeError, MaskDecodeError, MaskZipError, UnsafeZipError,
     APIInputError],
)  # fmt: skip
def test_bad_values_are_value_errors(cls):
    assert issubclass(cls, ValueError)


@pytest.mark.parametrize(
    ("cls", "status"),
    [(FileTooLargeError, 413), (UnsupportedFormatError, 415), (ImageTooLargeError, 422),
     (ImageDecodeError, 422), (InputError, None)],
)  # fmt: skip
def test_input_errors_carry_the_service_status(cls, status):
    assert cls("x").status == status
    assert cls("x", status=400).status == 400


@pytest.mark.parametrize(
    ("status", "cls"),
    [(400, BadRequestError), (401, AuthenticationError), (403, AuthenticationError),
     (404, TaskNotFoundError), (413, APIInputError), (415, APIInputError),
     (422, APIInputError), (429, RateLimitError), (500, ServerError), (503, ServerError),
     (418, APIStatusError)],
)  # fmt: skip
def test_status_error_table(status, cls):
    err = status_error(status, "message", task_id="t1", request_id="r1")
    assert type(err) is cls
    assert (err.status, err.message, err.task_id, err.request_id) == (status, "message", "t1", "r1")
    assert str(err) == "message"


def test_api_input_error_is_also_an_input_error():
    err = status_error(415, "unsupported")
    assert isinstance(err, InputError) and isinstance(err, APIStatusError)
    assert err.status == 415


def test_rate_limit_keeps_retry_after():
    err = status_error(429, "slow down", retry_after=1.5)
    assert isinstance(err, RateLimitError) and err.retry_after == 1.5


def test_timeouts_are_connection_errors():
    assert issubclass(APITimeoutError, APIConnectionError)
    with pytest.raises(APIConnectionError):
        raise APITimeoutError("timed out")


def test_task_errors_keep_their_context():
    failed = TaskFailedError("failed", task_id="abc", state=-1)
    assert (failed.task_id, failed.state) == ("abc", -1)
    waiting = WaitTimeoutError("still processing", task_id="abc", progress=40)
    assert (waiting.task_id, waiting.progress) == ("abc", 40)


def test_errors_are_exported_from_the_package():
    for name, module in clothseg_tools._EXPORTS.items():
        if module == "errors":
            assert getattr(clothseg_tools, name) is getattr(errors, name)
