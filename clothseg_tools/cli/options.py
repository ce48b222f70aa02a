"""The options several ``clothseg`` commands share, each defined once.

``--engine``, ``--model``/``--labels``, ``--replay-dir``, ``--api-key``, ``--base-url``,
``--workers``, ``--min-value``, the API's option flags (from the contract's table) and
the batch flags. A
command takes the decorators it needs; a new shared flag goes here, a command's own flags
stay with it.

Examples
--------
>>> import click
>>> @click.command()
... @api_option_flags
... @workers_option("Items at once.", default=2)
... def show(**options):
...     click.echo(sorted(options.items()))
>>> from click.testing import CliRunner
>>> print(CliRunner().invoke(show, ["--class-type", "3", "-w", "5"]).output.strip())
[('class_type', 3), ('detail_mode', 1), ('output_type', 1), ('quality', 1), ('workers', 5)]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from ..batch.shards import Shard
from ..contract import (
    KEY_ENV,
    OPTION_NAMES,
    OPTIONS,
    REPLAY_DIR_ENV,
    SERVER_KEYS_ENV,
    URL_ENV,
    Options,
)
from ..errors import ConfigurationError
from ._logging import set_quiet

__all__ = [
    "CPU_WORKERS_HELP",
    "api_key_option",
    "api_option_flags",
    "base_url_option",
    "batch_options",
    "engine_option",
    "min_value_option",
    "model_options",
    "onnx_engine_options",
    "out_option",
    "quiet_option",
    "replay_dir_option",
    "results_argument",
    "rle_or_polygon_option",
    "scale_options",
    "server_keys_option",
    "stack",
    "take_api_options",
    "workers_option",
]

F = TypeVar("F", bound=Callable[..., Any])


def stack(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    """One decorator applying ``decorators`` as if written one above the other, in order
    (so the flags appear in the help in that order).

    Examples
    --------
    >>> @click.command()
    ... @stack(click.option("--a", default=1), click.option("--b", default=2))
    ... def show(a, b):
    ...     pass
    >>> [p.name for p in show.params]
    ['a', 'b']
    """

    def apply(func: F) -> F:
        for decorate in reversed(decorators):
            func = decorate(func)
        return func

    return apply


def _option_type(name: str) -> click.ParamType:
    allowed = OPTIONS[name].allowed
    if allowed == tuple(range(allowed[0], allowed[-1] + 1)):
        return click.IntRange(allowed[0], allowed[-1])
    return click.Choice([str(v) for v in allowed])


def api_option_flags(func: F) -> F:
    """``--class-type``, ``--output-type`` ...: one flag per option of the contract's table.

    Each flag's values, default and help come from :data:`clothseg_tools.contract.OPTIONS`,
    and the command receives the value as an int; :func:`take_api_options` gathers them
    into one :class:`~clothseg_tools.contract.Options`.
    """
    for name in reversed(OPTION_NAMES):
        spec = OPTIONS[name]
        func = click.option(
            f"--{name.replace('_', '-')}",
            name,
            type=_option_type(name),
            default=spec.default,
            show_default=True,
            callback=lambda _ctx, _param, value: None if value is None else int(value),
            help=f"{spec.describe()}.",
        )(func)
    return func


def take_api_options(flags: dict[str, Any]) -> Options:
    """Take the values of :func:`api_option_flags` out of a command's ``flags``, as one
    checked :class:`~clothseg_tools.contract.Options`.

    Examples
    --------
    >>> flags = {"class_type": 4, "output_type": 1, "detail_mode": 1, "quality": 2, "x": 0}
    >>> take_api_options(flags).class_type, flags
    (4, {'x': 0})
    """
    return Options(**{name: flags.pop(name) for name in OPTION_NAMES})


def model_options(func: F) -> F:
    """``--model PATH`` and ``--labels SET``: the onnx engine's model and label set."""
    options = [
        click.option(
            "--model",
            type=click.Path(path_type=Path),
            help="Model of the onnx engine: a .onnx file or an exported model folder "
            "(model.onnx, config.json, preprocessor_config.json). Implies --engine onnx.",
        ),
        click.option(
            "--labels",
            metavar="SET",
            help="Label set of the model's outputs (atr, ootd, lip, cihp, pascal_person_part, "
            "fashn, or a .json file) when its config.json does not name them.",
        ),
    ]
    return stack(*options)(func)


def onnx_engine_options(
    engine: str | None, model: Path | None, labels: str | None
) -> dict[str, Any]:
    """The onnx engine's options from ``--model``/``--labels``, checked against ``--engine``.

    Raises
    ------
    click.UsageError
        ``--engine onnx`` without ``--model``, or ``--model``/``--labels`` with another
        engine.

    Examples
    --------
    >>> onnx_engine_options("onnx", Path("m.onnx"), "lip")
    {'model': PosixPath('m.onnx'), 'labels': 'lip'}
    """
    if engine == "onnx" and model is None:
        raise click.UsageError(
            "--engine onnx needs --model PATH: a .onnx file or an exported model folder."
        )
    if engine not in (None, "auto", "onnx") and (model is not None or labels is not None):
        raise click.UsageError(
            f"--model and --labels are options of the onnx engine, not of --engine {engine}."
        )
    if labels is not None and model is None:
        raise click.UsageError("--labels names the label set of a --model; give the model too.")
    options: dict[str, Any] = {}
    if model is not None:
        options["model"] = model
    if labels is not None:
        options["labels"] = labels
    return options


