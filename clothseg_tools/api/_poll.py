"""Polling a task until it finishes: growing intervals, a hard deadline, transient
failures polled through, and a stop on any state the contract does not define.

Examples
--------
>>> answers = iter([Task("t", state=2, progress=10), Task("t", state=1, progress=100)])
>>> seen = []
>>> poll(lambda _timeout: next(answers), task_id="t", poll_interval=0.0,
...      progress=lambda task: seen.append(task.progress)).is_done
True
>>> seen
[10, 100]
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ..errors import APIConnectionError, RateLimitError, ServerError, WaitTimeoutError
from ..task import Task, is_finished
from . import _retry
from ._retry import GET_RETRY_STATUSES, RETRY_AFTER_MAX

__all__ = ["POLL_GROWTH", "POLL_MAX", "poll"]

logger = logging.getLogger("clothseg_tools.api")

#: Each interval between polls is this many times the previous one...
POLL_GROWTH = 1.5
#: ...and never longer than this many seconds.
POLL_MAX = 5.0


def poll(
    get: Callable[[tuple[float, float]], Task],
    *,
    task_id: str,
    timeout: float = 300.0,
    poll_interval: float = 0.5,
    progress: Callable[[Task], None] | None = None,
    request_timeout: tuple[float, float] = (10.0, 60.0),
    retry_after_max: float = RETRY_AFTER_MAX,
) -> Task:
    """Call ``get`` until the task is done; see :meth:`Client.wait`.

    Parameters
    ----------
    get
        Queries the task once; called with the ``(connect, read)`` timeout to use, the
        read part cut to the time left before the deadline.
    task_id
        For messages and :class:`WaitTimeoutError`.
    timeout, poll_interval, progress
        As in :meth:`Client.wait`.
    request_timeout
        The client's ``(connect, read)`` timeout.
    retry_after_max
        Longest ``Retry-After`` honoured when the service answers 429.

    Raises
    ------
    TaskFailedError, WaitTimeoutError, APIError
        As in :meth:`Client.wait`.
    """
    deadline = time.monotonic() + float(timeout)
    interval = max(float(poll_interval), 0.0)
    seen: tuple[int | None, int | None] | None = None
    last_progress: int | None = None
    last_error: Exception | None = None
    while True:
        remaining = deadline - time.monotonic()
        pause = interval
        try:
            task = get((request_timeout[0], max(0.5, min(request_timeout[1], remaining))))
        except (APIConnectionError, RateLimitError, ServerError) as exc:
            if isinstance(exc, ServerError) and exc.status not in GET_RETRY_STATUSES:
                raise  # 500 and other 5xx say the service broke, not that it is busy
            last_error = exc
            retry_after = getattr(exc, "retry_after", None)
            pause = max(interval, min(retry_after or 0.0, retry_after_max))
            logger.warning("polling task %s: %s; polling again", task_id, exc)
        else:
            last_error = None
            if progress is not None and (task.state, task.progress) != seen:
                progress(task)
            seen = (task.state, task.progress)
            last_progress = task.progress if task.progress is not None else last_progress
            if is_finished(task):
                return task
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            why = f" (last error: {last_error})" if last_error else ""
            raise WaitTimeoutError(
                f"Task {task_id} was still processing after {float(timeout):g} s{why}; "
                f"resume with client.wait({task_id!r}).",
                task_id=task_id,
                progress=last_progress,
            )
        _retry.sleep(min(pause, remaining))
        interval = min(max(interval, 0.05) * POLL_GROWTH, POLL_MAX)
