"""A local server that speaks the clothing segmentation API (``clothseg serve``).

It implements API.md with the project's own engines (``replay``, ``local``), so that
integrations run offline and a team can self-host segmentation. Install with the
``[server]`` extra (FastAPI, uvicorn, python-multipart).

Running it
----------
From the shell::

    clothseg serve --engine replay --replay-dir records/ --api-key KEY --port 8000

From Python (tests, notebooks), on a free port, shut down when the block ends::

    from clothseg_tools.server import run_in_thread
    with run_in_thread(engine="replay", engine_options={"replay_dir": "records/"},
                       api_keys=("test-key",), test_controls=True) as base_url:
        ...  # base_url == "http://127.0.0.1:<port>"

``create_app(settings)`` returns the ASGI app for any other ASGI server.

Endpoints
---------
``POST /api/tasks/visual/clothing-segmentation``
    multipart ``image_file`` or field ``image_url`` (form fields or a JSON object);
    options ``sync``, ``detail_mode``, ``output_type``, ``quality``, ``class_type``
    as numbers or numeric strings. ``sync=0`` answers ``{"task_id"}`` at once;
    ``sync=1`` waits up to ``--sync-timeout`` and answers the task (still processing
    when the time ran out).
``GET /api/tasks/visual/clothing-segmentation/{task_id}``
    the task: ``task_id, created_at, processed_at, completed_at`` (Unix-time strings,
    ``null`` while not reached), ``class_masks`` (class -> URL, or base64 PNG with
    ``--mask-format base64``; ``{}`` until done), ``clothes_masks`` (ZIP URL, present
    for ``output_type`` 2 and 3), ``output_type``, ``progress`` (0..100), ``state``.
``GET /results/{task_id}/{name}?sig=...``
    result files (grayscale 8-bit PNG masks, ``clothes_masks.zip``); the ``sig``
    query parameter is the link's secret.
``GET /openapi.json``, ``GET /healthz``.

Every API answer is ``{"status", "message", "data"}`` with the same status in the
HTTP status line and in the body: 400 bad parameters (no image or two, an option
outside its values, an ``image_url`` that is refused or cannot be fetched), 401
missing or wrong ``X-API-KEY``, 404 unknown or expired task, 413 image over 20 MB,
415 format not accepted, 422 image undecodable or over 4096 x 4096, 429 queue full
(with ``Retry-After``), 500 internal error. Messages say how to fix the request.

States: ``2`` queued and ``3`` running (both "processing", ``> 1``), ``1``
succeeded, ``-1`` failed. A failed task is answered with the failure's status (422
when the image cannot be decoded or the replay engine has no record of it, 500 when
the engine crashed) in the HTTP status and the body, with ``data`` holding the task
(``state == -1``) and ``message`` saying what went wrong.

``output_type`` 1 returns the class masks, 2 only the per-garment ZIP (one PNG per
garment instance of clothes, tops, bottoms and dress, named like ``tops_0.png``), 3
both. ``class_type`` 1..4 selects the classes as in API.md.

Results expire ``--result-ttl`` seconds (default 3600) after the task finished: the
task then answers 404 and its links 410 (403 for a link with a wrong ``sig``). With
``--data-dir`` tasks, inputs and results are kept on disk (a SQLite index plus files
written atomically): after a restart finished tasks keep their results and links,
and tasks that were queued or running are run again.

``image_url`` is fetched over http(s) only, at most 20 MB, with timeouts and a
deadline on the whole fetch (``--fetch-deadline``), on threads of its own so that
slow origins never delay uploads; every address it (or a redirect) resolves to must
be public: private, loopback, link-local and other special addresses, and IPv6 forms
carrying one (6to4, NAT64, Teredo, mapped), are refused unless the server was
started with ``--allow-private-urls``. Requests whose headers or body arrive too
slowly get 408 (``--header-timeout``, ``--body-timeout``), an oversized header
block 431 (``--max-header-bytes``).

Test controls (``--test-controls`` / ``test_controls=True`` only)
-----------------------------------------------------------------
``POST /_clothseg/reset``
    removes every task and result (no API key needed).
``GET /_clothseg/tasks``
    ``data = {"created": <tasks created>, "tasks": [{"task_id", "state", "status",
    "created_at", "reads"}, ...]}``, to check that nothing was lost or duplicated.

Progression (``--progression`` for the server, or the ``X-Clothseg-Progression``
header of one create request) decides when status reads see a finished task:

``immediate``
    as soon as the engine is done (the default, and the only mode without test
    controls);
``time:<seconds>``
    not before that many seconds after creation; progress rises with time. A
    ``sync=1`` create waits for it (within ``--sync-timeout``);
``manual:<n>``
    the first ``n`` status reads once the engine is done (a ``sync=1`` answer counts
    as one) show the task processing with rising progress; read ``n + 1`` shows the
    result. Reads while the engine still runs show it processing and do not count.

Faults are injected on ``/api/`` requests by the ``X-Clothseg-Fault`` header, or at
random from the server's fault table (``faults={spec: probability}``, CLI
``--fault 'SPEC@P'``, repeatable; ``fault_seed`` / ``--fault-seed`` makes the dice
repeatable). A spec is ``key[=value]`` items separated by ``;``:

======================  ====================================================================
``status=<code>``       answer with that status (400..599) without acting on the request
``retry_after=<s>``     ``Retry-After`` for that answer (429 sends 1 s when not given)
``message=<text>``      message of that answer
``latency=<s>``         wait that long before handling the request
``drop``                close the connection without answering or acting (``drop=before``)
``drop=after``          act on the request (the task is created), then close unanswered
``corrupt_mask``        (create) the task's mask PNGs and ZIP are served cut in half
``expire``              (create) the task expires right after the first answer showing it
                        finished: its links then answer 410 and the task 404
``expire=<s>``          (create) the task's results live ``s`` seconds instead of the TTL
======================  ====================================================================

Examples: ``X-Clothseg-Fault: status=429;retry_after=2``, ``X-Clothseg-Fault:
latency=0.5``, ``X-Clothseg-Fault: drop``, ``X-Clothseg-Fault: corrupt_mask``,
``--fault 'status=503@0.1' --fault 'latency=0.2@0.5'``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["ServeOptions", "ServerSettings", "create_app", "run_in_thread"]

_EXPORTS = {
    "ServeOptions": "settings",
    "ServerSettings": "settings",
    "create_app": "app",
    "run_in_thread": "runner",
}


def __getattr__(name: str) -> Any:
    # FastAPI and uvicorn load only when the server is used, not when the CLI starts
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'clothseg_tools.server' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # pragma: no cover
    from .app import create_app
    from .runner import run_in_thread
    from .settings import ServeOptions, ServerSettings
