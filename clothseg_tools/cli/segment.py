"""``clothseg segment``: segment images (files, folders, globs, lists, URLs) into result folders."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import click

from ..batch import BatchOptions, InputNotFoundError, scan_inputs
from ..batch.manifest import manifest_keys
from ..batch.segment import BACKENDS, choose_backend, default_workers, segment_batch
from ..classes import CLASSES, classes_for_type
from ..contract import URL_ENV, safe_source
from ._common import TqdmProgress, finish_batch
from .options import (
    api_key_option,
    api_option_flags,
    base_url_option,
    batch_options,
    engine_option,
    model_options,
    onnx_engine_options,
    replay_dir_option,
    scale_options,
    take_api_options,
)

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
@engine_option(
    choices=BACKENDS,
    default="auto",
    help="auto: the service when an API key is configured, else the local engine.",
)
@replay_dir_option
@model_options
@api_key_option
@base_url_option
@api_option_flags
@click.option(
    "--rate-limit",
    type=click.FloatRange(min=0, min_open=True),
    help="Start at most this many images per second, over all workers together "
    "(with --executor ray too: the service's quota is per key).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds to wait for one image on the service.",
)
@functools.partial(
    batch_options,
    workers_help="Images in flight [default: the CPU cores available for an in-process "
    "engine, which is CPU-bound; 8 for the remote service, which is I/O-bound].",
)
@scale_options
def segment_command(
    inputs: tuple[str, ...],
    out_dir: Path,
    engine: str,
    replay_dir: Path | None,
    model: Path | None,
    labels: str | None,
    api_key: str | None,
    base_url: str | None,
    timeout: float | None,
    workers: int | None,
    quiet: bool,
    **flags: Any,
) -> None:
    """Segment images into result folders under OUT.

    INPUTS are image files, folders (searched recursively), glob patterns, .txt files
    listing paths or URLs, or URLs. Each input's masks go to OUT/<relative path
    without extension>/; rerunning the same command resumes where it stopped.
    Files in a folder that are not supported images are listed as skipped.

    The options default to the service's, whatever the engine: --class-type 1 asks
    for clothes, tops, bottoms, dress and acc; --class-type 4 for all twelve classes.
    The engine and the classes are named at the start and in the summary.
    """
    found = scan_inputs(inputs, exclude=[out_dir], known_keys=manifest_keys(out_dir))
    if not found.items:
        passed = f" ({len(found.skipped)} other files passed over)" if found.skipped else ""
        raise InputNotFoundError(
            f"The inputs hold no supported image files{passed}; name photos or folders "
            "of photos (jpg, png, webp, bmp, tiff)."
        )
    engine_options = onnx_engine_options(engine, model, labels)
    if engine == "auto" and model is not None:
        engine = "onnx"  # a model given is the engine asked for
    backend = choose_backend(engine, api_key=api_key)
    workers = workers or default_workers(backend)
    options = take_api_options(flags)
    asked = describe_request(backend, options.class_type, base_url=base_url)
    if not quiet:
        click.echo(f"Segmenting {len(found.items)} images {asked}; {workers} workers.", err=True)
    summary = segment_batch(
        found.items,
        out_dir,
        options,
        # the batch and scale flags, and --rate-limit: the fields of BatchOptions
        BatchOptions(workers=workers, **flags),
        engine=backend,
        api_key=api_key,
        base_url=base_url,
        replay_dir=replay_dir,
        engine_options=engine_options,
        timeout=timeout,
        progress=TqdmProgress("segment", quiet=quiet),
        passed_over=found.skipped,
    )
    finish_batch(summary, quiet=quiet, details=[asked])


def describe_request(backend: str, class_type: int, *, base_url: str | None = None) -> str:
    """Which engine answers and which classes it is asked for, in one phrase.

    Examples
    --------
    >>> print(describe_request("local", 1))
    with the local engine, asking for class_type 1: clothes, tops, bottoms, dress, acc
    (--class-type 4 asks for all twelve)
    """
    if backend == "remote":
        where = base_url or os.environ.get(URL_ENV)
        engine = f"with the remote service{f' at {safe_source(where)}' if where else ''}"
    else:
        engine = f"with the {backend} engine"
    classes = classes_for_type(class_type)
    more = "" if classes == CLASSES else " (--class-type 4 asks for all twelve)"
    return f"{engine}, asking for class_type {class_type}: {', '.join(classes)}{more}"
