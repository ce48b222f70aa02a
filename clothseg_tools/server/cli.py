"""``clothseg serve``: run the local API-compatible server.

The command is defined here and added to the ``clothseg`` group by the CLI. Its flags
are the fields of :class:`~clothseg_tools.server.settings.ServerSettings` and
:class:`~clothseg_tools.server.settings.ServeOptions` that carry a
:class:`~clothseg_tools.server.settings.Flag`, besides the engine flags every engine
command shares; it reads them into one ``ServeOptions`` (:func:`serve_options`) and
runs that (:func:`serve`). FastAPI and uvicorn are imported only when the server starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click

from ..cli.options import (
    engine_option,
    model_options,
    onnx_engine_options,
    replay_dir_option,
    server_keys_option,
    stack,
    workers_option,
)
from ..errors import ClothsegError, install_hint
from .settings import Flag, ServeOptions, ServerSettings, field_default, flagged_fields

__all__ = ["serve", "serve_command", "serve_options", "settings_flags"]

F = TypeVar("F", bound=Callable[..., Any])

_TOKEN = re.compile(r"([?&]sig=)[^&\s\"]+")


class _RedactLinks(logging.Filter):
    """Hide result-link secrets (``?sig=...``) in uvicorn's access log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _TOKEN.sub(r"\1<redacted>", a) if isinstance(a, str) else a for a in record.args
            )
        return True


