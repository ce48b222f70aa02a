"""The typed :class:`Task` and the body-status rule, as the client imports them.

They are defined in :mod:`clothseg_tools.task` (the contract's answer, below every layer
that reads it); this module keeps the client's old import path.
"""

from __future__ import annotations

from ..task import (
    STATE_SUCCEEDED,
    Task,
    check_body_status,
    is_finished,
    parse_int,
    parse_time,
    redact_url,
)

__all__ = [
    "STATE_SUCCEEDED",
    "Task",
    "check_body_status",
    "is_finished",
    "parse_int",
    "parse_time",
    "redact_url",
]
