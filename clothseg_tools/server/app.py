"""The FastAPI application: the two API endpoints, result downloads, health, test controls."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from .._version import __version__
from ..contract import ENDPOINT, KEY_HEADER
from ..engines import default_engine_name, get_engine
from ..errors import InputError
from ..inputs import check_image_bytes
from .controls import RAW_SEND_KEY, FaultMiddleware, request_fault
from .fetch import FetchError, FetchPool, UrlPolicy
from .forms import OPTIONS, CreateRequest, read_create_request
from .responses import (
    ApiProblem,
    CreatedResponse,
    TaskResponse,
    api_json,
    error_responses,
    task_data,
)
from .settings import PROGRESSION_HEADER, ServerSettings, parse_progression
from .store import STATE_FAILED, STATE_SUCCEEDED, MemoryStore, TaskRecord, open_store
from .worker import TaskRunner, reveal

__all__ = ["TASKS_PATH", "create_app"]

logger = logging.getLogger("clothseg_tools.server")

#: Path of the create endpoint; a task is ``TASKS_PATH/{task_id}`` (the contract's).
TASKS_PATH = ENDPOINT

_MEDIA_TYPES = {".png": "image/png", ".zip": "application/zip"}


class _App(FastAPI):
    """FastAPI that keeps the server's own ``send`` in the scope (for the drop fault)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[RAW_SEND_KEY] = send
        await super().__call__(scope, receive, send)


def _option_schema(name: str) -> dict[str, Any]:
    allowed, default = OPTIONS[name]
    return {
        "anyOf": [
            {"type": "integer", "enum": list(allowed)},
            {"type": "string", "enum": [str(v) for v in allowed]},
        ],
        "default": default,
    }


def _request_body_schema() -> dict[str, Any]:
    fields: dict[str, Any] = {
        "image_url": {
            "type": "string",
            "description": "Source image URL (http or https). Give this or image_file.",
        },
        **{name: _option_schema(name) for name in OPTIONS},
    }
    # other fields are ignored; the schema lists only the ones that mean something
    multipart = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "image_file": {
                "type": "string",
                "format": "binary",
                "description": "Source image file (JPEG, PNG, BMP, WebP, TIFF, SGI), up to "
                "20 MB and 4096 x 4096. Give this or image_url.",
            },
            **fields,
        },
    }
    # exactly one image source (API.md): the file, or its URL
    multipart["oneOf"] = [{"required": ["image_file"]}, {"required": ["image_url"]}]
    plain = {
        "type": "object",
        "additionalProperties": False,
        "properties": fields,
        "required": ["image_url"],
    }
    return {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": multipart},
            "application/x-www-form-urlencoded": {"schema": plain},
            "application/json": {"schema": plain},
        },
    }