def _parse_engine_options(values: tuple[str, ...]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for value in values:
        key, sep, raw = value.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{value!r} should be KEY=VALUE.")
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


def _parsing(parse: Callable[[tuple[str, ...]], Any]) -> Callable[..., Any]:
    """A click callback that turns a flag's values into its field's value with ``parse``."""

    def callback(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> Any:
        try:
            return parse(values)
        except ValueError as exc:
            raise click.BadParameter(str(exc), ctx, param) from None

    return callback


def _whole(bound: float | None) -> int | None:
    return None if bound is None else int(bound)


def _param_type(flag: Flag, kind: type) -> click.ParamType | None:
    if flag.choices:
        return click.Choice(list(flag.choices))
    if kind is Path:
        return click.Path(file_okay=False, path_type=Path)
    low, high = flag.minimum, flag.maximum
    if kind is int and (low is not None or high is not None):
        return click.IntRange(_whole(low), _whole(high), min_open=flag.above)
    if kind is float:
        return click.FloatRange(low, high, min_open=flag.above)
    return click.types.convert_type(kind)


def _option(field: dataclasses.Field[Any], flag: Flag) -> Callable[[F], F]:
    """The click option of one settings field (see :class:`~.settings.Flag`)."""
    name = "--" + (flag.name or field.name).replace("_", "-")
    if flag.parse is not None:
        return click.option(
            name,
            field.name,
            multiple=True,
            metavar=flag.metavar,
            callback=_parsing(flag.parse),
            help=flag.help,
        )
    default = field_default(field)
    kind = flag.kind or type(default)
    if kind is bool:
        return click.option(name, field.name, is_flag=True, default=default, help=flag.help)
    return click.option(
        name,
        field.name,
        type=_param_type(flag, kind),
        default=default,
        show_default=default is not None,
        metavar=flag.metavar,
        help=flag.help,
    )


def settings_flags(cls: type, *names: str) -> Callable[[F], F]:
    """The flags of the fields of ``cls`` that carry a :class:`~.settings.Flag`, in the
    fields' order: those in ``names``, or else all but the shared ones.

    Examples
    --------
    >>> @click.command()
    ... @settings_flags(ServeOptions, "port")
    ... def show(port):
    ...     click.echo(port)
    >>> from click.testing import CliRunner
    >>> CliRunner().invoke(show, ["--port", "70000"]).exit_code
    2
    """
    chosen = [
        _option(field, flag)
        for field, flag in flagged_fields(cls)
        if (field.name in names if names else not flag.shared)
    ]
    return stack(*chosen)


def _shared_workers() -> Callable[[F], F]:
    """``-w/--workers`` of the shared flags, with the server's help and default."""
    (field,) = [f for f, _ in flagged_fields(ServerSettings) if f.name == "workers"]
    flag: Flag = field.metadata["flag"]
    return workers_option(flag.help or "", default=field_default(field), maximum=None)


def serve_options(flags: Mapping[str, Any]) -> ServeOptions:
    """``clothseg serve``'s parsed flags as one :class:`~.settings.ServeOptions`.

    The engine flags (``engine``, ``engine_option``, ``replay_dir``, ``model``,
    ``labels``) become the settings' engine and its options; the server's keys are
    ``api_keys`` and those of ``$CLOTHSEG_SERVER_KEYS``; every other flag is the field
    of its name.

    Raises
    ------
    click.UsageError
        Engine flags that do not go together (``--labels`` without ``--model`` ...).
    ConfigurationError
        A setting out of its bounds, or no API key at all.

    Examples
    --------
    >>> options = serve_options({"api_keys": ("k",), "port": 0, "max_queue": 5})
    >>> options.port, options.settings.max_queue, options.settings.engine
    (0, 5, None)
    """
    engine, model = flags.get("engine"), flags.get("model")
    engine_options = {
        **dict(flags.get("engine_option") or {}),
        **onnx_engine_options(engine, model, flags.get("labels")),
    }
    if engine is None and model is not None:
        engine = "onnx"  # a model given is the engine asked for
    if flags.get("replay_dir") is not None:
        engine_options["replay_dir"] = flags["replay_dir"]
    settings = ServerSettings.from_options(
        **_fields_of(ServerSettings, flags), engine=engine, engine_options=engine_options
    )
    return ServeOptions(settings, **_fields_of(ServeOptions, flags))


def _fields_of(cls: type, flags: Mapping[str, Any]) -> dict[str, Any]:
    """The flags that are fields of ``cls``, the engine's aside."""
    names = {f.name for f in dataclasses.fields(cls)} - {"engine", "engine_options"}
    return {name: value for name, value in flags.items() if name in names}


def serve(options: ServeOptions) -> None:
    """Run the server with ``options`` until Ctrl+C (``clothseg serve`` once its flags
    are read).

    Raises
    ------
    click.ClickException
        The server's packages are missing.
    ConfigurationError
        The engine cannot be built.
    """
    settings = options.settings
    try:
        import uvicorn

        # lazy: FastAPI and uvicorn load only when the server starts
        from .app import create_app
        from .protocol import uvicorn_config

        app = create_app(settings)
    except ImportError as exc:
        raise click.ClickException(
            f"The server needs packages that are not installed ({exc.name}); install them "
            f"with: {install_hint('server')}"
        ) from None
    config = uvicorn_config(
        app, settings, host=options.host, port=options.port, log_level=options.log_level
    )
    # after Config: it installs uvicorn's logging configuration
    logging.getLogger("uvicorn.access").addFilter(_RedactLinks())
    click.echo(
        f"clothseg serve: engine {app.state.clothseg.engine_name}, {settings.workers} "
        f"worker(s), {len(settings.api_keys)} API key(s), results "
        f"{'in ' + str(settings.data_dir) if settings.data_dir else 'in memory'}"
        f"{', TEST CONTROLS ON' if settings.test_controls else ''}"
    )
    # uvicorn shuts down cleanly on Ctrl+C, then re-raises the signal: that is a normal
    # way to stop a server, not an error
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run()


@click.command("serve")
@settings_flags(ServeOptions, "host", "port")
@engine_option(help="Segmentation engine (default: local when installed, else replay).")
@replay_dir_option
@model_options
@click.option(
    "--engine-option",
    "engine_option",
    multiple=True,
    metavar="KEY=VALUE",
    callback=_parsing(_parse_engine_options),
    help="Option passed to the engine (repeatable).",
)
@server_keys_option
@_shared_workers()
@settings_flags(ServerSettings)
@settings_flags(ServeOptions, "log_level")
def serve_command(**flags: Any) -> None:
    """Serve the clothing segmentation API locally, with the project's engines.

    The API it speaks is described in the documentation's "API contract" page
    (docs/api-contract.md in the repository).

    Example: clothseg serve --engine replay --replay-dir records/ --api-key KEY

    Any human-parsing model: clothseg serve --engine onnx --model segformer_onnx/ --api-key KEY
    """
    try:
        serve(serve_options(flags))
    except ClothsegError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from None
