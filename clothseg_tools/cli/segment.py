"""``clothseg segment``: segment images (files, folders, globs, lists, URLs) into result folders."""

from __future__ import annotations

from pathlib import Path

import click

from ..batch import discover_inputs, read_manifest
from ..batch.manifest import manifest_path
from ..batch.segment import BACKENDS, segment_batch
from ..contract import KEY_ENV, URL_ENV
from ._common import TqdmProgress, api_option_flags, batch_options, finish_batch

__all__ = ["segment_command"]


@click.command("segment", short_help="Segment images into result folders (resumable).")
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "-o",
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder: one result folder per input, and manifest.jsonl.",
)
@click.option(
    "--engine",
    type=click.Choice(BACKENDS),
    default="auto",
    show_default=True,
    help="auto: the service when an API key is configured, else the local engine.",
)
@click.option(
    "--replay-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Record folder of the replay engine.",
)
@click.option(
    "--api-key",
    envvar=KEY_ENV,
    show_envvar=True,
    help="API key of the service (selects the remote backend).",
)
@click.option(
    "--base-url",
    envvar=URL_ENV,
    show_envvar=True,
    help="Base URL of the service.",
)
@api_option_flags
@click.option(
    "--rate-limit",
    type=click.FloatRange(min=0, min_open=True),
    help="Start at most this many images per second.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds to wait for one image on the service.",
)
@batch_options
def segment_command(
    inputs: tuple[str, ...],
    out_dir: Path,
    engine: str,
    replay_dir: Path | None,
    api_key: str | None,
    base_url: str | None,
    class_type: int,
    output_type: int,
    detail_mode: int,
    quality: int,
    rate_limit: float | None,
    timeout: float | None,
    workers: int,
    overwrite: bool,
    retry_failed: bool,
    quiet: bool,
) -> None:
    """Segment images into result folders under OUT.

    INPUTS are image files, folders (searched recursively), glob patterns, .txt files
    listing paths or URLs, or URLs. Each input's masks go to OUT/<relative path
    without extension>/; rerunning the same command resumes where it stopped.
    """
    known = {
        src: rec["key"]
        for src, rec in read_manifest(manifest_path(out_dir)).items()
        if isinstance(rec.get("key"), str)
    }
    items = discover_inputs(inputs, exclude=[out_dir], known_keys=known)
    if not items:
        raise click.UsageError("The inputs hold no image files.")
    summary = segment_batch(
        items,
        out_dir,
        engine=engine,
        class_type=class_type,
        output_type=output_type,
        detail_mode=detail_mode,
        quality=quality,
        api_key=api_key,
        base_url=base_url,
        replay_dir=replay_dir,
        timeout=timeout,
        workers=workers,
        rate_limit=rate_limit,
        overwrite=overwrite,
        retry_failed=retry_failed,
        progress=TqdmProgress("segment", quiet=quiet),
    )
    finish_batch(summary, quiet=quiet)