def create_app(settings: ServerSettings | None = None, **options: Any) -> FastAPI:
    """Build the server application.

    Parameters
    ----------
    settings
        Server settings; when omitted they are built from ``options``
        (:meth:`ServerSettings.from_options`).
    **options
        Settings fields, used when ``settings`` is ``None``.

    Returns
    -------
    fastapi.FastAPI
        An ASGI application; serve it with uvicorn (``clothseg serve`` does).

    Raises
    ------
    ConfigurationError
        Bad settings, or an engine that cannot be built (one engine is built here, so
        a wrong engine name or replay folder fails at once, not at the first task).

    Examples
    --------
    >>> import tempfile
    >>> app = create_app(api_keys=["k"], engine="replay",
    ...                  engine_options={"replay_dir": tempfile.mkdtemp()})
    >>> sorted(app.openapi()["paths"])
    ['/api/tasks/visual/clothing-segmentation', '/api/tasks/visual/clothing-segmentation/{task_id}']

    Serve it with ``uvicorn.run(app)``, or use :func:`~clothseg_tools.server.run_in_thread`.
    """
    if settings is None:
        settings = ServerSettings.from_options(**options)
    elif options:
        raise TypeError("Pass either settings or keyword options, not both.")
    engine_name = settings.engine or default_engine_name()
    engine_options = dict(settings.engine_options)
    first_engine = get_engine(engine_name, **engine_options)
    store = open_store(settings.data_dir)
    runner = TaskRunner(
        settings,
        store,
        lambda: get_engine(engine_name, **engine_options),
        first_engine=first_engine,
    )
    state = _ServerState(settings, store, runner, engine_name)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for rec in store.pending():  # accepted before a restart: run them now
            runner.submit(rec)
        sweeper = asyncio.create_task(state.sweep_forever())
        try:
            yield
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            state.fetches.shutdown()
            await asyncio.to_thread(runner.shutdown)
            store.close()

    app = _App(
        title="clothseg local server",
        version=__version__,
        description="A local implementation of the clothing segmentation API.",
        lifespan=lifespan,
    )
    app.state.clothseg = state
    if settings.test_controls:
        app.add_middleware(FaultMiddleware, settings=settings)
    _add_error_handlers(app)
    _add_api_routes(app, state)
    _add_result_routes(app, state)
    if settings.test_controls:
        _add_control_routes(app, state)
    return app


