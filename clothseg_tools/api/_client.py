"""``Client``: create tasks, poll them, download their masks, run batches.

Examples
--------
>>> client = Client(api_key="secret-key", base_url="http://127.0.0.1:8000/")
>>> client
Client(base_url='http://127.0.0.1:8000', api_key=<set>, timeout=(10.0, 60.0), max_retries=3)
>>> "secret-key" in repr(client) or "secret-key" in str(vars(client))
False
>>> client.close()
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import requests

from ..contract import (
    ENDPOINT,
    KEY_ENV,
    URL_ENV,
    Options,
    check_options,
    scrub_exception,
    scrub_secrets,
    task_path,
)
from ..errors import (
    APIError,
    ConfigurationError,
    InvalidRequestError,
    RateLimitError,
    ServerError,
)
from ..result import SegmentationResult
from ..task import Task, is_finished, redact_url
from . import _retry
from ._batch import Outcome, current_limiter, run_many
from ._fetch import DOWNLOAD_THREADS, download_result
from ._http import KEY_HEADER, build_session, raise_for_status, translate
from ._poll import poll
from ._retry import (
    BACKOFF_FACTOR,
    BACKOFF_MAX,
    GET_RETRY_STATUSES,
    POST_RETRY_STATUSES,
    RETRY_AFTER_MAX,
    RateLimiter,
    retry_delay,
)
from ._upload import (
    OPTION_NAMES,
    Secret,
    check_image_url,
    describe,
    is_url,
    load_upload,
)

__all__ = ["ENDPOINT", "Client"]

logger = logging.getLogger("clothseg_tools.api")


Timeout = float | tuple[float, float]


_Method = TypeVar("_Method", bound=Callable[..., Any])


def _hides_key(method: _Method) -> _Method:
    """Errors leaving ``method`` show no trace of the client's API key: not in their
    text, their attributes (``request_id``) or the errors they chain, wherever the
    service or a link put it."""

    @functools.wraps(method)
    def call(self: Client, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            if self._key is not None:
                scrub_exception(exc, (self._key.reveal(),))
            raise

    return cast(_Method, call)


class Client:
    """A client of the clothing segmentation service.

    Parameters
    ----------
    api_key
        The key sent as ``X-API-KEY``; default ``$CLOTHSEG_API_KEY``.
    base_url
        The service's address, e.g. ``http://127.0.0.1:8000``; default
        ``$CLOTHSEG_BASE_URL``.
    timeout
        Read timeout in seconds, or a ``(connect, read)`` pair. A float keeps the
        connect timeout at ``connect_timeout``.
    max_retries
        Retries of a request after a transient failure (see :mod:`._retry`).
    session
        A ``requests.Session`` to use as it is (its own retry and pool settings); by
        default the client builds a pooled one with its retry policy and closes it in
        :meth:`close`.
    connect_timeout
        Seconds to wait for a connection.
    pool_size
        Connections kept open per host. A batch uses one per worker for its API calls
        plus up to :data:`DOWNLOAD_THREADS` for mask downloads; the default serves up to
        48 workers (connections are opened only when needed).
    backoff_factor, backoff_max, retry_after_max
        Retry timing: first backoff, its cap, and the longest ``Retry-After`` honoured.

    Raises
    ------
    ConfigurationError
        At the first call that needs the key or base URL when it is missing.

    Notes
    -----
    The key is sent only to ``base_url``: mask and ZIP links (often on another host)
    are downloaded without it, and redirects are not followed.

    Examples
    --------
    >>> with Client(api_key="k", base_url="http://127.0.0.1:9", timeout=(1.0, 5.0)) as c:
    ...     c.timeout
    (1.0, 5.0)
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: Timeout = 60.0,
        max_retries: int = 3,
        session: requests.Session | None = None,
        *,
        connect_timeout: float = 10.0,
        pool_size: int = 64,
        backoff_factor: float = BACKOFF_FACTOR,
        backoff_max: float = BACKOFF_MAX,
        retry_after_max: float = RETRY_AFTER_MAX,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get(KEY_ENV)
        self._key = Secret(key) if key else None
        url = base_url if base_url is not None else os.environ.get(URL_ENV)
        self._base_url = url.strip().rstrip("/") if url else None
        if isinstance(timeout, tuple):
            self.timeout = (float(timeout[0]), float(timeout[1]))
        else:
            self.timeout = (min(float(connect_timeout), float(timeout)), float(timeout))
        if int(max_retries) < 0:
            raise ValueError(f"max_retries must be 0 or more, got {max_retries!r}.")
        self.max_retries = int(max_retries)
        self._backoff = (float(backoff_factor), float(backoff_max), float(retry_after_max))
        self._owns_session = session is None
        self._session = session or build_session(
            max_retries=self.max_retries,
            pool_size=int(pool_size),
            backoff_factor=backoff_factor,
            backoff_max=backoff_max,
            retry_after_max=retry_after_max,
        )
        self._pool_size = int(pool_size)
        self._downloads: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False

    # -- configuration ----------------------------------------------------------------

    @property
    def base_url(self) -> str | None:
        """The service's address (without a trailing slash)."""
        return self._base_url

    @property
    def session(self) -> requests.Session:
        """The shared ``requests.Session`` (connection pool) of this client."""
        return self._session

    def __repr__(self) -> str:
        url = redact_url(self._base_url) if self._base_url else None
        key = "<set>" if self._key else "<missing>"
        return (
            f"Client(base_url={url!r}, api_key={key}, timeout={self.timeout}, "
            f"max_retries={self.max_retries})"
        )

    def _config(self) -> tuple[str, str]:
        if self._closed:
            raise ConfigurationError("This Client is closed; create a new one.")
        if self._base_url is None:
            raise ConfigurationError(
                f"No service address: pass Client(base_url=...) or set {URL_ENV} "
                "(for the local server: clothseg serve, then http://127.0.0.1:8000)."
            )
        if not is_url(self._base_url) or not urlsplit(self._base_url).hostname:
            raise ConfigurationError(
                f"base_url must start with http:// or https:// and name a host, got "
                f"{redact_url(self._base_url)!r}."
            )
        if self._key is None:
            raise ConfigurationError(f"No API key: pass Client(api_key=...) or set {KEY_ENV}.")
        return self._base_url, self._key.reveal()

    # -- the one request path -----------------------------------------------------------

    def _api(
        self,
        method: str,
        path: str,
        *,
        what: str,
        task_id: str | None = None,
        timeout: tuple[float, float] | None = None,
        **kwargs: Any,
    ) -> Mapping[str, Any]:
        """Send one API request (with the client's retries) and return the JSON body."""
        base, key = self._config()
        url = base + path
        attempt = 0
        while True:
            limiter = current_limiter()
            if limiter is not None:
                limiter.acquire()
            start = time.perf_counter()
            try:
                response = self._session.request(
                    method,
                    url,
                    headers={KEY_HEADER: key},
                    timeout=timeout or self.timeout,
                    allow_redirects=False,
                    **kwargs,
                )
            except requests.RequestException as exc:
                logger.debug("%s %s failed: %s", method, path, type(exc).__name__)
                # a session we built already retried in urllib3; a caller's may not have
                if method == "GET" and not self._owns_session and attempt < self.max_retries:
                    attempt += 1
                    _retry.sleep(self._delay(attempt, None))
                    continue
                translate(exc, what=what, url=url)
            logger.debug(
                "%s %s -> HTTP %d in %.3f s",
                method,
                path,
                response.status_code,
                time.perf_counter() - start,
            )
            try:
                return raise_for_status(response, what=what, task_id=task_id, secrets=(key,))
            except (RateLimitError, ServerError) as exc:
                from_body = response.status_code < 300
                if attempt >= self.max_retries or not self._may_retry(
                    method, exc.status, from_body
                ):
                    raise
                attempt += 1
                delay = self._delay(attempt, getattr(exc, "retry_after", None))
                logger.info(
                    "%s got status %d; retry %d of %d in %.1f s",
                    what,
                    exc.status,
                    attempt,
                    self.max_retries,
                    delay,
                )
                _retry.sleep(delay)

    def _may_retry(self, method: str, status: int, from_body: bool) -> bool:
        if method == "POST":
            # only answers proving the server did not act: never a duplicate task
            return status in POST_RETRY_STATUSES
        # urllib3 already retried HTTP-level statuses on a session we built
        return status in GET_RETRY_STATUSES and (from_body or not self._owns_session)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        factor, maximum, retry_after_max = self._backoff
        return retry_delay(
            attempt, retry_after, factor=factor, maximum=maximum, retry_after_max=retry_after_max
        )

    # -- tasks --------------------------------------------------------------------------

    @_hides_key
    def create_task(
        self,
        image: Any = None,
        image_url: str | None = None,
        sync: bool = False,
        class_type: int = 1,
        output_type: int = 1,
        detail_mode: int = 1,
        quality: int = 1,
    ) -> Task:
        """Create a segmentation task.

        Every check runs before anything is sent: exactly one source, options within
        their documented values, and for ``image`` the format (sniffed from the bytes),
        20 MB and 4096 x 4096.

        Parameters
        ----------
        image
            Path, bytes, binary file object, PIL image or uint8 array. A path's bytes
            are sent as they are; arrays and PIL images are encoded losslessly (PNG).
        image_url
            A public http(s) URL of the image, instead of ``image``.
        sync
            Ask the service to answer with the result (it may still answer "processing").
        class_type, output_type, detail_mode, quality
            The API's options (API.md).

        Returns
        -------
        Task
            For ``sync=False`` a task with only its id (``state`` is ``None``).

        Raises
        ------
        InvalidRequestError
            No source or two, an option outside its values, a malformed URL.
        InputError
            The image breaks a limit (typed subclass; the message names the limit).
        APIError
            The service refused or could not be reached (typed subclass).
        """
        task, _ = self._create(
            image,
            image_url,
            sync=sync,
            class_type=class_type,
            output_type=output_type,
            detail_mode=detail_mode,
            quality=quality,
        )
        return task

    def _create(
        self, image: Any, image_url: str | None, *, sync: bool, **options: Any
    ) -> tuple[Task, tuple[int, int] | None]:
        """Create a task; also return the uploaded image's (H, W) when there is one."""
        fields = Options(**options).form_fields(sync=sync)
        if (image is None) == (image_url is None):
            given = "both" if image is not None else "neither"
            raise InvalidRequestError(
                f"Give exactly one image source, image= or image_url= (got {given})."
            )
        files = None
        size = None
        if image_url is not None:
            fields["image_url"] = check_image_url(image_url)
        else:
            data, filename, mime, size = load_upload(image)
            files = {"image_file": (filename, data, mime)}
        body = self._api("POST", ENDPOINT, what="creating a task", data=fields, files=files)
        task = self._hide_key(Task.from_response(body))
        logger.debug("created task %s (state %s)", task.task_id, task.state)
        return task, size

    @_hides_key
    def get_task(self, task_id: str | Task, *, timeout: tuple[float, float] | None = None) -> Task:
        """Query a task once.

        Raises
        ------
        TaskNotFoundError
            Unknown task id, or its hour is over.
        APIError
            Other failures (typed subclass).
        """
        tid = self._task_id(task_id)
        body = self._api(
            "GET",
            task_path(tid),
            what=f"querying task {tid}",
            task_id=tid,
            timeout=timeout,
        )
        return self._hide_key(Task.from_response(body, task_id=tid))

    def _hide_key(self, task: Task) -> Task:
        """``task`` with the key hidden in the service's message (a failure may echo it)."""
        if self._key is None or not task.message:
            return task
        message = scrub_secrets(task.message, (self._key.reveal(),))
        return task if message == task.message else dataclasses.replace(task, message=message)

    @staticmethod
    def _task_id(task_id: str | Task) -> str:
        tid = task_id.task_id if isinstance(task_id, Task) else task_id
        if not isinstance(tid, str) or not tid.strip():
            raise InvalidRequestError(f"task_id must be a non-empty string, got {tid!r}.")
        return tid.strip()

    @_hides_key
    def wait(
        self,
        task_id: str | Task,
        timeout: float = 300.0,
        poll_interval: float = 0.5,
        *,
        progress: Callable[[Task], None] | None = None,
    ) -> Task:
        """Poll a task until it is done, with intervals growing x1.5 up to 5 s.

        Transient failures while polling (dropped connections, timeouts, 429, 502, 503,
        504) are logged and polled through; the deadline still holds.

        Parameters
        ----------
        task_id
            The task (or its id).
        timeout
            Hard deadline in seconds; each poll's read timeout is cut to what is left.
        poll_interval
            First interval between polls.
        progress
            Called with each polled :class:`Task` whose progress or state changed.

        Returns
        -------
        Task
            The finished task (``is_done``).

        Raises
        ------
        TaskFailedError
            The task ended with ``state < 0``.
        WaitTimeoutError
            The deadline passed; its ``task_id`` lets a caller resume.
        APIError
            A state the contract does not define, or a non-transient failure.
        """
        tid = self._task_id(task_id)
        return poll(
            lambda read_timeout: self.get_task(tid, timeout=read_timeout),
            task_id=tid,
            timeout=timeout,
            poll_interval=poll_interval,
            progress=progress,
            request_timeout=self.timeout,
            retry_after_max=self._backoff[2],
        )

    # -- results --------------------------------------------------------------------------

    @_hides_key
    def segment(
        self,
        image: Any,
        *,
        sync: bool = True,
        timeout: float = 300.0,
        poll_interval: float = 0.5,
        progress: Callable[[Task], None] | None = None,
        class_type: int = 1,
        output_type: int = 1,
        detail_mode: int = 1,
        quality: int = 1,
    ) -> SegmentationResult:
        """Segment one image: create the task, wait for it, download every mask at once.

        Parameters
        ----------
        image
            An http(s) URL (sent as ``image_url``), or a path, bytes, file object, PIL
            image or uint8 array (uploaded).
        sync
            Ask for the result in the create answer; when the service answers "still
            processing" the client polls with :meth:`wait`.
        timeout
            Deadline for create + wait, in seconds.
        poll_interval, progress
            Passed to :meth:`wait`.
        class_type, output_type, detail_mode, quality
            The API's options.

        Returns
        -------
        SegmentationResult
            ``masks`` at the source image's size, ``parts`` from the ZIP (output_type 2
            and 3), the task and timings.

        Raises
        ------
        InputError, APIError, MaskDecodeError, ResultExpiredError
            See :meth:`create_task`, :meth:`wait` and :meth:`fetch`.
        """
        start = time.perf_counter()
        url = image.strip() if is_url(image) else None
        task, size = self._create(
            None if url else image,
            url,
            sync=sync,
            class_type=class_type,
            output_type=output_type,
            detail_mode=detail_mode,
            quality=quality,
        )
        created = time.perf_counter()
        if not is_finished(task):
            task = self.wait(
                task,
                timeout=max(0.0, timeout - (created - start)),
                poll_interval=poll_interval,
                progress=progress,
            )
        waited = time.perf_counter()
        options = {
            "class_type": int(class_type),
            "output_type": int(output_type),
            "detail_mode": int(detail_mode),
            "quality": int(quality),
            "sync": bool(sync),
        }
        result = self.fetch(
            task,
            source=describe(image),
            options=options,
            source_size=size,
        )
        done = time.perf_counter()
        result.timings.update(
            create=created - start,
            wait=waited - created,
            download=done - waited,
            total=done - start,
        )
        return result

    @_hides_key
    def fetch(
        self,
        task: str | Task,
        *,
        source: str | None = None,
        options: Mapping[str, Any] | None = None,
        source_size: tuple[int, int] | None = None,
    ) -> SegmentationResult:
        """Download and decode every mask and the per-garment ZIP of a finished task.

        All downloads run at once on the shared session, because result links expire
        after an hour. A task id is queried first.

        Parameters
        ----------
        task
            A finished :class:`Task`, or a task id.
        source, options
            Recorded in the result.
        source_size
            (H, W) of the source image, when known: masks of another size are an error.

        Raises
        ------
        APIError
            The task is still processing (:class:`TaskFailedError` when it failed).
        ResultExpiredError
            A link is past its hour (403/404/410): query the task again.
        MaskDecodeError, MaskZipError
            A mask or the ZIP does not decode.
        ShapeMismatchError
            The masks are not the source image's size.
        """
        if not isinstance(task, Task):
            task = self.get_task(task)
        if not is_finished(task):
            raise APIError(
                f"Task {task.task_id} is still processing; wait for it first: "
                f"client.fetch(client.wait({task.task_id!r}))."
            )
        return download_result(
            task,
            session=self._session,
            timeout=self.timeout,
            pool=self._download_pool(),
            source=source,
            options=options,
            source_size=source_size,
        )

    def _download_pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._closed:
                raise ConfigurationError("This Client is closed; create a new one.")
            if self._downloads is None:
                self._downloads = ThreadPoolExecutor(
                    max_workers=DOWNLOAD_THREADS, thread_name_prefix="clothseg-download"
                )
            return self._downloads

    # -- batches --------------------------------------------------------------------------

    def segment_many(
        self,
        images: Iterable[Any],
        workers: int = 8,
        rate_limit: float | None = None,
        **options: Any,
    ) -> Iterator[Outcome[SegmentationResult]]:
        """Segment many images concurrently; yield an :class:`Outcome` as each finishes.

        A failure is captured in its outcome and the batch goes on. Outcomes come in
        completion order; ``outcome.index`` is the input's position.

        Parameters
        ----------
        images
            Inputs as for :meth:`segment` (read lazily).
        workers
            Images in flight at once.
        rate_limit
            Most API requests per second, shared by all workers (creates and polls;
            mask downloads from the result links are not counted).
        **options
            Passed to :meth:`segment` (``class_type``, ``output_type``, ``sync`` ...).

        Yields
        ------
        Outcome
            ``index``, ``source``, ``result`` or ``error``, ``seconds``.
        """
        check_options(**{k: v for k, v in options.items() if k in OPTION_NAMES})
        limiter = RateLimiter(rate_limit) if rate_limit is not None else None
        if self._owns_session and int(workers) + DOWNLOAD_THREADS > self._pool_size:
            logger.warning(
                "segment_many(workers=%d) may open more connections than the pool keeps "
                "(%d); pass Client(pool_size=%d) to reuse them all.",
                workers,
                self._pool_size,
                int(workers) + DOWNLOAD_THREADS,
            )
        return run_many(
            lambda image: self.segment(image, **options),
            images,
            workers=workers,
            limiter=limiter,
            describe=lambda index, image: describe(image, index),
        )

    # -- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the session (when the client built it) and the download threads."""
        with self._lock:
            self._closed = True
            pool, self._downloads = self._downloads, None
        if pool is not None:
            pool.shutdown(wait=True)
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
