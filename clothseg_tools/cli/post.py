"""Post-processing commands over result folders: merge, labelmap, cutout, background,
overlay, stats. Each reads every result folder under RESULTS and writes one file per
folder (beside the masks unless --out says otherwise)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ..batch import BatchOptions, Job, require_results, run_job, shard_states
from ..batch.coverage import stats_job, write_dataset_stats
from ..batch.post import (
    DEFAULT_NAMES,
    background_job,
    cutout_job,
    labelmap_job,
    merge_job,
    overlay_job,
    parse_classes,
    parse_color,
)
from ..batch.runner import available_cpus
from ._common import TqdmProgress, finish_batch
from .options import batch_options, min_value_option, scale_options

__all__ = [
    "background_command",
    "cutout_command",
    "labelmap_command",
    "merge_command",
    "overlay_command",
    "stats_command",
]

F = TypeVar("F", bound=Callable[..., Any])
#: The options of batch_options and scale_options, which run_post takes.
_BATCH_KEYS = ("workers", "overwrite", "retry_failed", "quiet", "shard", "executor", "ray_address")

#: What a post command returns: the function that builds its job from the output root.
JobBuilder = Callable[[Path], Job]


def _classes_option(help_text: str) -> Callable[[F], F]:
    def convert(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
        return parse_classes(value)

    return click.option("--classes", callback=convert, metavar="A,B,...", help=help_text)


def post_command(command: str) -> Callable[[Callable[..., JobBuilder]], Callable[..., None]]:
    """RESULTS, --out, --name and the batch options shared by every post command.

    The decorated function takes the command's own options (and ``name``) and returns
    what builds its job from the output root; finding the result folders, running
    the job and reporting are done here, once for every command.
    """

    def wrap(func: Callable[..., JobBuilder]) -> Callable[..., None]:
        @functools.wraps(func)
        def command_body(results: Path, out_dir: Path | None, **options: Any) -> None:
            batch = {k: options.pop(k) for k in _BATCH_KEYS}
            run_post(command, func(**options), results, out_dir, **batch)

        run: Any = scale_options(batch_options(command_body))
        run = click.option(
            "--name",
            default=DEFAULT_NAMES[command],
            show_default=True,
            help="Output file name inside each item's folder.",
        )(run)
        run = click.option(
            "-o",
            "--out",
            "out_dir",
            type=click.Path(file_okay=False, path_type=Path),
            help="Output root (default: RESULTS itself, beside the masks).",
        )(run)
        run = click.argument(
            "results", type=click.Path(exists=True, file_okay=False, path_type=Path)
        )(run)
        return run

    return wrap


def run_post(
    command: str,
    build: Callable[[Path], Job],
    results: Path,
    out_dir: Path | None,
    *,
    workers: int | None,
    quiet: bool,
    **batch: Any,
) -> None:
    """Discover the result folders, run the job, print the summary and exit.

    ``batch`` holds the other :class:`~clothseg_tools.batch.BatchOptions` fields the
    batch and scale options gave (overwrite, retry_failed, shard, executor ...).
    """
    out = out_dir or results
    items = require_results(results)
    job = build(out)
    # numpy work on whole masks: one thread per core, more only contend
    settings = BatchOptions(workers=workers or available_cpus(), **batch)
    summary = run_job(
        job, items, settings, progress=TqdmProgress(command, quiet=quiet, unit="folder")
    )
    outputs: list[str] = []
    if command == "stats" and not summary.interrupted:
        states = shard_states(out, job.manifest_name or job.command) if settings.shard else []
        if all(s.state == "done" for s in states):
            csv_path, json_path = write_dataset_stats(job, items)
            outputs = [f"coverage per image: {csv_path}", f"dataset summary: {json_path}"]
        else:
            outputs = ["the dataset summary is written by the last shard to finish"]
    finish_batch(summary, quiet=quiet, outputs=outputs)


@click.command("merge", short_help="Merge classes into one mask per image.")
@post_command("merge")
@_classes_option("Classes to merge (default: every garment, bag, shoes, accessory).")
def merge_command(name: str, classes: Any) -> JobBuilder:
    """Merge classes into one soft mask per image (pixel-wise maximum)."""
    return lambda out: merge_job(out, classes=classes, name=name)


@click.command("labelmap", short_help="Write a palette label PNG per image.")
@post_command("labelmap")
@_classes_option("Classes that get labels, in label order (default: all twelve).")
@click.option(
    "--priority",
    metavar="A,B,...",
    help=(
        "Where classes overlap, the earliest listed wins (default: face, hair, head, acc, "
        "bag, shoes, dress, tops, bottoms, clothes, body, others)."
    ),
)
@min_value_option
def labelmap_command(name: str, classes: Any, priority: str | None, min_value: int) -> JobBuilder:
    """Write a palette label PNG per image (0 = background, i = the i-th class)."""
    order = parse_classes(priority)
    return lambda out: labelmap_job(
        out, classes=classes, priority=order, min_value=min_value, name=name
    )


@click.command("cutout", short_help="Cut the garments out as RGBA PNGs.")
@post_command("cutout")
@_classes_option("Classes to keep (default: every garment, bag, shoes, accessory).")
@click.option(
    "--decontaminate",
    is_flag=True,
    help="Re-estimate edge colours so the old background does not bleed in.",
)
def cutout_command(name: str, classes: Any, decontaminate: bool) -> JobBuilder:
    """Cut the garments out of each photo as an RGBA PNG."""
    return lambda out: cutout_job(out, classes=classes, decontaminate=decontaminate, name=name)


@click.command("background", short_help="Replace the background: colour, picture or blur.")
@post_command("background")
@_classes_option("Classes to keep (default: every garment, bag, shoes, accessory).")
@click.option(
    "--color",
    "color",
    metavar="COLOUR",
    help="Fill colour: #rrggbb, r,g,b or a name (default: white).",
)
@click.option(
    "--image",
    "image",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Background picture, scaled to cover each photo and centre-cropped.",
)
@click.option("--blur", is_flag=True, help="Blur the photo's own background.")
@click.option(
    "--blur-radius",
    type=click.FloatRange(min=0, min_open=True),
    default=20.0,
    show_default=True,
    help="Blur radius in pixels, with --blur.",
)
def background_command(
    name: str,
    classes: Any,
    color: str | None,
    image: Path | None,
    blur: bool,
    blur_radius: float,
) -> JobBuilder:
    """Replace everything but the garments with a colour, a picture or a blur."""
    chosen = [
        flag
        for flag, value in (("--color", color), ("--image", image), ("--blur", blur or None))
        if value is not None
    ]
    if len(chosen) > 1:
        raise click.UsageError(f"Choose one background, not {' and '.join(chosen)}.")
    backdrop: Any
    if image is not None:
        backdrop = image
    elif blur:
        backdrop = "blur"
    else:
        try:
            backdrop = parse_color(color or "white")
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--color") from None
    return lambda out: background_job(
        out,
        background=backdrop,
        classes=classes,
        blur_radius=blur_radius if blur else None,
        name=name,
    )


@click.command("overlay", short_help="Tint the classes over each photo for review.")
@post_command("overlay")
@_classes_option("Classes to show (default: all).")
@click.option(
    "--alpha",
    type=click.FloatRange(0, 1),
    default=0.5,
    show_default=True,
    help="Opacity of the class colours.",
)
def overlay_command(name: str, classes: Any, alpha: float) -> JobBuilder:
    """Tint each class in its colour over the photo, for review."""
    return lambda out: overlay_job(out, alpha=alpha, classes=classes, name=name)


@click.command("stats", short_help="Coverage per image and dataset summary (CSV, JSON).")
@click.argument("results", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "-o",
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Output root (default: RESULTS itself).",
)
@min_value_option
@click.option("--components", is_flag=True, help="Also count connected regions per class (slower).")
@batch_options
@scale_options
def stats_command(
    results: Path, out_dir: Path | None, min_value: int, components: bool, **batch: Any
) -> None:
    """Coverage per image and class, and the dataset summary (CSV and JSON).

    Writes coverage.json into each result folder, then stats.csv (one row per image
    and class), stats_summary.csv and stats.json (the per-class dataset summary).
    """
    run_post(
        "stats",
        lambda out: stats_job(out, min_value=min_value, components=components),
        results,
        out_dir,
        **batch,
    )