class _ServerState:
    """What the handlers share."""

    def __init__(
        self, settings: ServerSettings, store: MemoryStore, runner: TaskRunner, engine_name: str
    ) -> None:
        self.settings = settings
        self.store = store
        self.runner = runner
        self.engine_name = engine_name
        self.keys = [k.encode("utf-8") for k in settings.api_keys]
        self.policy = UrlPolicy(allow_private=settings.allow_private_urls)
        self.fetches = FetchPool(settings.fetch_workers, settings.max_fetch_queue)
        self.created = 0

    async def fetch(self, url: str) -> bytes:
        """The image at ``url``, fetched on the fetch threads within the deadline."""
        deadline = self.settings.fetch_deadline
        try:
            if self.fetches.is_full():
                raise self.fetches.busy(deadline)
            return await self.fetches.fetch(
                url, policy=self.policy, timeout=self.settings.fetch_timeout, total_timeout=deadline
            )
        except FetchError as exc:
            headers = None
            if exc.status == 429:
                headers = {"Retry-After": str(self.fetches.retry_after(deadline))}
            raise ApiProblem(exc.status, exc.message, headers=headers) from None

    def check_key(self, key: str | None) -> None:
        if not key:
            raise ApiProblem(401, f"Missing API key: send it in the {KEY_HEADER} header.")
        given = key.encode("utf-8")
        # compare with every key, without stopping early, so timing tells nothing
        ok = False
        for known in self.keys:
            ok |= hmac.compare_digest(given, known)
        if not ok:
            raise ApiProblem(401, f"The API key in {KEY_HEADER} is not valid; check it.")

    def base_url(self, request: Request) -> str:
        return (self.settings.public_url or str(request.base_url)).rstrip("/")

    async def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run store work off the loop when it touches the disk."""
        if self.store.persistent:
            return await run_in_threadpool(fn, *args, **kwargs)
        return fn(*args, **kwargs)

    async def sweep_forever(self) -> None:
        interval = max(0.05, min(30.0, self.settings.result_ttl / 4))
        while True:
            await asyncio.sleep(interval)
            try:
                await run_in_threadpool(self.store.purge)
            except Exception:  # keep sweeping; one bad file must not stop expiry
                logger.exception("expiring old tasks failed")

    async def answer(self, rec: TaskRecord, request: Request, *, count_read: bool) -> JSONResponse:
        """The answer for a task as it is revealed now."""
        now = time.time()
        shown, progress = reveal(
            rec, now, mean_seconds=self.runner.mean_seconds, count_read=count_read
        )
        inline = None
        if shown == STATE_SUCCEEDED and self.settings.mask_format == "base64":
            inline = await self.call(self._inline, rec)
        data = task_data(
            rec, state=shown, progress=progress, base_url=self.base_url(request), inline=inline
        )
        if shown in (STATE_SUCCEEDED, STATE_FAILED) and rec.expire_after == 0:
            await self.call(self.store.expire, rec.task_id)  # the 'expire' fault
        if shown == STATE_FAILED:
            return api_json(rec.status, rec.message, data)
        return api_json(200, "success", data)

    def _inline(self, rec: TaskRecord) -> dict[str, bytes]:
        files = {}
        for name in rec.files:
            if name.endswith(".png"):
                body = self.store.result(rec.task_id, name)
                if body is not None:
                    files[name] = body
        return files

    def lookup(self, task_id: str) -> TaskRecord:
        rec = self.store.get(task_id)
        if rec is None:
            if self.store.was_expired(task_id):
                raise ApiProblem(404, self._expired_text(task_id))
            raise ApiProblem(
                404,
                f"No task {task_id!r}; check the id returned by the create request.",
            )
        return rec

    def _expired_text(self, task_id: str) -> str:
        return (
            f"Task {task_id!r} has expired: results are kept for {self.settings.result_ttl:g} s "
            "after they are ready. Create the task again."
        )


_api_key_header = APIKeyHeader(name=KEY_HEADER, auto_error=False, description="Your API key.")


def _add_api_routes(app: FastAPI, state: _ServerState) -> None:
    settings = state.settings

    @app.post(
        TASKS_PATH,
        summary="Create a clothing segmentation task",
        response_model=None,
        responses={
            200: {
                "model": CreatedResponse,
                "description": "The task id (sync=0), or the task (sync=1).",
            },
            **error_responses(400, 401, 413, 415, 422, 429, 500),
        },
        openapi_extra={"requestBody": _request_body_schema()},
    )
    async def create_task(
        request: Request, api_key: str | None = Security(_api_key_header)
    ) -> JSONResponse:
        state.check_key(api_key)
        req = await read_create_request(request)
        data = req.image_bytes
        if data is None:
            assert req.image_url is not None
            data = await state.fetch(req.image_url)
        await _check_image(data, req)
        if state.runner.is_full():
            wait = state.runner.retry_after()
            raise ApiProblem(
                429,
                f"{state.runner.pending} tasks are waiting, the most this server queues; "
                f"retry in {wait} s.",
                headers={"Retry-After": str(wait)},
            )
        rec = _new_record(req, request)
        await state.call(state.store.add, rec, data)
        state.created += 1
        future = state.runner.submit(rec)
        if not req.sync:
            return api_json(200, "success", {"task_id": rec.task_id})
        await _wait_sync(rec, future, settings.sync_timeout)
        return await state.answer(rec, request, count_read=True)

    def _new_record(req: CreateRequest, request: Request) -> TaskRecord:
        fault = request_fault(request.scope)
        progression = settings.progression
        header = request.headers.get(PROGRESSION_HEADER)
        if settings.test_controls and header:
            try:
                progression = parse_progression(header).text
            except ValueError as exc:
                raise ApiProblem(400, f"{PROGRESSION_HEADER}: {exc}") from None
        return TaskRecord.new(
            **req.options.as_dict(),
            progression=progression,
            corrupt_mask=fault.corrupt_mask,
            expire_after=fault.expire,
        )

    @app.get(
        TASKS_PATH + "/{task_id}",
        summary="Query a task",
        response_model=None,
        responses={
            200: {"model": TaskResponse, "description": "The task (processing or succeeded)."},
            **error_responses(401, 404, 422, 500),
        },
    )
    async def get_task(
        task_id: str, request: Request, api_key: str | None = Security(_api_key_header)
    ) -> JSONResponse:
        state.check_key(api_key)
        rec = state.lookup(task_id)
        if rec.is_expired(time.time()):
            await state.call(state.store.expire, task_id)
            raise ApiProblem(404, state._expired_text(task_id))
        return await state.answer(rec, request, count_read=True)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        return JSONResponse(
            {
                "status": "ok",
                "engine": state.engine_name,
                "workers": settings.workers,
                "queued": state.runner.pending,
                "fetches": state.fetches.in_flight,
                "version": __version__,
            }
        )


async def _check_image(data: bytes, req: CreateRequest) -> None:

    name = req.image_name if req.image_url is None else "the image at image_url"
    try:
        await run_in_threadpool(check_image_bytes, data, name=name)
    except InputError as exc:
        raise ApiProblem(exc.status or 422, str(exc)) from None


async def _wait_sync(rec: TaskRecord, future: asyncio.Future[None], timeout: float) -> None:
    """Wait for the task (and a ``time`` progression) until ``timeout`` seconds pass."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.shield(future), timeout)
    spec = parse_progression(rec.progression)
    if rec.is_finished and spec.kind == "time":
        gate = rec.created_at + spec.value - time.time()
        if 0 < gate <= deadline - loop.time():
            await asyncio.sleep(gate)


