"""``clothseg report`` (the review page) and ``clothseg demo`` (the whole job offline)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..batch.runner import available_cpus
from ..engines import get_engine
from .options import engine_option, model_options, onnx_engine_options, quiet_option, workers_option

__all__ = ["demo_command", "report_command"]


@click.command("report", short_help="Write an offline HTML review page of results.")
@click.argument("results", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "-o",
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The HTML file (default: RESULTS/report.html).",
)
@click.option("--title", help="Page title (default: the folder's name).")
@click.option(
    "--thumb-size",
    type=click.IntRange(32, 2048),
    default=320,
    show_default=True,
    help="Longest side of the pictures on the page, in pixels.",
)
@click.option("--max-images", type=click.IntRange(min=1), help="Show at most this many images.")
@workers_option("Threads making pictures [default: the CPU cores available].")
def report_command(
    results: Path,
    out: Path | None,
    title: str | None,
    thumb_size: int,
    max_images: int | None,
    workers: int | None,
) -> None:
    """Write a self-contained HTML review page of a results folder.

    Per image: the photo, the overlay, the cutout and its coverage; the dataset's
    coverage charts; every failure with its reason. Viewable offline.
    """
    # lazy: keeps the clothseg command's start-up fast
    from ..report import build_report

    page = build_report(
        results,
        out=out,
        title=title,
        thumb_size=thumb_size,
        max_images=max_images,
        workers=workers or available_cpus(),
    )
    click.echo(f"Report: {page}\nOpen it in a browser: {page.resolve().as_uri()}")


@click.command("demo", short_help="Run the whole job offline on sample photos.")
@click.option(
    "-o",
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("clothseg-demo"),
    show_default=True,
    help="Folder for the sample photos, results and report.",
)
@engine_option(
    choices=("local", "onnx"),
    default="local",
    help="In-process engine: local (replayed recordings where it cannot install), or onnx "
    "with --model.",
)
@model_options
@workers_option("Images processed at once [default: the CPU cores available].")
@quiet_option("No progress bars, and only errors logged.")
def demo_command(
    out: Path,
    engine: str,
    model: Path | None,
    labels: str | None,
    workers: int | None,
    quiet: bool,
) -> None:
    """Run the whole job offline on sample photos and write the review report.

    Segments scikit-image's sample photos of people plus a few generated ones with
    the local engine (no API key needed), makes overlays, cutouts, label maps and
    statistics, and writes OUT/results/report.html. With --engine onnx --model PATH the
    photos are segmented by that human-parsing model instead.
    """
    # lazy: keeps the clothseg command's start-up fast
    from ..demo import run_demo
    from ._common import TqdmProgress

    options = onnx_engine_options(engine, model, labels)
    chosen: Any = engine
    if options:
        chosen = get_engine("onnx", **options)  # loaded once, shared by the workers

    def progress(step: str) -> TqdmProgress:
        return TqdmProgress(step, quiet=quiet)

    def say(message: str) -> None:
        if not quiet:
            click.echo(message, err=True)

    demo = run_demo(out, engine=chosen, workers=workers, progress=progress, log=say)
    if demo.report is None:
        click.echo("Interrupted; run the same command again to resume.", err=True)
        click.get_current_context().exit(demo.exit_code)
    for step, summary in demo.summaries.items():
        failed = summary.failed + summary.failed_before
        click.echo(
            f"{step:<10} {summary.done + summary.skipped:>3} done"
            + (f", {failed} failed" if failed else "")
        )
    click.echo(f"Report: {demo.report}\nOpen it in a browser: {demo.report.resolve().as_uri()}")
    click.get_current_context().exit(demo.exit_code)
