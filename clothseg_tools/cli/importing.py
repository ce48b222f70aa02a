"""``clothseg import``: parsing maps (or another registered format) into result folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..batch.importing import available_formats, import_batch
from ..batch.runner import BatchOptions, available_cpus
from ..errors import LabelSetError
from ..labelsets import get_labelset
from ._common import TqdmProgress, finish_batch
from .options import batch_options, scale_options

__all__ = ["import_command"]


@click.command("import", short_help="Turn parsing maps into result folders (resumable).")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option(
    "-o",
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder: one result folder per map, and the manifest.",
)
@click.option(
    "--labels",
    metavar="SET",
    help="Label set of the maps' values: atr, ootd, lip, cihp, pascal_person_part, fashn, "
    "or a .json file.",
)
@click.option(
    "--images",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of the photos, matched by relative path, then by file name without "
    "extension (cutout, overlay and try-on need them).",
)
@click.option(
    "-f",
    "--format",
    "fmt",
    default="parsing",
    show_default=True,
    help="What SOURCE holds: parsing (a folder of index PNGs, SCHP / CIHP / ATR style).",
)
@batch_options
@scale_options
def import_command(
    source: Path,
    out_dir: Path,
    labels: str | None,
    images: Path | None,
    fmt: str,
    workers: int | None,
    quiet: bool,
    **batch: Any,
) -> None:
    """Write the parsing maps in SOURCE as result folders under OUT.

    Each map SOURCE/<path>.png becomes OUT/<path>/, in the layout `clothseg segment`
    writes (class masks, parsing.png, result.json), so stats, coco, report, cutout and
    tryon read it. Rerunning the same command resumes where it stopped; --shard K/N
    imports a stable share of the maps (by a hash of their relative path).

    Example: clothseg import lip_parsing/ --labels lip --images photos/ --out results/
    """
    labelset = None
    if labels is not None:
        try:
            labelset = get_labelset(labels)
        except LabelSetError as exc:
            raise click.BadParameter(str(exc), param_hint="--labels") from None

    if fmt not in available_formats():
        raise click.BadParameter(
            f"{fmt!r} is not a format import reads; choose one of "
            f"{', '.join(available_formats())}.",
            param_hint="--format",
        )
    summary = import_batch(
        source,
        out_dir,
        fmt=fmt,
        labels=labelset,
        images=images,
        batch=BatchOptions(workers=workers or available_cpus(), **batch),
        progress=TqdmProgress("import", quiet=quiet),
    )
    what = f"{fmt} from {source}" + (f" with label set {labels}" if labels else "")
    finish_batch(summary, quiet=quiet, details=[what])