def _add_result_routes(app: FastAPI, state: _ServerState) -> None:
    @app.get("/results/{task_id}/{name}", include_in_schema=False)
    async def download(task_id: str, name: str, sig: str = "") -> Response:
        rec = state.store.get(task_id)
        if rec is None:
            if state.store.was_expired(task_id):
                raise ApiProblem(410, "This result link has expired; query the task again.")
            raise ApiProblem(404, "No such result; check the link.")
        if not hmac.compare_digest(sig.encode("utf-8"), rec.token.encode("utf-8")):
            raise ApiProblem(403, "This result link is not valid (bad or missing signature).")
        now = time.time()
        if rec.is_expired(now):
            await state.call(state.store.expire, task_id)
            raise ApiProblem(410, "This result link has expired; query the task again.")
        body = await state.call(state.store.result, task_id, name) if name in rec.files else None
        if body is None:
            raise ApiProblem(404, f"Task {task_id!r} has no result file {name!r}.")
        remaining = int(max(0.0, (rec.expires_at or now) - now))
        suffix = name[name.rfind(".") :]
        return Response(
            body,
            media_type=_MEDIA_TYPES.get(suffix, "application/octet-stream"),
            headers={"Cache-Control": f"private, max-age={remaining}"},
        )


def _add_control_routes(app: FastAPI, state: _ServerState) -> None:
    @app.post("/_clothseg/reset", include_in_schema=False)
    async def reset() -> JSONResponse:
        removed = len(state.store.tasks())
        await run_in_threadpool(state.store.clear)
        state.created = 0
        return api_json(200, "success", {"removed": removed})

    @app.get("/_clothseg/tasks", include_in_schema=False)
    async def list_tasks() -> JSONResponse:
        tasks = [
            {
                "task_id": r.task_id,
                "state": r.state,
                "status": r.status,
                "created_at": r.created_at,
                "reads": r.reads,
            }
            for r in state.store.tasks()
        ]
        return api_json(200, "success", {"created": state.created, "tasks": tasks})


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiProblem)
    async def problem(_: Request, exc: ApiProblem) -> JSONResponse:
        return api_json(exc.status, exc.message, exc.data, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            message = (
                f"No endpoint {request.method} {request.url.path}; the API is POST "
                f"{TASKS_PATH} and GET {TASKS_PATH}/{{task_id}}."
            )
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}."
        else:
            message = str(exc.detail)
        return api_json(exc.status_code, message, None, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', '')}"
            for err in exc.errors()
        )
        return api_json(400, f"Invalid request: {problems}.", None)

    @app.exception_handler(Exception)
    async def crashed(_: Request, exc: Exception) -> JSONResponse:
        logger.error("internal error: %s: %s", type(exc).__name__, exc)
        return api_json(
            500,
            f"Internal server error ({type(exc).__name__}); try again, and report it if it "
            "persists.",
            None,
        )
