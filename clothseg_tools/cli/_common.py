"""What every ``clothseg`` command shares: error reporting, progress, the summary and exit.

The shared options themselves are in :mod:`clothseg_tools.cli.options`.

User errors are shown as ``Error: TypeName: message`` and never as a traceback:
configuration and usage problems exit with 2, other errors with 1. A batch exits with
its summary's code: 0 all done, 1 some failed, 130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import logging
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import click

from ..batch.runner import EXIT_FAILED, EXIT_OK, BatchSummary
from ..errors import ClothsegError, ConfigurationError
from ._logging import configure_logging

# the shared flags, still importable from here as commands did
from .options import (
    batch_options,
    model_options,
    onnx_engine_options,
    quiet_option,
    workers_option,
)

__all__ = [
    "CliError",
    "ClothsegGroup",
    "TqdmProgress",
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


class CliError(click.ClickException):
    """A library error shown as ``Error: TypeName: message``.

    Configuration errors (missing key, unknown engine, inputs that do not exist) exit
    with 2 like usage errors; everything else with 1.
    """

    def __init__(self, exc: BaseException) -> None:
        super().__init__(f"{type(exc).__name__}: {exc}")
        self.exit_code = 2 if isinstance(exc, ConfigurationError) else 1  # type: ignore[misc]


class ClothsegGroup(click.Group):
    """A click group that turns library errors raised by any command into :class:`CliError`.

    Commands in :attr:`lazy_commands` are built the first time they are asked for, so a
    command whose module imports this package (``clothseg serve``) is not imported while
    this package itself is still being imported.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands: dict[str, Callable[[], click.Command]] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        factory = self.lazy_commands.pop(cmd_name, None)
        if factory is not None:
            self.add_command(factory(), cmd_name)
        return super().get_command(ctx, cmd_name)

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
    incomplete: bool = False,
) -> None:
    """Print the summary (unless quiet), failures and resume hints; exit with its code.

    ``details`` are lines about the run (engine, classes) shown under the table;
    ``outputs`` are extra lines (files the command wrote) shown after the manifest.
    Files the discovery passed over are listed with their reasons. ``incomplete``:
    the command's output could not be made (items of other shards failed), so exit
    with 1 even when this run's own items are done.
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
    code = summary.exit_code
    click.get_current_context().exit(EXIT_FAILED if incomplete and code == EXIT_OK else code)
