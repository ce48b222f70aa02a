"""``clothseg coco``: a COCO JSON of a results folder, for training code and labeling tools."""

from __future__ import annotations

import json
from pathlib import Path

import click

__all__ = ["coco_command"]


@click.command("coco", short_help="Export a results folder as COCO JSON (RLE or polygons).")
@click.argument("results", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "-o",
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The JSON file (default: RESULTS/coco.json).",
)
@click.option(
    "--mode",
    type=click.Choice(["instances", "semantic"]),
    default="instances",
    show_default=True,
    help="instances: one annotation per class mask (overlaps kept); "
    "semantic: one class per pixel, overlaps settled by label priority.",
)
@click.option(
    "--encoding",
    type=click.Choice(["rle", "polygon"]),
    default="rle",
    show_default=True,
    help="Compressed RLE (exact) or polygons with holes.",
)
@click.option(
    "--no-parts",
    is_flag=True,
    help="One annotation per class even where per-garment parts were saved.",
)
@click.option(
    "--min-value",
    type=click.IntRange(1, 255),
    default=128,
    show_default=True,
    help="Mask value at which a pixel belongs to a class.",
)
def coco_command(
    results: Path, out: Path | None, mode: str, encoding: str, no_parts: bool, min_value: int
) -> None:
    """Write a COCO JSON file for every saved result below RESULTS.

    Categories are the twelve classes; images are named after their source photos.
    pycocotools' COCO(path) reads the file as it is.
    """
    from ..batch import require_results
    from ..export import export_coco

    require_results(results)  # an empty folder answers like every other command
    path = export_coco(
        results,
        out or results / "coco.json",
        mode=mode,
        encoding=encoding,
        parts=not no_parts,
        level=min_value,
    )
    doc = json.loads(path.read_text(encoding="utf-8"))
    click.echo(f"COCO: {path} ({len(doc['images'])} images, {len(doc['annotations'])} annotations)")
