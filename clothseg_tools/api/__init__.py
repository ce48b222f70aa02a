"""The thin fetch layer: a client of the clothing segmentation service (API.md).

``Client`` creates tasks, polls them, downloads and decodes their masks, and runs
batches; ``Task`` is the typed task; ``SegmentationResult`` the decoded, savable result.
Errors come from :mod:`clothseg_tools.errors`, re-exported here.
"""

from __future__ import annotations

from ..errors import (
    APIConnectionError,
    APIError,
    APIInputError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    RateLimitError,
    ResultExpiredError,
    ServerError,
    TaskFailedError,
    TaskNotFoundError,
    WaitTimeoutError,
)
from ..result import SegmentationResult
from ..task import Task
from ._batch import Outcome
from ._client import Client
from ._retry import RateLimiter

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIInputError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "Outcome",
    "RateLimitError",
    "RateLimiter",
    "ResultExpiredError",
    "SegmentationResult",
    "ServerError",
    "Task",
    "TaskFailedError",
    "TaskNotFoundError",
    "WaitTimeoutError",
]
