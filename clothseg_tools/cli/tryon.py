"""``clothseg tryon``: a try-on mask per result folder, for one garment category."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..batch.tryon import PRESETS, tryon_job
from ..tryon import CATEGORIES
from .options import batch_options, scale_options
from .post import run_post

__all__ = ["tryon_command"]


@click.command("tryon", short_help="Write the try-on mask of each image (default or ootd).")
@click.argument("results", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "-c",
    "--category",
    type=click.Choice(CATEGORIES),
    required=True,
    help="The kind of garment the try-on puts on.",
)
@click.option(
    "--preset",
    type=click.Choice(PRESETS),
    default="default",
    show_default=True,
    help="default: this library's rules; ootd: OOTDiffusion's mask (IDM-VTON uses it too).",
)
@click.option(
    "--model-type",
    type=click.Choice(("hd", "dc")),
    default="hd",
    show_default=True,
    help="With --preset ootd: the VITON-HD (hd) or DressCode (dc) model's arm width.",
)
@click.option(
    "-o",
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Output root (default: RESULTS itself, beside the masks).",
)
@click.option(
    "--name",
    help="Output file name inside each item's folder "
    "(default: tryon_<category>.png, or tryon_<category>_ootd_<model type>.png).",
)
@click.option(
    "--detect-pose",
    is_flag=True,
    help="With --preset ootd: for results without keypoints (from the service or an ONNX "
    "parser), find them in the photo with the local engine's pose model.",
)
@batch_options
@scale_options
def tryon_command(
    results: Path,
    category: str,
    preset: str,
    model_type: str,
    out_dir: Path | None,
    name: str | None,
    detect_pose: bool,
    **batch: Any,
) -> None:
    """Write a try-on mask (white = where the model paints) for each result folder.

    The ootd preset needs pose keypoints for upper_body and dresses; results from the
    local engine carry them (clothseg segment --engine local). Offline, from photos:

        clothseg segment photos/ --engine local --class-type 4 -o results/

        clothseg tryon results/ --category upper_body --preset ootd
    """
    run_post(
        "tryon",
        lambda out: tryon_job(
            out,
            category=category,
            preset=preset,
            model_type=model_type,
            name=name,
            detect_pose=detect_pose,
        ),
        results,
        out_dir,
        **batch,
    )
