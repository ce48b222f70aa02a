"""``clothseg serve``: run the local API-compatible server.

The command is defined here and added to the ``clothseg`` group by the CLI. FastAPI
and uvicorn are imported only when the command runs.
"""

from __future__ import annotations

import contextlib
import logging
import re
from pathlib import Path
from typing import Any

import click

from ..cli.options import (
    engine_option,
    model_options,
    onnx_engine_options,
    replay_dir_option,
    server_keys_option,
    workers_option,
)
from ..errors import ClothsegError, install_hint

__all__ = ["serve_command"]

_TOKEN = re.compile(r"([?&]sig=)[^&\s\"]+")


class _RedactLinks(logging.Filter):
    """Hide result-link secrets (``?sig=...``) in uvicorn's access log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _TOKEN.sub(r"\1<redacted>", a) if isinstance(a, str) else a for a in record.args
            )
        return True


def _parse_faults(values: tuple[str, ...]) -> dict[str, float]:
    faults: dict[str, float] = {}
    for value in values:
        spec, sep, prob = value.rpartition("@")
        if not sep or not spec:
            raise click.BadParameter(
                f"{value!r} should be SPEC@PROBABILITY, e.g. 'status=503@0.1'.",
                param_hint="--fault",
            )
        try:
            faults[spec] = float(prob)
        except ValueError:
            raise click.BadParameter(
                f"{prob!r} is not a probability (0..1) in {value!r}.", param_hint="--fault"
            ) from None
    return faults


def _parse_engine_options(values: tuple[str, ...]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for value in values:
        key, sep, raw = value.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(
                f"{value!r} should be KEY=VALUE.", param_hint="--engine-option"
            )
        options[key.strip().replace("-", "_")] = _scalar(raw.strip())
    return options


def _scalar(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0: any free port).",
)
@engine_option(help="Segmentation engine (default: local when installed, else replay).")
@replay_dir_option
@model_options
@click.option(
    "--engine-option",
    "engine_option",
    multiple=True,
    metavar="KEY=VALUE",
    help="Option passed to the engine (repeatable).",
)
@server_keys_option
@workers_option("Engine worker threads.", default=2, maximum=None)
@click.option(
    "--max-queue",
    default=1000,
    show_default=True,
    type=click.IntRange(1),
    help="Tasks waiting for a worker before new ones get 429.",
)
@click.option(
    "--sync-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds a sync=1 request waits before answering 'processing'.",
)
@click.option(
    "--result-ttl",
    default=3600.0,
    show_default=True,
    type=click.FloatRange(0, min_open=True),
    help="Seconds results and their links live.",
)
@click.option(
    "--mask-format",
    type=click.Choice(["url", "base64"]),
    default="url",
    show_default=True,
    help="Masks as links to PNGs, or PNGs inline as base64.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep tasks and results on disk here (survive restarts).",
)
@click.option("--public-url", default=None, help="Base URL for result links when behind a proxy.")
@click.option(
    "--allow-private-urls",
    is_flag=True,
    help="Let image_url reach private, loopback and link-local addresses.",
)
@click.option(
    "--fetch-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0, min_open=True),
    help="Connect timeout and longest wait for one read of an image_url download, in seconds.",
)
@click.option(
    "--fetch-deadline",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0, min_open=True),
    help="Seconds a whole image_url fetch may take (connect, headers, body), however "
    "slowly the origin sends.",
)
@click.option(
    "--fetch-workers",
    default=16,
    show_default=True,
    type=click.IntRange(1),
    help="image_url fetches run at once, on their own threads.",
)
@click.option(
    "--max-fetch-queue",
    default=64,
    show_default=True,
    type=click.IntRange(0),
    help="image_url fetches waiting for a thread before new ones get 429.",
)
@click.option(
    "--header-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0, min_open=True),
    help="Seconds a client has to send a request's headers (then 408).",
)
@click.option(
    "--body-timeout",
    default=120.0,
    show_default=True,
    type=click.FloatRange(0, min_open=True),
    help="Seconds a client has to send a request's body (then 408).",
)
@click.option(
    "--max-header-bytes",
    default=32 * 1024,
    show_default=True,
    type=click.IntRange(1024),
    help="Largest request header block (a larger one gets 431).",
)
@click.option(
    "--test-controls",
    is_flag=True,
    help="Enable /_clothseg/reset, progression and fault injection (for tests).",
)
@click.option(
    "--progression",
    default="immediate",
    show_default=True,
    help="immediate, time:<seconds> or manual:<reads> (needs --test-controls).",
)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="SPEC@P",
    help="Random fault with probability P, e.g. 'status=503@0.1' (needs --test-controls).",
)
@click.option("--fault-seed", type=int, default=None, help="Seed for the random faults.")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
def serve_command(
    host: str,
    port: int,
    engine: str | None,
    replay_dir: Path | None,
    model: Path | None,
    labels: str | None,
    engine_option: tuple[str, ...],
    api_keys: tuple[str, ...],
    workers: int,
    max_queue: int,
    sync_timeout: float,
    result_ttl: float,
    mask_format: str,
    data_dir: Path | None,
    public_url: str | None,
    allow_private_urls: bool,
    fetch_timeout: float,
    fetch_deadline: float,
    fetch_workers: int,
    max_fetch_queue: int,
    header_timeout: float,
    body_timeout: float,
    max_header_bytes: int,
    test_controls: bool,
    progression: str,
    faults: tuple[str, ...],
    fault_seed: int | None,
    log_level: str,
) -> None:
    """Serve the clothing segmentation API locally, with the project's engines.

    The API it speaks is described in the documentation's "API contract" page
    (docs/api-contract.md in the repository).

    Example: clothseg serve --engine replay --replay-dir records/ --api-key KEY

    Any human-parsing model: clothseg serve --engine onnx --model segformer_onnx/ --api-key KEY
    """

    engine_options = {
        **_parse_engine_options(engine_option),
        **onnx_engine_options(engine, model, labels),
    }
    if engine is None and model is not None:
        engine = "onnx"  # a model given is the engine asked for
    if replay_dir is not None:
        engine_options["replay_dir"] = replay_dir
    try:
        import uvicorn

        # lazy: FastAPI and uvicorn load only when the server starts
        from .app import create_app
        from .protocol import uvicorn_config
        from .settings import ServerSettings

        settings = ServerSettings.from_options(
            api_keys=api_keys,
            engine=engine,
            engine_options=engine_options,
            workers=workers,
            max_queue=max_queue,
            sync_timeout=sync_timeout,
            result_ttl=result_ttl,
            mask_format=mask_format,
            data_dir=data_dir,
            public_url=public_url,
            allow_private_urls=allow_private_urls,
            fetch_timeout=fetch_timeout,
            fetch_deadline=fetch_deadline,
            fetch_workers=fetch_workers,
            max_fetch_queue=max_fetch_queue,
            header_timeout=header_timeout,
            body_timeout=body_timeout,
            max_header_bytes=max_header_bytes,
            test_controls=test_controls,
            progression=progression,
            faults=_parse_faults(faults),
            fault_seed=fault_seed,
        )
        app = create_app(settings)
    except ImportError as exc:
        raise click.ClickException(
            f"The server needs packages that are not installed ({exc.name}); install them "
            f"with: {install_hint('server')}"
        ) from None
    except ClothsegError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from None
    config = uvicorn_config(app, settings, host=host, port=port, log_level=log_level)
    # after Config: it installs uvicorn's logging configuration
    logging.getLogger("uvicorn.access").addFilter(_RedactLinks())
    click.echo(
        f"clothseg serve: engine {app.state.clothseg.engine_name}, {workers} worker(s), "
        f"{len(settings.api_keys)} API key(s), results "
        f"{'in ' + str(data_dir) if data_dir else 'in memory'}"
        f"{', TEST CONTROLS ON' if test_controls else ''}"
    )
    # uvicorn shuts down cleanly on Ctrl+C, then re-raises the signal: that is a normal
    # way to stop a server, not an error
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run()