def engine_option(
    *, choices: Sequence[str] | None = None, default: str | None = None, help: str
) -> Callable[[F], F]:
    """``--engine NAME``: which engine segments (``choices`` limits the names)."""
    return click.option(
        "--engine",
        type=click.Choice(list(choices)) if choices else None,
        default=default,
        show_default=default is not None,
        help=help,
    )


def replay_dir_option(func: F) -> F:
    """``--replay-dir``: the record folder of the replay engine."""
    return click.option(
        "--replay-dir",
        type=click.Path(file_okay=False, path_type=Path),
        help=f"Folder of recorded results for the replay engine (else ${REPLAY_DIR_ENV}).",
    )(func)


def api_key_option(func: F) -> F:
    """``--api-key``: the client's key for the service (from the environment by default)."""
    return click.option(
        "--api-key",
        envvar=KEY_ENV,
        show_envvar=True,
        help="API key of the service (selects the remote backend).",
    )(func)


def base_url_option(func: F) -> F:
    """``--base-url``: the service's address (from the environment by default)."""
    return click.option(
        "--base-url", envvar=URL_ENV, show_envvar=True, help="Base URL of the service."
    )(func)


def server_keys_option(func: F) -> F:
    """``--api-key`` of a server: the keys it accepts, as ``api_keys``."""
    return click.option(
        "--api-key",
        "api_keys",
        multiple=True,
        metavar="KEY",
        help=f"Accepted API key (repeatable); also {SERVER_KEYS_ENV}=key1,key2.",
    )(func)


def workers_option(
    help_text: str, *, default: int | None = None, maximum: int | None = 256
) -> Callable[[F], F]:
    """``-w/--workers N``: how many items (or engine threads) run at once.

    Without a ``default`` the command picks what suits its work (the CPU cores for
    in-process work, more for the service).
    """
    return click.option(
        "-w",
        "--workers",
        type=click.IntRange(1, maximum),
        default=default,
        show_default=default is not None,
        help=help_text,
    )


def quiet_option(help_text: str) -> Callable[[F], F]:
    """``-q/--quiet``: the command's own ``help_text``, and only errors from the log."""
    return click.option("-q", "--quiet", is_flag=True, callback=set_quiet, help=help_text)


def rle_or_polygon_option(help_text: str) -> Callable[[F], F]:
    """``--encoding rle|polygon``: how a COCO file holds the masks (``help_text`` says
    where it applies)."""
    return click.option(
        "--encoding",
        type=click.Choice(["rle", "polygon"]),
        default="rle",
        show_default=True,
        help=help_text,
    )


def min_value_option(func: F) -> F:
    """``--min-value``: the mask value from which a pixel belongs to a class (1..255)."""
    return click.option(
        "--min-value",
        type=click.IntRange(1, 255),
        default=128,
        show_default=True,
        help="A class covers a pixel at this mask value or above.",
    )(func)


#: ``--workers`` of the commands whose work is CPU-bound (post-processing, stats, tryon).
CPU_WORKERS_HELP = "Items processed at once [default: the CPU cores available]."


def batch_options(func: F, *, workers_help: str = CPU_WORKERS_HELP) -> F:
    """``--workers`` (help: ``workers_help``), ``--overwrite``, ``--retry-failed``, ``--quiet``."""
    options = [
        workers_option(workers_help),
        click.option(
            "--overwrite",
            is_flag=True,
            help="Redo every item, even those complete from an earlier run.",
        ),
        click.option(
            "--retry-failed",
            is_flag=True,
            help="Retry the items that failed in an earlier run (otherwise skipped).",
        ),
        quiet_option(
            "No progress bar, no summary and only errors logged; the exit code tells how it went."
        ),
    ]
    return stack(*options)(func)


def _parse_shard(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return Shard.parse(value)
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc)) from None


def scale_options(func: F) -> F:
    """``--shard K/N``, ``--executor`` and ``--ray-address``: where a batch's items run.

    Every batch command takes them and passes them on to
    :func:`~clothseg_tools.batch.run_job` in its
    :class:`~clothseg_tools.batch.BatchOptions` (``shard``, ``executor``,
    ``ray_address``).
    """
    options = [
        click.option(
            "--shard",
            metavar="K/N",
            callback=_parse_shard,
            help="Run only shard K of N (a stable share of the items, by a hash of their "
            "path), e.g. from a Slurm or Kubernetes array job; see 'clothseg shards'.",
        ),
        click.option(
            "--executor",
            type=click.Choice(["local", "ray"]),
            default="local",
            show_default=True,
            help="local: threads in this process; ray: Ray workers (pip install "
            "'clothseg_tools[ray]'), a local Ray of --workers CPUs unless --ray-address.",
        ),
        click.option(
            "--ray-address",
            metavar="ADDR",
            envvar="RAY_ADDRESS",
            show_envvar=True,
            help="Join this Ray cluster (what 'ray start --head' printed) with --executor ray.",
        ),
    ]
    return stack(*options)(func)


def results_argument(func: F) -> F:
    """``RESULTS``: an existing folder of saved results (at any depth)."""
    return click.argument("results", type=click.Path(exists=True, file_okay=False, path_type=Path))(
        func
    )


def out_option(help_text: str, *, dest: str = "out_dir", file: bool = False) -> Callable[[F], F]:
    """``-o/--out``: where the command writes, a folder (or a file with ``file``), given to
    the command as ``dest``."""
    return click.option(
        "-o",
        "--out",
        dest,
        type=click.Path(dir_okay=not file, file_okay=file, path_type=Path),
        help=help_text,
    )
