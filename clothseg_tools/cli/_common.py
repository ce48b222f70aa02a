"""What every ``clothseg`` command shares: error reporting, batch options, progress, exit.

User errors are shown as ``Error: TypeName: message`` and never as a traceback:
configuration and usage problems exit with 2, other errors with 1. A batch exits with
its summary's code: 0 all done, 1 some failed, 130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import functools
import logging
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from ..batch.runner import BatchSummary
from ..contract import OPTION_NAMES, OPTIONS
from ..errors import ClothsegError, ConfigurationError

__all__ = [
    "CliError",
    "ClothsegGroup",
    "TqdmProgress",
    "api_option_flags",
    "batch_options",
    "configure_logging",
    "finish_batch",
    "model_options",
    "onnx_engine_options",
    "quiet_option",
    "resume_command",
    "workers_option",
]

F = TypeVar("F", bound=Callable[..., Any])

#: How many failures a summary lists by name before it points to the manifest.
_LIST_FAILURES = 10

#: The library's logger: every record the package writes goes through it.
_LOGGER = logging.getLogger("clothseg_tools")


class _EchoHandler(logging.Handler):
    """Writes log records to the standard error stream current at the time of writing
    (click's test runner swaps it), one line each; remembers the logger's level from
    before the command line set it."""

    def __init__(self, before: int) -> None:
        super().__init__()
        self.before = before

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            tqdm = sys.modules.get("tqdm")
            if tqdm is not None and getattr(tqdm.tqdm, "_instances", None):
                # a progress bar is on screen: print above it instead of through it
                tqdm.tqdm.write(line, file=sys.stderr)
            else:
                click.echo(line, err=True)
        except Exception:  # a log line must never end a command
            self.handleError(record)


def configure_logging(verbose: int = 0, *, quiet: bool = False) -> Callable[[], None]:
    """Show the library's log records on standard error at the level the flags ask for.

    Warnings and errors by default; ``-v`` adds info (retries, each item's timings),
    ``-vv`` debug (every request with its status and time); ``--quiet`` errors only.
    Calling it again replaces the earlier setting.

    Returns
    -------
    callable
        Puts the logger back as it was before the first call (the command line calls
        it when the command ends, so that a program running commands in-process keeps
        its own logging).

    Examples
    --------
    >>> restore = configure_logging(2)
    >>> logging.getLogger("clothseg_tools").level == logging.DEBUG
    True
    >>> _ = configure_logging(2, quiet=True); logging.getLogger("clothseg_tools").level
    40
    >>> restore()
    """
    level = (
        logging.ERROR
        if quiet
        else {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    )
    mine = [h for h in _LOGGER.handlers if isinstance(h, _EchoHandler)]
    before = mine[0].before if mine else _LOGGER.level
    for old in mine:
        _LOGGER.removeHandler(old)
    handler = _EchoHandler(before)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    _LOGGER.addHandler(handler)
    _LOGGER.setLevel(level)

    def restore() -> None:
        for h in [h for h in _LOGGER.handlers if isinstance(h, _EchoHandler)]:
            _LOGGER.removeHandler(h)
        _LOGGER.setLevel(before)

    return restore


def _verbosity() -> int:
    ctx = click.get_current_context(silent=True)
    return int(ctx.find_root().meta.get("clothseg.verbose", 0)) if ctx is not None else 0


def _set_quiet(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        configure_logging(_verbosity(), quiet=True)
    return value


def quiet_option(help_text: str) -> Callable[[F], F]:
    """``-q/--quiet``: the command's own ``help_text``, and only errors from the log."""
    return click.option("-q", "--quiet", is_flag=True, callback=_set_quiet, help=help_text)


def _option_type(name: str) -> click.ParamType:
    allowed = OPTIONS[name].allowed
    if allowed == tuple(range(allowed[0], allowed[-1] + 1)):
        return click.IntRange(allowed[0], allowed[-1])
    return click.Choice([str(v) for v in allowed])


def api_option_flags(func: F) -> F:
    """``--class-type``, ``--output-type`` ...: one flag per option of the contract's table.

    Each flag's values, default and help come from :data:`clothseg_tools.contract.OPTIONS`,
    and the command receives the value as an int.
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


class CliError(click.ClickException):
    """A library error shown as ``Error: TypeName: message``.

    Configuration errors (missing key, unknown engine, inputs that do not exist) exit
    with 2 like usage errors; everything else with 1.
    """

    def __init__(self, exc: BaseException) -> None:
        super().__init__(f"{type(exc).__name__}: {exc}")
        self.exit_code = 2 if isinstance(exc, ConfigurationError) else 1  # type: ignore[misc]


class ClothsegGroup(click.Group):
    """A click group that turns library errors raised by any command into :class:`CliError`."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (ClothsegError, OSError) as exc:
            logging.getLogger("clothseg_tools").debug("command failed", exc_info=True)
            raise CliError(exc) from exc


class TqdmProgress:
    """A tqdm bar with rate, ETA and the failure count; silent off a terminal or with quiet.

    Parameters
    ----------
    desc
        Label in front of the bar.
    quiet
        Never show the bar.
    unit
        What is counted.
    """

    def __init__(self, desc: str, *, quiet: bool = False, unit: str = "img") -> None:
        self.desc = desc
        self.quiet = quiet
        self.unit = unit
        self.failed = 0
        self._bar: Any = None

    def start(self, total: int, *, skipped: int) -> None:
        from tqdm import tqdm

        disable = self.quiet or not sys.stderr.isatty()
        self._bar = tqdm(
            total=total,
            desc=self.desc,
            unit=self.unit,
            disable=disable,
            dynamic_ncols=True,
            smoothing=0.1,
            file=sys.stderr,
        )
        if skipped and not disable:
            self._bar.write(f"{skipped} already handled (see the manifest); skipping them.")

    def advance(self, record: Mapping[str, Any]) -> None:
        if record.get("status") != "done":
            self.failed += 1
        if self._bar is not None:
            self._bar.set_postfix(failed=self.failed, refresh=False)
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


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
    return functools.reduce(lambda f, opt: opt(f), reversed(options), func)


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


def workers_option(help_text: str) -> Callable[[F], F]:
    """``-w/--workers`` with no fixed default: the command picks what suits its work."""
    return click.option("-w", "--workers", type=click.IntRange(1, 256), help=help_text)


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
    return functools.reduce(lambda f, opt: opt(f), reversed(options), func)


_SECRET_OPTIONS = ("--api-key",)


def resume_command(argv: list[str] | None = None) -> str:
    """The command line to run again to resume, with the API key hidden.

    Examples
    --------
    >>> resume_command(["clothseg", "segment", "in", "--api-key", "s3cret", "--out", "o"])
    'clothseg segment in --api-key *** --out o'
    """
    args = list(sys.argv if argv is None else argv)
    shown: list[str] = ["clothseg"]
    hide_next = False
    for arg in args[1:]:
        if hide_next:
            shown.append("***")
            hide_next = False
        elif arg in _SECRET_OPTIONS:
            shown.append(arg)
            hide_next = True
        elif arg.startswith(tuple(f"{o}=" for o in _SECRET_OPTIONS)):
            shown.append(arg.split("=", 1)[0] + "=***")
        else:
            shown.append(arg)
    return " ".join(shlex.quote(a) if a != "***" and not a.endswith("=***") else a for a in shown)


def finish_batch(
    summary: BatchSummary,
    *,
    quiet: bool = False,
    outputs: Sequence[str] = (),
    details: Sequence[str] = (),
) -> None:
    """Print the summary (unless quiet), failures and resume hints; exit with its code.

    ``details`` are lines about the run (engine, classes) shown under the table;
    ``outputs`` are extra lines (files the command wrote) shown after the manifest.
    Files the discovery passed over are listed with their reasons.
    """
    if not quiet:
        click.echo(summary.table())
        for line in details:
            click.echo(f"  {line}")
        for rec in summary.passed_over[:_LIST_FAILURES]:
            click.echo(f"skipped: {rec.get('source')}: {rec.get('reason')}")
        if len(summary.passed_over) > _LIST_FAILURES:
            click.echo(
                f"... and {len(summary.passed_over) - _LIST_FAILURES} more skipped; "
                f"see {summary.manifest}"
            )
        click.echo(f"manifest: {summary.manifest}")
        for line in outputs:
            click.echo(line)
    failures = [r for r in summary.records if r.get("status") == "failed"]
    for rec in failures[:_LIST_FAILURES]:
        err = rec.get("error") or {}
        click.echo(
            f"failed: {rec.get('source')}: {err.get('type')}: {err.get('message')}", err=True
        )
    if len(failures) > _LIST_FAILURES:
        click.echo(
            f"... and {len(failures) - _LIST_FAILURES} more failures; see {summary.manifest}",
            err=True,
        )
    if summary.interrupted:
        click.echo(
            f"Interrupted: the items in flight finished and were recorded; "
            f"{summary.not_started} not started. Resume with:\n  {resume_command()}",
            err=True,
        )
    elif summary.failed or summary.failed_before:
        click.echo(
            "Some items failed; rerun the same command with --retry-failed to retry them.",
            err=True,
        )
    click.get_current_context().exit(summary.exit_code)
