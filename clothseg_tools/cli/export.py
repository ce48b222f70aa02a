"""``clothseg coco`` and ``clothseg export``: results as COCO JSON, YOLO segmentation,
CVAT segmentation masks, Label Studio pre-annotations or Hugging Face parquet shards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ..batch import BatchItem, BatchOptions, require_results
from ..batch.post import parse_classes
from ..batch.runner import available_cpus
from ..classes import canonical_classes
from ..errors import ClothsegError
from ._common import CliError, TqdmProgress, finish_batch
from .options import (
    batch_options,
    min_value_option,
    out_option,
    results_argument,
    rle_or_polygon_option,
    scale_options,
)

__all__ = ["coco_command", "export_command", "import_labels_command"]


@click.command("coco", short_help="Export a results folder as COCO JSON (RLE or polygons).")
@results_argument
@out_option("The JSON file (default: RESULTS/coco.json).", dest="out", file=True)
@click.option(
    "--mode",
    type=click.Choice(["instances", "semantic"]),
    default="instances",
    show_default=True,
    help="instances: one annotation per class mask (overlaps kept); "
    "semantic: one class per pixel, overlaps settled by label priority.",
)
@rle_or_polygon_option("Compressed RLE (exact) or polygons with holes.")
@click.option(
    "--no-parts",
    is_flag=True,
    help="One annotation per class even where per-garment parts were saved.",
)
@min_value_option
@batch_options
@scale_options
def coco_command(
    results: Path,
    out: Path | None,
    mode: str,
    encoding: str,
    no_parts: bool,
    min_value: int,
    quiet: bool,
    **batch: Any,
) -> None:
    """Write a COCO JSON file for every saved result below RESULTS.

    Categories are the twelve classes; images are named after their source photos.
    pycocotools' COCO(path) reads the file as it is.

    With --shard K/N or --executor ray it runs as a resumable batch: each result's
    share goes beside the file with a manifest, and the last shard to finish writes
    the file, the same bytes as one run (--workers, --overwrite and --retry-failed
    apply then).
    """
    # lazy: keeps the clothseg command's start-up fast
    from ..batch.coco import COCO_NAME
    from ..export import export_coco

    items = require_results(results)  # an empty folder answers like every other command
    path = out or results / COCO_NAME
    options: dict[str, Any] = {
        "mode": mode,
        "encoding": encoding,
        "parts": not no_parts,
        "level": min_value,
    }
    if batch["shard"] is not None or batch["executor"] != "local":
        _coco_batch(items, path, options, quiet=quiet, **batch)
        return
    path = export_coco(results, path, **options)
    if not quiet:
        doc = json.loads(path.read_text(encoding="utf-8"))
        click.echo(
            f"COCO: {path} ({len(doc['images'])} images, {len(doc['annotations'])} annotations)"
        )


def _coco_batch(
    items: list[BatchItem],
    path: Path,
    options: dict[str, Any],
    *,
    quiet: bool,
    workers: int | None,
    **batch: Any,
) -> None:
    """``coco`` in shards or on Ray: the batch, then the file from the last shard."""
    # lazy: keeps the clothseg command's start-up fast
    from ..batch.coco import coco_batch

    settings = BatchOptions(workers=workers or available_cpus(), **batch)
    run = coco_batch(
        items, path, settings, progress=TqdmProgress("coco", quiet=quiet, unit="folder"), **options
    )
    outputs = [run.waiting]
    if run.written is not None:
        outputs = [f"COCO: {run.written} ({run.images} images, {run.annotations} annotations)"]
    elif run.incomplete:
        outputs = []
        click.echo(run.waiting, err=True)  # what is wrong, even with --quiet
    finish_batch(run.summary, quiet=quiet, outputs=outputs, incomplete=run.incomplete)


FORMATS = ("coco", "yolo", "cvat", "labelstudio", "hf")


@click.command("export", short_help="Export results for a labeling tool or a training set.")
@click.argument("results", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    required=True,
    help="coco: one JSON; yolo: Ultralytics segmentation folder; cvat: Segmentation mask "
    "1.1 (a .zip OUT is zipped); labelstudio: tasks with predictions and the labeling "
    "config; hf: Hugging Face parquet shards with a dataset card.",
)
@click.option(
    "-o",
    "--out",
    "out",
    type=click.Path(path_type=Path),
    required=True,
    help="The dataset folder (the JSON file for coco, a folder or .zip for cvat).",
)
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@min_value_option
@click.option(
    "--no-parts",
    is_flag=True,
    help="coco, yolo, labelstudio: one instance per class (or region), not per garment part.",
)
@click.option(
    "--no-images",
    is_flag=True,
    help="yolo, cvat, labelstudio, hf: do not copy the photos (cvat copies them only "
    "with --images).",
)
@click.option("--images", "cvat_images", is_flag=True, help="cvat: also copy the photos.")
@click.option(
    "--tolerance",
    type=click.FloatRange(min=0),
    default=0.25,
    show_default=True,
    help="Polygon simplification in pixels (coco polygons, yolo, labelstudio polygons).",
)
@click.option(
    "--min-area",
    type=click.FloatRange(min=0),
    default=0,
    show_default=True,
    help="yolo: drop regions of fewer pixels and fill smaller holes.",
)
@rle_or_polygon_option("coco: compressed RLE (exact) or polygons.")
@click.option(
    "--kind",
    type=click.Choice(["brush", "polygon"]),
    default="brush",
    show_default=True,
    help="labelstudio: brush masks (exact) or polygons.",
)
@click.option(
    "--image-root",
    metavar="URL",
    help="labelstudio: URL prefix the photos are served under (default: local files).",
)
@click.option(
    "--local-root",
    type=click.Path(file_okay=False, path_type=Path),
    help="labelstudio: Label Studio's local-files document root (default: OUT).",
)
@click.option(
    "--masks",
    "mask_columns",
    metavar="A,B,...",
    help="hf: classes that get a mask column of their own.",
)
def export_command(
    results: Path,
    fmt: str,
    out: Path,
    overwrite: bool,
    min_value: int,
    no_parts: bool,
    no_images: bool,
    cvat_images: bool,
    tolerance: float,
    min_area: float,
    encoding: str,
    kind: str,
    image_root: str | None,
    local_root: Path | None,
    mask_columns: str | None,
) -> None:
    """Export every saved result below RESULTS in a labeling tool's or trainer's format.

    The dataset is built beside OUT and moved into place when complete, so an
    interrupted export leaves nothing half-written. Exit codes: 0 done, 1 failed
    (the message names the result at fault), 2 usage, 130 interrupted.
    """
    # lazy: keeps the clothseg command's start-up fast
    from .. import export

    require_results(results)  # an empty folder answers like every other command
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise click.UsageError(f"{out} already exists; choose another --out or pass --overwrite.")
    try:
        columns = canonical_classes(parse_classes(mask_columns) or ())
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--masks") from None
    images = not no_images
    try:
        if fmt == "coco":
            path = export.export_coco(
                results,
                out,
                encoding=encoding,
                parts=not no_parts,
                level=min_value,
                tolerance=tolerance,
            )
            doc = json.loads(path.read_text(encoding="utf-8"))
            summary = export.ExportSummary(path, len(doc["images"]), len(doc["annotations"]))
        elif fmt == "yolo":
            summary = export.export_yolo(
                results,
                out,
                parts=not no_parts,
                level=min_value,
                tolerance=tolerance,
                min_area=min_area,
                images=images,
                overwrite=overwrite,
            )
        elif fmt == "cvat":
            summary = export.export_cvat(
                results, out, level=min_value, images=cvat_images, overwrite=overwrite
            )
        elif fmt == "labelstudio":
            summary = export.export_labelstudio(
                results,
                out,
                kind=kind,
                image_root=image_root,
                local_root=local_root,
                images=images,
                parts=not no_parts,
                level=min_value,
                tolerance=tolerance,
                overwrite=overwrite,
            )
        else:
            summary = export.export_hf(
                results, out, masks=columns, level=min_value, images=images, overwrite=overwrite
            )
    except ValueError as exc:
        if isinstance(exc, ClothsegError):
            raise
        raise CliError(exc) from exc
    except KeyboardInterrupt:
        click.echo("Interrupted: nothing was written.", err=True)
        click.get_current_context().exit(130)
    click.echo(
        f"{fmt}: {summary.path} ({summary.images} images, {summary.annotations} annotations)"
    )


@click.command("import-labels", short_help="Read corrected labels back into result folders.")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(["coco", "cvat", "yolo"]),
    required=True,
    help="coco: a COCO JSON (RLE or polygons); cvat: a Segmentation mask 1.1 ZIP or folder; "
    "yolo: an Ultralytics segmentation folder (data.yaml, images/, labels/).",
)
@click.option(
    "-o",
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="The results folder: one result folder per image.",
)
@click.option(
    "--images",
    "images_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="coco: where the photos are (default: images/ beside the JSON's folder).",
)
@click.option(
    "--no-parts", is_flag=True, help="Do not turn garment instances into per-garment parts."
)
@click.option(
    "--overwrite", is_flag=True, help="Rewrite result folders complete from an earlier run."
)
def import_labels_command(
    source: Path, fmt: str, out: Path, images_dir: Path | None, no_parts: bool, overwrite: bool
) -> None:
    """Read a labeling tool's export (SOURCE) back into result folders under OUT.

    Every command that reads results (stats, tryon, report, export) then takes the
    corrected masks. A rerun keeps the folders an earlier run completed. Exit codes:
    0 done, 1 a file could not be read (the message names file and line), 2 usage,
    130 interrupted (rerun to carry on).
    """
    # lazy: keeps the clothseg command's start-up fast
    from ..batch.labels import import_labels

    options: dict[str, object] = {"parts": not no_parts}
    if images_dir is not None:
        if fmt != "coco":
            raise click.UsageError("--images applies to --format coco only.")
        options["images"] = images_dir
    try:
        summary = import_labels(source, out, fmt=fmt, overwrite=overwrite, **options)
    except KeyboardInterrupt:
        click.echo(
            "Interrupted: the folders written so far are complete; rerun the same command "
            "to carry on.",
            err=True,
        )
        click.get_current_context().exit(130)
    click.echo(
        f"{fmt}: {summary.done} result folders written, {summary.skipped} kept from an "
        f"earlier run, under {out}"
    )
    click.echo(f"manifest: {summary.manifest}")
