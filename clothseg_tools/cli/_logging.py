"""The command line's log output: the library's records on standard error, at the
level ``-v`` / ``-vv`` / ``--quiet`` ask for."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

import click

__all__ = ["configure_logging", "set_quiet"]

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


def set_quiet(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        configure_logging(_verbosity(), quiet=True)
    return value
