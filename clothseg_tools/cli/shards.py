"""``clothseg shards``: which shards of a sharded run are done, running, stopped or missing."""

from __future__ import annotations

from pathlib import Path

import click

from ..batch.manifest import manifest_files
from ..batch.shards import shard_states

__all__ = ["shards_command"]


@click.command("shards", short_help="Which shards of a --shard run are done, running, missing.")
@click.argument("results", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--command",
    "commands",
    multiple=True,
    metavar="NAME",
    help="Only this command's shards (segment, cutout, stats ...); repeatable. "
    "Default: every command run in shards here.",
)
def shards_command(results: Path, commands: tuple[str, ...]) -> None:
    """List the shards of every sharded run in RESULTS (the --out of segment, or the
    --out of a post-processing command).

    A shard is done when it reached every item, running while its process works
    (for another machine's shard: while its marker is there), stopped when it began
    but did not finish (run the same command again to finish it), and missing when it
    never began. Exits with 0 when every shard listed is done, 1 otherwise.
    """
    names = list(commands) or list(
        dict.fromkeys(f.command for f in manifest_files(results) if f.shard is not None)
    )
    lines: list[str] = []
    complete = True
    for name in names:
        states = shard_states(results, name)
        for st in states:
            complete &= st.state == "done"
            counts = f"{st.done} done, {st.failed} failed"
            lines.append(f"{name:<10} {st.shard.label:<10} {st.state:<8} {counts:<22} {st.detail}")
        if states:
            finished = sum(st.state == "done" for st in states)
            lines.append(f"{name:<10} {finished} of {len(states)} shards done")
    if not lines:
        click.echo(f"{results} holds no sharded run (no manifest.K-of-N.jsonl).")
        click.get_current_context().exit(1)
    for line in lines:
        click.echo(line.rstrip())
    click.get_current_context().exit(0 if complete else 1)
