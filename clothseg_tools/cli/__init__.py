"""The ``clothseg`` command line: a thin layer over :mod:`clothseg_tools.batch`.

Examples
--------
>>> from click.testing import CliRunner
>>> result = CliRunner().invoke(main, ["--help"])
>>> result.exit_code, "segment" in result.output
(0, True)
"""

from __future__ import annotations

import sys

import click

from .._version import __version__
from ..errors import install_hint
from ._common import ClothsegGroup, configure_logging
from .export import coco_command, export_command, import_labels_command
from .importing import import_command
from .post import (
    background_command,
    cutout_command,
    labelmap_command,
    merge_command,
    overlay_command,
    stats_command,
)
from .report import demo_command, report_command
from .segment import segment_command
from .shards import shards_command
from .tryon import tryon_command

__all__ = ["main"]


@click.group(cls=ClothsegGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="clothseg")
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="Log more: -v retries and each item's timings, -vv every request made.",
)
@click.pass_context
def main(ctx: click.Context, verbose: int) -> None:
    """Segment clothing in photos and turn the masks into cutouts, label maps and reports.

    Start with `clothseg demo`: it runs the whole job offline on sample photos.
    The library's warnings and errors are shown on standard error; -v and -vv show
    more, a command's --quiet only errors.
    """
    ctx.meta["clothseg.verbose"] = verbose
    ctx.call_on_close(configure_logging(verbose))


def _serve_command() -> click.Command:
    """``clothseg serve`` from the server package; its heavy imports wait until it runs.

    Should even the command's module be unimportable, a stand-in says what to install,
    so ``clothseg --help`` and every other command keep working.
    """
    try:
        # lazy: a stand-in replaces the command when the server extra is missing
        from ..server.cli import serve_command
    except ImportError as exc:
        reason = exc.name or str(exc)

        @click.command("serve", context_settings={"ignore_unknown_options": True})
        @click.argument("args", nargs=-1, type=click.UNPROCESSED)
        def serve_missing(args: tuple[str, ...]) -> None:
            """Run the local API-compatible server (needs the [server] extra)."""
            raise click.ClickException(
                f"EngineUnavailableError: clothseg serve needs packages that are not "
                f"installed ({reason}). Install them with: {install_hint('server')}"
            )

        return serve_missing
    return serve_command


for _command in (
    segment_command,
    import_command,
    merge_command,
    labelmap_command,
    cutout_command,
    background_command,
    overlay_command,
    stats_command,
    tryon_command,
    coco_command,
    shards_command,
    export_command,
    import_labels_command,
    report_command,
    demo_command,
):
    main.add_command(_command)

_server_cli = sys.modules.get("clothseg_tools.server.cli")
if _server_cli is not None and not hasattr(_server_cli, "serve_command"):
    # server.cli is importing this package (for cli.options) and is not finished yet:
    # build `serve` when it is first asked for instead of taking it for missing
    main.lazy_commands["serve"] = _serve_command
else:
    main.add_command(_serve_command())
